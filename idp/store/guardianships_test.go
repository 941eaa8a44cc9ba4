package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
)

// TestGuardianshipValidityAtDanishMidnight: valid_from begins and valid_to ends at midnight
// in Denmark (CET in winter, CEST in summer), not at UTC midnight; absent dates are open-ended.
func TestGuardianshipValidityAtDanishMidnight(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	g := store.Guardianship{ValidFrom: "2026-01-10", ValidTo: "2026-06-30"}
	tests := []struct {
		name string
		now  string
		want bool
	}{
		{"23:59 Danish the day before valid_from", "2026-01-09T22:59:00Z", false},
		{"00:00 Danish on valid_from (23:00 UTC)", "2026-01-09T23:00:00Z", true},
		{"mid-period", "2026-03-01T12:00:00Z", true},
		{"23:59 Danish on valid_to (summer time)", "2026-06-30T21:59:00Z", true},
		{"00:00 Danish the day after valid_to (22:00 UTC)", "2026-06-30T22:00:00Z", false},
	}
	for _, tc := range tests {
		if got := g.CurrentAt(at(tc.now)); got != tc.want {
			t.Errorf("%s: CurrentAt = %v, want %v", tc.name, got, tc.want)
		}
	}
	open := store.Guardianship{}
	if !open.CurrentAt(at("1990-01-01T00:00:00Z")) || !open.CurrentAt(at("2090-01-01T00:00:00Z")) {
		t.Error("a guardianship without dates is not open-ended")
	}
	ended := store.Guardianship{EndedAt: at("2026-02-01T10:00:00Z")}
	if !ended.CurrentAt(at("2026-02-01T09:59:59Z")) || ended.CurrentAt(at("2026-02-01T10:00:00Z")) {
		t.Error("an ended guardianship is current only before its end")
	}
}

// TestGuardianshipsStoreListEnd: guardianships are listed per guardian (not the ward's, not
// another guardian's), CurrentWards leaves out ended and not-yet-valid ones, ending is by id
// alone and idempotent, and an unknown id is ErrNotFound.
func TestGuardianshipsStoreListEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t, storetest.Real().Client(t))
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	mk := func(id, guardian, ward, from string) *store.Guardianship {
		g := &store.Guardianship{ID: id, Guardian: guardian, Ward: ward, WardName: "Ward " + ward, Kind: store.GuardianshipFull,
			ValidFrom: from, CreatedAt: now}
		if err := st.CreateGuardianship(ctx, g); err != nil {
			t.Fatalf("create %s: %v", id, err)
		}
		return g
	}
	mk("g1", "111111111", "211111111", "")
	mk("g2", "111111111", "311111111", "2026-03-02") // not yet valid
	mk("g3", "111111111", "411111111", "2026-01-01")
	mk("g4", "511111111", "211111111", "")
	if err := st.CreateGuardianship(ctx, &store.Guardianship{ID: "g1", Guardian: "611111111"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate id: %v, want ErrConflict", err)
	}

	all, err := st.Guardianships(ctx, "111111111")
	if err != nil {
		t.Fatal(err)
	}
	if ids := idsOf(all); len(ids) != 3 || ids[0] != "g1" || ids[1] != "g2" || ids[2] != "g3" {
		t.Fatalf("guardian's list = %v, want [g1 g2 g3]", ids)
	}
	if none, err := st.Guardianships(ctx, "211111111"); err != nil || len(none) != 0 {
		t.Fatalf("the ward's own list = %v, %v; want empty", idsOf(none), err)
	}

	ended, err := st.EndGuardianship(ctx, "g3", now)
	if err != nil || ended.EndedAt.IsZero() || ended.Guardian != "111111111" {
		t.Fatalf("end g3: %+v, %v", ended, err)
	}
	again, err := st.EndGuardianship(ctx, "g3", now.Add(time.Hour))
	if err != nil || !again.EndedAt.Equal(ended.EndedAt) {
		t.Fatalf("ending again: %+v, %v; want the first end kept", again, err)
	}
	if _, err := st.EndGuardianship(ctx, "nope", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("end unknown: %v, want ErrNotFound", err)
	}

	cur, err := st.CurrentWards(ctx, "111111111", now)
	if err != nil {
		t.Fatal(err)
	}
	if ids := idsOf(cur); len(ids) != 1 || ids[0] != "g1" {
		t.Fatalf("current = %v, want [g1] (g2 not yet valid, g3 ended)", ids)
	}
	later, err := st.CurrentWards(ctx, "111111111", time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)) // 00:00 Danish on 2 March
	if err != nil {
		t.Fatal(err)
	}
	if ids := idsOf(later); len(ids) != 2 || ids[1] != "g2" {
		t.Fatalf("current at Danish midnight of 2 March = %v, want [g1 g2]", ids)
	}
	g, err := st.Guardianship(ctx, "111111111", "g3")
	if err != nil || g.EndedAt.IsZero() {
		t.Fatalf("stored g3 = %+v, %v; want ended", g, err)
	}
	if _, err := st.Guardianship(ctx, "511111111", "g1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("g1 under another guardian: %v, want ErrNotFound", err)
	}
}

func idsOf(gs []store.Guardianship) []string {
	var ids []string
	for _, g := range gs {
		ids = append(ids, g.ID)
	}
	return ids
}
