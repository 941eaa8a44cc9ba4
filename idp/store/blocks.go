package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Blocking. A block is one script on the citizen's record (status blocked, block_reason,
// blocked_at) in the citizen's slot with its event stream, so it works on Redis Cluster. It
// also stamps sessions_ended (Unix ms): every SSO session and token grant of a login
// authenticated at or before it is over for good, also once the NemID is unblocked (the front
// ends compare a session's or grant's auth time with Citizen.SessionsEnded). block_prev keeps
// what the block covers, so an unblock gives back an expired NemID as expired and a lockout
// after failures as that lockout.

// Block reasons an operator (or the citizen) gives.
const (
	BlockMisuse   = "misuse"    // misuse suspected
	BlockLostCard = "lost_card" // the code card was lost
	BlockOperator = "operator"  // blocked by an operator for another reason
)

// ValidBlockReason reports whether reason is one a block may be given for (not "failures":
// only failed attempts lock a NemID).
func ValidBlockReason(reason string) bool {
	switch reason {
	case BlockMisuse, BlockLostCard, BlockOperator:
		return true
	}
	return false
}

// Block and unblock outcomes.
var (
	// ErrNotBlocked: an unblock of a NemID that is not blocked.
	ErrNotBlocked = fmt.Errorf("nemid not blocked: %w", ErrConflict)
	// ErrLockedOut: the NemID is locked after failed attempts, which only a temporary password
	// lifts.
	ErrLockedOut = fmt.Errorf("nemid locked after failed attempts: %w", ErrConflict)
	// ErrBlockedByReason: a temporary password for a NemID blocked for misuse, a lost card or
	// by an operator, which only an unblock lifts.
	ErrBlockedByReason = fmt.Errorf("nemid blocked: %w", ErrConflict)
)

// BlockResult is what a block did.
type BlockResult struct {
	// Changed: the NemID was not blocked for a reason before (active, expired or locked after
	// failures) and is now; its sessions and grants ended. False for a repeated block, which
	// at most changes the reason.
	Changed bool
	// Previous is the block reason a repeated block replaced ("" when Changed).
	Previous string
}

// sessionsEndedLua stamps sessions_ended with ARGV[n] unless it is later already.
const sessionsEndedLua = `
local function endSessions(rec, ms)
  local old = tonumber(redis.call('HGET', rec, 'sessions_ended') or '0') or 0
  if old < tonumber(ms) then redis.call('HSET', rec, 'sessions_ended', ms) end
end
`

// KEYS: citizen, events. ARGV: 1 reason, 2 now (RFC 3339), 3 now (Unix ms), 4 by.
var blockScript = redis.NewScript(sessionsEndedLua + `
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing', ''} end
local cur = redis.call('HGET', KEYS[1], 'block_reason') or ''
if st == 'blocked' and cur ~= 'failures' then
  if cur ~= ARGV[1] then redis.call('HSET', KEYS[1], 'block_reason', ARGV[1]) end
  return {'again', cur}
end
local prev = st
if st == 'blocked' then prev = 'failures' end
redis.call('HSET', KEYS[1], 'status', 'blocked', 'block_reason', ARGV[1], 'blocked_at', ARGV[2], 'block_prev', prev)
endSessions(KEYS[1], ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '200', '*', 'type', 'nemid_blocked', 'reason', ARGV[1], 'by', ARGV[4], 'at', ARGV[2])
return {'blocked', prev}
`)

// Block blocks the NemID for reason (ValidBlockReason) and ends its SSO sessions and grants
// (sessions_ended = now), in one step with a nemid_blocked event. A NemID already blocked for a
// reason stays blocked (its reason becomes this one; nothing else changes); a lockout after
// failures or an expired NemID is blocked over, and an unblock gives it back. by names who
// blocked (an operator's label, or "self"). ErrNotFound when the citizen does not exist.
func (s *Store) Block(ctx context.Context, uid, reason, by string, now time.Time) (BlockResult, error) {
	if !ValidBlockReason(reason) {
		return BlockResult{}, fmt.Errorf("store: block: reason %q is not misuse, lost_card or operator", reason)
	}
	var res []string
	err := s.withOutbox(ctx, uid, func() (err error) {
		res, err = blockScript.Run(ctx, s.rdb, []string{s.citizenKey(uid), s.eventsKey(uid)},
			reason, now.UTC().Format(time.RFC3339), now.UnixMilli(), by).StringSlice()
		return err
	})
	if err != nil {
		return BlockResult{}, wrap("block", err)
	}
	switch res[0] {
	case "missing":
		return BlockResult{}, fmt.Errorf("store: block: citizen %s: %w", uid, ErrNotFound)
	case "again":
		return BlockResult{Previous: res[1]}, nil
	}
	return BlockResult{Changed: true}, nil
}

// KEYS: citizen, events. ARGV: 1 now (RFC 3339), 2 by, 3 today (YYYY-MM-DD in Denmark).
var unblockScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing', ''} end
if st ~= 'blocked' then return {'not_blocked', st} end
local cur = redis.call('HGET', KEYS[1], 'block_reason') or ''
if cur == 'failures' then return {'locked', cur} end
local prev = redis.call('HGET', KEYS[1], 'block_prev') or 'active'
local now = 'active'
if prev == 'failures' then
  now = 'blocked'
  redis.call('HSET', KEYS[1], 'block_reason', 'failures')
