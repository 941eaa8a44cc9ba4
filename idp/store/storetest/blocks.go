package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/store"
)

// blockFrom are the states a NemID can be blocked from, and the status an unblock gives back.
var blockFrom = []struct {
	name           string
	status, reason string // as stored before the block
	unblocked      string // status after the unblock
	unblockedWhy   string // block_reason after the unblock
}{
	{"active", store.StatusActive, "", store.StatusActive, ""},
	{"expired", store.StatusExpired, "", store.StatusExpired, ""},
	{"locked after failures", store.StatusBlocked, store.BlockFailures, store.StatusBlocked, store.BlockFailures},
}

func (h *harness) setState(t *testing.T, uid, status, reason string) {
	t.Helper()
	noErr(t, "set status", h.s.Redis().HSet(t.Context(), h.citizenKey(uid), "status", status, "block_reason", reason).Err())
}

func (h *harness) eventTypes(t *testing.T, uid string) []string {
	t.Helper()
	evs, err := h.s.Events(t.Context(), uid, 50)
	noErr(t, "Events", err)
	var out []string
	for i := len(evs) - 1; i >= 0; i-- { // oldest first
		out = append(out, evs[i].Type)
	}
	return out
}

// testBlockUnblock: a block from every state and reason stores status, reason, blocked_at and
// the sessions' end, once (a repeated block changes at most the reason), and the unblock gives
// the NemID back as it was; the sessions' end stays.
func testBlockUnblock(t *testing.T, h *harness) {
	ctx := t.Context()
	for _, from := range blockFrom {
		for _, reason := range []string{store.BlockMisuse, store.BlockLostCard, store.BlockOperator} {
			t.Run(from.name+"/"+reason, func(t *testing.T) {
				c, _ := h.citizen(t, 1)
				h.setState(t, c.UserID, from.status, from.reason)
				now := time.Now().Truncate(time.Millisecond)
				res, err := h.s.Block(ctx, c.UserID, reason, "operator", now)
				noErr(t, "Block", err)
				if !res.Changed {
					t.Fatalf("first block: %+v, want changed", res)
				}
				got := h.load(t, c.UserID)
				at, _ := h.s.Redis().HGet(ctx, h.citizenKey(c.UserID), "blocked_at").Result()
				if got.Status != store.StatusBlocked || got.BlockReason != reason || at != now.UTC().Format(time.RFC3339) || !got.SessionsEnded.Equal(now) {
					t.Fatalf("after block: %s/%s blocked_at %q ended %v; want blocked/%s at %v", got.Status, got.BlockReason, at, got.SessionsEnded, reason, now)
				}
				// Again, later, with the same and another reason: still blocked, blocked_at and the
				// sessions' end as they were.
				for _, again := range []string{reason, store.BlockOperator} {
					res, err = h.s.Block(ctx, c.UserID, again, "operator", now.Add(time.Minute))
					noErr(t, "Block again", err)
					if res.Changed {
						t.Fatalf("a repeated block (%s) changed the NemID: %+v", again, res)
					}
					got2 := h.load(t, c.UserID)
					at2, _ := h.s.Redis().HGet(ctx, h.citizenKey(c.UserID), "blocked_at").Result()
					if got2.Status != store.StatusBlocked || got2.BlockReason != again || at2 != at || !got2.SessionsEnded.Equal(now) {
						t.Fatalf("after a repeated block (%s): %s/%s at %q ended %v", again, got2.Status, got2.BlockReason, at2, got2.SessionsEnded)
					}
				}
				st, err := h.s.Unblock(ctx, c.UserID, "operator", now.Add(2*time.Minute))
				noErr(t, "Unblock", err)
				got = h.load(t, c.UserID)
				if st != from.unblocked || got.Status != from.unblocked || got.BlockReason != from.unblockedWhy {
					t.Fatalf("after unblock: answered %s, stored %s/%s; want %s/%s", st, got.Status, got.BlockReason, from.unblocked, from.unblockedWhy)
				}
				if !got.SessionsEnded.Equal(now) {
					t.Fatalf("the unblock moved the sessions' end to %v, want %v", got.SessionsEnded, now)
				}
				if !store.LoginEnded(got.SessionsEnded, now.Add(-time.Second)) || !store.LoginEnded(got.SessionsEnded, now) ||
					store.LoginEnded(got.SessionsEnded, now.Add(time.Millisecond)) {
					t.Fatal("LoginEnded does not end exactly the logins at or before the block")
				}
				want := []string{"nemid_blocked", "nemid_unblocked"}
				if ev := h.eventTypes(t, c.UserID); !slices.Equal(ev, want) {
					t.Fatalf("events %v, want %v", ev, want)
				}
			})
		}
	}
}

