package store

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// KeyOutcome is what one card-key attempt came to.
type KeyOutcome string

// Key outcomes.
const (
	KeyOK      KeyOutcome = "ok"
	KeyWrong   KeyOutcome = "wrong"
	KeyUsed    KeyOutcome = "used"
	KeyLocked  KeyOutcome = "locked"   // this attempt blocked the NemID
	KeyBlocked KeyOutcome = "blocked"  // the NemID was not active
	KeyNoKey   KeyOutcome = "no_key"   // no such key number on the card
	KeyBadCard KeyOutcome = "bad_card" // no such card
	// KeyRetired: the card was replaced by a newer one (not a failed attempt).
	KeyRetired KeyOutcome = "retired"
	// KeyCardBlocked: the card was blocked, reported lost (not a failed attempt).
	KeyCardBlocked KeyOutcome = "card_blocked"
	KeyNoPerson    KeyOutcome = "no_person" // citizen gone
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
	// OrderClaim, after success: this key use brought the default card to its threshold and
	// claimed the order of its successor (WriteCardOrder with mode OriginAuto, or
	// ReleaseCardOrder). Activated: the key was a sent card's first, which made it active.
	OrderClaim string
	Activated  bool
}

// Stored card format. A card is two keys under its citizen's hash tag:
//
//   - {c:<uid>}:card:<serial>, a hash: "status", "created_at", "pending" (the pending key
//     number, 4 digits) and one "k:<number>" field per key, whose value is the key's keyed
//     hash while unused and a used-key marker once used;
//   - {c:<uid>}:card:<serial>:unused, a set of the unused key numbers.
//
// Both are kept small enough for Redis's compact encodings (a listpack hash, an intset set;
// idp/store/memory_test.go measures them): a used-key marker is "u:<flow digest>|<hash
// digest>", 27 bytes (12 characters each, see usedDigestLen), well under
// hash-max-listpack-value (64), and the unused set holds the numbers as integers ("42" for
// key number 0042), which Redis keeps as an intset. Cards written before that keep working
// and are not migrated: their unused set holds the 4-digit strings ("0042"), and the keys
// they had used are "u:<flow id>|<full hash>" or, older still, "u:<flow id>" (a key used from
// now on gets the short marker on any card). Every script reads both: a number is looked up
// in the set in both forms, a member is formatted back to 4 digits (keyNumberLua), and a
// marker is matched in each of its forms.

// usedDigestLen is how many base64url characters of SHA-256 a used-key marker keeps of the
// flow id and of the key's hash: 72 bits each, so no other login's flow passes for the one
// that used a key (KeyRepeat lets that one login move on) and no wrong key passes for the
// right one (KeyUsedRight is not counted as a failure).
const usedDigestLen = 12

// usedDigest is the part of a used-key marker that stands for s, a flow id or a key hash.
func usedDigest(kind, s string) string { return digest(kind + "\x00" + s)[:usedDigestLen] }

// unusedMember is how a key number is stored in a new card's unused set: as an integer
// ("0042" → "42"), so the set is an intset. Anything but 4 digits is returned as it is.
func unusedMember(number string) string {
	if len(number) != 4 || !isDigits(number) {
		return number
	}
	n, _ := strconv.Atoi(number)
	return strconv.Itoa(n)
}

// keyNumberLua defines the Lua helpers of both unused-set formats: unused_member(number) is
// the integer member a 4-digit number is in a new card's set ("0042" → "42"), key_number(m)
// formats a set member (of either format) back to the 4-digit key number ("42" → "0042").
const keyNumberLua = `
local function unused_member(n)
  if string.match(n, '^%d%d%d%d$') then return tostring(tonumber(n)) end
  return n
end
local function key_number(m)
  if #m < 4 and string.match(m, '^%d+$') then return string.rep('0', 4 - #m) .. m end
  return m
end
`

// pendingKeyLua is the pending-key-number rule, as a Lua fragment that defines the local
// function pending_key(card, unused): card is the card hash's key, unused its unused set's
// key (both under the citizen's {c:<uid>} tag, passed in KEYS). It returns the card's pending
// key number (4 digits), or an empty string when the card has no unused keys (and then clears
// the pending field). The pending number stays while its key is unused; otherwise one is
// drawn from the unused keys and becomes the pending one. It reads both unused-set formats
// (see "Stored card format") and carries its own helpers, so any script can start with it:
// pendingKeyLua + "... pending_key(KEYS[3], KEYS[4]) ...".
const pendingKeyLua = keyNumberLua + `
local function pending_key(card, unused)
  local number = redis.call('HGET', card, 'pending')
  if number and (redis.call('SISMEMBER', unused, number) == 1 or
      (unused_member(number) ~= number and redis.call('SISMEMBER', unused, unused_member(number)) == 1)) then
    return number
  end
  local m = redis.call('SRANDMEMBER', unused)
  if not m then
    redis.call('HDEL', card, 'pending')
    return ''
  end
  number = key_number(m)
  redis.call('HSET', card, 'pending', number)
  return number
end
`

