package admin

import (
	"errors"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/nemidp/nemidp/idp/oidc"
)

func TestBuildClient(t *testing.T) {
	t.Parallel()
	good := []string{"https://bank.example/cb"}
	tests := []struct {
		name    string
		req     ClientRequest
		wantErr bool
		genSec  bool
	}{
		{"confidential, secret generated", ClientRequest{ClientID: "bank", RedirectURIs: good}, false, true},
		{"confidential, secret given", ClientRequest{ClientID: "bank", RedirectURIs: good, Secret: "0123456789abcdefXYZ"}, false, false},
		{"public, native loopback", ClientRequest{ClientID: "app", Public: true, RedirectURIs: []string{"http://127.0.0.1:7777/cb"}}, false, false},
		{"public, custom scheme", ClientRequest{ClientID: "app", Public: true, RedirectURIs: []string{"dk.bank.app:/cb"}}, false, false},
		{"public with secret", ClientRequest{ClientID: "app", Public: true, Secret: "0123456789abcdefXYZ", RedirectURIs: good}, true, false},
		{"short secret", ClientRequest{ClientID: "bank", Secret: "short", RedirectURIs: good}, true, false},
		{"no redirect", ClientRequest{ClientID: "bank"}, true, false},
		{"http off loopback", ClientRequest{ClientID: "bank", RedirectURIs: []string{"http://bank.example/cb"}}, true, false},
		{"fragment", ClientRequest{ClientID: "bank", RedirectURIs: []string{"https://bank.example/cb#x"}}, true, false},
		{"wildcard", ClientRequest{ClientID: "bank", RedirectURIs: []string{"https://*.bank.example/cb"}}, true, false},
		{"relative", ClientRequest{ClientID: "bank", RedirectURIs: []string{"/cb"}}, true, false},
		{"custom scheme for confidential", ClientRequest{ClientID: "bank", RedirectURIs: []string{"dk.bank:/cb"}}, true, false},
		{"bad client id", ClientRequest{ClientID: "bank client", RedirectURIs: good}, true, false},
		{"empty client id", ClientRequest{RedirectURIs: good}, true, false},
		{"unknown dialect", ClientRequest{ClientID: "bank", RedirectURIs: good, Dialect: "klingon"}, true, false},
		{"broker dialect", ClientRequest{ClientID: "bank", RedirectURIs: good, Dialect: "broker"}, false, true},
		{"sector identifier", ClientRequest{ClientID: "bank", RedirectURIs: good, SectorIdentifier: "https://bank.example"}, false, true},
		{"sector identifier with a space", ClientRequest{ClientID: "bank", RedirectURIs: good, SectorIdentifier: "bank one"}, true, false},
		{"RS256 with an RSA key", ClientRequest{ClientID: "bank", RedirectURIs: good, IDTokenSignedResponseAlg: "RS256"}, false, true},
		{"RS256 without an RSA key", ClientRequest{ClientID: "bank", RedirectURIs: good, IDTokenSignedResponseAlg: "RS256"}, true, false},
		{"ES256 without an EC key", ClientRequest{ClientID: "bank", RedirectURIs: good, IDTokenSignedResponseAlg: "ES256"}, true, false},
		{"unknown alg", ClientRequest{ClientID: "bank", RedirectURIs: good, IDTokenSignedResponseAlg: "HS256"}, true, false},
		{"confidential without PKCE", ClientRequest{ClientID: "bank", RedirectURIs: good, RequirePKCE: new(false)}, false, true},
		{"public without PKCE", ClientRequest{ClientID: "app", Public: true, RedirectURIs: []string{"http://127.0.0.1:7777/cb"}, RequirePKCE: new(false)}, true, false},
		{"bad post-logout uri", ClientRequest{ClientID: "bank", RedirectURIs: good, PostLogoutRedirectURIs: []string{"http://x.example/"}}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			algs := []jose.SignatureAlgorithm{jose.ES256, jose.RS256}
			switch tc.name {
			case "RS256 without an RSA key":
				algs = []jose.SignatureAlgorithm{jose.ES256}
			case "ES256 without an EC key":
				algs = []jose.SignatureAlgorithm{jose.RS256}
			}
			c, gen, err := BuildClient(tc.req, algs)
			if tc.wantErr {
				var ae *apiError
				if !errors.As(err, &ae) || ae.status != 400 {
					t.Fatalf("want a 400 apiError, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (gen != "") != tc.genSec {
				t.Fatalf("generated secret = %q, want generated: %v", gen, tc.genSec)
			}
			switch {
			case tc.req.Public && c.SecretHash != "":
				t.Fatal("public client got a secret hash")
			case !tc.req.Public && c.SecretHash == "":
				t.Fatal("confidential client has no secret")
			case gen != "" && !oidc.SecretMatches(c.SecretHash, gen):
				t.Fatal("stored hash does not match the generated secret")
			case tc.req.Secret != "" && !oidc.SecretMatches(c.SecretHash, tc.req.Secret):
				t.Fatal("stored hash does not match the given secret")
			}
			if wantOptional := tc.req.RequirePKCE != nil && !*tc.req.RequirePKCE; c.PKCEOptional != wantOptional {
				t.Fatalf("PKCEOptional = %v, want %v", c.PKCEOptional, wantOptional)
			}
			if len(c.Scopes) == 0 || c.Name == "" {
				t.Fatalf("defaults not applied: %+v", c)
			}
		})
	}
}
