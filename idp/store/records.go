package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Client is a registered relying party (OIDC client; SAML service providers come later).
type Client struct {
	ID                     string   `json:"client_id"`
	Name                   string   `json:"name"`
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	SecretHash             string   `json:"secret_hash,omitempty"` // SHA-256 of a high-entropy secret
	Public                 bool     `json:"public"`
	Scopes                 []string `json:"scopes"`
	RequiresOCES           bool     `json:"requires_oces"`
	AllowOnBehalfOf        bool     `json:"allow_on_behalf_of"`
	Dialect                string   `json:"dialect,omitempty"`
	// SectorIdentifier groups clients that see a citizen under one pairwise subject (Sector).
	SectorIdentifier string `json:"sector_identifier,omitempty"`
	// IDTokenAlg is the client's registered id_token_signed_response_alg ("" = ES256).
	IDTokenAlg string `json:"id_token_signed_response_alg,omitempty"`
	// PKCEOptional is set for a confidential client registered with "require_pkce": false;
	// every other client (and every registration stored without the field) must use PKCE.
	PKCEOptional bool      `json:"pkce_optional,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

func (s *Store) clientKey(id string) string { return s.key("client", id) }

// clientCacheTTL bounds how long an instance serves a client registration from memory: a
// login reads its client many times (authorize, page, callback, token, signing), while
// registrations change rarely; another instance sees a change within this time.
const clientCacheTTL = 5 * time.Second

type cachedClient struct {
	c       Client
	expires time.Time
}

// clientCache is shared by stores on the same client and prefix (WithPepper copies).
type clientCache struct {
	mu sync.Mutex
	m  map[string]cachedClient
}

func (cc *clientCache) get(id string) (*Client, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	e, ok := cc.m[id]
	if !ok || time.Now().After(e.expires) {
		return nil, false
	}
	c := e.c
	return &c, true
}

func (cc *clientCache) put(c *Client) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if len(cc.m) > 10000 { // bounded: drop everything rather than track recency
		clear(cc.m)
	}
	cc.m[c.ID] = cachedClient{c: *c, expires: time.Now().Add(clientCacheTTL)}
}

func (cc *clientCache) forget(id string) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	delete(cc.m, id)
}

// CreateClient stores a new client; ErrConflict if the id is taken.
func (s *Store) CreateClient(ctx context.Context, c *Client) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("store: create client: %w", err)
	}
	ok, err := s.rdb.SetNX(ctx, s.clientKey(c.ID), raw, 0).Result()
	if err != nil {
		return wrap("create client", err)
	}
	s.clients.forget(c.ID)
	if !ok {
		return fmt.Errorf("store: create client %q: %w", c.ID, ErrConflict)
	}
	return nil
}

// PutClient creates or replaces a client (seeding, operator updates).
func (s *Store) PutClient(ctx context.Context, c *Client) error {
	raw, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("store: put client: %w", err)
	}
	s.clients.forget(c.ID)
	return wrap("put client", s.rdb.Set(ctx, s.clientKey(c.ID), raw, 0).Err())
}

// Client loads a client (from a short-lived in-process cache when it can).
func (s *Store) Client(ctx context.Context, id string) (*Client, error) {
	if c, ok := s.clients.get(id); ok {
		return c, nil
	}
	raw, err := s.rdb.Get(ctx, s.clientKey(id)).Bytes()
	if err != nil {
		return nil, wrap("client", err)
	}
	var c Client
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("store: client %q: decode: %w", id, err)
	}
	s.clients.put(&c)
	return &c, nil
}

// ---- login flows: versioned blobs with a TTL, updated by compare-and-set ----

func (s *Store) flowKey(id string) string { return s.key("flow", id) }

// saveFlowScript: ARGV 1 previous version, 2 data, 3 ttl (ms), 4 release, 5 the flow's state
// as the callback's one script judges it ('done' or 'open'), 6 the browser it is bound to;
// 'xv' is the version they were written with (a save by an earlier release leaves them stale).
var saveFlowScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'v')
if (v or '0') ~= ARGV[1] then return -1 end
local nv = tonumber(v or '0') + 1
redis.call('HSET', KEYS[1], 'v', nv, 'd', ARGV[2], 'x', ARGV[5], 'b', ARGV[6], 'xv', nv)
if ARGV[4] == '1' and tonumber(redis.call('HINCRBY', KEYS[1], 'f', -1)) < 0 then redis.call('HSET', KEYS[1], 'f', 0) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return nv
`)

