package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrRevoked is returned for a grant that was revoked (code replay, refresh-token reuse,
// revocation request).
var ErrRevoked = fmt.Errorf("grant revoked: %w", ErrNotFound)

// ErrReplay is returned for an auth code or refresh token presented a second time.
var ErrReplay = fmt.Errorf("replayed: %w", ErrNotFound)

func (s *Store) grantKey(grant string, parts ...string) string {
	return s.key(append([]string{"{g:" + grant + "}"}, parts...)...)
}

// A grant's code is one per login: the front end that answers the finished flow claims the
// flow's one-time mark (LoadFlowClaiming, its value the time the code was made) before it
// makes the code, so a reloaded callback cannot mint a second one, and the code itself is
// sealed (authenticated encryption of the grant) by the front end. Redis keeps only what a
// code's redemption did: {g:<grant>}:code is "used:<digest>" once IssueTokens consumed it.
// (Codes made before the mark existed were stored as their digest there; they are honoured
// until they run out.)

// CodeGrant is what LoadCodeGrant found behind a code.
type CodeGrant struct {
	Flow FlowRecord
	// Made is when the code was made (the flow's mark), "" when none was, "-" for a code stored
	// as its digest (made before the mark existed).
	Made string
	// State is nil while the code can be redeemed, ErrReplay once it was, ErrNotFound for a
	// code never made.
	State error
	// Citizen is the record of the citizen the code names (nil when it names none, or there
	// is no such record).
	Citizen *Citizen
}

// LoadCodeGrant loads, in one round trip, the flow behind a code (grant = flow id) with the
// time its code was made (its mark), the code's redemption state and, when the code names
// one, the citizen's record.
func (s *Store) LoadCodeGrant(ctx context.Context, grant, code, mark, citizen string) (CodeGrant, error) {
	var flow *redis.SliceCmd
	var used *redis.StringCmd
	var rec *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		flow = p.HMGet(ctx, s.flowKey(grant), "v", "d", "f", "m:"+mark)
		used = p.Get(ctx, s.grantKey(grant, "code"))
		if citizen != "" {
			rec = p.HGetAll(ctx, s.citizenKey(citizen))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return CodeGrant{}, wrap("load code grant", err)
	}
	var out CodeGrant
	vals := flow.Val()
	if out.Flow, err = flowRecordOf(vals[0], vals[1], vals[2]); err != nil {
		return CodeGrant{}, err
	}
	out.Made, _ = vals[3].(string)
	switch v := used.Val(); {
	case v == digest(code):
		out.Made = "-"
	case strings.HasPrefix(v, "used:"):
		out.State = fmt.Errorf("store: code: %w", ErrReplay)
	case v != "" || out.Made == "":
		out.State = fmt.Errorf("store: code: %w", ErrNotFound)
	}
	if rec != nil {
		if m := rec.Val(); len(m) > 0 && m["user_id"] != "" {
			out.Citizen = citizenFrom(m)
		}
	}
	return out, nil
}

// TokenIssue is what one token request writes: an access token and optionally a refresh token,
// optionally rotating out an old refresh token.
type TokenIssue struct {
	Grant      string
	AccessID   string
	AccessData []byte
	AccessTTL  time.Duration
	Code       string // the authorization code redeemed by this issue; "" for none
	// CodeMarked: the code was made under its flow's one-time mark (LoadFlowForCode found
	// it), so no stored digest is needed to redeem it once.
	CodeMarked     bool
	Refresh        string // the new refresh token (stored under its digest); "" for none
	RefreshData    []byte
	RefreshTTL     time.Duration
	OldRefresh     string // the refresh token being rotated out; "" for none
	RevokedRemains time.Duration
}

var issueScript = redis.NewScript(`
-- KEYS: 1 revoked marker, 2 token set, 3 access, 4 new refresh, 5 old refresh, 6 code
if redis.call('EXISTS', KEYS[1]) == 1 then return 'revoked' end
local function revoke()
  for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('DEL', k) end
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[5])
end
if ARGV[8] ~= '' then
  local c = redis.call('GET', KEYS[6])
  if c == ARGV[8] or (not c and ARGV[9] == '1') then
    redis.call('SET', KEYS[6], 'used:' .. ARGV[8], 'PX', ARGV[5])
  elseif c and string.sub(c, 1, 5) == 'used:' then
    revoke()
    return 'replay'
  else
    return 'nocode'
  end
end
if ARGV[6] == '1' then
  local old = redis.call('GET', KEYS[5])
  if not old then return 'unknown' end
  if old == 'used' then revoke() return 'reuse' end
  redis.call('SET', KEYS[5], 'used', 'KEEPTTL')
end
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], KEYS[3])
if ARGV[7] == '1' then
  redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[4])
  redis.call('SADD', KEYS[2], KEYS[4])
end
local ttl = math.max(tonumber(ARGV[2]), tonumber(ARGV[4]))
if redis.call('PTTL', KEYS[2]) < ttl then redis.call('PEXPIRE', KEYS[2], ttl) end
return 'ok'
`)

// IssueTokens writes the tokens of one token response atomically within the grant. Redeeming
// a code a second time, or rotating a refresh token that was already rotated, is a replay: the
// whole grant is revoked (RFC 6749 §4.1.2, RFC 9700 §4.14).
func (s *Store) IssueTokens(ctx context.Context, t TokenIssue) error {
	newRT, oldRT := "", ""
	hasNew, hasOld := "0", "0"
	if t.Refresh != "" {
		newRT, hasNew = s.grantKey(t.Grant, "rt", digest(t.Refresh)), "1"
	} else {
		newRT = s.grantKey(t.Grant, "rt", "-")
	}
	if t.OldRefresh != "" {
		oldRT, hasOld = s.grantKey(t.Grant, "rt", digest(t.OldRefresh)), "1"
	} else {
		oldRT = s.grantKey(t.Grant, "rt", "-")
	}
	code := ""
	if t.Code != "" {
		code = digest(t.Code)
	}
	keys := []string{s.grantKey(t.Grant, "revoked"), s.grantKey(t.Grant, "tokens"),
		s.grantKey(t.Grant, "at", t.AccessID), newRT, oldRT, s.grantKey(t.Grant, "code")}
	res, err := issueScript.Run(ctx, s.rdb, keys, t.AccessData, t.AccessTTL.Milliseconds(),
		t.RefreshData, t.RefreshTTL.Milliseconds(), t.RevokedRemains.Milliseconds(), hasOld, hasNew, code, boolStr(t.CodeMarked)).Text()
	if err != nil {
		return wrap("issue tokens", err)
	}
	switch res {
	case "ok":
		return nil
	case "revoked":
		return fmt.Errorf("store: issue tokens: %w", ErrRevoked)
	case "reuse":
		return fmt.Errorf("store: issue tokens: refresh token reused, grant revoked: %w", ErrReplay)
	case "replay":
		return fmt.Errorf("store: issue tokens: code redeemed twice, grant revoked: %w", ErrReplay)
	case "nocode":
		return fmt.Errorf("store: issue tokens: code: %w", ErrNotFound)
	}
	return fmt.Errorf("store: issue tokens: refresh token: %w", ErrNotFound)
}

// AccessToken loads an access token's data.
func (s *Store) AccessToken(ctx context.Context, grant, id string) ([]byte, error) {
	raw, err := s.rdb.Get(ctx, s.grantKey(grant, "at", id)).Bytes()
	return raw, wrap("access token", err)
}

// DeleteAccessToken revokes one access token.
func (s *Store) DeleteAccessToken(ctx context.Context, grant, id string) error {
	return wrap("delete access token", s.rdb.Del(ctx, s.grantKey(grant, "at", id)).Err())
}

// RefreshToken loads a refresh token's data. A rotated-out token answers ErrReplay.
func (s *Store) RefreshToken(ctx context.Context, grant, token string) ([]byte, error) {
	raw, err := s.rdb.Get(ctx, s.grantKey(grant, "rt", digest(token))).Bytes()
	if err != nil {
		return nil, wrap("refresh token", err)
	}
	if string(raw) == "used" {
		return nil, fmt.Errorf("store: refresh token: %w", ErrReplay)
	}
	return raw, nil
}

var revokeScript = redis.NewScript(`
for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('DEL', k) end
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return 1
`)

// RevokeGrant deletes every token of a grant and refuses new ones for remain.
func (s *Store) RevokeGrant(ctx context.Context, grant string, remain time.Duration) error {
	keys := []string{s.grantKey(grant, "revoked"), s.grantKey(grant, "tokens")}
	return wrap("revoke grant", revokeScript.Run(ctx, s.rdb, keys, remain.Milliseconds()).Err())
}

// GrantRevoked reports whether a grant was revoked.
func (s *Store) GrantRevoked(ctx context.Context, grant string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.grantKey(grant, "revoked")).Result()
	return n > 0, wrap("grant revoked", err)
}
