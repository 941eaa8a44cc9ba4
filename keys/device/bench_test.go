package device

import (
	"testing"
	"time"
)

// BenchmarkVerify: one op is the server's check of one device JWT (ES256 signature, iss,
// aud, iat, exp, jti), as on every key-app API call.
func BenchmarkVerify(b *testing.B) {
	k, err := GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	tok, err := Sign(k, "dev-bench", "https://idp.example/keyapp", now)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(tok, &k.PublicKey, "dev-bench", "https://idp.example/keyapp", now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyDecision: one op is the server's check of one signed approve decision
// (ES256 signature, request id, decision, iat, jti).
func BenchmarkVerifyDecision(b *testing.B) {
	k, err := GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	jws, err := SignDecision(k, "req-0123456789", Approve, "4711", now)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyDecision(jws, &k.PublicKey, "req-0123456789", now); err != nil {
			b.Fatal(err)
		}
	}
}