// FlowSave is one write of a flow: its data if it is still at version Prev (0 = must not exist
// yet), with what rides in the same round trip.
type FlowSave struct {
	ID   string
	Prev int64
	Data []byte
	TTL  time.Duration
	// Release gives back one attempt reserved by an answer (it was right).
	Release bool
	// Done and Browser are kept beside the data for LoadFlowClaiming: the flow is done, and
	// the browser it is bound to.
	Done    bool
	Browser string
	// Wake, when not "", wakes that topic's waiters on every instance. The wake goes out
	// whether or not the save won: a waiter only looks again.
	Wake string
	// Session, when not nil, is an SSO session stored in the same round trip (whether or not
	// the save won: a session nobody got the cookie of only runs out).
	Session *SessionWrite
	// Participant, when not nil, records the flow's client as a participant of its SSO
	// session (single logout), in the same round trip.
	Participant *ParticipantWrite
}

// SessionWrite is an SSO session to store: its cookie value, data and lifetime.
type SessionWrite struct {
	ID   string
	Data []byte
	TTL  time.Duration
}

func (s *Store) queueFlowSave(ctx context.Context, p redis.Pipeliner, fs FlowSave) *scriptCall {
	done := "open"
	if fs.Done {
		done = "done"
	}
	c := queueScript(ctx, p, saveFlowScript, []string{s.flowKey(fs.ID)}, fs.Prev, fs.Data, fs.TTL.Milliseconds(),
		boolStr(fs.Release), done, fs.Browser)
	if fs.Wake != "" {
		p.Publish(ctx, s.eventsChannel(), fs.Wake)
	}
	if fs.Session != nil {
		p.Set(ctx, s.sessionKey(fs.Session.ID), fs.Session.Data, fs.Session.TTL)
	}
	if fs.Participant != nil {
		s.queueParticipantWrite(ctx, p, fs.Participant)
	}
	return c
}

func flowSaved(c *scriptCall) (int64, error) {
	v, err := c.cmd.Int64()
	if err != nil {
		return 0, wrap("save flow", err)
	}
	if v < 0 {
		return 0, fmt.Errorf("store: save flow: %w", ErrConflict)
	}
	return v, nil
}

// SaveFlow writes a flow if it is still at version prev (0 = must not exist yet) and returns
// the new version (SaveFlowWith, nothing riding along).
func (s *Store) SaveFlow(ctx context.Context, id string, prev int64, data []byte, ttl time.Duration, release bool) (int64, error) {
	return s.SaveFlowWith(ctx, FlowSave{ID: id, Prev: prev, Data: data, TTL: ttl, Release: release})
}

// SaveFlowWith writes a flow if it is still at version fs.Prev and returns the new version,
// with what rides along (FlowSave) in the same round trip. A concurrent writer that got there
// first makes this fail with ErrConflict, so a losing request never overwrites the winner's
// state.
func (s *Store) SaveFlowWith(ctx context.Context, fs FlowSave) (int64, error) {
	var call *scriptCall
	err := s.pipelined(ctx, func(p redis.Pipeliner) []*scriptCall {
		call = s.queueFlowSave(ctx, p, fs)
		return []*scriptCall{call}
	})
	if err != nil {
		return 0, wrap("save flow", err)
	}
	return flowSaved(call)
}

// FlowRecord is a stored flow: its data, version, and the answers it has had wrong (with
// those in flight).
type FlowRecord struct {
	Data     []byte
	Version  int64
	Failures int
}