// testBlockRefusals: what block and unblock refuse, writing nothing.
func testBlockRefusals(t *testing.T, h *harness) {
	ctx := t.Context()
	now := time.Now()
	missing := NewUserID()
	if _, err := h.s.Block(ctx, missing, store.BlockMisuse, "operator", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Block(unknown): %v, want ErrNotFound", err)
	}
	if _, err := h.s.Unblock(ctx, missing, "operator", now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Unblock(unknown): %v, want ErrNotFound", err)
	}
	if h.exists(t, h.citizenKey(missing)) {
		t.Fatal("a block of an unknown user id wrote a record")
	}
	c, _ := h.citizen(t, 1)
	for _, reason := range []string{"", store.BlockFailures, "Misuse", "lost"} {
		if _, err := h.s.Block(ctx, c.UserID, reason, "operator", now); err == nil {
			t.Fatalf("Block(reason %q) accepted", reason)
		}
	}
	for _, tc := range []struct {
		name           string
		status, reason string
		want           error
	}{
		{"active", store.StatusActive, "", store.ErrNotBlocked},
		{"expired", store.StatusExpired, "", store.ErrNotBlocked},
		{"locked after failures", store.StatusBlocked, store.BlockFailures, store.ErrLockedOut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.setState(t, c.UserID, tc.status, tc.reason)
			_, err := h.s.Unblock(ctx, c.UserID, "operator", now)
			wantErr(t, "Unblock", err, tc.want)
			if got := h.load(t, c.UserID); got.Status != tc.status || got.BlockReason != tc.reason {
				t.Fatalf("a refused unblock changed the NemID to %s/%s", got.Status, got.BlockReason)
			}
		})
	}
	if ev := h.eventTypes(t, c.UserID); len(ev) != 0 {
		t.Fatalf("refusals wrote events %v", ev)
	}
}

// testTemporaryPassword: a temporary password replaces the password, marks it to be changed,
// resets the failures (and the attempts in flight), lifts a lockout after failures and ends
// the sessions; a NemID blocked for a reason is refused, unchanged.
func testTemporaryPassword(t *testing.T, h *harness) {
	ctx := t.Context()
	for _, tc := range []struct {
		name           string
		status, reason string
		failures       int
		want           error
		after          string
	}{
		{"active", store.StatusActive, "", 2, nil, store.StatusActive},
		{"locked after failures", store.StatusBlocked, store.BlockFailures, MaxFailures, nil, store.StatusActive},
		{"expired", store.StatusExpired, "", 1, nil, store.StatusExpired},
		{"blocked for misuse", store.StatusBlocked, store.BlockMisuse, 1, store.ErrBlockedByReason, store.StatusBlocked},
		{"blocked for a lost card", store.StatusBlocked, store.BlockLostCard, 0, store.ErrBlockedByReason, store.StatusBlocked},
		{"blocked by an operator", store.StatusBlocked, store.BlockOperator, 0, store.ErrBlockedByReason, store.StatusBlocked},
		{"blocked, no reason recorded", store.StatusBlocked, "", 0, store.ErrBlockedByReason, store.StatusBlocked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := h.citizen(t, 1)
			noErr(t, "SetPassword", h.s.SetPassword(ctx, c.UserID, "$argon2id$old"))
			h.setState(t, c.UserID, tc.status, tc.reason)
			noErr(t, "failures", h.s.Redis().HSet(ctx, h.citizenKey(c.UserID), "failures", tc.failures, "blocked_at", "2026-01-01T00:00:00Z").Err())
			a, err := h.s.BeginAttempt(ctx, c.UserID, MaxFailures+5, time.Now(), time.Minute) // one in flight
			noErr(t, "BeginAttempt", err)
			now := time.Now().Truncate(time.Millisecond)
			st, err := h.s.SetTemporaryPassword(ctx, c.UserID, "$argon2id$temporary", "operator", now)
			got := h.load(t, c.UserID)
			if tc.want != nil {
				wantErr(t, "SetTemporaryPassword", err, tc.want)
				if got.Password != "$argon2id$old" || got.Status != tc.status || got.BlockReason != tc.reason ||
					got.Failures != tc.failures || !got.SessionsEnded.IsZero() || h.inFlight(t, h.attemptsKey(c.UserID)) != 1 {
					t.Fatalf("a refused temporary password changed the NemID: %+v", got)
				}
				if ev := h.eventTypes(t, c.UserID); len(ev) != 0 {
					t.Fatalf("a refused temporary password wrote events %v", ev)
				}
				return
			}
			noErr(t, "SetTemporaryPassword", err)
			if a.ID == "" && !a.Refused {
				t.Fatalf("no attempt reserved: %+v", a)
			}
			if st != tc.after || got.Status != tc.after || got.BlockReason != "" || got.Password != "$argon2id$temporary" ||
				!got.MustChange || got.Failures != 0 || !got.SessionsEnded.Equal(now) {
				t.Fatalf("after the temporary password: answered %s, stored %+v; want %s, must change, no failures, sessions ended at %v", st, got, tc.after, now)
			}
			if n := h.inFlight(t, h.attemptsKey(c.UserID)); n != 0 {
				t.Fatalf("%d attempts of the old password still in flight", n)
			}
			if at, _ := h.s.Redis().HGet(ctx, h.citizenKey(c.UserID), "blocked_at").Result(); tc.status == store.StatusBlocked && at != "" {
				t.Fatalf("the lifted lockout kept blocked_at %q", at)
			}
			if ev := h.eventTypes(t, c.UserID); !slices.Equal(ev, []string{"temporary_password"}) {
				t.Fatalf("events %v, want [temporary_password]", ev)
			}
			// The new password is accepted: a fresh attempt is no longer refused.
			if a, err := h.s.BeginAttempt(ctx, c.UserID, MaxFailures, time.Now(), time.Minute); err != nil || a.Refused || a.Busy {
				t.Fatalf("an attempt after the temporary password: %+v %v", a, err)
			}
		})
	}
	if _, err := h.s.SetTemporaryPassword(ctx, NewUserID(), "$argon2id$x", "operator", time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetTemporaryPassword(unknown): %v, want ErrNotFound", err)
	}
}

