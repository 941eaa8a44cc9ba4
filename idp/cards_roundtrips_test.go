package idp_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nemidp/nemidp/idp/issuance"
)

// TestRoundTripsThresholdLogin: the login whose key brings the card to its threshold orders
// the new card at the cost of exactly two more Redis round trips in its code-card answer (the
// serial's claim and the script that writes the card with its printed form and event); the
// claim rides in the key's own script, so every other login keeps its count
// (TestRoundTripsPerLogin).
func TestRoundTripsThresholdLogin(t *testing.T) {
	rp := newBenchRP(t)
	ctx := context.Background()
	rt := &roundTrips{}
	rp.s.Store.Redis().AddHook(rt)
	codecard := func(i int, threshold *int) (int, []string) {
		res, err := rp.s.Issuer.IssueWithPassword(ctx, issuance.Request{CPR: fmt.Sprintf("0303%02d%04d", 60+i, 1234), Name: "Tæller Borger",
			CardThreshold: threshold}, "Bench2026nemid")
		if err != nil {
			t.Fatal(err)
		}
		c := &loginCitizen{uid: res.UserID, keys: map[string]string{}, left: len(res.Card.Keys)}
		for _, k := range res.Card.Keys {
			c.keys[k.Number] = k.Key
		}
		var n int
		var cmds []string
		rt.Take()
		rp.phase = func(p string) {
			m, cs := rt.Take()
			if p == "codecard" {
				n, cmds = m, cs
			}
		}
		loginOnce(t, rp, c)
		rp.phase = nil
		cards, err := rp.s.Store.Cards(ctx, res.UserID)
		if err != nil {
			t.Fatal(err)
		}
		if want := 1 + boolInt(threshold != nil); len(cards) != want {
			t.Fatalf("citizen %d has %d cards after the login, want %d", i, len(cards), want)
		}
		return n, cmds
	}
	at := 148
	codecard(0, &at) // loads the scripts
	codecard(1, nil)
	normal, ncmds := codecard(2, nil)
	threshold, tcmds := codecard(3, &at)
	t.Logf("code-card answer: %d round trips %v; at the threshold: %d %v", normal, ncmds, threshold, tcmds)
	// 2 more for the order (the serial claim, the order script), and the outbox's for its
	// card_sent event (outboxRoundTrips).
	if want := normal + 2 + outboxRoundTrips; threshold != want {
		t.Errorf("the code-card answer at the threshold takes %d Redis round trips, want %d (2 + %d more than %d)", threshold, want, outboxRoundTrips, normal)
	}
}

// outboxRoundTrips is what a write through the outbox (store.withOutbox) adds for one event:
// its trace in pending before the write, then the relay (the cursor and addresses, the events,
// one relay script per event, the cursor's move) and the trace's removal. Rare writes pay it (a
// card ordered, a renewal notice); a login without an event does not.
const outboxRoundTrips = 6

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