// LoadFlow returns a flow's data, version and failure count.
func (s *Store) LoadFlow(ctx context.Context, id string) (FlowRecord, error) {
	vals, err := s.rdb.HMGet(ctx, s.flowKey(id), "v", "d", "f").Result()
	if err != nil {
		return FlowRecord{}, wrap("load flow", err)
	}
	return flowRecordOf(vals[0], vals[1], vals[2])
}

// A flow counts its wrong answers whichever citizens they named, so one flow cannot spray a
// password across many user IDs. An attempt is reserved (counted) in the same round trip as
// the first lookup of the answer; the save that moves a right answer on gives it back; a wrong
// one keeps it. The count lives in the flow's hash beside the data, outside its version.
var reserveFlowScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HINCRBY', KEYS[1], 'f', 1)
`)

// ReleaseFlowAttempt gives back a reserved flow attempt whose answer was never judged.
func (s *Store) ReleaseFlowAttempt(ctx context.Context, id string) error {
	err := releaseFlowScript.Run(ctx, s.rdb, []string{s.flowKey(id)}).Err()
	return wrap("release flow attempt", err)
}

var releaseFlowScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(redis.call('HINCRBY', KEYS[1], 'f', -1)) < 0 then redis.call('HSET', KEYS[1], 'f', 0) end
return 1
`)

// ---- SSO sessions ----

func (s *Store) sessionKey(id string) string { return s.key("sess", digest(id)) }

// PutSession stores an SSO session under the digest of its cookie value.
func (s *Store) PutSession(ctx context.Context, id string, data []byte, ttl time.Duration) error {
	return wrap("put session", s.rdb.Set(ctx, s.sessionKey(id), data, ttl).Err())
}

// LoadFlowWithSession is LoadFlow that, in the same round trip, loads the SSO session behind
// a cookie value (nil when there is none).
func (s *Store) LoadFlowWithSession(ctx context.Context, id, session string) (FlowRecord, []byte, error) {
	var flow *redis.SliceCmd
	var sess *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		flow = p.HMGet(ctx, s.flowKey(id), "v", "d", "f")
		sess = p.Get(ctx, s.sessionKey(session))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return FlowRecord{}, nil, wrap("load flow", err)
	}
	rec, err := flowRecordOf(flow.Val()[0], flow.Val()[1], flow.Val()[2])
	if err != nil {
		return FlowRecord{}, nil, err
	}
	raw, _ := sess.Bytes()
	return rec, raw, nil
}

// Session loads an SSO session.
func (s *Store) Session(ctx context.Context, id string) ([]byte, error) {
	raw, err := s.rdb.Get(ctx, s.sessionKey(id)).Bytes()
	return raw, wrap("session", err)
}

// DeleteSession ends an SSO session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	return wrap("delete session", s.rdb.Del(ctx, s.sessionKey(id)).Err())
}

// ---- meta: values made once and shared by all instances (generated secret, signing keys) ----

// Meta returns a value made once (found false when there is none).
func (s *Store) Meta(ctx context.Context, name string) ([]byte, bool, error) {
	raw, err := s.rdb.Get(ctx, s.key("meta", name)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrap("meta "+name, err)
	}
	return raw, true, nil
}

// GetOrCreateMeta stores value under name unless something is there already, and returns
// what is stored, so concurrent first starts of several instances agree on one value.
func (s *Store) GetOrCreateMeta(ctx context.Context, name string, value []byte) ([]byte, bool, error) {
	k := s.key("meta", name)
	created, err := s.rdb.SetNX(ctx, k, value, 0).Result()
	if err != nil {
		return nil, false, wrap("meta "+name, err)
	}
	if created {
		return value, true, nil
	}
	raw, err := s.rdb.Get(ctx, k).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, fmt.Errorf("store: meta %s vanished: %w", name, ErrConflict)
	}
	return raw, false, wrap("meta "+name, err)
}

// ClaimFlowMark sets a one-time mark on a flow (HSETNX beside its data): true for the one
// caller that set it, false for every other, and false when the flow is gone.
func (s *Store) ClaimFlowMark(ctx context.Context, id, mark string) (bool, error) {
	return s.ClaimFlowMarkAs(ctx, id, mark, "1")
}

