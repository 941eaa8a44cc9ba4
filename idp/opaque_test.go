package idp

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	zcrypto "github.com/zitadel/oidc/v3/pkg/crypto"
	"github.com/zitadel/oidc/v3/pkg/op"
)

func testOpaque(t testing.TB) (*opaqueCrypto, [32]byte) {
	t.Helper()
	var key, jweKey [32]byte
	_, _ = rand.Read(key[:])
	_, _ = rand.Read(jweKey[:])
	c, err := newOpaqueCrypto(key[:], op.NewAES256GCMCrypto(jweKey, ""))
	if err != nil {
		t.Fatal(err)
	}
	return c, jweKey
}

func TestOpaqueCryptoRoundTripAndTamper(t *testing.T) {
	t.Parallel()
	c, _ := testOpaque(t)
	plain := "grant-0123456789abcdef:tok-42:ZGVhZGJlZWYtcGFpcndpc2Utc3ViamVjdA"
	a, err := c.Encrypt(plain)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Encrypt(plain)
	if a == b {
		t.Fatal("two encryptions of one value are equal (nonce reused?)")
	}
	if strings.ContainsAny(a, ".+/=") || strings.Contains(a, plain) {
		t.Fatalf("not an opaque base64url value: %q", a)
	}
	for _, s := range []string{a, b} {
		if got, err := c.Decrypt(s); err != nil || got != plain {
			t.Fatalf("Decrypt = %q, %v", got, err)
		}
	}
	if got, err := c.Decrypt(mustEncrypt(t, c, "")); err != nil || got != "" {
		t.Fatalf("empty value: %q, %v", got, err)
	}

	raw, _ := base64.RawURLEncoding.DecodeString(a)
	for i := range raw { // every byte is covered: nonce, ciphertext and tag
		bad := append([]byte(nil), raw...)
		bad[i] ^= 1
		if _, err := c.Decrypt(base64.RawURLEncoding.EncodeToString(bad)); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	other, _ := testOpaque(t)
	if _, err := other.Decrypt(a); err == nil {
		t.Fatal("decrypted under another key")
	}
	for _, s := range []string{"", "x", "not base64!", base64.RawURLEncoding.EncodeToString(raw[:39]),
		strings.Repeat("A", maxOpaque+1), "a.b.c.d.e", "a.b.c"} {
		if got, err := c.Decrypt(s); err == nil {
			t.Errorf("Decrypt(%.40q) = %q, want an error", s, got)
		}
	}
}

// TestOpaqueCryptoReadsJWE: codes and access tokens made before (zitadel's JWE under the
// old key) still decrypt; a JWE under another key and zitadel's unauthenticated AES-CFB
// format do not.
func TestOpaqueCryptoReadsJWE(t *testing.T) {
	t.Parallel()
	c, jweKey := testOpaque(t)
	old := op.NewAES256GCMCrypto(jweKey, "")
	tok, err := old.Encrypt("grant:tok:subject")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Decrypt(tok); err != nil || got != "grant:tok:subject" {
		t.Fatalf("old JWE: %q, %v", got, err)
	}
	var otherKey [32]byte
	otherKey[0] = 1
	foreign, _ := op.NewAES256GCMCrypto(otherKey, "").Encrypt("grant:tok:subject")
	if got, err := c.Decrypt(foreign); err == nil {
		t.Fatalf("JWE under another key decrypted: %q", got)
	}
	//lint:ignore SA1019 the deprecated format is what must be refused
	cfb, err := zcrypto.EncryptAES("grant:tok:subject", string(jweKey[:]))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Decrypt(cfb); err == nil {
		t.Fatalf("AES-CFB value accepted: %q", got)
	}
	noJWE, _ := newOpaqueCrypto(make([]byte, 32), nil)
	if _, err := noJWE.Decrypt(tok); err == nil {
		t.Fatal("JWE accepted without a JWE decrypter")
	}
}

func mustEncrypt(t *testing.T, c op.Crypto, s string) string {
	t.Helper()
	out, err := c.Encrypt(s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// BenchmarkOpaqueCrypto: one encrypt and one decrypt of an access token's value, this
// format against zitadel's JWE default.
func BenchmarkOpaqueCrypto(b *testing.B) {
	c, jweKey := testOpaque(b)
	plain := "0123456789abcdef0123456789abcdef:tok-42:ZGVhZGJlZWYtcGFpcndpc2Utc3ViamVjdA"
	for _, tc := range []struct {
		name string
		c    op.Crypto
	}{{"xchacha20poly1305", c}, {"zitadel-jwe", op.NewAES256GCMCrypto(jweKey, "")}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := tc.c.Encrypt(plain)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tc.c.Decrypt(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
