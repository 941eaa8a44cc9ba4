package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Key-app approval requests. One request is a hash {c:<id>}:kreq:<request> in the citizen's
// slot (so deciding it and dropping it from the citizen's pending list are one script), and
// {c:<id>}:kreqs is the pending list, scored by expiry. A request moves once from pending to
// one end: approve, deny, mismatch (a wrong binding code spends it), expired or cancelled.
// Every decision is judged by that one transition, so two racing decisions cannot both win.

// Approval states.
const (
	ApprovalPending   = "pending"
	ApprovalApproved  = "approve"
	ApprovalDenied    = "deny"
	ApprovalMismatch  = "mismatch"
	ApprovalExpired   = "expired"
	ApprovalCancelled = "cancelled"
)

// Approval is one key-app approval request.
type Approval struct {
	ID         string
	CitizenID  string
	Flow       string
	ClientName string
	Text       string
	// Code is the binding code the browser shows; Codes are the three the device offers
	// (Code among them).
	Code      string
	Codes     []string
	CreatedAt time.Time
	ExpiresAt time.Time
	Status    string
	// Device is the device that decided (empty while pending).
	Device string
}

// approvalKeep is how long a decided or expired request stays readable, so the login it
// belongs to learns its end even if it polls late.
const approvalKeep = 10 * time.Minute

func (s *Store) approvalKey(uid, id string) string { return s.key("{c:"+uid+"}", "kreq", id) }
func (s *Store) approvalsKey(uid string) string    { return s.key("{c:"+uid+"}", "kreqs") }

var createApprovalScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'flow', ARGV[1], 'client', ARGV[2], 'text', ARGV[3], 'code', ARGV[4], 'codes', ARGV[5],
  'created', ARGV[6], 'expires', ARGV[7], 'status', 'pending')
redis.call('PEXPIRE', KEYS[1], ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[7], ARGV[9])
redis.call('PEXPIRE', KEYS[2], ARGV[8])
if ARGV[10] ~= '' then
  local old = KEYS[3]
  if redis.call('HGET', old, 'status') == 'pending' then
    redis.call('HSET', old, 'status', 'cancelled')
    redis.call('ZREM', KEYS[2], ARGV[10])
  end
end
return 1
`)

// CreateApproval stores a pending request and wakes the citizen's devices. replaces names the
// flow's previous request ("" for none), cancelled in the same step so a device never offers
// two requests of one login.
func (s *Store) CreateApproval(ctx context.Context, a *Approval, replaces string) error {
	old := s.approvalKey(a.CitizenID, "-")
	if replaces != "" {
		old = s.approvalKey(a.CitizenID, replaces)
	}
	keys := []string{s.approvalKey(a.CitizenID, a.ID), s.approvalsKey(a.CitizenID), old}
	keep := time.Until(a.ExpiresAt) + approvalKeep
	err := s.pipelined(ctx, func(p redis.Pipeliner) []*scriptCall {
		c := queueScript(ctx, p, createApprovalScript, keys, a.Flow, a.ClientName, a.Text, a.Code,
			strings.Join(a.Codes, ","), a.CreatedAt.UnixMilli(), a.ExpiresAt.UnixMilli(), keep.Milliseconds(), a.ID, replaces)
		p.Publish(ctx, s.eventsChannel(), TopicCitizen(a.CitizenID))
		return []*scriptCall{c}
	})
	return wrap("create approval", err)
}

// Decision outcomes.
const (
	DecideOK       = "ok"
	DecideNotFound = "not_found"
	DecideDecided  = "decided" // already decided, expired or cancelled: Approval.Status says which
	DecideExpired  = "expired" // this call found it past its time and ended it
	DecideMismatch = "mismatch"
	// DecideNotActive: the NemID was blocked (or expired) since the request was made; the
	// request stays pending and runs out.
	DecideNotActive = "not_active"
	// DecideDeviceInactive: the deciding device was removed (checked in the same step as the
	// decision, so a device removed by an operator a moment before decides nothing).
	DecideDeviceInactive = "device_inactive"
)

// decideScript ends a pending request: ARGV[1] the decision ("approve", "deny", or "expire"
// to end it for lateness), ARGV[2] the binding code the device chose, ARGV[3] now (ms),
// ARGV[4] the device. A wrong binding code spends the request: three guesses must not turn a
// one-in-three chance into a certainty.
var decideScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'status', 'expires', 'code', 'flow')
if not r[1] then return {'not_found', '', ''} end
local flow = r[4] or ''
if r[1] ~= 'pending' then return {'decided', r[1], flow} end
if tonumber(ARGV[3]) >= (tonumber(r[2]) or 0) then
  redis.call('HSET', KEYS[1], 'status', 'expired')
  redis.call('ZREM', KEYS[2], ARGV[5])
  return {'expired', 'expired', flow}
end
if ARGV[1] == 'expire' then return {'decided', 'pending', flow} end
if redis.call('HGET', KEYS[3], 'status') ~= 'active' then return {'not_active', r[1], flow} end
if redis.call('SISMEMBER', KEYS[4], ARGV[4]) == 0 then return {'device_inactive', r[1], flow} end
local st = ARGV[1]
if ARGV[1] == 'approve' and ARGV[2] ~= r[3] then st = 'mismatch' end
redis.call('HSET', KEYS[1], 'status', st, 'device', ARGV[4], 'decided', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[5])
if st == 'mismatch' then return {'mismatch', st, flow} end
if st == 'approve' then redis.call('HSET', KEYS[3], 'failures', 0) end
return {'ok', st, flow}
`)