// ClaimFlowMarkAs is ClaimFlowMark setting the mark to value.
func (s *Store) ClaimFlowMarkAs(ctx context.Context, id, mark, value string) (bool, error) {
	ok, err := claimMarkScript.Run(ctx, s.rdb, []string{s.flowKey(id)}, "m:"+mark, value).Int()
	return ok == 1, wrap("claim flow mark", err)
}

// ReleaseFlowMark gives back a one-time mark this caller claimed with value, when what it was
// claimed for failed before anything was answered (so a retry can answer): only if it still
// holds that value.
func (s *Store) ReleaseFlowMark(ctx context.Context, id, mark, value string) error {
	return wrap("release flow mark", releaseMarkScript.Run(ctx, s.rdb, []string{s.flowKey(id)}, "m:"+mark, value).Err())
}

var releaseMarkScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
`)

var claimMarkScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
`)

// loadClaimScript loads a flow and, when it is done and bound to the browser ARGV[2], sets its
// one-time mark ARGV[1] to ARGV[3] unless it is set already. Returns {} for no flow, else
// {version, data, failures, claimed (1/0), the mark's value, state}.
var loadClaimScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'v', 'd', 'f', 'x', 'b', ARGV[1], 'xv')
if not r[1] or not r[2] then return {} end
-- The state and browser count only when written with the data now there: a save by an
-- earlier release (data only) leaves the judging to the caller.
if r[7] ~= r[1] then r[4] = '' end
local claimed = 0
if r[4] == 'done' and ARGV[2] ~= '' and r[5] == ARGV[2] and not r[6] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  claimed, r[6] = 1, ARGV[3]
end
return {r[1], r[2], r[3] or '0', claimed, r[6] or '', r[4] or ''}
`)

// Claimed is what LoadFlowClaiming found of the flow's one-time mark.
type Claimed struct {
	// Claimed: this caller set the mark, to Value.
	Claimed bool
	// Value is the mark's value ("" when not set).
	Value string
	// Judged is false for a flow saved before its state was kept beside its data: the caller
	// judges it and claims the mark itself (ClaimFlowMark).
	Judged bool
}

// LoadFlowClaiming loads a flow and, in the same step, sets its one-time mark to value when
// the flow is done and bound to browser and the mark is not set yet: the one caller that
// answers a finished login (one code, one response) is told so, every other is not.
func (s *Store) LoadFlowClaiming(ctx context.Context, id, mark, browser, value string) (FlowRecord, Claimed, error) {
	res, err := loadClaimScript.Run(ctx, s.rdb, []string{s.flowKey(id)}, "m:"+mark, browser, value).Slice()
	if err != nil {
		return FlowRecord{}, Claimed{}, wrap("load flow", err)
	}
	if len(res) < 6 {
		return FlowRecord{}, Claimed{}, fmt.Errorf("store: load flow: %w", ErrNotFound)
	}
	rec, err := flowRecordOf(res[0], res[1], res[2])
	if err != nil {
		return FlowRecord{}, Claimed{}, err
	}
	n, _ := res[3].(int64)
	val, _ := res[4].(string)
	state, _ := res[5].(string)
	return rec, Claimed{Claimed: n == 1, Value: val, Judged: state != ""}, nil
}

func flowRecordOf(version, data, failures any) (FlowRecord, error) {
	vs, ok1 := version.(string)
	d, ok2 := data.(string)
	if !ok1 || !ok2 {
		return FlowRecord{}, fmt.Errorf("store: load flow: %w", ErrNotFound)
	}
	v, err := strconv.ParseInt(vs, 10, 64)
	if err != nil {
		return FlowRecord{}, fmt.Errorf("store: load flow: bad version: %w", err)
	}
	fs, _ := failures.(string)
	f, _ := strconv.Atoi(fs)
	return FlowRecord{Data: []byte(d), Version: v, Failures: f}, nil
}
