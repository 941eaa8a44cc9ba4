package store

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lockout. A citizen's "failures" field counts settled failed attempts in a row; the one that
// reaches the limit blocks the NemID in the same script, so "locked" and the stored status
// always agree. A password attempt is reserved before the slow KDF and settled after, so
// parallel guesses cannot all pass a check made before any of them failed. A reservation is a
// member of the citizen's {c:<id>}:att sorted set, scored by its deadline: one that is never
// settled (the request was cancelled, the process died, Redis failed at the wrong moment)
// stops counting at its deadline instead of costing the citizen an attempt for good.

// FailureResult says what a failed attempt did to the lockout counter.
type FailureResult struct {
	AttemptsLeft int
	Locked       bool // this or an earlier failure blocked the NemID
}

// Attempt is a reserved password attempt.
type Attempt struct {
	ID string
	// Refused: the NemID is locked (or, not active, has spent its attempts): no password is
	// checked, so the answer never tells a right password from a wrong one.
	Refused bool
	// Busy: settled failures and attempts still in flight together use up the budget. Not a
	// lockout (the stored status stays active): the citizen may try again in a moment.
	Busy bool
	// The records the reservation was made on (BeginPasswordAnswer): the citizen's (uid), or
	// an unknown user ID's (rec, att).
	uid, rec, att string
}

func (s *Store) attemptsKey(uid string) string { return s.key("{c:"+uid+"}", "att") }

// The deadlines are judged by Redis's clock, so instances whose clocks disagree still agree on
// which reservations count; ARGV[1] shifts it by how far the caller's clock is from the
// process's (zero but in tests that move the engine's clock). ARGV[5] = '1': the record is an
// unknown user ID's, which has no status and is never blocked.
// reserveAttemptLua defines reserve(rec, att, st): the reservation of one password attempt
// in rec's attempt set att for a record of status st, refused (locked) or deferred (busy) when
// the failures in a row and the attempts in flight use up the budget. ARGV: 1 clock shift,
// 2 max, 3 hold (ms), 4 the reservation's id.
const reserveAttemptLua = `
local function reserve(rec, att, st)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
  local max = tonumber(ARGV[2])
  redis.call('ZREMRANGEBYSCORE', att, '-inf', now)
  local f = tonumber(redis.call('HGET', rec, 'failures') or '0') or 0
  if f >= max or (st == 'blocked' and redis.call('HGET', rec, 'block_reason') == 'failures') then
    return f, 'refused'
  end
  if f + redis.call('ZCARD', att) >= max then return f, 'busy' end
  redis.call('ZADD', att, now + tonumber(ARGV[3]), ARGV[4])
  redis.call('PEXPIRE', att, ARGV[3])
  return f, ''
end
`

var beginAttemptScript = redis.NewScript(reserveAttemptLua + `
local st = redis.call('HGET', KEYS[1], 'status')
if not st then
  if ARGV[5] ~= '1' then return {-1, ''} end
  st = 'active'
end
local f, outcome = reserve(KEYS[1], KEYS[2], st)
return {f, outcome}
`)

// BeginAttempt reserves one password attempt for hold, or refuses (locked) or defers (busy) it
// when the failures in a row and the attempts in flight use up max. now is the caller's clock.
func (s *Store) BeginAttempt(ctx context.Context, uid string, max int, now time.Time, hold time.Duration) (Attempt, error) {
	return s.beginAttempt(ctx, s.citizenKey(uid), s.attemptsKey(uid), false, max, now, hold)
}

func (s *Store) beginAttempt(ctx context.Context, rec, att string, unknown bool, max int, now time.Time, hold time.Duration) (Attempt, error) {
	id := randomID()
	res, err := beginAttemptScript.Run(ctx, s.rdb, []string{rec, att},
		time.Until(now).Milliseconds(), max, hold.Milliseconds(), id, boolStr(unknown)).Slice()
	if err != nil {
		return Attempt{}, wrap("begin attempt", err)
	}
	if n, _ := res[0].(int64); n < 0 {
		return Attempt{}, fmt.Errorf("store: begin attempt: %w", ErrNotFound)
	}
	switch res[1].(string) {
	case "refused":
		return Attempt{Refused: true}, nil
	case "busy":
		return Attempt{Busy: true}, nil
	}
	return Attempt{ID: id}, nil
}

// failAttemptScript answers {failures, the user id when this failure locked the NemID}: a
// lockout writes a nemid_blocked letter in the same step (an unknown user ID's record has no
// status, so it never locks, and never writes one).
var failAttemptScript = redis.NewScript(`
redis.call('ZREM', KEYS[2], ARGV[2])
local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if n >= tonumber(ARGV[1]) and redis.call('HGET', KEYS[1], 'status') == 'active' then
  redis.call('HSET', KEYS[1], 'status', 'blocked', 'block_reason', 'failures', 'blocked_at', ARGV[3])
  redis.call('XADD', KEYS[1] .. ':events', 'MAXLEN', '~', '200', '*', 'type', 'nemid_blocked', 'reason', 'failures', 'at', ARGV[3], 'by', 'system')
  return {n, redis.call('HGET', KEYS[1], 'user_id') or ''}
end
return {n, ''}
`)

// FailAttempt settles a reserved attempt as failed: the max-th failure in a row blocks the
// NemID. A wrong password is counted even when its reservation ran out meanwhile.
func (s *Store) FailAttempt(ctx context.Context, uid string, limit int, a Attempt, now time.Time) (FailureResult, error) {
	return s.failAttempt(ctx, s.citizenKey(uid), s.attemptsKey(uid), limit, a, now)
}

