package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
)

func cardRec(serial string) store.CardRecord {
	return store.CardRecord{Serial: serial, Status: store.CardActive, Hashes: map[string]string{"0001": "h1", "0002": "h2"}}
}

// TestReplaceActiveCardAndResetLogin: a replacement card retires the old one in the same step,
// serials stay unique across citizens, and nothing is written for a citizen that does not
// exist (its serial claim is released).
func TestReplaceActiveCardAndResetLogin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.NewStore(t, storetest.Real().Client(t))
	c := &store.Citizen{UserID: "123456789", CPR: "1506901234", Name: "Karen Jensen", Kind: "oces", Status: store.StatusBlocked,
		BlockReason: store.BlockFailures, Failures: 5, MustChange: true, CreatedAt: time.Now()}
	if err := st.CreateCitizen(ctx, c, cardRec("G100000001")); err != nil {
		t.Fatal(err)
	}
	other := &store.Citizen{UserID: "223456789", CPR: "0101901234", Name: "Jens Hansen", Kind: "oces", Status: store.StatusActive}
	if err := st.CreateCitizen(ctx, other, cardRec("G100000001")); !errors.Is(err, store.ErrSerialTaken) {
		t.Fatalf("second citizen on the same serial: %v, want ErrSerialTaken", err)
	}
	tests := []struct {
		name, uid, serial string
		want              error
	}{
		{"taken serial", c.UserID, "G100000001", store.ErrSerialTaken},
		{"no such citizen", "999999999", "G100000002", store.ErrNotFound},
		{"replacement", c.UserID, "G100000002", nil}, // the serial the failed write left free
	}
	for _, tc := range tests { // in order
		t.Run(tc.name, func(t *testing.T) {
			if err := st.ReplaceActiveCard(ctx, tc.uid, cardRec(tc.serial)); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	for serial, want := range map[string]string{"G100000001": store.CardRetired, "G100000002": store.CardActive} {
		if got, left, err := st.CardStatus(ctx, c.UserID, serial); err != nil || got != want || left != 2 {
			t.Errorf("card %s: %s with %d keys (%v), want %s with 2", serial, got, left, err, want)
		}
	}
	if err := st.ResetLogin(ctx, c.UserID, "new-hash"); err != nil {
		t.Fatal(err)
	}
	got, err := st.Citizen(ctx, c.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ActiveCard != "G100000002" || got.Status != store.StatusActive || got.BlockReason != "" || got.Failures != 0 ||
		got.MustChange || got.Password != "new-hash" || got.Name != c.Name {
		t.Fatalf("after the reset: %+v", got)
	}
	if err := st.ResetLogin(ctx, "999999999", "h"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("reset of a missing citizen: %v, want ErrNotFound", err)
	}
	if _, err := st.Citizen(ctx, "999999999"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed reset wrote a record: %v", err)
	}
}
