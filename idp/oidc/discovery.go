package oidc

import (
	"net/http"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nemidp/nemidp/flows"
)

// Discovery serves /.well-known/openid-configuration as zitadel/oidc builds it, corrected to
// what this IdP actually offers: code flow only, pairwise subjects, no device grant.
func Discovery(provider *op.Provider, storage *Storage, issuer string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := op.ContextWithIssuer(r.Context(), issuer)
		c := op.CreateDiscoveryConfig(ctx, provider, storage)
		c.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
		c.ResponseModesSupported = []string{"query", "form_post"}
		c.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
		c.SubjectTypesSupported = []string{"pairwise"}
		c.ACRValuesSupported = []string{flows.ACRSubstantial}
		c.DeviceAuthorizationEndpoint = ""
		c.RequestParameterSupported = false
		c.ClaimsParameterSupported = true // honoured within the granted scopes (claims.go)
		c.RevocationEndpointAuthSigningAlgValuesSupported = nil
		c.IntrospectionEndpointAuthSigningAlgValuesSupported = nil
		op.Discover(w, c)
	}
}
