package oidc

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nemidp/nemidp/idp/claims"
	"github.com/nemidp/nemidp/idp/store"
)

// Where the claims go. Every claim the granted scopes release goes into both the ID token and
// the userinfo answer (as before scopes were split: relying parties read them from either).
// userinfoOnly is the one place to change that: a concept listed there reaches the ID token
// only when the claims request parameter asks for it in "id_token". Today it is empty.
var userinfoOnly = map[claims.Concept]bool{}

// tokenSets are the concepts zitadel/oidc writes into the ID token itself (acr, amr,
// auth_time, under their OIDC names); userinfo gets them from the dialect.
var tokenSets = []claims.Concept{claims.ACRLevel, claims.Methods, claims.AuthTime}

// claimsRequest is the claims request parameter (OIDC Core §5.5) as far as it decides anything
// here: the concepts asked for in each member, as the client's dialect names them. A claim the
// granted scopes do not release is never given, asked for or not ("essential" and "value" do
// not change that, and are not kept).
type claimsRequest struct {
	IDToken  []claims.Concept `json:"id_token,omitempty"`
	Userinfo []claims.Concept `json:"userinfo,omitempty"`
}

// Bounds of the claims parameter: it is kept in the flow and the tokens.
const (
	maxClaimsParam  = 4096
	maxClaimsMember = 64
)

type claimsParamKey struct{}

// WithClaimsParameter hands the authorize request's claims parameter (raw JSON) to
// CreateAuthRequest: zitadel/oidc does not parse it.
func WithClaimsParameter(ctx context.Context, raw string) context.Context {
	if raw == "" {
		return ctx
	}
	return context.WithValue(ctx, claimsParamKey{}, raw)
}

// claimsRequestOf parses the claims parameter of the request in ctx for dialect d. Malformed
// is invalid_request; names d does not know are dropped.
func claimsRequestOf(ctx context.Context, d *claims.Dialect) (*claimsRequest, error) {
	raw, _ := ctx.Value(claimsParamKey{}).(string)
	if raw == "" {
		return nil, nil
	}
	bad := func(why string) error {
		return oidc.ErrInvalidRequest().WithDescription("claims: %s", why)
	}
	if len(raw) > maxClaimsParam {
		return nil, bad(fmt.Sprintf("longer than %d bytes", maxClaimsParam))
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &members); err != nil || members == nil {
		return nil, bad("not a JSON object")
	}
	var cr claimsRequest
	for member, dst := range map[string]*[]claims.Concept{"id_token": &cr.IDToken, "userinfo": &cr.Userinfo} {
		m, ok := members[member]
		if !ok || string(m) == "null" {
			continue
		}
		var asked map[string]json.RawMessage
		if err := json.Unmarshal(m, &asked); err != nil {
			return nil, bad(member + " is not a JSON object")
		}
		if len(asked) > maxClaimsMember {
			return nil, bad(fmt.Sprintf("%s asks for more than %d claims", member, maxClaimsMember))
		}
		for name, spec := range asked {
			var o map[string]json.RawMessage
			if string(spec) != "null" && json.Unmarshal(spec, &o) != nil {
				return nil, bad(fmt.Sprintf("%s.%s is neither null nor an object", member, name))
			}
			if k, ok := d.Concept(name); ok && !slices.Contains(*dst, k) {
				*dst = append(*dst, k)
			}
		}
		slices.Sort(*dst)
	}
	if len(cr.IDToken) == 0 && len(cr.Userinfo) == 0 {
		return nil, nil
	}
	return &cr, nil
}

// release picks the concepts of one answer: the ID token (idToken) or userinfo. Only what
// the scopes release; in the ID token, a userinfoOnly concept only when asked there.
func release(scopes []string, req *claimsRequest, idToken bool, uiOnly map[claims.Concept]bool) []claims.Concept {
	var out []claims.Concept
	for _, k := range claims.Allowed(scopes) {
		if idToken && slices.Contains(tokenSets, k) {
			continue
		}
		if idToken && uiOnly[k] && (req == nil || !slices.Contains(req.IDToken, k)) {
			continue
		}
		out = append(out, k)
	}
	return out
}

// claimsFor is what one answer carries of citizen c, named by the client's dialect.
func claimsFor(c *store.Citizen, rec *tokenRecord, scopes []string, userinfo bool, now time.Time) (map[string]any, error) {
	d, err := claims.DialectNamed(rec.Dialect)
	if err != nil {
		return nil, fmt.Errorf("oidc: claims for client %s: %w", rec.ClientID, err)
	}
	l := claims.Login{ACR: rec.ACR, AMR: rec.AMR, AuthTime: rec.AuthTime}
	return d.Named(claims.Values(c, l, release(scopes, rec.Claims, !userinfo, userinfoOnly), now)), nil
}
