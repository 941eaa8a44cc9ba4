package oidc

import (
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store"
)

// authRequest presents a flow to zitadel/oidc as an op.AuthRequest.
type authRequest struct {
	flow       *flows.Flow
	ps         protocolState
	subject    string       // pairwise; set when the request is loaded for a token exchange
	actor      *actorRecord // the guardian, when the login acts for a ward; set with subject
	code       string       // the code it was loaded by, consumed when the tokens are issued
	codeMarked bool         // the code was made under the flow's one-time mark
	// citizen is the citizen's record, read with the flow by the code exchange (nil: not read).
	citizen *store.Citizen
}

var _ op.AuthRequest = (*authRequest)(nil)

// GetID is the flow's id; for a flow done for the citizen themself it also names the citizen
// ("<flow>.<user id>"). zitadel/oidc seals exactly this into the code (and uses it for nothing
// else once the flow is done), so the code exchange reads the citizen in its first round trip
// (AuthRequestByCode); the user id never leaves the sealed code.
func (a *authRequest) GetID() string {
	if r := a.flow.Result; a.flow.Done() && r.OnBehalfOf == nil && r.CitizenID != "" {
		return a.flow.ID + "." + r.CitizenID
	}
	return a.flow.ID
}

// codeGrant splits what a code seals (GetID) into the grant (the flow id) and the citizen it
// names ("" for a code that names none).
func codeGrant(sealed string) (grant, citizen string) {
	grant, citizen, _ = strings.Cut(sealed, ".")
	return grant, citizen
}
func (a *authRequest) GetACR() string {
	if a.flow.Result != nil {
		return a.flow.Result.ACR
	}
	return ""
}
func (a *authRequest) GetAMR() []string {
	if a.flow.Result != nil {
		return a.flow.Result.AMR
	}
	return nil
}
func (a *authRequest) GetAudience() []string { return []string{a.flow.ClientID} }
func (a *authRequest) GetAuthTime() time.Time {
	if a.flow.Result != nil {
		return a.flow.Result.AuthTime
	}
	return time.Time{}
}
func (a *authRequest) GetClientID() string { return a.flow.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.ps.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.ps.CodeChallenge, Method: oidc.CodeChallengeMethod(a.ps.CodeChallengeMethod)}
}
func (a *authRequest) GetNonce() string       { return a.ps.Nonce }
func (a *authRequest) GetRedirectURI() string { return a.ps.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType {
	return oidc.ResponseType(a.ps.ResponseType)
}
func (a *authRequest) GetResponseMode() oidc.ResponseMode {
	return oidc.ResponseMode(a.ps.ResponseMode)
}
func (a *authRequest) GetScopes() []string { return a.ps.Scopes }
func (a *authRequest) GetState() string    { return a.ps.State }
func (a *authRequest) GetSubject() string  { return a.subject }
func (a *authRequest) Done() bool          { return a.flow.Done() }

func (a *authRequest) record() tokenRecord {
	r := a.flow.Result
	citizen, cert := r.CitizenID, r.Cert
	if r.OnBehalfOf != nil { // the tokens speak of the ward (their own snapshot); the guardian is the actor
		citizen, cert = r.OnBehalfOf.CitizenID, r.OnBehalfOf.Cert
	}
	return tokenRecord{Grant: a.flow.ID, Subject: a.subject, CitizenID: citizen, ClientID: a.flow.ClientID,
		Scopes: a.ps.Scopes, AMR: r.AMR, ACR: r.ACR, AuthTime: r.AuthTime, SessionID: r.SessionID, Actor: a.actor,
		Cert: cert, Dialect: a.ps.Dialect, Claims: a.ps.Claims}
}

// sector is where the request's pairwise subject lives: the client's sector at the authorize
// request (flows from before sectors existed: the client id).
func (a *authRequest) sector() string {
	if a.ps.Sector != "" {
		return a.ps.Sector
	}
	return a.flow.ClientID
}

// refreshRequest presents a refresh token to zitadel/oidc.
type refreshRequest struct {
	rec    tokenRecord
	scopes []string
}

var _ op.RefreshTokenRequest = (*refreshRequest)(nil)

// A refresh request is also an op.AuthRequest: zitadel/oidc puts acr into an ID token only
// from one, and a refreshed ID token must keep the login's acr.
var _ op.AuthRequest = (*refreshRequest)(nil)

func (r *refreshRequest) GetID() string                         { return r.rec.Grant }
func (r *refreshRequest) GetACR() string                        { return r.rec.ACR }
func (r *refreshRequest) GetCodeChallenge() *oidc.CodeChallenge { return nil }
func (r *refreshRequest) GetNonce() string                      { return "" } // not repeated on refresh (OIDC Core §12.2)
func (r *refreshRequest) GetRedirectURI() string                { return "" }
func (r *refreshRequest) GetResponseType() oidc.ResponseType    { return oidc.ResponseTypeCode }
func (r *refreshRequest) GetResponseMode() oidc.ResponseMode    { return "" }
func (r *refreshRequest) GetState() string                      { return "" }
func (r *refreshRequest) Done() bool                            { return true }

func (r *refreshRequest) GetAMR() []string            { return r.rec.AMR }
func (r *refreshRequest) GetAudience() []string       { return []string{r.rec.ClientID} }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.rec.AuthTime }
func (r *refreshRequest) GetClientID() string         { return r.rec.ClientID }
func (r *refreshRequest) GetScopes() []string         { return r.scopes }
func (r *refreshRequest) GetSubject() string          { return r.rec.Subject }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = s }
func (r *refreshRequest) record() tokenRecord         { return r.rec }

// client presents a registered relying party to zitadel/oidc.
type client struct {
	c          *store.Client
	idTokenTTL time.Duration
}

var _ op.Client = (*client)(nil)

func (c *client) GetID() string                    { return c.c.ID }
func (c *client) RedirectURIs() []string           { return c.c.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.c.PostLogoutRedirectURIs }
func (c *client) ApplicationType() op.ApplicationType {
	if c.c.Public {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}
func (c *client) AuthMethod() oidc.AuthMethod {
	if c.c.Public {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}
func (c *client) LoginURL(id string) string            { return "/login/" + id }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return c.idTokenTTL }
func (c *client) DevMode() bool                        { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) IsScopeAllowed(scope string) bool     { return slices.Contains(c.c.Scopes, scope) }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
