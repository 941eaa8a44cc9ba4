// Package oidc is the OpenID Connect front end: a thin op.Storage adapter for zitadel/oidc
// that starts a login flow for each authorize request and turns a finished flow into codes and
// tokens. It knows nothing of how the citizen proved who they are.
package oidc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/claims"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/signing"
)

// Lifetimes of what this front end issues.
type Lifetimes struct {
	Code, AccessToken, IDToken, RefreshToken time.Duration
	// Grant bounds a grant from its code exchange, however often it is refreshed (0: no bound).
	Grant time.Duration
}

// Storage implements op.Storage on the store and the flow engine.
type Storage struct {
	Store     *store.Store
	Flows     *flows.Engine
	Keys      *signing.Set
	Lifetimes Lifetimes
	// CallbackURL is where a finished flow sends the browser: the authorize callback.
	CallbackURL func(ctx context.Context, flowID string) string
	// Codes decrypts authorization codes (zitadel/oidc makes a code by encrypting the auth
	// request id, which is the grant id here).
	Codes interface{ Decrypt(string) (string, error) }
	Now   func() time.Time
}

var _ op.Storage = (*Storage)(nil)
var _ op.CanSetUserinfoFromRequest = (*Storage)(nil)

func (s *Storage) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// protocolState is this front end's part of a flow.
type protocolState struct {
	Scopes              []string `json:"scopes"`
	ResponseType        string   `json:"response_type"`
	ResponseMode        string   `json:"response_mode,omitempty"`
	RedirectURI         string   `json:"redirect_uri"`
	State               string   `json:"state,omitempty"`
	Nonce               string   `json:"nonce,omitempty"`
	CodeChallenge       string   `json:"code_challenge,omitempty"`
	CodeChallengeMethod string   `json:"code_challenge_method,omitempty"`
	// Dialect and Sector are the client's at the authorize request ("": default, client id).
	Dialect string         `json:"dialect,omitempty"`
	Sector  string         `json:"sector,omitempty"`
	Claims  *claimsRequest `json:"claims,omitempty"`
}

