package idp

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/crypto/chacha20poly1305"
)

// opaqueCrypto is zitadel/oidc's op.Crypto here: it makes the authorization codes (the
// encrypted auth-request id) and the opaque access tokens (the encrypted "token id:subject")
// and reads them back at the token, userinfo, introspection and revocation endpoints.
//
// zitadel's default seals each value as a compact JWE (A256GCMKW key wrap + A256GCM): a new
// encrypter, a random content key wrapped with AES-GCM, a JSON header and five base64 parts —
// 17–30 µs and 209 allocations per encrypt and decrypt pair (BenchmarkOpaqueCrypto), and 3–6 %
// of the server's CPU in a refresh grant (BENCHMARKS.md, "CPU fixes outside the flow"). This
// is one XChaCha20-Poly1305 seal under a key derived for the purpose: a random 24-byte nonce
// (no bound worth counting on values per key, unlike GCM's 96-bit random nonces) and the
// sealed value, base64url without padding: about 1 µs and 5 allocations per pair. Values stay
// unforgeable and unreadable without the server secret; any change to one fails Decrypt.
//
// A value with the four dots of a compact JWE is read with zitadel's JWE decrypter, so codes
// and access tokens issued before this format (or by an instance not yet upgraded) keep
// working until they expire. The other way round does not hold: during a rolling upgrade an
// instance still on the JWE format cannot read a code or access token made by an upgraded one
// (invalid_grant, 401 at userinfo) until every instance runs this. zitadel's other fallback,
// unauthenticated AES-CFB, is left out: nemidp never issued such values.
type opaqueCrypto struct {
	aead cipher.AEAD
	jwe  op.Decrypter
}

// opaqueAAD binds the sealed values to this use of the key.
var opaqueAAD = []byte("nemidp/oidc-opaque/v1")

// maxOpaque bounds what Decrypt reads (codes and tokens here are ~100–200 characters).
const maxOpaque = 4096

var errOpaque = errors.New("idp: not a code or access token of this issuer")

func newOpaqueCrypto(key []byte, jwe op.Decrypter) (*opaqueCrypto, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	return &opaqueCrypto{aead: aead, jwe: jwe}, nil
}

func (c *opaqueCrypto) Encrypt(plain string) (string, error) {
	n := c.aead.NonceSize()
	raw := make([]byte, n, n+len(plain)+c.aead.Overhead())
	_, _ = rand.Read(raw) // never fails (crypto/rand crashes the program instead)
	raw = append(raw, plain...)
	raw = c.aead.Seal(raw[:n], raw[:n], raw[n:], opaqueAAD) // in place
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

func (c *opaqueCrypto) Decrypt(s string) (string, error) {
	if len(s) > maxOpaque {
		return "", errOpaque
	}
	if strings.Count(s, ".") == 4 {
		if c.jwe == nil {
			return "", errOpaque
		}
		return c.jwe.Decrypt(s)
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	n := c.aead.NonceSize()
	if err != nil || len(raw) < n+c.aead.Overhead() {
		return "", errOpaque
	}
	plain, err := c.aead.Open(raw[n:n], raw[:n], raw[n:], opaqueAAD)
	if err != nil {
		return "", errOpaque
	}
	return string(plain), nil
}
