package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrRevoked is returned for a grant that was revoked (code replay, refresh-token reuse,
// revocation request).
var ErrRevoked = fmt.Errorf("grant revoked: %w", ErrNotFound)

// ErrReplay is returned for an auth code or refresh token presented a second time.
var ErrReplay = fmt.Errorf("replayed: %w", ErrNotFound)

func (s *Store) codeKey(code string) string {
	return s.key("{code:" + digest(code) + "}")
}
func (s *Store) grantKey(grant string, parts ...string) string {
	return s.key(append([]string{"{g:" + grant + "}"}, parts...)...)
}

// SaveCode stores the authorization code of a grant. A grant gets one code only: a reloaded
// callback cannot mint a second code for the same login.
func (s *Store) SaveCode(ctx context.Context, code, grant string, ttl time.Duration) error {
	first, err := s.rdb.SetNX(ctx, s.grantKey(grant, "code"), "1", 24*time.Hour).Result()
	if err != nil {
		return wrap("save code", err)
	}
	if !first {
		return fmt.Errorf("store: save code: this login already produced its code: %w", ErrConflict)
	}
	ok, err := s.rdb.SetNX(ctx, s.codeKey(code), grant, ttl).Result()
	if err != nil {
		// Release the grant's one-code mark, so the login can still produce its code.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		s.rdb.Del(cctx, s.grantKey(grant, "code"))
		return wrap("save code", err)
	}
	if !ok {
		return fmt.Errorf("store: save code: %w", ErrConflict)
	}
	return nil
}

var consumeCodeScript = redis.NewScript(`
local g = redis.call('GET', KEYS[1])
if g then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], g, 'PX', ARGV[1])
  return {'ok', g}
end
local u = redis.call('GET', KEYS[2])
if u then return {'replay', u} end
return {'none', ''}
`)

// ConsumeCode redeems an authorization code once. A second redemption returns ErrReplay and
// the grant it belonged to, so the caller can revoke what the first redemption issued.
func (s *Store) ConsumeCode(ctx context.Context, code string, remember time.Duration) (grant string, err error) {
	k := s.codeKey(code)
	res, err := consumeCodeScript.Run(ctx, s.rdb, []string{k, k + ":used"}, remember.Milliseconds()).StringSlice()
	if err != nil {
		return "", wrap("consume code", err)
	}
	switch res[0] {
	case "ok":
		return res[1], nil
	case "replay":
		return res[1], fmt.Errorf("store: consume code: %w", ErrReplay)
	}
	return "", fmt.Errorf("store: consume code: %w", ErrNotFound)
}

// TokenIssue is what one token request writes: an access token and optionally a refresh token,
// optionally rotating out an old refresh token.
type TokenIssue struct {
	Grant          string
	AccessID       string
	AccessData     []byte
	AccessTTL      time.Duration
	Refresh        string // the new refresh token (stored under its digest); "" for none
	RefreshData    []byte
	RefreshTTL     time.Duration
	OldRefresh     string // the refresh token being rotated out; "" for none
	RevokedRemains time.Duration
}

var issueScript = redis.NewScript(`
-- KEYS: 1 revoked marker, 2 token set, 3 access, 4 new refresh (or ''), 5 old refresh (or '')
if redis.call('EXISTS', KEYS[1]) == 1 then return 'revoked' end
local function revoke()
  for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('DEL', k) end
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[5])
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

// IssueTokens writes the tokens of one token response atomically within the grant. Rotating
// a refresh token that was already rotated is reuse: the whole grant is revoked (RFC 9700 §4.14).
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
	keys := []string{s.grantKey(t.Grant, "revoked"), s.grantKey(t.Grant, "tokens"),
		s.grantKey(t.Grant, "at", t.AccessID), newRT, oldRT}
	res, err := issueScript.Run(ctx, s.rdb, keys, t.AccessData, t.AccessTTL.Milliseconds(),
		t.RefreshData, t.RefreshTTL.Milliseconds(), t.RevokedRemains.Milliseconds(), hasOld, hasNew).Text()
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
