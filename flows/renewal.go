package flows

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/nemidp/nemidp/idp/store"
)

// Renewal at login (DESIGN.md §3, issue 15 point 4): a NemID is valid through its expires_at
// day (Danish time). After it the right password is refused with expired and instructions; a
// wrong one is answered as any wrong password, so the refusal tells nothing to whoever does
// not know the password. In its last store.RenewalWindowDays days a login carries the
// renewal_due notice, and the first such login of an expiry date sends the citizen a
// renewal_due event.

// refusal is statusError with the NemID's expiry judged on the engine's clock: what a
// citizen who proved their password but may not log in is told.
func (e *Engine) refusal(c *store.Citizen) *Error {
	if se := statusError(c); se != nil || c == nil {
		return se
	}
	if store.ExpiryOf(c.ExpiresAt, e.now()).Expired {
		return expiredError(c.ExpiresAt)
	}
	return nil
}

// expired reports whether the citizen's NemID is expired by date today.
func (e *Engine) expired(c *store.Citizen) bool {
	return c != nil && store.ExpiryOf(c.ExpiresAt, e.now()).Expired
}

// expiredError is the refusal of an expired NemID, with what the citizen must do: an expired
// NemID is renewed in person only (self-service renewal needs a login).
func expiredError(expiresAt string) *Error {
	when := "has expired"
	if d, err := time.Parse(time.DateOnly, expiresAt); err == nil {
		when = "expired on " + d.Format("2 January 2006")
	}
	e := Errorf(CodeExpired, "Your NemID %s. An expired NemID cannot be renewed online: renew it at borgerservice in your municipality, "+
		"at your bank if your bank issued your NemID, or at a Danish embassy if you live abroad. Bring photo ID (passport or driving licence).", when)
	e.ExpiresAt = expiresAt
	return e
}

// renewalNotice puts renewal_due first among the login's notices (the most urgent) when the
// NemID is in its last days. Called in the change of the save that accepts the password.
func (e *Engine) renewalNotice(f *Flow, c *store.Citizen) {
	if f.Purpose != "" || !store.ExpiryOf(c.ExpiresAt, e.now()).Due {
		return
	}
	f.Notices = slices.Insert(slices.DeleteFunc(f.Notices, func(n string) bool { return n == NoticeRenewalDue }), 0, NoticeRenewalDue)
}

// renewalDueEvent sends the renewal_due event for a login in the renewal window whose event
// was not sent for this expiry date yet (the record read by the answer's first round trip
// says so; the store decides once for logins at the same time). It runs after the login moved
// on, and a failure costs the login nothing: the next login in the window tries again.
func (e *Engine) renewalDueEvent(ctx context.Context, c *store.Citizen) {
	if c == nil || c.RenewalNotified == c.ExpiresAt || !store.ExpiryOf(c.ExpiresAt, e.now()).Due {
		return
	}
	if _, err := e.Store.NoteRenewalDue(ctx, c.UserID, c.ExpiresAt, e.now()); err != nil {
		slog.WarnContext(ctx, "renewal_due event not sent; the next login in the window tries again", "user", c.UserID, "err", err)
	}
}
