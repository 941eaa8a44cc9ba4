package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The round trips of a login answer. A password answer costs two: before the KDF, one
// pipeline loads the flow and reserves one of its attempts (flow slot) while one script in the
// citizen's slot reads the citizen, reserves the password attempt and finds the card's pending
// key number and the active key-app devices; after the KDF, one pipeline settles the attempt
// and saves the flow. A code-card answer loads the flow with its attempt reserved in one
// script, uses the key (with the pairwise subject) in a second, and saves in a third.

// loadReserveFlowScript reserves one of a flow's attempts (see reserveFlowScript) and, with
// ARGV[1] = '1', returns the flow's version and data with it: {attempt, version, data}.
// {-1}: the flow is gone.
var loadReserveFlowScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local n = redis.call('HINCRBY', KEYS[1], 'f', 1)
if ARGV[1] ~= '1' then return {n} end
local v = redis.call('HMGET', KEYS[1], 'v', 'd')
return {n, v[1] or '0', v[2] or ''}
`)

// beginLoginScript starts a password answer in the slot of the user ID typed: the citizen's
// record, the reserved attempt, the active card's pending key number and the number of active
// key-app devices, in one step. With no citizen there and ARGV[5] = '1', the attempt is
// reserved on the unknown user ID's record (KEYS[4], KEYS[5]) in the same slot, so an unknown
// user ID takes the very round trips of a known one.
// KEYS: 1 citizen, 2 its attempts, 3 its active devices, 4 unknown record, 5 its attempts.
// ARGV: 1 clock shift, 2 max, 3 hold (ms), 4 reservation id, 5 unknown counts here.
// Returns {kind, fields, failures, outcome, key number, devices}; kind 'none': nothing done.
var beginLoginScript = redis.NewScript(reserveAttemptLua + pendingKeyLua + `
local c = redis.call('HGETALL', KEYS[1])
local uid, st, card = '', '', ''
for i = 1, #c, 2 do
  if c[i] == 'status' then st = c[i + 1] elseif c[i] == 'active_card' then card = c[i + 1]
  elseif c[i] == 'user_id' then uid = c[i + 1] end
end
-- A record without its user id (fields left by a write to a user id with no NemID) is none.
if uid == '' then
  if ARGV[5] ~= '1' then return {'none'} end
  local f, outcome = reserve(KEYS[4], KEYS[5], 'active')
  return {'unknown', {}, f, outcome, '', '0'}
end
-- The card's keys are named here, in the citizen's slot, from its active card: read first, so
-- that a script Redis stops at one (a slot being resharded) has reserved nothing.
local number = ''
if card ~= '' then
  local ck = KEYS[1] .. ':card:' .. card
  local cst = redis.call('HGET', ck, 'status')
  if cst == 'active' or cst == 'sent' then number = pending_key(ck, ck .. ':unused') end
end
-- The citizen's usable cards (active or sent), and whether one was sent: a default card used
-- up (or no longer usable) gives way to another usable card with keys.
-- An active card in the citizen's hands comes before one still in the post.
local usable, sent, order = {}, '0', {}
for _, s in ipairs(redis.call('SMEMBERS', KEYS[1] .. ':cards')) do
  local cst = redis.call('HGET', KEYS[1] .. ':card:' .. s, 'status')
  if cst == 'active' then
    table.insert(usable, s)
    table.insert(order, 1, s)
  elseif cst == 'sent' then
    table.insert(usable, s)
    table.insert(order, s)
    sent = '1'
  end
end
for _, s in ipairs(order) do
  if number ~= '' then break end
  local ck = KEYS[1] .. ':card:' .. s
  local n = pending_key(ck, ck .. ':unused')
  if n ~= '' then number, card = n, s end