// CreateAuthRequest starts a login flow for a validated authorize request. hintSubject is the
// sub of a valid id_token_hint (zitadel/oidc checked it): the flow completes from an SSO
// session only when that session's citizen is the one the hint names.
func (s *Storage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, hintSubject string) (op.AuthRequest, error) {
	c, err := s.Store.Client(ctx, req.ClientID)
	if err != nil {
		return nil, storeErr(err)
	}
	if req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	if req.CodeChallenge == "" && !c.PKCEOptional { // OAuth 2.1; RFC 9700 §2.1.1
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE (code_challenge with S256) is required")
	}
	if req.ResponseType != oidc.ResponseTypeCode {
		return nil, oidc.ErrInvalidRequest().WithDescription("only response_type=code is supported")
	}
	ps := protocolState{
		Scopes: grantedScopes(c, req.Scopes), ResponseType: string(req.ResponseType),
		ResponseMode: string(req.ResponseMode), RedirectURI: req.RedirectURI, State: req.State,
		Nonce: req.Nonce, CodeChallenge: req.CodeChallenge, CodeChallengeMethod: string(req.CodeChallengeMethod),
	}
	d, err := claims.DialectNamed(c.Dialect)
	if err != nil {
		return nil, oidc.ErrServerError().WithDescription("the client's claims dialect is unknown").WithParent(err)
	}
	if ps.Claims, err = claimsRequestOf(ctx, d); err != nil {
		return nil, err
	}
	ps.Dialect, ps.Sector = c.Dialect, c.Sector()
	raw, err := json.Marshal(ps)
	if err != nil {
		return nil, fmt.Errorf("oidc: encode auth request: %w", err)
	}
	var maxAge *int64
	if req.MaxAge != nil {
		v := int64(*req.MaxAge)
		maxAge = &v
	}
	var locales []string
	for _, l := range req.UILocales {
		locales = append(locales, l.String())
	}
	f, err := s.Flows.Begin(ctx, flows.Start{
		ClientID: c.ID, ReturnURL: func(id string) string { return s.CallbackURL(ctx, id) },
		Prompt: req.Prompt, MaxAge: maxAge, Locales: locales, LoginHint: req.LoginHint, SubjectHint: hintSubject, SubjectSector: ps.Sector, Protocol: raw,
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return &authRequest{flow: f, ps: ps}, nil
}

// grantedScopes keeps the requested scopes the client is registered for (openid always).
func grantedScopes(c *store.Client, requested []string) []string {
	var out []string
	for _, sc := range requested {
		if sc == oidc.ScopeOpenID || slices.Contains(c.Scopes, sc) {
			if !slices.Contains(out, sc) {
				out = append(out, sc)
			}
		}
	}
	return out
}

// AuthRequestByID loads the flow behind an auth request. A flow the caller already loaded
// for this request (WithFlow) is used as it is.
func (s *Storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	f, ok := ctx.Value(flowKey{}).(*loadedFlow)
	if !ok || f.flow.ID != id {
		fl, err := s.Flows.Load(ctx, id)
		if err != nil {
			return nil, storeErr(err)
		}
		return authRequestOf(fl)
	}
	return authRequestOf(f.flow)
}

type flowKey struct{}

// loadedFlow is a flow the HTTP layer loaded, with what its load claimed.
type loadedFlow struct {
	flow      *flows.Flow
	answering *flows.Answering
}

// WithFlow hands a flow loaded by the HTTP layer to the storage, saving a second read.
func WithFlow(ctx context.Context, f *flows.Flow) context.Context {
	return context.WithValue(ctx, flowKey{}, &loadedFlow{flow: f})
}

// WithAnsweredFlow is WithFlow for the callback's flow, loaded with its one-time code mark
// claimed or not (flows.Engine.LoadAnswering with CodeMark): SaveAuthCode then writes nothing.
func WithAnsweredFlow(ctx context.Context, f *flows.Flow, a flows.Answering) context.Context {
	return context.WithValue(ctx, flowKey{}, &loadedFlow{flow: f, answering: &a})
}

// CodeMark is the one-time mark of a flow whose code was made.
const CodeMark = "code"

func authRequestOf(f *flows.Flow) (*authRequest, error) {
	var ps protocolState
	if err := json.Unmarshal(f.Protocol, &ps); err != nil {
		return nil, fmt.Errorf("oidc: flow %s is not an OIDC flow: %w", f.ID, err)
	}
	if ps.RedirectURI == "" || ps.ResponseType == "" {
		// Another front end's flow (self-service, SAML): its state is not an auth request.
		return nil, fmt.Errorf("oidc: flow %s is not an OIDC flow", f.ID)
	}
	return &authRequest{flow: f, ps: ps}, nil
}

// IsFlow reports whether f was started by an OIDC authorize request (and not by another front
// end, such as self-service), so only such a flow is finished at the OIDC callback.
func IsFlow(f *flows.Flow) bool {
	_, err := authRequestOf(f)
	return err == nil
}

// pairwise is the citizen's subject at sector (store.Client.Sector).
func (s *Storage) pairwise(ctx context.Context, citizen, sector string) (string, error) {
	sub, err := s.Store.PairwiseSubject(ctx, citizen, sector, flows.NewSubject())
	if err != nil {
		return "", storeErr(err)
	}
	return sub, nil
}

// AuthRequestByCode finds the finished login behind a code, without consuming it: zitadel/oidc
// calls this before it checks PKCE and authenticates the client, so the code is consumed only
// when the tokens are issued (IssueTokens). A code presented again then revokes every token
// its first redemption issued (RFC 6749 §4.1.2) — but only for a caller who passed PKCE and
// client authentication.
func (s *Storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	sealed, err := s.Codes.Decrypt(code)
	if err != nil {
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid code")
	}
	// The flow, the time its code was made, the code's state and the citizen the code names,
	// in one round trip.
	grant, citizen := codeGrant(sealed)
	g, err := s.Store.LoadCodeGrant(ctx, grant, code, CodeMark, citizen)
	if errors.Is(err, store.ErrNotFound) {
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid or expired code")
	}
	if err != nil {
		return nil, storeErr(err)
	}
	if g.State != nil && !errors.Is(g.State, store.ErrReplay) {
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid or expired code")
	}
	made, rec := g.Made, g.Flow
	// A code past its lifetime is refused; a replayed one goes on, whatever its age, so that
	// the issue (after PKCE and client authentication) revokes what its first use issued.
	if at := flows.MarkTime(made); g.State == nil && made != "-" && (at.IsZero() || s.now().After(at.Add(s.Lifetimes.Code))) {
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid or expired code")
	}
	f, err := s.Flows.FlowOf(grant, rec)
	if err != nil {
		return nil, storeErr(err)
	}
	if !f.Done() {
		return nil, oidc.ErrInvalidGrant().WithDescription("login not finished")
	}
	ar, err := authRequestOf(f)
	if err != nil {
		return nil, err
	}
	if w := f.Result.OnBehalfOf; w != nil {
		// For a ward, sub is the ward's pairwise subject and the guardian is named by theirs.
		ar.actor = &actorRecord{CitizenID: f.Result.CitizenID, Guardianship: w.Guardianship, Kind: w.Kind}
		if ar.actor.Subject, err = s.pairwise(ctx, f.Result.CitizenID, ar.sector()); err != nil {
			return nil, err
		}
		if ar.subject, err = s.pairwise(ctx, w.CitizenID, ar.sector()); err != nil {
			return nil, err
		}
	} else if ar.subject = f.Result.Subject; ar.subject == "" { // found by the login's last step, mostly
		if ar.subject, err = s.pairwise(ctx, f.Result.CitizenID, ar.sector()); err != nil {
			return nil, err
		}
	}
	ar.code, ar.codeMarked = code, made != "-"
	if g.Citizen != nil && g.Citizen.UserID == f.Result.CitizenID && f.Result.OnBehalfOf == nil {
		ar.citizen = g.Citizen
	}
	return ar, nil
}

// SaveAuthCode is told the code made for a finished flow. The callback's load claimed the
// flow's one-time code mark (WithAnsweredFlow), so nothing is written: a second callback of
// the same login, which did not claim it, is refused.
func (s *Storage) SaveAuthCode(ctx context.Context, sealed, code string) error {
	id, _ := codeGrant(sealed)
	lf, ok := ctx.Value(flowKey{}).(*loadedFlow)
	claimed := ok && lf.flow.ID == id && lf.answering != nil && lf.answering.Claimed
	if !ok || lf.flow.ID != id || lf.answering == nil {
		var err error
		if claimed, err = s.Store.ClaimFlowMarkAs(ctx, id, CodeMark, strconv.FormatInt(s.now().UnixMilli(), 10)); err != nil {
			return storeErr(err)
		}
	}
	if !claimed { // the callback reloaded: one login, one code
		return oidc.ErrInvalidRequest().WithDescription("this login has already been answered; start a new login")
	}
	return nil
}

// DeleteAuthRequest is called once the code was exchanged. The flow is left to expire: the
// code's replay marker and the grant's tokens do not depend on it.
func (s *Storage) DeleteAuthRequest(context.Context, string) error { return nil }

// tokenRecord is what an access or refresh token stands for.
type tokenRecord struct {
	Grant     string    `json:"grant"`
	Subject   string    `json:"sub"`
	CitizenID string    `json:"citizen_id"`
	ClientID  string    `json:"client_id"`
	Scopes    []string  `json:"scopes"`
	AMR       []string  `json:"amr"`
	ACR       string    `json:"acr"`
	AuthTime  time.Time `json:"auth_time"`
	// SessionID is the SSO session of the login (the ID token's sid, kept through refreshes).
	SessionID string `json:"sid,omitempty"`
	// Cert is the login's certificate snapshot (OCES, PID, youth marker) the claims show.
	Cert *flows.Certificate `json:"cert,omitempty"`
	// Dialect names the claims; Claims is the login's claims request parameter.
	Dialect string         `json:"dialect,omitempty"`
	Claims  *claimsRequest `json:"claims,omitempty"`
	// Actor is the guardian when the grant acts for a ward (CitizenID and Subject are then
	// the ward's).
	Actor *actorRecord `json:"act,omitempty"`
	// GrantStart is when the grant's code was exchanged; the grant ends Lifetimes.Grant later.
	GrantStart time.Time `json:"grant_start,omitzero"`
	Expires    time.Time `json:"exp"`
}

// grantLeft is how long the grant of rec still lives at now (a very long time when grants
// are not bounded). Records from before grants were bounded count from the login.
func (s *Storage) grantLeft(rec *tokenRecord, now time.Time) time.Duration {
	if s.Lifetimes.Grant <= 0 {
		return time.Duration(1<<63 - 1)
	}
	start := rec.GrantStart
	if start.IsZero() {
		start = rec.AuthTime
	}
	return start.Add(s.Lifetimes.Grant).Sub(now)
}

// grantRequest is what both token-issuing requests (code, refresh) give us.
type grantRequest interface {
	op.TokenRequest
	record() tokenRecord
}

func (s *Storage) recordOf(req op.TokenRequest) (tokenRecord, error) {
	gr, ok := req.(grantRequest)
	if !ok {
		return tokenRecord{}, oidc.ErrUnsupportedGrantType()
	}
	return gr.record(), nil
}

// CreateAccessToken issues an access token without a refresh token.
func (s *Storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	id, _, exp, err := s.issue(ctx, req, false, "")
	return id, exp, err
}

// CreateAccessAndRefreshTokens issues an access token and a refresh token, rotating out the
// current refresh token if there is one.
func (s *Storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	return s.issue(ctx, req, true, current)
}

// issue prepares the tokens of a token response: ids, data and the code or refresh token it
// consumes. Nothing is written yet: TokenEndpoint commits them in one atomic step once the
// whole answer (ID token signed, citizen read) is ready, so a failure on the way leaves the
// code or refresh token usable for the client's retry.
func (s *Storage) issue(ctx context.Context, req op.TokenRequest, withRefresh bool, current string) (string, string, time.Time, error) {
	p := pendingOf(ctx)
	if p == nil || p.issue != nil {
		return "", "", time.Time{}, errors.New("oidc: tokens can only be issued once per request of the token endpoint")
	}
	rec, err := s.recordOf(req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	original := rec.Scopes
	if sc, ok := req.(*refreshRequest); ok {
		rec.Scopes = sc.scopes // the access token gets what the refresh request narrowed to
	}
	now := s.now().UTC()
	ar, isCode := req.(*authRequest)
	if isCode {
		rec.GrantStart = now // the grant starts with its code exchange
	}
	// No token outlives its grant.
	left := s.grantLeft(&rec, now)
	if left <= 0 {
		return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the grant has reached its maximum lifetime; log in again")
	}
	accessTTL, refreshTTL := min(s.Lifetimes.AccessToken, left), min(s.Lifetimes.RefreshToken, left)
	rec.Expires = now.Add(accessTTL)
	access, err := json.Marshal(rec)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("oidc: encode token: %w", err)
	}
	t := store.TokenIssue{
		Grant: rec.Grant, AccessID: flows.NewID(), AccessData: access, AccessTTL: accessTTL,
		OldRefresh: current, RevokedRemains: s.Lifetimes.RefreshToken,
	}
	if isCode {
		t.Code, t.CodeMarked = ar.code, ar.codeMarked // consumed in the same atomic step that stores the tokens
	}
	var refresh string
	if withRefresh {
		refresh = rec.Grant + "." + flows.NewID() + flows.NewID()
		rrec := rec
		rrec.Scopes = original // a new refresh token keeps the scope of the old (RFC 6749 §6)
		rrec.Expires = now.Add(refreshTTL)
		t.Refresh, t.RefreshTTL = refresh, refreshTTL
		if t.RefreshData, err = json.Marshal(rrec); err != nil {
			return "", "", time.Time{}, fmt.Errorf("oidc: encode token: %w", err)
		}
	}
	// The NemID the grant stands on: the citizen's own, or for a ward the guardian's.
	p.issue, p.citizenID = &t, rec.CitizenID
	if rec.Actor != nil {
		p.citizenID = rec.Actor.CitizenID
	}
	return rec.Grant + "." + t.AccessID, refresh, rec.Expires, nil
}

func splitTokenID(id string) (grant, rest string, ok bool) {
	grant, rest, ok = strings.Cut(id, ".")
	return grant, rest, ok && grant != "" && rest != ""
}

func (s *Storage) accessToken(ctx context.Context, tokenID string) (*tokenRecord, error) {
	grant, id, ok := splitTokenID(tokenID)
	if !ok {
		return nil, errors.New("malformed token")
	}
	raw, err := s.Store.AccessToken(ctx, grant, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errors.New("token is invalid, expired or revoked")
	}
	if err != nil {
		return nil, storeErr(err)
	}
	var rec tokenRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("oidc: decode token: %w", err)
	}
	if s.now().After(rec.Expires) {
		return nil, errors.New("token is expired")
	}
	return &rec, nil
}

// TokenRequestByRefreshToken loads a refresh token. A rotated-out token presented again is
// reuse: the whole grant is revoked.
func (s *Storage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	rec, err := s.refreshToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if s.grantLeft(rec, s.now()) <= 0 {
		return nil, oidc.ErrInvalidGrant().WithDescription("the grant has reached its maximum lifetime; log in again")
	}
	if _, err := s.actorClaims(ctx, rec, rec.Scopes); err != nil {
		return nil, s.refuseActor(ctx, rec.Grant, err)
	}
	return &refreshRequest{rec: *rec, scopes: rec.Scopes}, nil
}

func (s *Storage) refreshToken(ctx context.Context, token string) (*tokenRecord, error) {
	grant, _, ok := splitTokenID(token)
	if !ok {
		return nil, op.ErrInvalidRefreshToken
	}
	raw, err := s.Store.RefreshToken(ctx, grant, token)
	if errors.Is(err, store.ErrReplay) {
		if rerr := s.Store.RevokeGrant(ctx, grant, s.Lifetimes.RefreshToken); rerr != nil {
			return nil, storeErr(rerr)
		}
		return nil, oidc.ErrInvalidGrant().WithDescription("refresh token already used; the grant is revoked")
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, op.ErrInvalidRefreshToken
	}
	if err != nil {
		return nil, storeErr(err)
	}
	var rec tokenRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("oidc: decode refresh token: %w", err)
	}
	return &rec, nil
}