else
  -- Expired when blocked, and not renewed since (a renewal moves expires_at past today).
  local exp = redis.call('HGET', KEYS[1], 'expires_at') or ''
  if prev == 'expired' and not (exp ~= '' and exp > ARGV[3]) then now = 'expired' end
  redis.call('HSET', KEYS[1], 'status', now, 'block_reason', '')
  redis.call('HDEL', KEYS[1], 'blocked_at')
end
redis.call('HDEL', KEYS[1], 'block_prev')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '200', '*', 'type', 'nemid_unblocked', 'reason', cur, 'by', ARGV[2], 'at', ARGV[1])
return {'unblocked', now}
`)

// Unblock lifts a block for misuse, a lost card or by an operator, in one step with a
// nemid_unblocked event, and returns the status the NemID is back at: active, expired (it was
// expired when blocked and has not been renewed since: expires_at is not after today) or blocked (locked after failures when blocked: the lockout stays).
// The sessions and grants the block ended stay ended. ErrNotBlocked for a NemID not blocked,
// ErrLockedOut for a lockout after failures (a temporary password lifts it), ErrNotFound
// when the citizen does not exist.
func (s *Store) Unblock(ctx context.Context, uid, by string, now time.Time) (string, error) {
	var res []string
	err := s.withOutbox(ctx, uid, func() (err error) {
		res, err = unblockScript.Run(ctx, s.rdb, []string{s.citizenKey(uid), s.eventsKey(uid)},
			now.UTC().Format(time.RFC3339), by, now.In(copenhagen).Format(time.DateOnly)).StringSlice()
		return err
	})
	if err != nil {
		return "", wrap("unblock", err)
	}
	switch res[0] {
	case "missing":
		return "", fmt.Errorf("store: unblock: citizen %s: %w", uid, ErrNotFound)
	case "not_blocked":
		return res[1], fmt.Errorf("store: unblock: status %s: %w", res[1], ErrNotBlocked)
	case "locked":
		return StatusBlocked, fmt.Errorf("store: unblock: %w", ErrLockedOut)
	}
	return res[1], nil
}

// KEYS: citizen, attempts, events. ARGV: 1 hash, 2 now (RFC 3339), 3 now (Unix ms), 4 by.
var temporaryPasswordScript = redis.NewScript(sessionsEndedLua + `
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'missing', ''} end
local cur = redis.call('HGET', KEYS[1], 'block_reason') or ''
if st == 'blocked' and cur ~= 'failures' then return {'blocked', cur} end
redis.call('HSET', KEYS[1], 'password', ARGV[1], 'must_change', '1', 'failures', 0)
if st == 'blocked' then
  st = 'active'
  redis.call('HSET', KEYS[1], 'status', st, 'block_reason', '')
  redis.call('HDEL', KEYS[1], 'blocked_at', 'block_prev')
end
redis.call('DEL', KEYS[2])
endSessions(KEYS[1], ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', '200', '*', 'type', 'temporary_password', 'by', ARGV[4], 'at', ARGV[2])
return {'set', st}
`)

// SetTemporaryPassword gives the NemID a temporary password (hash) the citizen must replace
// at the next login (must_change), resets the failed attempts in a row (and drops the
// attempts in flight), lifts a lockout after failures, and ends the citizen's SSO sessions
// and grants, in one step with a temporary_password event. It returns the status after
// (active, or expired for an expired NemID). ErrBlockedByReason for a NemID blocked for
// misuse, a lost card or by an operator (unblock it first), ErrNotFound when the citizen does
// not exist.
func (s *Store) SetTemporaryPassword(ctx context.Context, uid, hash, by string, now time.Time) (string, error) {
	keys := []string{s.citizenKey(uid), s.attemptsKey(uid), s.eventsKey(uid)}
	var res []string
	err := s.withOutbox(ctx, uid, func() (err error) {
		res, err = temporaryPasswordScript.Run(ctx, s.rdb, keys,
			hash, now.UTC().Format(time.RFC3339), now.UnixMilli(), by).StringSlice()
		return err
	})
	if err != nil {
		return "", wrap("temporary password", err)
	}
	switch res[0] {
	case "missing":
		return "", fmt.Errorf("store: temporary password: citizen %s: %w", uid, ErrNotFound)
	case "blocked":
		return StatusBlocked, fmt.Errorf("store: temporary password: blocked for %s: %w", res[1], ErrBlockedByReason)
	}
	return res[1], nil
}

// LoginEnded reports whether a login authenticated at authTime was ended by a block or a
// temporary password stamped at ended (Citizen.SessionsEnded) (zero: none ever was). A login in the very
// millisecond of the stamp counts as ended.
func LoginEnded(ended, authTime time.Time) bool {
	return !ended.IsZero() && !authTime.After(ended)
}

func parseMillis(s string) time.Time {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
