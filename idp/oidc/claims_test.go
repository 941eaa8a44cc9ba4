package oidc

import (
	"context"
	"reflect"
	"testing"

	"github.com/nemidp/nemidp/idp/claims"
)

// TestClaimsRequest: the claims parameter is read in the client's dialect, unknown names are
// dropped, a malformed one is refused.
func TestClaimsRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw string
		d         *claims.Dialect
		want      *claimsRequest
		bad       bool
	}{
		{"absent", "", &claims.Default, nil, false},
		{"default names", `{"id_token":{"dk.cpr":{"essential":true},"x":null},"userinfo":{"name":null}}`, &claims.Default,
			&claimsRequest{IDToken: []claims.Concept{claims.CPRNumber}, Userinfo: []claims.Concept{claims.FullName}}, false},
		{"broker names", `{"id_token":{"cprNumberIdentifier":null,"dk.cpr":null}}`, &claims.Broker,
			&claimsRequest{IDToken: []claims.Concept{claims.CPRNumber}}, false},
		{"nothing known", `{"userinfo":{"email":null},"other":1}`, &claims.Default, nil, false},
		{"not an object", `"x"`, &claims.Default, nil, true},
		{"member not an object", `{"id_token":"name"}`, &claims.Default, nil, true},
		{"claim neither null nor object", `{"userinfo":{"name":1}}`, &claims.Default, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := claimsRequestOf(WithClaimsParameter(context.Background(), tc.raw), tc.d)
			if (err != nil) != tc.bad || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v (error %v)", got, err, tc.want, tc.bad)
			}
		})
	}
}

// TestRelease: the scopes decide what is released; the ID token leaves acr, amr and auth_time
// to zitadel/oidc; a userinfo-only concept reaches the ID token only when asked there.
func TestRelease(t *testing.T) {
	t.Parallel()
	uiOnly := map[claims.Concept]bool{claims.CPRNumber: true}
	asked := &claimsRequest{IDToken: []claims.Concept{claims.CPRNumber, claims.FullName}}
	tests := []struct {
		name    string
		scopes  []string
		req     *claimsRequest
		idToken bool
		want    []claims.Concept
	}{
		{"userinfo", []string{"openid", "ssn"}, nil, false, []claims.Concept{claims.ACRLevel, claims.Methods, claims.AuthTime, claims.Provider, claims.CPRNumber}},
		{"ID token, not asked", []string{"openid", "ssn"}, nil, true, []claims.Concept{claims.Provider}},
		{"ID token, asked", []string{"openid", "ssn"}, asked, true, []claims.Concept{claims.Provider, claims.CPRNumber}},
		{"asked beyond the scopes", []string{"openid"}, asked, true, []claims.Concept{claims.Provider}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := release(tc.scopes, tc.req, tc.idToken, uiOnly); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	if len(userinfoOnly) != 0 {
		t.Errorf("userinfoOnly = %v: README's Claims bullet says every claim goes to both the ID token and userinfo", userinfoOnly)
	}
}
