package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ErrPIDTaken means a freshly drawn OCES PID is already some citizen's: draw another.
var ErrPIDTaken = errors.New("oces pid taken")

// pidIndexKey claims an OCES PID for all citizens (like a card serial): a PID names one person
// to every relying party, so two NemIDs must never share one. The claim names the user id.
func (s *Store) pidIndexKey(pid string) string { return s.key("idx", "pid", pid) }

// withPID claims pid for uid, runs write, and releases the claim if write fails. An empty pid
// (a bank-only NemID) claims nothing.
func (s *Store) withPID(ctx context.Context, pid, uid string, write func() error) error {
	if pid == "" {
		return write()
	}
	return s.withClaim(ctx, "oces pid", s.pidIndexKey(pid), uid, fmt.Errorf("store: claim oces pid: %w", ErrPIDTaken), write)
}

// ErrOCESAttached means the NemID has OCES already.
var ErrOCESAttached = fmt.Errorf("oces already attached: %w", ErrConflict)

// attachOCESScript attaches OCES to a bank-only NemID: 0 no such citizen, 1 attached, 2 the
// NemID has OCES already.
var attachOCESScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'user_id') == false then return 0 end
local kind = redis.call('HGET', KEYS[1], 'kind')
local pid = redis.call('HGET', KEYS[1], 'pid')
if kind == 'oces' or (pid and pid ~= '') then return 2 end
redis.call('HSET', KEYS[1], 'kind', 'oces', 'pid', ARGV[1], 'oces_issued_at', ARGV[2], 'youth_cert', ARGV[3])
return 1
`)

// AttachOCES makes a bank-only NemID an OCES one with the given PID (claimed here: ErrPIDTaken
// means draw another), issue date and youth marker. ErrOCESAttached when it has OCES already;
// ErrNotFound when there is no such citizen.
func (s *Store) AttachOCES(ctx context.Context, uid, pid, issuedAt string, youth bool) error {
	return s.withPID(ctx, pid, uid, func() error {
		n, err := attachOCESScript.Run(ctx, s.rdb, []string{s.citizenKey(uid)}, pid, issuedAt, boolStr(youth)).Int()
		if err != nil {
			return wrap("attach oces", err)
		}
		switch n {
		case 0:
			return fmt.Errorf("store: attach oces: %w", ErrNotFound)
		case 2:
			return fmt.Errorf("store: attach oces: %w", ErrOCESAttached)
		}
		return nil
	})
}

// renewScript renews a NemID: 0 no such citizen, 1 renewed. An expired NemID becomes active;
// a blocked one stays blocked. The OCES, if attached, is reissued.
var renewScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'user_id') == false then return 0 end
redis.call('HSET', KEYS[1], 'expires_at', ARGV[1])
if redis.call('HGET', KEYS[1], 'status') == 'expired' then redis.call('HSET', KEYS[1], 'status', 'active') end
local pid = redis.call('HGET', KEYS[1], 'pid')
if redis.call('HGET', KEYS[1], 'kind') == 'oces' or (pid and pid ~= '') then
  redis.call('HSET', KEYS[1], 'oces_issued_at', ARGV[2], 'youth_cert', ARGV[3])
end
return 1
`)

// Renew sets a NemID's new expiry and, for an OCES NemID, reissues the OCES (its issue date and
// youth marker, judged by the caller for that date). ErrNotFound when there is no such citizen.
func (s *Store) Renew(ctx context.Context, uid, expiresAt, ocesIssuedAt string, youth bool) error {
	n, err := renewScript.Run(ctx, s.rdb, []string{s.citizenKey(uid)}, expiresAt, ocesIssuedAt, boolStr(youth)).Int()
	if err != nil {
		return wrap("renew", err)
	}
	if n == 0 {
		return fmt.Errorf("store: renew: %w", ErrNotFound)
	}
	return nil
}