// Decide applies a device's decision (ApprovalApproved or ApprovalDenied) to a pending
// request, in one atomic step. It returns the outcome, the request's state after it and the
// flow it belongs to; the caller moves that flow on and wakes the login waiting for it (on any
// instance: flows.Engine.ApplyDecision).
func (s *Store) Decide(ctx context.Context, uid, id, decision, code, deviceID string, now time.Time) (outcome, state, flow string, err error) {
	// The script stores the decision as the request's state: anything but the two decisions
	// would leave a state that is no end ("" or "pending", decidable again) or fake one.
	if decision != ApprovalApproved && decision != ApprovalDenied {
		return "", "", "", fmt.Errorf("store: decide approval: decision %q is not %q or %q", decision, ApprovalApproved, ApprovalDenied)
	}
	return s.decide(ctx, uid, id, decision, code, deviceID, now)
}

// ExpireApproval ends a pending request whose time has passed (outcome DecideExpired, once);
// a request still in time or already ended is left as it is (DecideDecided, with its state).
func (s *Store) ExpireApproval(ctx context.Context, uid, id string, now time.Time) (outcome, state string, err error) {
	o, st, _, err := s.decide(ctx, uid, id, "expire", "", "", now)
	return o, st, err
}

func (s *Store) decide(ctx context.Context, uid, id, decision, code, deviceID string, now time.Time) (string, string, string, error) {
	keys := []string{s.approvalKey(uid, id), s.approvalsKey(uid), s.citizenKey(uid), s.devActKey(uid)}
	var call *scriptCall
	err := s.pipelined(ctx, func(p redis.Pipeliner) []*scriptCall {
		call = queueScript(ctx, p, decideScript, keys, decision, code, now.UnixMilli(), deviceID, id)
		return []*scriptCall{call}
	})
	if err != nil {
		return "", "", "", wrap("decide approval", err)
	}
	res, err := call.cmd.StringSlice()
	if err != nil {
		return "", "", "", wrap("decide approval", err)
	}
	return res[0], res[1], res[2], nil
}

// CancelApproval ends a pending request (the login switched to the card or ended).
func (s *Store) CancelApproval(ctx context.Context, uid, id string) error {
	err := cancelApprovalScript.Run(ctx, s.rdb, []string{s.approvalKey(uid, id), s.approvalsKey(uid)}, id, approvalKeep.Milliseconds()).Err()
	return wrap("cancel approval", err)
}

var cancelApprovalScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if st == 'pending' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled')
elseif not st then
  -- Not stored yet (its create is still on the way): a tombstone it will find.
  redis.call('HSET', KEYS[1], 'status', 'cancelled')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`)

// ApprovalState returns a request's state ("" when it is gone).
func (s *Store) ApprovalState(ctx context.Context, uid, id string) (string, error) {
	st, err := s.rdb.HGet(ctx, s.approvalKey(uid, id), "status").Result()
	if err == redis.Nil {
		return "", nil
	}
	return st, wrap("approval state", err)
}

// pendingScript lists a citizen's pending requests in time, dropping those that ran out.
var pendingScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local ids = redis.call('ZRANGE', KEYS[1], 0, 9)
local out = {}
for _, id in ipairs(ids) do
  local r = redis.call('HMGET', ARGV[2] .. id, 'status', 'flow', 'client', 'text', 'codes', 'created', 'expires')
  if r[1] == 'pending' then
    table.insert(out, id)
    for i = 2, 7 do table.insert(out, r[i] or '') end
  elseif not r[1] then
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
`)

// PendingApprovals lists a citizen's pending requests (at most 10), oldest first.
func (s *Store) PendingApprovals(ctx context.Context, uid string, now time.Time) ([]Approval, error) {
	// The request keys are built in the script from the slot's prefix, all in one slot.
	prefix := s.approvalKey(uid, "")
	res, err := pendingScript.Run(ctx, s.rdb, []string{s.approvalsKey(uid)}, now.UnixMilli(), prefix).StringSlice()
	if err != nil {
		return nil, wrap("pending approvals", err)
	}
	out := []Approval{}
	for i := 0; i+6 < len(res); i += 7 {
		created, _ := strconv.ParseInt(res[i+5], 10, 64)
		expires, _ := strconv.ParseInt(res[i+6], 10, 64)
		out = append(out, Approval{ID: res[i], CitizenID: uid, Flow: res[i+1], ClientName: res[i+2], Text: res[i+3],
			Codes: strings.Split(res[i+4], ","), CreatedAt: time.UnixMilli(created), ExpiresAt: time.UnixMilli(expires),
			Status: ApprovalPending})
	}
	return out, nil
}

// ---- waking waiters on any instance ----

// Topics a waiter can wait for.
func TopicFlow(id string) string     { return "flow:" + id }
func TopicCitizen(uid string) string { return "citizen:" + uid }

func (s *Store) eventsChannel() string { return s.prefix + "keyapp:events" }

// Wake tells every instance's waiters on topic that something changed.
func (s *Store) Wake(ctx context.Context, topic string) error {
	return wrap("wake "+topic, s.rdb.Publish(ctx, s.eventsChannel(), topic).Err())
}