// testUnblockRenewed: a NemID expired when blocked and renewed while blocked (expires_at
// after today) is active after the unblock; one whose expires_at is today or before stays
// expired.
func testUnblockRenewed(t *testing.T, h *harness) {
	ctx := t.Context()
	now := time.Now()
	for _, tc := range []struct {
		name, expiresAt, want string
	}{
		{"renewed while blocked", now.AddDate(3, 0, 0).Format(time.DateOnly), store.StatusActive},
		{"still expired", now.AddDate(0, 0, -2).Format(time.DateOnly), store.StatusExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := h.citizen(t, 1)
			h.setState(t, c.UserID, store.StatusExpired, "")
			_, err := h.s.Block(ctx, c.UserID, store.BlockOperator, "operator", now)
			noErr(t, "Block", err)
			noErr(t, "renew", h.s.Redis().HSet(ctx, h.citizenKey(c.UserID), "expires_at", tc.expiresAt).Err())
			st, err := h.s.Unblock(ctx, c.UserID, "operator", now)
			noErr(t, "Unblock", err)
			if got := h.load(t, c.UserID); st != tc.want || got.Status != tc.want {
				t.Fatalf("unblocked: answered %s, stored %s; want %s", st, got.Status, tc.want)
			}
		})
	}
}

// testBlockOverLockout: blocked over a lockout, unblocked back to the lockout, which the
// temporary password then lifts.
func testBlockOverLockout(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	for range MaxFailures {
		_, err := h.s.RecordFailure(ctx, c.UserID, MaxFailures)
		noErr(t, "RecordFailure", err)
	}
	now := time.Now()
	_, err := h.s.Block(ctx, c.UserID, store.BlockLostCard, "operator", now)
	noErr(t, "Block", err)
	_, err = h.s.SetTemporaryPassword(ctx, c.UserID, "$argon2id$t", "operator", now)
	wantErr(t, "SetTemporaryPassword over a block", err, store.ErrBlockedByReason)
	st, err := h.s.Unblock(ctx, c.UserID, "operator", now)
	noErr(t, "Unblock", err)
	if got := h.load(t, c.UserID); st != store.StatusBlocked || got.BlockReason != store.BlockFailures {
		t.Fatalf("unblocked over a lockout: %s/%s, want the lockout back", got.Status, got.BlockReason)
	}
	st, err = h.s.SetTemporaryPassword(ctx, c.UserID, "$argon2id$t", "operator", now)
	noErr(t, "SetTemporaryPassword", err)
	if got := h.load(t, c.UserID); st != store.StatusActive || got.Status != store.StatusActive || got.Failures != 0 {
		t.Fatalf("after the temporary password: %+v", got)
	}
}

// testBlockRace: racers block one NemID at once, for different reasons, while others order a
// temporary password: exactly one block changes it, and the NemID ends blocked whichever way
// the temporary passwords fell (each either came before the first block or was refused).
func testBlockRace(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	reasons := []string{store.BlockMisuse, store.BlockLostCard, store.BlockOperator}
	type outcome struct {
		block   *store.BlockResult
		tempErr error
	}
	results := race(Racers, func(i int) outcome {
		if i%2 == 0 {
			_, err := h.s.SetTemporaryPassword(ctx, c.UserID, "$argon2id$t", "operator", time.Now())
			return outcome{tempErr: err}
		}
		res, err := h.s.Block(ctx, c.UserID, reasons[i%3], "operator", time.Now())
		if err != nil {
			t.Errorf("Block: %v", err)
		}
		return outcome{block: &res}
	})
	changed := 0
	for _, r := range results {
		switch {
		case r.block != nil && r.block.Changed:
			changed++
		case r.block == nil && r.tempErr != nil && !errors.Is(r.tempErr, store.ErrBlockedByReason):
			t.Errorf("SetTemporaryPassword: %v", r.tempErr)
		}
	}
	got := h.load(t, c.UserID)
	if changed != 1 || got.Status != store.StatusBlocked || !store.ValidBlockReason(got.BlockReason) {
		t.Fatalf("%d blocks changed the NemID (want 1); it ends %s/%s", changed, got.Status, got.BlockReason)
	}
	blocked := 0
	for _, ev := range h.eventTypes(t, c.UserID) {
		if ev == "nemid_blocked" {
			blocked++
		}
	}
	if blocked != 1 {
		t.Fatalf("%d nemid_blocked events, want 1", blocked)
	}
}