// TerminateSession is called by end_session; the SSO cookie is ended by the HTTP layer,
// which sees the browser.
func (s *Storage) TerminateSession(context.Context, string, string) error { return nil }

// LoggedOutPath is where the browser lands after a logout without a post_logout_redirect_uri.
const LoggedOutPath = "/logged-out"

var _ op.CanTerminateSessionFromRequest = (*Storage)(nil)

// TerminateSessionFromRequest is TerminateSession that also carries the request's ui_locales
// to the logged-out page, when the logout ends there.
func (s *Storage) TerminateSessionFromRequest(_ context.Context, req *op.EndSessionRequest) (string, error) {
	u, err := url.Parse(req.RedirectURI)
	if err != nil || u.Host != "" || u.Path != LoggedOutPath || len(req.UILocales) == 0 {
		return req.RedirectURI, nil
	}
	q := u.Query()
	for _, l := range req.UILocales {
		if b, _ := l.Base(); b.String() == "da" || b.String() == "en" {
			q.Set("lang", b.String())
			break
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// RevokeToken revokes an access token (by id) or a refresh token with its whole grant (and so
// the grant's access tokens, RFC 7009 §2.1). zitadel/oidc passes a refresh token here with its
// user id set too, so the kind is told by the token's shape: an access token id is
// "<grant>.<22 chars>", a refresh token "<grant>.<44 chars>".
func (s *Storage) RevokeToken(ctx context.Context, tokenOrID, _, clientID string) *oidc.Error {
	grant, rest, ok := splitTokenID(tokenOrID)
	if !ok {
		return nil // not ours: nothing to revoke (RFC 7009 §2.2)
	}
	if len(rest) > len(flows.NewID()) {
		rec, err := s.refreshToken(ctx, tokenOrID)
		if err != nil || rec.ClientID != clientID {
			return nil
		}
		if err := s.Store.RevokeGrant(ctx, rec.Grant, s.Lifetimes.RefreshToken); err != nil {
			return oidc.ErrServerError().WithParent(err)
		}
		return nil
	}
	rec, err := s.accessToken(ctx, tokenOrID)
	if err != nil || rec.ClientID != clientID {
		return nil
	}
	if err := s.Store.DeleteAccessToken(ctx, grant, rest); err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	return nil
}

// GetRefreshTokenInfo tells the revocation endpoint whose refresh token this is.
func (s *Storage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	rec, err := s.refreshToken(ctx, token)
	if err != nil || rec.ClientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rec.Subject, token, nil
}

type clientKey struct{}

// WithClient marks a token request's context with the client it authenticates as, so the ID
// token is signed with the algorithm that client registered.
func WithClient(ctx context.Context, clientID string) context.Context {
	return context.WithValue(ctx, clientKey{}, clientID)
}

// SigningKey is the ES256 key, or the RS256 key for a client registered for RS256.
func (s *Storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	id, _ := ctx.Value(clientKey{}).(string)
	if id == "" {
		return s.Keys.Default(), nil
	}
	c, err := s.Store.Client(ctx, id)
	if err != nil || c.IDTokenAlg == "" || c.IDTokenAlg == string(s.Keys.Default().Alg) {
		return s.Keys.Default(), nil // an unknown client fails authentication anyway
	}
	k, ok := s.Keys.ByAlg(jose.SignatureAlgorithm(c.IDTokenAlg))
	if !ok {
		return nil, oidc.ErrServerError().WithDescription("no %s signing key is configured", c.IDTokenAlg)
	}
	return k, nil
}

// SignatureAlgorithms lists what the JWKS carries.
func (s *Storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return s.Keys.Algorithms(), nil
}

// KeySet is the JWKS.
func (s *Storage) KeySet(context.Context) ([]op.Key, error) {
	var out []op.Key
	for _, k := range s.Keys.Keys {
		out = append(out, k.Public())
	}
	return out, nil
}

// GetClientByClientID loads a registered client.
func (s *Storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Store.Client(ctx, id)
	if err != nil {
		return nil, storeErr(err)
	}
	return &client{c: c, idTokenTTL: s.Lifetimes.IDToken}, nil
}

// AuthorizeClientIDSecret checks a confidential client's secret.
func (s *Storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := s.Store.Client(ctx, id)
	if err != nil {
		return storeErr(err)
	}
	if c.Public || c.SecretHash == "" || !SecretMatches(c.SecretHash, secret) {
		return errors.New("invalid client credentials")
	}
	return nil
}

// HashSecret is how client secrets are stored: they are high-entropy, so a fast hash is safe.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// SecretMatches compares in constant time.
func SecretMatches(hash, secret string) bool {
	return subtle.ConstantTimeCompare([]byte(hash), []byte(HashSecret(secret))) == 1
}

// SetUserinfoFromScopes is deprecated in zitadel/oidc; SetUserinfoFromRequest does the work.
func (s *Storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's claims.
func (s *Storage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	gr, ok := req.(grantRequest)
	if !ok {
		return errors.New("oidc: unexpected token request")
	}
	rec := gr.record()
	// The citizen is read here, once per token request: a NemID blocked or expired since the
	// login gets no more tokens and loses those it has; a record that cannot be read is a
	// server error that leaves the code or refresh token for the retry.
	c, err := s.requestCitizen(ctx, req, rec.CitizenID)
	if errors.Is(err, store.ErrNotFound) {
		return oidc.ErrServerError().WithDescription("the citizen's record cannot be read").WithParent(err)
	}
	if err != nil {
		return storeErr(err)
	}
	// A ward's grant stands on the guardian's NemID (judged with the guardianship, below), not
	// on the ward's: a ward under guardianship may well have let theirs lapse.
	// A block (or a temporary password) since the login ended the grant for good, also once
	// the NemID is unblocked.
	if !loginStands(c, &rec, s.now()) {
		if err := s.refuseInactive(ctx, rec.Grant); !errors.Is(err, errInactive) {
			return storeErr(err)
		}
		return oidc.ErrInvalidGrant().WithDescription("the NemID is blocked or expired, or was blocked since the login")
	}
	act, err := s.actorClaims(ctx, &rec, scopes)
	if err != nil {
		return s.refuseActor(ctx, rec.Grant, err)
	}
	// Checked: the citizen's own NemID above, or for a ward the guardian's in actorClaims.
	if p := pendingOf(ctx); p != nil && (p.citizenID == rec.CitizenID || (rec.Actor != nil && p.citizenID == rec.Actor.CitizenID)) {
		p.citizenChecked = true
	}
	if err := s.fillFromCitizen(ui, c, &rec, scopes, false, act); err != nil {
		return err
	}
	if rec.SessionID != "" {
		ui.AppendClaims("sid", rec.SessionID) // OpenID Front-Channel Logout §2
	}
	return nil
}

// loginStands reports whether the citizen c of grant rec may still have tokens: the NemID is
// active and no block or temporary password ended its sessions and grants since the login
// (store.LoginEnded). A ward's grant stands on the guardian's NemID, judged in actorClaims.
func loginStands(c *store.Citizen, rec *tokenRecord, now time.Time) bool {
	if rec.Actor != nil {
		return true
	}
	return c.ActiveOn(now) && !store.LoginEnded(c.SessionsEnded, rec.AuthTime)
}

// requestCitizen is the citizen's record for a token request: the one the code exchange read
// with its flow, or read now.
func (s *Storage) requestCitizen(ctx context.Context, req op.IDTokenRequest, uid string) (*store.Citizen, error) {
	if ar, ok := req.(*authRequest); ok && ar.citizen != nil && ar.citizen.UserID == uid {
		return ar.citizen, nil
	}
	return s.Store.Citizen(ctx, uid)
}

// SetUserinfoFromToken answers the userinfo endpoint.
func (s *Storage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, _, _ string) error {
	rec, err := s.accessToken(ctx, tokenID)
	if err != nil {
		return err
	}
	return s.fillUserinfo(ctx, ui, rec, rec.Scopes, true)
}

// SetIntrospectionFromToken answers the introspection endpoint for the token's own client.
func (s *Storage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, _, clientID string) error {
	rec, err := s.accessToken(ctx, tokenID)
	if err != nil {
		return err
	}
	if rec.ClientID != clientID {
		return errors.New("token belongs to another client")
	}
	ui := new(oidc.UserInfo)
	if err := s.fillUserinfo(ctx, ui, rec, rec.Scopes, true); err != nil {
		return err
	}
	resp.SetUserInfo(ui)
	resp.Scope = rec.Scopes
	resp.ClientID = rec.ClientID
	resp.Expiration = oidc.FromTime(rec.Expires)
	resp.IssuedAt = oidc.FromTime(rec.Expires.Add(-s.Lifetimes.AccessToken))
	resp.Audience = []string{rec.ClientID}
	return nil
}

func (s *Storage) fillUserinfo(ctx context.Context, ui *oidc.UserInfo, rec *tokenRecord, scopes []string, withAuth bool) error {
	c, err := s.Store.Citizen(ctx, rec.CitizenID)
	if err != nil {
		return storeErr(err)
	}
	if !loginStands(c, rec, s.now()) { // a ward's grant: see SetUserinfoFromRequest
		return errInactive
	}
	act, err := s.actorClaims(ctx, rec, scopes)
	if err != nil {
		return err
	}
	return s.fillFromCitizen(ui, c, rec, scopes, withAuth, act)
}

// fillFromCitizen puts the claims of the ID token (userinfo false) or of userinfo into ui
// (claims.go decides which), and act, the on-behalf-of claims of a ward's grant. The
// certificate fields (kind, PID, youth marker) are the login's snapshot (flows.Certificate):
// what the login saw, which an SSO re-login keeps until the citizen logs in afresh.
func (s *Storage) fillFromCitizen(ui *oidc.UserInfo, c *store.Citizen, rec *tokenRecord, scopes []string, userinfo bool, act map[string]any) error {
	m, err := claimsFor(rec.Cert.Apply(c), rec, scopes, userinfo, s.now())
	if err != nil {
		return err
	}
	for k, v := range act {
		ui.AppendClaims(k, v)
	}
	ui.Subject = rec.Subject
	for k, v := range m {
		ui.AppendClaims(k, v)
	}
	return nil
}

// GetPrivateClaimsFromScopes adds nothing: access tokens are opaque.
func (s *Storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetKeyByIDAndClientID is for the JWT profile grant, which is not offered.
func (s *Storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("jwt profile grant not supported")
}

// ValidateJWTProfileScopes is for the JWT profile grant, which is not offered.
func (s *Storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("jwt profile grant not supported")
}

// Health reports whether Redis answers.
func (s *Storage) Health(ctx context.Context) error { return s.Store.Ping(ctx) }

// storeErr turns store failures into OIDC errors: unreachable Redis is a server error the
// library answers with 500/503; a missing record is a plain error.
func storeErr(err error) error {
	if err == nil {
		return nil
	}
	var oe *oidc.Error
	if errors.As(err, &oe) {
		return err
	}
	if errors.Is(err, store.ErrUnavailable) {
		return oidc.ErrServerError().WithDescription("the login service is temporarily unavailable").WithParent(err)
	}
	return err
}

// ExactRedirect reports whether uri is exactly one of the client's registered URIs (no
// prefix, wildcard or loopback-port leniency).
func ExactRedirect(c *store.Client, uri string) bool {
	return uri != "" && slices.Contains(c.RedirectURIs, uri)
}

// FlowError is the OIDC error a failed or expired flow reports to the relying party.
func FlowError(f *flows.Flow) error {
	code, msg := flows.CodeFlowExpired, "the login expired"
	if f.Failure != nil {
		code, msg = f.Failure.Code, f.Failure.Message
	}
	switch code {
	case flows.CodeLoginRequired:
		return oidc.ErrLoginRequired().WithDescription("%s", msg)
	case flows.CodeFlowExpired:
		return oidc.ErrLoginRequired().WithDescription("the login expired before the citizen finished it")
	}
	return oidc.ErrAccessDenied().WithDescription("%s: %s", code, msg)
}

// ValidateRedirectURIs checks redirect URIs at registration: absolute, no fragment, https
// unless loopback (or a custom scheme for a public native app).
func ValidateRedirectURIs(uris []string, public bool) error {
	if len(uris) == 0 {
		return errors.New("redirect_uris: at least one is required")
	}
	for _, raw := range uris {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme == "" || u.Fragment != "" || strings.Contains(raw, "*") {
			return fmt.Errorf("redirect_uris: %q is not an absolute URI without fragment or wildcard", raw)
		}
		switch u.Scheme {
		case "https":
		case "http":
			if !config.IsLoopback(u.Hostname()) {
				return fmt.Errorf("redirect_uris: %q: http is only allowed for loopback addresses", raw)
			}
		default:
			if !public {
				return fmt.Errorf("redirect_uris: %q: custom schemes are only for public (native) clients", raw)
			}
		}
		if u.Host == "" && (u.Scheme == "http" || u.Scheme == "https") {
			return fmt.Errorf("redirect_uris: %q has no host", raw)
		}
	}
	return nil
}
