package signing

import (
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/crypto"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// BenchmarkSignIDTokenES256: one op is one ID token signed as zitadel/oidc's token endpoint
// does it (a signer made from the key, the claims JSON-encoded, ES256, compact form).
func BenchmarkSignIDTokenES256(b *testing.B) { benchmarkSignIDToken(b, Generate) }

// BenchmarkSignIDTokenRS256: one op is the same ID token signed RS256 (2048-bit key).
func BenchmarkSignIDTokenRS256(b *testing.B) { benchmarkSignIDToken(b, GenerateRSA) }

func benchmarkSignIDToken(b *testing.B, gen func() (*Key, error)) {
	k, err := gen()
	if err != nil {
		b.Fatal(err)
	}
	claims := typicalIDToken()
	b.ReportAllocs()
	for b.Loop() {
		signer, err := op.SignerFromKey(k)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := crypto.Sign(claims, signer); err != nil {
			b.Fatal(err)
		}
	}
}

// typicalIDToken is the claim set of a code-card login's ID token for scopes "openid
// profile" in the default dialect (pairwise subject, sid, at_hash, the profile claims).
func typicalIDToken() *oidc.IDTokenClaims {
	now := time.Now()
	c := oidc.NewIDTokenClaims("https://idp.example", "4b1d6e0e-3c7a-4f7e-9d51-0a6f3b2c9e11", []string{"netbank"},
		now.Add(time.Hour), now, "n-0S6_WzA2Mj", "https://data.gov.dk/concept/core/nsis/Substantial",
		[]string{"pwd", "otp"}, "netbank", 0)
	c.AccessTokenHash = "77QmUPtjPfzWtF2AnpK9RQ"
	c.SessionID = "f4T0Zq3n8pXc1Vb7LmQa2w"
	c.Claims = map[string]any{
		"idp": "nemid", "name": "Karen Jensen", "given_name": "Karen", "family_name": "Jensen",
		"birthdate": "1990-06-15", "age": 35, "dk.age_under_18": false, "dk.youth_certificate": false,
		"nemid.oces": true, "nemid.pid": "9208-2002-2-123456789012",
	}
	return c
}
