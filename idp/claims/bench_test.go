package claims

import "testing"

// BenchmarkClaimsDefault: one op maps a typical OCES citizen's login to the claims of scopes
// "openid profile age" in the default dialect (Allowed → Values → Named), as for one ID token.
func BenchmarkClaimsDefault(b *testing.B) { benchmarkClaims(b, &Default) }

// BenchmarkClaimsBroker: one op is the same mapping in the broker dialect (PID prefix, age as
// text).
func BenchmarkClaimsBroker(b *testing.B) { benchmarkClaims(b, &Broker) }

func benchmarkClaims(b *testing.B, d *Dialect) {
	scopes := []string{ScopeOpenID, ScopeProfile, ScopeAge}
	b.ReportAllocs()
	for b.Loop() {
		if out := d.Named(Values(karen, login, Allowed(scopes), now)); len(out) == 0 {
			b.Fatal("no claims")
		}
	}
}
