package idp_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/issuance"
)

// TestRenewalDueRoundTrips: a login in the renewal window costs the round trips of any login,
// except the first one of the window, which pays exactly the one write of its renewal_due
// event (after the login moved on).
func TestRenewalDueRoundTrips(t *testing.T) {
	rp := newBenchRP(t)
	ctx := context.Background()
	rt := &roundTrips{}
	rp.s.Store.Redis().AddHook(rt)
	cph, _ := time.LoadLocation("Europe/Copenhagen")
	y, m, d := time.Now().In(cph).Date()
	issue := func(i, daysLeft int) *loginCitizen {
		issued := time.Date(y-3, m, d+daysLeft, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
		res, err := rp.s.Issuer.IssueWithPassword(ctx, issuance.Request{CPR: fmt.Sprintf("0303%02d%04d", 60+i, 4321), Name: "Forny Borger", IssuedAt: issued}, "Bench2026nemid")
		if err != nil {
			t.Fatal(err)
		}
		c := &loginCitizen{uid: res.UserID, keys: map[string]string{}, left: len(res.Card.Keys)}
		for _, k := range res.Card.Keys {
			c.keys[k.Number] = k.Key
		}
		return c
	}
	count := func(c *loginCitizen) int {
		rt.Take()
		loginOnce(t, rp, c)
		n, _ := rt.Take()
		return n
	}
	plain := issue(0, 400)
	count(plain) // loads the scripts, fills the client cache
	base := count(plain)
	first := issue(1, 30)
	count(first) // the first event: loads its script too
	if n := count(first); n != base {
		t.Errorf("a login in the window, its event sent: %d round trips, want %d as any login", n, base)
	}
	if n := count(issue(2, 60)); n != base+1+outboxRoundTrips {
		t.Errorf("the first login in the window: %d round trips, want %d (one more: its event, and the outbox's %d)", n, base+1+outboxRoundTrips, outboxRoundTrips)
	}
	if n := count(issue(3, 61)); n != base {
		t.Errorf("a login 61 days before expiry: %d round trips, want %d", n, base)
	}
}
