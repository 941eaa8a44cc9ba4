package issuance

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
)

// serials is a card generator that hands out cards with the given serials in turn.
type serials struct {
	mu    sync.Mutex
	next  []string
	drawn []string
}

func (s *serials) generate() (codecard.Card, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := codecard.Generate()
	if err != nil || len(s.next) == 0 {
		return c, err
	}
	c.Serial, s.next = s.next[0], s.next[1:]
	s.drawn = append(s.drawn, c.Serial)
	return c, nil
}

func testIssuer(t *testing.T) (*Issuer, *serials) {
	t.Helper()
	st := storetest.NewStore(t, storetest.Real().Client(t))
	cards, err := codecard.NewHasher([]byte("codecard-test-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	gen := &serials{}
	return &Issuer{Store: st, Passwords: password.NewHasher(password.TestParams), Cards: cards, NewCard: gen.generate}, gen
}

// TestSerialsUnique: a card serial is claimed in Redis before its card is written; a serial
// already taken is drawn again, and the claim of a card that was not written is released.
func TestSerialsUnique(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	is, gen := testIssuer(t)
	const taken = "G000000001"
	gen.next = []string{taken}
	first, err := is.Issue(ctx, Request{CPR: "1506901234", Name: "Karen Jensen"})
	if err != nil || first.Card.Serial != taken {
		t.Fatalf("first issue: %v, serial %v", err, first)
	}

	tests := []struct {
		name       string
		cpr        string
		serials    []string
		wantSerial string
		wantErr    error
	}{
		{"collision draws again", "0101901234", []string{taken, "G000000002"}, "G000000002", nil},
		{"two collisions", "0201901234", []string{taken, "G000000002", "G000000003"}, "G000000003", nil},
		{"failed write releases the claim", "1506901234", []string{"G000000004"}, "", store.ErrConflict},
		{"released serial is free again", "0301901234", []string{"G000000004"}, "G000000004", nil},
		{"replacement card: collision draws again", "", []string{taken, "G000000005"}, "G000000005", nil},
	}
	for _, tc := range tests { // in order: each row builds on the claims of the ones before
		t.Run(tc.name, func(t *testing.T) {
			gen.next, gen.drawn = tc.serials, nil
			var serial string
			var err error
			if tc.cpr == "" {
				var card codecard.Card
				card, err = is.ReplaceCard(ctx, first.UserID)
				serial = card.Serial
			} else {
				var res *Result
				if res, err = is.Issue(ctx, Request{CPR: tc.cpr, Name: "Jens Hansen"}); err == nil {
					serial = res.Card.Serial
				}
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || serial != tc.wantSerial || len(gen.drawn) != len(tc.serials) {
				t.Fatalf("err %v, serial %s after drawing %v; want %s after %v", err, serial, gen.drawn, tc.wantSerial, tc.serials)
			}
		})
	}
}