end
local f, outcome = reserve(KEYS[1], KEYS[2], st)
if outcome ~= '' then number = '' end
return {'citizen', c, f, outcome, number, tostring(redis.call('SCARD', KEYS[3])), card, usable, sent}
`)

// PasswordAnswer is what the first round trip of a password answer found.
type PasswordAnswer struct {
	// Flow is the flow as stored, when BeginPasswordAnswer was asked to load it.
	Flow FlowRecord
	// FlowAttempt is the flow attempt reserved: this is the n-th answer of the flow; -1: the
	// flow is gone, 0: no flow was named.
	FlowAttempt int
	// Citizen is the NemID the user ID names; nil for a user ID with no NemID.
	Citizen *Citizen
	// Reserved is the password attempt reserved for the citizen or the unknown user ID.
	Reserved Attempt
	// KeyNumber is the active card's pending key number ("" none); Devices counts the
	// citizen's active key-app devices.
	KeyNumber string
	Devices   int
	// CardSerial is the card KeyNumber is of: the default card, or another usable one when
	// that is used up; Cards are the citizen's usable cards (active or sent), CardSent whether
	// one of them was sent and never used.
	CardSerial string
	Cards      []string
	CardSent   bool
}

// BeginPasswordAnswer starts one password answer: it reserves an attempt of the flow (loading
// the flow too when load is set) and a password attempt of the citizen the user ID names, or
// of the unknown user ID, with the citizen's record, card's pending key number and active
// devices. A user ID costs one round trip; a CPR number two (its index first). The
// reservations are Release'd, or settled by AcceptPasswordSaving or FailReserved.
func (s *Store) BeginPasswordAnswer(ctx context.Context, flow string, load bool, username, cpr string, max int, now time.Time, hold time.Duration) (PasswordAnswer, error) {
	var out PasswordAnswer
	shift := time.Until(now).Milliseconds()
	idShaped := idShaped(username)
	var flowCall, begin *scriptCall
	var byCPR *redis.StringCmd
	var unknown Attempt
	queueBegin := func(ctx context.Context, p redis.Pipeliner, uid string, unknownHere bool) (*scriptCall, Attempt) {
		a := Attempt{ID: randomID(), rec: s.citizenKey(uid), att: s.attemptsKey(uid)}
		ua := Attempt{ID: a.ID}
		ua.rec, ua.att = s.unknownRecord(uid, "")
		keys := []string{a.rec, a.att, s.devActKey(uid), ua.rec, ua.att}
		c := queueScript(ctx, p, beginLoginScript, keys, shift, max, hold.Milliseconds(), a.ID, boolStr(unknownHere))
		return c, ua
	}
	var beginAtt Attempt
	err := s.pipelined(ctx, func(p redis.Pipeliner) []*scriptCall {
		if flow != "" {
			flowCall = queueScript(ctx, p, loadReserveFlowScript, []string{s.flowKey(flow)}, boolStr(load))
		}
		switch {
		case idShaped:
			// A 10-digit user ID that is also a CPR number counts as the CPR number when unknown.
			begin, beginAtt = queueBegin(ctx, p, username, cpr == "")
		case cpr == "":
			rec, att := s.unknownRecord(username, "")
			unknown = Attempt{ID: randomID(), rec: rec, att: att}
			begin = queueScript(ctx, p, beginAttemptScript, []string{rec, att}, shift, max, hold.Milliseconds(), unknown.ID, "1")
		}
		if cpr != "" {
			byCPR = p.Get(ctx, s.cprIndexKey(cpr))
		}
		return []*scriptCall{flowCall, begin}
	})
	if err != nil && err != redis.Nil {
		// A flow attempt that was reserved all the same is reported, for the caller to give
		// back.
		if flowCall != nil && flowCall.cmd.Err() == nil {
			if n, ok := flowAttempt(flowCall); ok {
				out.FlowAttempt = n
			}
		}
		return out, wrap("begin password answer", err)
	}
	if flowCall != nil {
		if err := out.readFlow(flowCall, load); err != nil {
			// Whatever the citizen's script reserved is given back here: the caller learns
			// of no reservation from an error.
			if begin != nil && idShaped {
				var dropped PasswordAnswer
				if found, _ := dropped.readBegin(begin, beginAtt); found && dropped.Reserved.ID != "" {
					_ = s.Release(context.WithoutCancel(ctx), "", false, dropped.Reserved)
				}
			} else if begin != nil && unknown.ID != "" {
				_ = s.Release(context.WithoutCancel(ctx), "", false, unknown)
			}
			return out, err
		}
	}
	if begin != nil && !idShaped { // an unknown user ID that is no user ID nor CPR number
		res, err := begin.cmd.Slice()
		if err != nil {
			return out, wrap("begin password answer", err)
		}
		out.Reserved = attemptOf(unknown, res[1])
		return out, nil
	}
	if begin != nil {
		found, err := out.readBegin(begin, beginAtt)
		if err != nil || found {
			return out, err
		}
	}
	if byCPR == nil {
		return out, fmt.Errorf("store: begin password answer: %w", ErrNotFound)
	}
	// A CPR number: its index names the citizen, whose record the second round trip reads.
	claim, err := byCPR.Result()
	if err != nil && err != redis.Nil {
		return out, wrap("begin password answer: cpr index", err)
	}
	if uid, _, _ := strings.Cut(claim, "|"); uid != "" {
		var c *scriptCall
		var ua Attempt
		err := s.pipelined(ctx, func(p redis.Pipeliner) []*scriptCall {
			c, ua = queueBegin(ctx, p, uid, false)
			return []*scriptCall{c}
		})
		if err != nil {
			return out, wrap("begin password answer", err)
		}
		if found, err := out.readBegin(c, ua); err != nil || found {
			return out, err
		}
	}
	// No NemID for this CPR number: its own unknown record, as a user ID's.
	rec, att := s.unknownRecord(username, cpr)
	a, err := s.beginAttempt(ctx, rec, att, true, max, now, hold)
	if a.ID != "" {
		a.rec, a.att = rec, att
	}
	out.Reserved = a
	return out, err
}

// flowAttempt is the attempt loadReserveFlowScript reserved.
func flowAttempt(c *scriptCall) (int, bool) {
	res, err := c.cmd.Slice()
	if err != nil || len(res) == 0 {
		return 0, false
	}
	n, ok := res[0].(int64)
	return int(n), ok
}

func (out *PasswordAnswer) readFlow(c *scriptCall, load bool) error {
	res, err := c.cmd.Slice()
	if err != nil {
		return wrap("begin password answer: flow", err)
	}
	n, _ := res[0].(int64)
	out.FlowAttempt = int(n)
	if n < 0 || !load {
		return nil
	}
	vs, _ := res[1].(string)
	d, _ := res[2].(string)
	v, err := strconv.ParseInt(vs, 10, 64)
	if err != nil || d == "" {
		return fmt.Errorf("store: begin password answer: flow record damaged: %w", ErrNotFound)
	}
	out.Flow = FlowRecord{Data: []byte(d), Version: v, Failures: int(n) - 1}
	return nil
}

// readBegin reads beginLoginScript's answer; found is false when nothing was there (nor
// reserved).
func (out *PasswordAnswer) readBegin(c *scriptCall, unknown Attempt) (found bool, err error) {
	res, err := c.cmd.Slice()
	if err != nil {
		return false, wrap("begin password answer", err)
	}
	switch res[0].(string) {
	case "none":
		return false, nil
	case "unknown":
		out.Reserved = attemptOf(unknown, res[3])
		return true, nil
	}
	flat, _ := res[1].([]any)
	m := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		m[k] = v
	}
	out.Citizen = citizenFrom(m)
	uid := out.Citizen.UserID
	out.Reserved = attemptOf(Attempt{ID: unknown.ID, uid: uid}, res[3])
	out.KeyNumber, _ = res[4].(string)
	devices, _ := res[5].(string)
	out.Devices, _ = strconv.Atoi(devices)
	if len(res) >= 9 {
		out.CardSerial, _ = res[6].(string)
		cards, _ := res[7].([]any)
		for _, c := range cards {
			if s, ok := c.(string); ok {
				out.Cards = append(out.Cards, s)
			}
		}
		slices.Sort(out.Cards)
		sent, _ := res[8].(string)
		out.CardSent = sent == "1"
	}
	return true, nil
}

func attemptOf(a Attempt, outcome any) Attempt {
	switch outcome {
	case "refused":
		return Attempt{Refused: true}
	case "busy":
		return Attempt{Busy: true}
	}
	return a
}

// keysOf names the records a reservation was made on.
func (s *Store) keysOf(a Attempt) (rec, att string) {
	if a.uid != "" {
		return s.citizenKey(a.uid), s.attemptsKey(a.uid)
	}
	return a.rec, a.att
}

// FailReserved settles a reservation of BeginPasswordAnswer as a wrong password (see
// FailAttempt), on the citizen's or the unknown user ID's record it was made on.
func (s *Store) FailReserved(ctx context.Context, a Attempt, limit int, now time.Time) (FailureResult, error) {
	rec, att := s.keysOf(a)
	return s.failAttempt(ctx, rec, att, limit, a, now)
}

// Release gives back what an answer reserved and never had judged: the flow attempt (when
// flowAttempt) and the password attempt a, in one round trip.
func (s *Store) Release(ctx context.Context, flow string, flowAttempt bool, a Attempt) error {
	if !flowAttempt && a.ID == "" {
		return nil
	}
	err := s.pipelined(ctx, func(p redis.Pipeliner) []*scriptCall {
		var c *scriptCall
		if flowAttempt {
			c = queueScript(ctx, p, releaseFlowScript, []string{s.flowKey(flow)})
		}
		if a.ID != "" {
			_, att := s.keysOf(a)
			p.ZRem(ctx, att, a.ID)
		}
		return []*scriptCall{c}
	})
	return wrap("release answer", err)
}

// acceptScript settles a reserved attempt after a right password and returns the citizen's
// status as it is now (a parallel wrong guess may have locked the NemID meanwhile).
var acceptScript = redis.NewScript(`
redis.call('ZREM', KEYS[2], ARGV[1])
return {redis.call('HGET', KEYS[1], 'status') or '', redis.call('HGET', KEYS[1], 'block_reason') or ''}
`)

// AcceptPasswordSaving settles a reservation of BeginPasswordAnswer after a right password
// and, in the same round trip, saves the flow the answer moved on (fs; no save when fs.ID is
// ""). It returns the citizen's status as it is now and the flow's new version. The save
// does not wait for the status: a caller that finds the NemID no longer active puts the flow
// back, and every later step checks the status again.
func (s *Store) AcceptPasswordSaving(ctx context.Context, a Attempt, fs FlowSave) (status, blockReason string, version int64, err error) {
	rec, att := s.keysOf(a)
	var accept, save *scriptCall
	err = s.pipelined(ctx, func(p redis.Pipeliner) []*scriptCall {
		accept = queueScript(ctx, p, acceptScript, []string{rec, att}, a.ID)
		if fs.ID != "" {
			save = s.queueFlowSave(ctx, p, fs)
		}
		return []*scriptCall{accept, save}
	})
	if res, aerr := accept.cmd.StringSlice(); aerr == nil {
		status, blockReason = res[0], res[1]
	} else if err == nil {
		err = aerr
	}
	if err != nil {
		return "", "", 0, wrap("password accepted", err)
	}
	if save != nil {
		version, err = flowSaved(save)
	}
	return status, blockReason, version, err
}

// UseCardKey checks a key for a login flow and consumes it (useKeyScript), reserving one of
// the flow's attempts in the same round trip when reserve is set (the flow's next save gives
// it back when the key was right). With a sector, the citizen's pairwise subject there is
// found (made from fresh on first use) in the same round trip, for the login the key may
// complete: the citizen has proved the password, so a wrong key makes nothing they would not
// get at their first login there.
func (s *Store) UseCardKey(ctx context.Context, flow string, reserve bool, uid, serial, number, hash string, maxFailures int, sector, fresh string) (res KeyResult, attempt int, subject string, err error) {
	keys := []string{s.citizenKey(uid), s.cardKey(uid, serial), s.unusedKey(uid, serial)}
	var rcall, use, sub *scriptCall
	err = s.pipelined(ctx, func(p redis.Pipeliner) []*scriptCall {
		if reserve && flow != "" {
			rcall = queueScript(ctx, p, reserveFlowScript, []string{s.flowKey(flow)})
		}
		// A consumed key is stored as "u:<flow digest>|<hash digest>", which never equals a
		// hash; a key used outside a flow has no flow digest.
		fd := ""
		if flow != "" {
			fd = usedDigest("flow", flow)
		}
		now := time.Now()
		use = queueScript(ctx, p, useKeyScript, keys, number, hash, maxFailures, now.UTC().Format(time.RFC3339),
			flow, fd, usedDigest("key", hash), serial, now.UnixMilli(), newOrderClaim(now), DefaultCardThreshold,
			orderClaimStale.Milliseconds())
		if sector != "" {
			sub = queueScript(ctx, p, citizenPairwiseScript, []string{s.citizenKey(uid), s.pairwiseKey(uid)}, sector, fresh)
		}
		return []*scriptCall{rcall, use, sub}
	})
	if err != nil {
		return KeyResult{}, 0, "", wrap("use card key "+number, err)
	}
	if rcall != nil {
		attempt, _ = rcall.cmd.Int()
	}
	r, err := use.cmd.Slice()
	if err != nil {
		return KeyResult{}, 0, "", wrap("use card key "+number, err)
	}
	res = KeyResult{Outcome: KeyOutcome(r[0].(string)), AttemptsLeft: int(r[1].(int64)), KeysLeft: int(r[2].(int64))}
	if res.Outcome == KeyLocked {
		s.relayLater(ctx, uid) // this key locked the NemID: its nemid_blocked letter
	}
	if len(r) >= 5 {
		res.OrderClaim, _ = r[3].(string)
		a, _ := r[4].(int64)
		res.Activated = a == 1
	}
	if sub != nil {
		subject, _ = sub.cmd.Text()
	}
	return res, attempt, subject, nil
}

// citizenPairwiseScript is pairwiseScript for a citizen who exists (” otherwise, and nothing
// made).
var citizenPairwiseScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'user_id') == 0 then return '' end
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[2], ARGV[1])
`)
