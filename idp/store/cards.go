package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// KeyOutcome is what one card-key attempt came to.
type KeyOutcome string

// Key outcomes.
const (
	KeyOK       KeyOutcome = "ok"
	KeyWrong    KeyOutcome = "wrong"
	KeyUsed     KeyOutcome = "used"
	KeyLocked   KeyOutcome = "locked"    // this attempt blocked the NemID
	KeyBlocked  KeyOutcome = "blocked"   // the NemID was not active
	KeyNoKey    KeyOutcome = "no_key"    // no such key number on the card
	KeyBadCard  KeyOutcome = "bad_card"  // card retired, blocked or unknown
	KeyNoPerson KeyOutcome = "no_person" // citizen gone
	// KeyRepeat: this login already used this key (a double click, a retry): not a failure.
	KeyRepeat KeyOutcome = "repeat"
	// KeyUsedRight: another login used this key, and this one typed it right: not a failure.
	KeyUsedRight KeyOutcome = "used_right"
)

// KeyResult is the outcome with the counters the login page shows.
type KeyResult struct {
	Outcome      KeyOutcome
	AttemptsLeft int // after a wrong or used key
	KeysLeft     int // unused keys left on the card after success
}

// useKeyScript checks and consumes one card key in one atomic step: a key is used at most
// once even when two requests race with it; a wrong key, or a used one typed wrong, counts as
// a failed attempt; a right one resets the failure counter. A used key is stored as
// "u:<flow>|<hash>", so the login that used it sending it again (a double click) is told
// apart, and so is another login of the same card typing that key right (a second tab asked
// the card's one pending number, used meanwhile by the first): whoever types it holds the
// card, and a used key logs nobody in, so neither is counted.
var useKeyScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'no_person', 0, 0} end
if st ~= 'active' then return {'blocked', 0, 0} end
local cst = redis.call('HGET', KEYS[2], 'status')
if cst ~= 'active' and cst ~= 'sent' then return {'bad_card', 0, 0} end
local v = redis.call('HGET', KEYS[2], 'k:' .. ARGV[1])
if not v then return {'no_key', 0, 0} end
if v ~= ARGV[2] then
  if ARGV[5] ~= '' and (v == 'u:' .. ARGV[5] or v == 'u:' .. ARGV[5] .. '|' .. ARGV[2]) then return {'repeat', 0, 0} end
  if string.sub(v, 1, 2) == 'u:' and string.sub(v, -(#ARGV[2] + 1)) == '|' .. ARGV[2] then return {'used_right', 0, 0} end
  local max = tonumber(ARGV[3])
  local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  local left = max - n
  if left <= 0 then
    redis.call('HSET', KEYS[1], 'status', 'blocked', 'block_reason', 'failures', 'blocked_at', ARGV[4])
    return {'locked', 0, 0}
  end
  if string.sub(v, 1, 2) == 'u:' then return {'used', left, 0} end
  return {'wrong', left, 0}
end
redis.call('HSET', KEYS[2], 'k:' .. ARGV[1], 'u:' .. ARGV[5] .. '|' .. ARGV[2])
redis.call('SREM', KEYS[3], ARGV[1])
if redis.call('HGET', KEYS[2], 'pending') == ARGV[1] then redis.call('HDEL', KEYS[2], 'pending') end
redis.call('HSET', KEYS[1], 'failures', 0)
return {'ok', 0, redis.call('SCARD', KEYS[3])}
`)

// UseCardKeyInFlow checks a key for a login flow and consumes it; the same flow sending the
// same key again gets KeyRepeat instead of a failed attempt. In the same round trip it
// reserves one of the flow's attempts (see ReserveFlowAttempt), which the flow's next save
// gives back when the key was right.
func (s *Store) UseCardKeyInFlow(ctx context.Context, flow, uid, serial, number, hash string, maxFailures int) (KeyResult, int, error) {
	keys := []string{s.citizenKey(uid), s.cardKey(uid, serial), s.unusedKey(uid, serial)}
	var reserve, use *scriptCall
	err := s.pipelined(ctx, func(p redis.Pipeliner) []*scriptCall {
		if flow != "" {
			reserve = queueScript(ctx, p, reserveFlowScript, []string{s.flowKey(flow)})
		}
		// A consumed key is stored as "u:<flow>|<hash>", which never equals a hash.
		use = queueScript(ctx, p, useKeyScript, keys, number, hash, maxFailures, time.Now().UTC().Format(time.RFC3339), flow)
		return []*scriptCall{reserve, use}
	})
	if err != nil {
		return KeyResult{}, 0, wrap("use card key "+number, err)
	}
	n := 0
	if reserve != nil {
		n, _ = reserve.cmd.Int()
	}
	res, err := use.cmd.Slice()
	if err != nil {
		return KeyResult{}, 0, wrap("use card key "+number, err)
	}
	out := KeyResult{Outcome: KeyOutcome(res[0].(string))}
	out.AttemptsLeft = int(res[1].(int64))
	out.KeysLeft = int(res[2].(int64))
	return out, n, nil
}

var pendingKeyScript = redis.NewScript(`
local number = redis.call('HGET', KEYS[1], 'pending')
if number and redis.call('SISMEMBER', KEYS[2], number) == 1 then return number end
number = redis.call('SRANDMEMBER', KEYS[2])
if not number then redis.call('HDEL', KEYS[1], 'pending') return '' end
redis.call('HSET', KEYS[1], 'pending', number)
return number
`)

// PendingKey returns the card's pending key number: the one every login of the card is asked
// until its key is used, so reloads, new or abandoned flows and wrong keys never re-roll it.
// ErrNotFound when the card has no unused keys.
func (s *Store) PendingKey(ctx context.Context, uid, serial string) (string, error) {
	n, err := pendingKeyScript.Run(ctx, s.rdb, []string{s.cardKey(uid, serial), s.unusedKey(uid, serial)}).Text()
	if err != nil {
		return "", wrap("pending key", err)
	}
	if n == "" {
		return "", fmt.Errorf("store: card %s has no unused keys: %w", serial, ErrNotFound)
	}
	return n, nil
}

// KeyUnused reports whether a key number is still unused on the card.
func (s *Store) KeyUnused(ctx context.Context, uid, serial, number string) (bool, error) {
	ok, err := s.rdb.SIsMember(ctx, s.unusedKey(uid, serial), number).Result()
	return ok, wrap("key unused", err)
}

// CardStatus returns a card's status and unused keys.
func (s *Store) CardStatus(ctx context.Context, uid, serial string) (status string, keysLeft int, err error) {
	p := s.rdb.Pipeline()
	st := p.HGet(ctx, s.cardKey(uid, serial), "status")
	left := p.SCard(ctx, s.unusedKey(uid, serial))
	if _, err := p.Exec(ctx); err != nil {
		return "", 0, wrap("card status", err)
	}
	return st.Val(), int(left.Val()), nil
}