func (s *Store) failAttempt(ctx context.Context, rec, att string, limit int, a Attempt, now time.Time) (FailureResult, error) {
	r, err := failAttemptScript.Run(ctx, s.rdb, []string{rec, att},
		limit, a.ID, now.UTC().Format(time.RFC3339)).Slice()
	if err != nil {
		return FailureResult{}, wrap("fail attempt", err)
	}
	if len(r) != 2 {
		return FailureResult{}, fmt.Errorf("store: fail attempt: unexpected answer %v", r)
	}
	n64, _ := r[0].(int64)
	n := int(n64)
	if uid, _ := r[1].(string); uid != "" {
		s.relayLater(ctx, uid)
	}
	left := max(limit-n, 0)
	return FailureResult{AttemptsLeft: left, Locked: left == 0}, nil
}

// CancelAttempt takes back a reservation whose password was never checked (the request went
// away while it waited for the KDF, or the KDF was too busy to take it).
func (s *Store) CancelAttempt(ctx context.Context, uid string, a Attempt) error {
	if a.ID == "" {
		return nil
	}
	return wrap("cancel attempt", s.rdb.ZRem(ctx, s.attemptsKey(uid), a.ID).Err())
}

// Accepted is the citizen's state after a right password: the status AcceptPasswordSaving
// returns. No store call fills KeyNumber or Devices any more (BeginPasswordAnswer returns
// them in its PasswordAnswer).
type Accepted struct {
	Status, BlockReason string
}

var recordFailureScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return -1 end
local f = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0') or 0
if f >= tonumber(ARGV[1]) or (st == 'blocked' and redis.call('HGET', KEYS[1], 'block_reason') == 'failures') then
  return 0
end
local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if n >= tonumber(ARGV[1]) and st == 'active' then
  redis.call('HSET', KEYS[1], 'status', 'blocked', 'block_reason', 'failures', 'blocked_at', ARGV[2])
  redis.call('XADD', KEYS[1] .. ':events', 'MAXLEN', '~', '200', '*', 'type', 'nemid_blocked', 'reason', 'failures', 'at', ARGV[2], 'by', 'system')
end
return n
`)

// RecordFailure counts one failed attempt outside a password check, in one atomic step.
func (s *Store) RecordFailure(ctx context.Context, uid string, limit int) (FailureResult, error) {
	n, err := recordFailureScript.Run(ctx, s.rdb, []string{s.citizenKey(uid)}, limit, time.Now().UTC().Format(time.RFC3339)).Int()
	if err != nil {
		return FailureResult{}, wrap("record failure", err)
	}
	switch {
	case n < 0:
		return FailureResult{}, fmt.Errorf("store: record failure: %w", ErrNotFound)
	case n == 0:
		return FailureResult{Locked: true}, nil
	}
	left := max(limit-n, 0)
	if left == 0 {
		s.relayLater(ctx, uid) // this failure locked it: its letter
	}
	return FailureResult{AttemptsLeft: left, Locked: left == 0}, nil
}

// An unknown user ID has a record of its own (keyed by an HMAC of what was typed) that counts
// and reserves attempts exactly as a citizen's does, with the same scripts: the same answers
// (attempts left, "try again" while attempts are in flight, locked) and the same round trips,
// so neither the answers nor their timing tell which user IDs have a NemID. Like a citizen's,
// its count lives for good: one that expired would tell itself apart to anyone who waits.
func (s *Store) unknownKeys(username string) (rec, att string) {
	m := hmac.New(sha256.New, s.pepper)
	m.Write([]byte("user\x00" + strings.ToLower(username)))
	tag := "{u:" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)) + "}"
	return s.key(tag), s.key(tag, "att")
}

// unknownRecord is where a password answer for a user ID with no NemID counts: a user ID of
// the shape of one (9 or 10 digits, not a CPR number) in that user ID's slot, so its answer
// takes the very round trips of a known user ID's (BeginPasswordAnswer); a CPR number (given
// normalised) or anything else under an HMAC of what was typed.
func (s *Store) unknownRecord(username, cpr string) (rec, att string) {
	switch {
	case cpr != "":
		return s.unknownKeys(cpr)
	case idShaped(username):
		return s.key("{c:"+username+"}", "unknown"), s.key("{c:"+username+"}", "unknown", "att")
	}
	return s.unknownKeys(username)
}

func idShaped(username string) bool {
	return isDigits(username) && (len(username) == 9 || len(username) == 10)
}

// BeginUnknownAttempt is BeginAttempt for a user ID with no NemID.
func (s *Store) BeginUnknownAttempt(ctx context.Context, username string, max int, now time.Time, hold time.Duration) (Attempt, error) {
	rec, att := s.unknownRecord(username, "")
	return s.beginAttempt(ctx, rec, att, true, max, now, hold)
}

// FailUnknownAttempt is FailAttempt for a user ID with no NemID (never blocked: there is
// nothing to block, but the count answers "locked" at the limit all the same).
func (s *Store) FailUnknownAttempt(ctx context.Context, username string, limit int, a Attempt, now time.Time) (FailureResult, error) {
	rec, att := s.unknownRecord(username, "")
	return s.failAttempt(ctx, rec, att, limit, a, now)
}

// UnknownLocked reports whether an unknown user ID has used up its attempts.
// The record is the one BeginPasswordAnswer counts on (see unknownRecord).
func (s *Store) UnknownLocked(ctx context.Context, username, cpr string, max int) (bool, error) {
	rec, _ := s.unknownRecord(username, cpr)
	n, err := s.rdb.HGet(ctx, rec, "failures").Int()
	if err != nil {
		if err == redis.Nil {
			return false, nil
		}
		return false, wrap("unknown locked", err)
	}
	return n >= max, nil
}

func randomID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // unrecoverable: no randomness
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}
