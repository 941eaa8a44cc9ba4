package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Renewal. A NemID is valid through its expires_at day (YYYY-MM-DD, a Danish calendar day):
// it is expired from the next Danish day on. Nothing stores the expiry as a status: the date
// is judged at each login, so no sweep has to run at midnight. In its last RenewalWindowDays
// days logins carry the renewal_due notice, and once per expiry date a renewal_due event goes
// to the citizen.

// RenewalWindowDays is how many days before expiry a NemID is due for renewal: logins carry
// renewal_due, and the citizen may renew it in self-service.
const RenewalWindowDays = 60

// Expiry is a NemID's expiry judged on one Danish day.
type Expiry struct {
	// DaysLeft is expires_at − today in days: 0 on the last valid day, negative once expired.
	DaysLeft int
	// Expired: today is after expires_at.
	Expired bool
	// Due: not expired, and DaysLeft ≤ RenewalWindowDays.
	Due bool
}

// ExpiryOf judges expiresAt (YYYY-MM-DD) on the Danish date of now. A record without a
// readable expiry (one from before expiry was recorded) is neither expired nor due.
func ExpiryOf(expiresAt string, now time.Time) Expiry {
	exp, err := time.Parse(time.DateOnly, expiresAt)
	if err != nil {
		return Expiry{DaysLeft: RenewalWindowDays + 1}
	}
	y, m, d := now.In(copenhagen).Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	// Both are UTC midnights: the difference is whole days, whatever DST does in Denmark.
	left := int(exp.Sub(today).Hours() / 24)
	return Expiry{DaysLeft: left, Expired: left < 0, Due: left >= 0 && left <= RenewalWindowDays}
}

// ActiveOn reports whether the NemID may log in on now's Danish date: status active and not
// past its expiry (a record whose expiry passed keeps status active until renewed; the date
// decides, everywhere a login, a session or a grant is judged).
func (c *Citizen) ActiveOn(now time.Time) bool {
	return c.Status == StatusActive && !ExpiryOf(c.ExpiresAt, now).Expired
}

// DanishToday is the Danish calendar day of now (YYYY-MM-DD).
func DanishToday(now time.Time) string { return now.In(copenhagen).Format(time.DateOnly) }

// renewalDueScript sends the renewal_due event for one expiry date once: 1 sent, 0 not (sent
// already for this date, the NemID renewed meanwhile so its expiry is another, or no such
// citizen). The marker and the event are one step, so two logins at once send one event.
// KEYS: citizen, events. ARGV: 1 expires_at, 2 now (RFC 3339).
var renewalDueScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'expires_at') ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'renewal_notified') == ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'renewal_notified', ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '200', '*', 'type', 'renewal_due', 'expires_at', ARGV[1], 'at', ARGV[2], 'by', 'system')
return 1
`)

// NoteRenewalDue sends the citizen a renewal_due event for expiresAt (the NemID's expiry as
// the caller read it) unless one was sent for that date already, and reports whether it sent
// it. A renewal moves expires_at, so the next window sends again.
func (s *Store) NoteRenewalDue(ctx context.Context, uid, expiresAt string, now time.Time) (bool, error) {
	var sent bool
	err := s.withOutbox(ctx, uid, func() error {
		n, err := renewalDueScript.Run(ctx, s.rdb, []string{s.citizenKey(uid), s.eventsKey(uid)},
			expiresAt, now.UTC().Format(time.RFC3339)).Int()
		sent = n == 1
		return err
	})
	return sent, wrap("note renewal due", err)
}
