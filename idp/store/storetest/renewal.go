package storetest

import (
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/store"
)

// renewalEvents are the citizen's renewal_due events, oldest first.
func (h *harness) renewalEvents(t *testing.T, uid string) []store.Event {
	t.Helper()
	evs, err := h.s.Events(t.Context(), uid, 50)
	noErr(t, "Events", err)
	var out []store.Event
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Type == "renewal_due" {
			out = append(out, evs[i])
		}
	}
	return out
}

// testRenewalDue: NoteRenewalDue sends one renewal_due event per expiry date (type,
// expires_at, at, by=system) and marks the record; a second call for the date sends nothing,
// nor does one for an expiry the record no longer has (renewed meanwhile), nor one for a
// citizen who does not exist (and it makes no record); a renewal's new expiry sends again.
func testRenewalDue(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	noErr(t, "set expiry", h.s.Redis().HSet(ctx, h.citizenKey(c.UserID), "expires_at", "2026-06-01").Err())
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for i, tc := range []struct {
		name      string
		expiresAt string
		want      bool
		events    int
	}{
		{"first", "2026-06-01", true, 1},
		{"again", "2026-06-01", false, 1},
		{"stale expiry", "2026-05-15", false, 1},
	} {
		sent, err := h.s.NoteRenewalDue(ctx, c.UserID, tc.expiresAt, now.Add(time.Duration(i)*time.Hour))
		noErr(t, tc.name, err)
		if evs := h.renewalEvents(t, c.UserID); sent != tc.want || len(evs) != tc.events {
			t.Fatalf("%s: sent %v (want %v), %d events (want %d)", tc.name, sent, tc.want, len(evs), tc.events)
		}
	}
	ev := h.renewalEvents(t, c.UserID)[0]
	if ev.Fields["expires_at"] != "2026-06-01" || ev.Fields["by"] != "system" || ev.Fields["at"] != "2026-05-01T10:00:00Z" {
		t.Fatalf("event %+v", ev)
	}
	if got := h.load(t, c.UserID); got.RenewalNotified != "2026-06-01" {
		t.Fatalf("renewal_notified %q, want the date sent for", got.RenewalNotified)
	}
	// Renewed (a new expiry): its own window sends again.
	noErr(t, "renew", h.s.Renew(ctx, c.UserID, "2029-05-01", "2026-05-01", false))
	if sent, err := h.s.NoteRenewalDue(ctx, c.UserID, "2029-05-01", now.AddDate(3, 0, -20)); err != nil || !sent {
		t.Fatalf("after renewal: sent %v, %v", sent, err)
	}
	if evs := h.renewalEvents(t, c.UserID); len(evs) != 2 || evs[1].Fields["expires_at"] != "2029-05-01" {
		t.Fatalf("after renewal: events %+v", evs)
	}
	// No such citizen: nothing sent, nothing made.
	ghost := NewUserID()
	if sent, err := h.s.NoteRenewalDue(ctx, ghost, "2026-06-01", now); err != nil || sent {
		t.Fatalf("unknown citizen: sent %v, %v", sent, err)
	}
	for _, k := range []string{h.citizenKey(ghost), h.citizenKey(ghost) + ":events"} {
		if n, _ := h.s.Redis().Exists(ctx, k).Result(); n != 0 {
			t.Fatalf("NoteRenewalDue of an unknown citizen made %s", k)
		}
	}
}

// testRenewalDueRace: logins at once in the window send one renewal_due event.
func testRenewalDueRace(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	noErr(t, "set expiry", h.s.Redis().HSet(ctx, h.citizenKey(c.UserID), "expires_at", "2026-06-01").Err())
	sent := race(Racers, func(int) bool {
		ok, err := h.s.NoteRenewalDue(ctx, c.UserID, "2026-06-01", time.Now())
		if err != nil {
			t.Errorf("NoteRenewalDue: %v", err)
		}
		return ok
	})
	if n := countTrue(sent); n != 1 || len(h.renewalEvents(t, c.UserID)) != 1 {
		t.Fatalf("%d racers sent, %d events; want 1 and 1", n, len(h.renewalEvents(t, c.UserID)))
	}
}

// testExpiryOf: a NemID is valid through its expires_at day, judged on the Danish date; due in
// its last RenewalWindowDays days.
func testExpiryOf(t *testing.T, _ *harness) {
	cph, err := time.LoadLocation("Europe/Copenhagen")
	noErr(t, "location", err)
	at := func(s string) time.Time {
		d, err := time.ParseInLocation("2006-01-02 15:04", s, cph)
		noErr(t, "parse", err)
		return d
	}
	for _, tc := range []struct {
		exp, now     string
		left         int
		expired, due bool
	}{
		{"2026-06-01", "2026-06-01 23:59", 0, false, true},  // the last valid day
		{"2026-06-01", "2026-06-02 00:00", -1, true, false}, // the next Danish day
		{"2026-06-01", "2026-04-02 00:00", 60, false, true},
		{"2026-06-01", "2026-04-01 23:59", 61, false, false},
		{"2026-03-30", "2026-03-29 12:00", 1, false, true}, // across the DST change
		{"", "2026-03-29 12:00", store.RenewalWindowDays + 1, false, false},
	} {
		got := store.ExpiryOf(tc.exp, at(tc.now))
		if got.DaysLeft != tc.left || got.Expired != tc.expired || got.Due != tc.due {
			t.Errorf("ExpiryOf(%q, %s) = %+v, want %d left, expired %v, due %v", tc.exp, tc.now, got, tc.left, tc.expired, tc.due)
		}
	}
	// 23:30 UTC on 1 June is already 2 June in Denmark.
	if !store.ExpiryOf("2026-06-01", time.Date(2026, 6, 1, 23, 30, 0, 0, time.UTC)).Expired {
		t.Error("the expiry is judged on the UTC date, not the Danish one")
	}
}