// useKeyScript checks and consumes one card key in one atomic step: a key is used at most
// once even when two requests race with it; a wrong key, or a used one typed wrong, counts as
// a failed attempt; a right one resets the failure counter. A used key's marker names the
// login that used it and the key's hash (see "Stored card format"), so the login that used
// it sending it again (a double click) is told apart, and so is another login of the same
// card typing that key right (a second tab asked the card's one pending number, used
// meanwhile by the first): whoever types it holds the card, and a used key logs nobody in,
// so neither is counted. A retired or blocked card's key is refused (retired, card_blocked)
// and not counted. ARGV: number, hash, max failures, now, flow id, flow digest, hash digest,
// serial, now (Unix ms), order claim (” to claim none), default threshold, claim staleness
// (ms).
var useKeyScript = redis.NewScript(keyNumberLua + `
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {'no_person', 0, 0} end
if st ~= 'active' then return {'blocked', 0, 0} end
local cst = redis.call('HGET', KEYS[2], 'status')
if cst == 'retired' then return {'retired', 0, 0} end
if cst == 'blocked' then return {'card_blocked', 0, 0} end
if cst ~= 'active' and cst ~= 'sent' then return {'bad_card', 0, 0} end
local v = redis.call('HGET', KEYS[2], 'k:' .. ARGV[1])
if not v then return {'no_key', 0, 0} end
if v ~= ARGV[2] then
  local used = string.sub(v, 1, 2) == 'u:'
  if used and ARGV[5] ~= '' and (v == 'u:' .. ARGV[6] .. '|' .. ARGV[7] or
      v == 'u:' .. ARGV[5] or v == 'u:' .. ARGV[5] .. '|' .. ARGV[2]) then
    return {'repeat', 0, 0}
  end
  if used and (string.sub(v, -(#ARGV[7] + 1)) == '|' .. ARGV[7] or string.sub(v, -(#ARGV[2] + 1)) == '|' .. ARGV[2]) then
    return {'used_right', 0, 0}
  end
  local max = tonumber(ARGV[3])
  local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  local left = max - n
  if left <= 0 then
    redis.call('HSET', KEYS[1], 'status', 'blocked', 'block_reason', 'failures', 'blocked_at', ARGV[4])
    redis.call('XADD', KEYS[1] .. ':events', 'MAXLEN', '~', '200', '*', 'type', 'nemid_blocked', 'reason', 'failures', 'at', ARGV[4], 'by', 'system')
    return {'locked', 0, 0}
  end
  if used then return {'used', left, 0} end
  return {'wrong', left, 0}
end
redis.call('HSET', KEYS[2], 'k:' .. ARGV[1], 'u:' .. ARGV[6] .. '|' .. ARGV[7])
redis.call('SREM', KEYS[3], ARGV[1], unused_member(ARGV[1]))
if redis.call('HGET', KEYS[2], 'pending') == ARGV[1] then redis.call('HDEL', KEYS[2], 'pending') end
redis.call('HSET', KEYS[1], 'failures', 0)
local left = redis.call('SCARD', KEYS[3])
local serial = ARGV[8]
local active = redis.call('HGET', KEYS[1], 'active_card') or ''
-- A sent card's first right key makes it active; one that replaces a card becomes the
-- citizen's default card and retires the one it replaces.
local activated = 0
if cst == 'sent' then
  activated = 1
  redis.call('HSET', KEYS[2], 'status', 'active', 'activated_at', ARGV[4])
  local rep = redis.call('HGET', KEYS[2], 'replaces') or ''
  local prefix = KEYS[1]
  local activeSt = redis.call('HGET', prefix .. ':card:' .. active, 'status')
  if rep ~= '' or (activeSt ~= 'active' and activeSt ~= 'sent') then
    redis.call('HSET', KEYS[1], 'active_card', serial)
    active = serial
  end
  if rep ~= '' then
    local rk = prefix .. ':card:' .. rep
    local rst = redis.call('HGET', rk, 'status')
    if rst == 'active' or rst == 'sent' then
      redis.call('HSET', rk, 'status', 'retired', 'retired_at', ARGV[4])
      redis.call('DEL', rk .. ':print')
    end
  end
end
-- At the threshold of keys left on the default card, this key use claims the order of its
-- successor (once: the claim stays until the successor is written or the claim released,
-- or, left by a crash, goes stale).
local claim = ''
if ARGV[10] ~= '' and serial == active then
  local thr = tonumber(redis.call('HGET', KEYS[1], 'card_threshold') or '') or 0
  if thr <= 0 then thr = tonumber(ARGV[11]) end
  if left <= thr then
    local succ = redis.call('HGET', KEYS[2], 'successor')
    local stale = false
    if succ then
      local at = tonumber(string.match(succ, '^pending:(%d+):') or '')
      stale = at ~= nil and at + tonumber(ARGV[12]) < tonumber(ARGV[9])
    end
    if not succ or stale then
      redis.call('HSET', KEYS[2], 'successor', ARGV[10])
      claim = ARGV[10]
    end
  end
end
return {'ok', 0, left, claim, activated}
`)

// UseCardKeyInFlow checks a key for a login flow and consumes it; the same flow sending the
// same key again gets KeyRepeat instead of a failed attempt. In the same round trip it
// reserves one of the flow's attempts (see reserveFlowScript), which the flow's next save
// gives back when the key was right.
func (s *Store) UseCardKeyInFlow(ctx context.Context, flow, uid, serial, number, hash string, maxFailures int) (KeyResult, int, error) {
	res, n, _, err := s.UseCardKey(ctx, flow, true, uid, serial, number, hash, maxFailures, "", "")
	return res, n, err
}

var pendingKeyScript = redis.NewScript(pendingKeyLua + `
return pending_key(KEYS[1], KEYS[2])
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
	key, member := s.unusedKey(uid, serial), unusedMember(number)
	if member == number {
		ok, err := s.rdb.SIsMember(ctx, key, number).Result()
		return ok, wrap("key unused", err)
	}
	// Either form (see "Stored card format"), in one round trip.
	p := s.rdb.Pipeline()
	asString, asInt := p.SIsMember(ctx, key, number), p.SIsMember(ctx, key, member)
	if _, err := p.Exec(ctx); err != nil {
		return false, wrap("key unused", err)
	}
	return asString.Val() || asInt.Val(), nil
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
