package device

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

const (
	testDevice   = "123456789.AAAAAAAAAAAAAAAAAAAAAA"
	testAudience = "https://idp.example/keyapp"
)

// testNow is the verifier's clock in these tests (whole seconds: JWT times are).
var testNow = time.Unix(1_750_000_000, 0)

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// coords are the 32-byte x and y of a P-256 key.
func coords(t testing.TB, pub *ecdsa.PublicKey) (x, y []byte) {
	t.Helper()
	b, err := pub.Bytes()
	if err != nil || len(b) != 65 {
		t.Fatalf("public key bytes: %d, %v", len(b), err)
	}
	return b[1:33], b[33:]
}

func privBytes(t testing.TB, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	b, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jwkJSON(t testing.TB, m map[string]any) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// ---- JWKs ----

func TestParseJWK(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	good := JWKOf(&k.PublicKey)
	x, y := coords(t, &k.PublicKey)
	// (x, y+1) is not on the curve (for a random point, with overwhelming probability
	// y+1 is not the other root either: that is p − y).
	offY := new(big.Int).Add(new(big.Int).SetBytes(y), big.NewInt(1))
	var off [32]byte
	offY.Mod(offY, elliptic.P256().Params().P).FillBytes(off[:])
	// The field prime itself as x: out of range, never a coordinate.
	var p [32]byte
	elliptic.P256().Params().P.FillBytes(p[:])
	// x with its unused trailing bits set: it decodes to the same 32 bytes in lenient base64,
	// but is another spelling of the key (and would give it another thumbprint).
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	lastX := good.X[:42] + string(alphabet[strings.IndexByte(alphabet, good.X[42])^1])

	tests := []struct {
		name string
		raw  string
		ok   bool
	}{
		{"good", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": good.X, "y": good.Y})), true},
		{"good with use and kid", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": good.X, "y": good.Y, "use": "sig", "kid": "phone"})), true},
		{"kty RSA", string(jwkJSON(t, map[string]any{"kty": "RSA", "crv": "P-256", "x": good.X, "y": good.Y})), false},
		{"kty OKP", string(jwkJSON(t, map[string]any{"kty": "OKP", "crv": "Ed25519", "x": good.X})), false},
		{"crv P-384", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-384", "x": good.X, "y": good.Y})), false},
		{"crv lower case", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "p-256", "x": good.X, "y": good.Y})), false},
		{"no kty", string(jwkJSON(t, map[string]any{"crv": "P-256", "x": good.X, "y": good.Y})), false},
		{"point off the curve", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": good.X, "y": b64(off[:])})), false},
		{"x is the field prime", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": b64(p[:]), "y": good.Y})), false},
		{"zero point", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": b64(make([]byte, 32)), "y": b64(make([]byte, 32))})), false},
		{"short x", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": b64(x[1:]), "y": good.Y})), false},
		{"short y", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": good.X, "y": b64(y[:31])})), false},
		{"long x", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": b64(append([]byte{0}, x...)), "y": good.Y})), false},
		{"empty x", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": "", "y": good.Y})), false},
		{"no y", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": good.X})), false},
		{"bad base64", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": good.X[:40] + "!!!", "y": good.Y})), false},
		{"padded base64", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": good.X + "=", "y": good.Y})), false},
		{"standard base64", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": base64.StdEncoding.EncodeToString(x), "y": good.Y})), false},
		{"newline in x", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": good.X[:20] + "\n" + good.X[20:], "y": good.Y})), false},
		{"x with trailing bits set", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": lastX, "y": good.Y})), false},
		{"x a number", `{"kty":"EC","crv":"P-256","x":1,"y":"` + good.Y + `"}`, false},
		{"private key d", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": good.X, "y": good.Y, "d": b64(privBytes(t, k))})), false},
		{"private key d null", `{"kty":"EC","crv":"P-256","x":"` + good.X + `","y":"` + good.Y + `","d":null}`, false},
		{"not JSON", `kty=EC`, false},
		{"JSON array", `[]`, false},
		{"JSON string", `"EC"`, false},
		{"JSON null", `null`, false},
		{"empty", ``, false},
		{"truncated", string(jwkJSON(t, map[string]any{"kty": "EC", "crv": "P-256", "x": good.X, "y": good.Y}))[:50], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pub, j, err := ParseJWK(json.RawMessage(tt.raw))
			if !tt.ok {
				if err == nil {
					t.Fatalf("ParseJWK(%s) accepted the key", tt.raw)
				}
				if !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("ParseJWK(%s): err = %v, want ErrInvalidKey", tt.raw, err)
				}
				if pub != nil || j != (JWK{}) {
					t.Fatalf("ParseJWK refused the key but returned %v, %+v", pub, j)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseJWK(%s): %v", tt.raw, err)
			}
			if !pub.Equal(&k.PublicKey) {
				t.Fatal("ParseJWK returned another key")
			}
			if j != good {
				t.Fatalf("ParseJWK JWK = %+v, want %+v", j, good)
			}
		})
	}
}

// TestJWKRoundTrip: JWKOf and Public are inverse, and ParseJWK of JWKOf's JSON gives the key
// back, for keys whose coordinates have leading zero bytes too.
func TestJWKRoundTrip(t *testing.T) {
	t.Parallel()
	short := 0
	for i := 0; i < 200 || short == 0; i++ {
		k := newKey(t)
		if x, y := coords(t, &k.PublicKey); x[0] == 0 || y[0] == 0 {
			short++
		}
		j := JWKOf(&k.PublicKey)
		if len(j.X) != 43 || len(j.Y) != 43 {
			t.Fatalf("JWKOf coordinates %q %q, want 43 base64url characters each", j.X, j.Y)
		}
		pub, err := j.Public()
		if err != nil {
			t.Fatalf("Public(JWKOf(k)): %v", err)
		}
		if !pub.Equal(&k.PublicKey) {
			t.Fatal("Public(JWKOf(k)) is another key")
		}
		if JWKOf(pub) != j {
			t.Fatal("JWKOf(Public(j)) != j")
		}
		raw, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		pub2, j2, err := ParseJWK(raw)
		if err != nil || !pub2.Equal(&k.PublicKey) || j2 != j {
			t.Fatalf("ParseJWK(%s) = %+v, %v", raw, j2, err)
		}
		if i > 10_000 {
			t.Fatal("no key with a short coordinate in 10000 draws")
		}
	}
	// Not a P-256 key: the zero JWK, which ParseJWK refuses (and no panic).
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if j := JWKOf(&p384.PublicKey); j != (JWK{}) {
		t.Fatalf("JWKOf(P-384 key) = %+v, want the zero JWK", j)
	}
}

// TestThumbprint: RFC 7638's own example (§3.1) is an RSA key, so the EC thumbprint is checked
// against an independent implementation (go-jose) and the RFC's recipe spelled out: the
// required members in lexicographic order, no whitespace, SHA-256, base64url.
func TestThumbprint(t *testing.T) {
	t.Parallel()
	// The example of RFC 9449 §6.1 (DPoP), an EC P-256 key and its RFC 7638 thumbprint.
	rfc := JWK{Kty: "EC", Crv: "P-256", X: "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs", Y: "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}
	if got, want := rfc.Thumbprint(), "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"; got != want {
		t.Errorf("RFC 9449 example thumbprint = %s, want %s", got, want)
	}

	seen := map[string]bool{}
	for range 20 {
		k := newKey(t)
		j := JWKOf(&k.PublicKey)
		tp := j.Thumbprint()
		if tp != j.Thumbprint() {
			t.Fatal("Thumbprint is not stable")
		}
		if seen[tp] {
			t.Fatal("two keys share a thumbprint")
		}
		seen[tp] = true
		pub, err := j.Public()
		if err != nil {
			t.Fatal(err)
		}
		if JWKOf(pub).Thumbprint() != tp {
			t.Fatal("Thumbprint changed through Public and JWKOf")
		}
		// go-jose's RFC 7638 thumbprint.
		ref, err := (&jose.JSONWebKey{Key: &k.PublicKey}).Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if b64(ref) != tp {
			t.Fatalf("Thumbprint = %s, go-jose says %s", tp, b64(ref))
		}
		// The recipe by hand (encoding/json sorts map keys and adds no whitespace).
		canon, _ := json.Marshal(map[string]string{"kty": "EC", "crv": "P-256", "x": j.X, "y": j.Y})
		sum := sha256.Sum256(canon)
		if b64(sum[:]) != tp {
			t.Fatalf("Thumbprint = %s, RFC 7638 recipe gives %s", tp, b64(sum[:]))
		}
		// Members beyond the required ones do not change it.
		raw, _ := json.Marshal(map[string]any{"kty": "EC", "crv": "P-256", "x": j.X, "y": j.Y, "kid": "a", "use": "sig"})
		_, pj, err := ParseJWK(raw)
		if err != nil || pj.Thumbprint() != tp {
			t.Fatalf("ParseJWK with extra members: thumbprint %s, %v; want %s", pj.Thumbprint(), err, tp)
		}
	}
}

// ---- device keys as PEM ----

func TestPrivatePEM(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	enc, err := EncodePrivate(k)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(enc, []byte("-----BEGIN PRIVATE KEY-----\n")) {
		t.Fatalf("EncodePrivate = %q, want a PKCS #8 PEM block", enc)
	}
	got, err := DecodePrivate(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(k) {
		t.Fatal("DecodePrivate(EncodePrivate(k)) is another key")
	}
	// A token signed by the decoded key verifies with the original public key.
	tok, err := Sign(got, testDevice, testAudience, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(tok, &k.PublicKey, testDevice, testAudience, testNow); err != nil {
		t.Fatalf("token of the decoded key: %v", err)
	}

	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der384, _ := x509.MarshalPKCS8PrivateKey(p384)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	derRSA, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	derEC, _ := x509.MarshalECPrivateKey(k) // SEC 1, not PKCS #8
	for name, b := range map[string][]byte{
		"empty":     nil,
		"no PEM":    []byte("not a key"),
		"P-384":     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der384}),
		"RSA":       pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: derRSA}),
		"SEC 1":     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: derEC}),
		"truncated": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der384[:20]}),
	} {
		if got, err := DecodePrivate(b); err == nil {
			t.Errorf("DecodePrivate(%s) = %v, want an error", name, got)
		}
	}
}

// ---- device JWTs ----

func signMap(t testing.TB, k *ecdsa.PrivateKey, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claims is a valid device JWT's claims at testNow, with changes applied (a nil value deletes
// the claim).
func claims(change map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{"iss": testDevice, "aud": testAudience, "iat": testNow.Unix(), "exp": testNow.Add(time.Minute).Unix(), "jti": "jti-1"}
	for k, v := range change {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	tok, err := Sign(k, testDevice, testAudience, testNow)
	if err != nil {
		t.Fatal(err)
	}
	u, err := Peek(tok)
	if err != nil || u.Issuer != testDevice || u.ID == "" || !u.Expiry.Equal(testNow.Add(time.Minute).Truncate(time.Second)) {
		t.Fatalf("Peek = %+v, %v; want iss %q, a jti and exp a minute on", u, err, testDevice)
	}
	for _, now := range []time.Time{testNow, testNow.Add(-Skew), testNow.Add(time.Minute - time.Second)} {
		c, err := Verify(tok, &k.PublicKey, testDevice, testAudience, now)
		if err != nil {
			t.Fatalf("Verify at %v: %v", now.Sub(testNow), err)
		}
		if c.Issuer != testDevice || c.ID == "" || !c.IssuedAt.Equal(testNow) || c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxLifetime {
			t.Fatalf("claims %+v", c)
		}
	}
	other, err := Sign(k, testDevice, testAudience, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if c1, _ := Verify(tok, &k.PublicKey, testDevice, testAudience, testNow); c1 == nil {
		t.Fatal("no claims")
	} else if c2, _ := Verify(other, &k.PublicKey, testDevice, testAudience, testNow); c2 == nil || c1.ID == c2.ID {
		t.Fatal("two tokens share a jti")
	}

	// Limits that are still inside the rules.
	for name, change := range map[string]map[string]any{
		"lifetime exactly MaxLifetime": {"exp": testNow.Add(MaxLifetime).Unix()},
		"iat ahead within Skew":        {"iat": testNow.Add(Skew).Unix(), "exp": testNow.Add(Skew + time.Minute).Unix()},
		"aud as an array":              {"aud": []string{"other", testAudience}},
		"jti of 128 characters":        {"jti": strings.Repeat("j", 128)},
	} {
		tok := signMap(t, k, claims(change))
		if _, err := Verify(tok, &k.PublicKey, testDevice, testAudience, testNow); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	t.Parallel()
	k, other := newKey(t), newKey(t)
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	jwkRaw, _ := json.Marshal(JWKOf(&k.PublicKey))
	hs := func(key []byte) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil)).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	good := signMap(t, k, claims(nil))
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + b64([]byte(`{"iss":"`+testDevice+`","aud":"`+testAudience+`","iat":1750000000,"exp":1750000060,"jti":"jti-2"}`)) + "." + parts[2]
	es384 := func() string {
		p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		s, err := jwt.NewWithClaims(jwt.SigningMethodES384, claims(nil)).SignedString(p384)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()

	tests := []struct {
		name     string
		token    string
		lifetime bool // errors.Is(err, ErrLifetime) too
	}{
		{"forged (another key)", signMap(t, other, claims(nil)), false},
		{"tampered payload", tampered, false},
		{"signature stripped", parts[0] + "." + parts[1] + ".", false},
		{"HS256 keyed with the public key (DER)", hs(pubDER), false},
		{"HS256 keyed with the public key (PEM)", hs(pubPEM), false},
		{"HS256 keyed with the public JWK", hs(jwkRaw), false},
		{"alg none", none, false},
		{"ES384", es384, false},
		{"wrong iss", signMap(t, k, claims(map[string]any{"iss": "123456789.BBBBBBBBBBBBBBBBBBBBBB"})), false},
		{"no iss", signMap(t, k, claims(map[string]any{"iss": nil})), false},
		{"wrong aud", signMap(t, k, claims(map[string]any{"aud": "https://other.example/keyapp"})), false},
		{"no aud", signMap(t, k, claims(map[string]any{"aud": nil})), false},
		{"expired long ago", signMap(t, k, claims(map[string]any{"iat": testNow.Add(-10 * time.Minute).Unix(), "exp": testNow.Add(-9 * time.Minute).Unix()})), false},
		{"expired a second ago", signMap(t, k, claims(map[string]any{"iat": testNow.Add(-61 * time.Second).Unix(), "exp": testNow.Add(-time.Second).Unix()})), false},
		{"expires now", signMap(t, k, claims(map[string]any{"iat": testNow.Add(-time.Minute).Unix(), "exp": testNow.Unix()})), false},
		{"iat in the future beyond skew", signMap(t, k, claims(map[string]any{"iat": testNow.Add(Skew + time.Second).Unix(), "exp": testNow.Add(Skew + time.Minute).Unix()})), false},
		{"lives longer than MaxLifetime", signMap(t, k, claims(map[string]any{"exp": testNow.Add(MaxLifetime + time.Second).Unix()})), true},
		{"lives a day", signMap(t, k, claims(map[string]any{"exp": testNow.Add(24 * time.Hour).Unix()})), true},
		{"no exp", signMap(t, k, claims(map[string]any{"exp": nil})), false},
		{"exp a string", signMap(t, k, claims(map[string]any{"exp": "tomorrow"})), false},
		{"no iat", signMap(t, k, claims(map[string]any{"iat": nil})), false},
		{"no jti", signMap(t, k, claims(map[string]any{"jti": nil})), false},
		{"empty jti", signMap(t, k, claims(map[string]any{"jti": ""})), false},
		{"jti too long", signMap(t, k, claims(map[string]any{"jti": strings.Repeat("j", 129)})), false},
		{"not yet valid (nbf)", signMap(t, k, claims(map[string]any{"nbf": testNow.Add(time.Minute).Unix()})), false},
		{"garbage", "not.a.token", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Verify(tt.token, &k.PublicKey, testDevice, testAudience, testNow)
			if err == nil {
				t.Fatalf("Verify accepted it: %+v", c)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
			if tt.lifetime != errors.Is(err, ErrLifetime) {
				t.Fatalf("err = %v; errors.Is(ErrLifetime) = %v, want %v", err, !tt.lifetime, tt.lifetime)
			}
			if c != nil {
				t.Fatalf("claims returned with an error: %+v", c)
			}
		})
	}
}

// TestVerifyExpiryAndJTIWindow: a device JWT is accepted only until its exp (the verifier's
// clock), so a caller that remembers a jti until exp refuses every replay.
func TestVerifyExpiryAndJTIWindow(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	tok, err := Sign(k, testDevice, testAudience, testNow)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Verify(tok, &k.PublicKey, testDevice, testAudience, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{0, time.Second, Skew / 2} {
		at := c.ExpiresAt.Add(d)
		if _, err := Verify(tok, &k.PublicKey, testDevice, testAudience, at); err == nil {
			t.Fatalf("accepted %s after its exp, when its jti may be forgotten", d)
		}
	}
}

func TestPeek(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	for name, tok := range map[string]string{
		"no iss":   signMap(t, k, claims(map[string]any{"iss": nil})),
		"empty":    "",
		"garbage":  "a.b.c",
		"two dots": "..",
	} {
		if u, err := Peek(tok); err == nil || !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Peek(%s) = %+v, %v; want ErrInvalidToken", name, u, err)
		}
	}
	// Peek does not verify: a forged token names its iss all the same (Verify refuses it).
	if u, err := Peek(signMap(t, newKey(t), claims(nil))); err != nil || u.Issuer != testDevice {
		t.Errorf("Peek(forged) = %+v, %v", u, err)
	}
}

// ---- decisions ----

func decisionClaims(change map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{"request_id": "req-1", "decision": Approve, "binding_code": "47", "iat": testNow.Unix(), "jti": "d-1"}
	for k, v := range change {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func TestDecision(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	for _, dec := range []string{Approve, Deny} {
		jws, err := SignDecision(k, "req-1", dec, "47", testNow)
		if err != nil {
			t.Fatal(err)
		}
		for _, now := range []time.Time{testNow, testNow.Add(MaxLifetime), testNow.Add(-Skew)} {
			d, err := VerifyDecision(jws, &k.PublicKey, "req-1", now)
			if err != nil {
				t.Fatalf("VerifyDecision(%s) at %s: %v", dec, now.Sub(testNow), err)
			}
			if d.RequestID != "req-1" || d.Decision != dec || d.BindingCode != "47" || d.ID == "" {
				t.Fatalf("decision %+v", d)
			}
		}
	}
}

func TestVerifyDecisionRefusals(t *testing.T) {
	t.Parallel()
	k, other := newKey(t), newKey(t)
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, decisionClaims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	hs, err := jwt.NewWithClaims(jwt.SigningMethodHS256, decisionClaims(nil)).SignedString(pubDER)
	if err != nil {
		t.Fatal(err)
	}
	otherReq, err := SignDecision(k, "req-2", Approve, "47", testNow)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, jws string }{
		{"other request id", otherReq},
		{"no request id", signMap(t, k, decisionClaims(map[string]any{"request_id": nil}))},
		{"bad decision value", signMap(t, k, decisionClaims(map[string]any{"decision": "maybe"}))},
		{"decision in capitals", signMap(t, k, decisionClaims(map[string]any{"decision": "APPROVE"}))},
		{"no decision", signMap(t, k, decisionClaims(map[string]any{"decision": nil}))},
		{"iat too old", signMap(t, k, decisionClaims(map[string]any{"iat": testNow.Add(-MaxLifetime - time.Second).Unix()}))},
		{"iat in the future beyond skew", signMap(t, k, decisionClaims(map[string]any{"iat": testNow.Add(Skew + time.Second).Unix()}))},
		{"no iat", signMap(t, k, decisionClaims(map[string]any{"iat": nil}))},
		{"signed by another key", signMap(t, other, decisionClaims(nil))},
		{"missing jti", signMap(t, k, decisionClaims(map[string]any{"jti": nil}))},
		{"jti too long", signMap(t, k, decisionClaims(map[string]any{"jti": strings.Repeat("j", 129)}))},
		{"expired (exp)", signMap(t, k, decisionClaims(map[string]any{"exp": testNow.Add(-time.Minute).Unix()}))},
		{"alg none", none},
		{"HS256 keyed with the public key", hs},
		{"garbage", "x.y.z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := VerifyDecision(tt.jws, &k.PublicKey, "req-1", testNow)
			if err == nil {
				t.Fatalf("VerifyDecision accepted it: %+v", d)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("err = %v, want ErrInvalidToken", err)
			}
		})
	}
}

// ---- fuzzing ----

func FuzzParseJWK(f *testing.F) {
	k := newKey(f)
	j := JWKOf(&k.PublicKey)
	good, _ := json.Marshal(j)
	for _, s := range []string{
		string(good),
		`{"kty":"EC","crv":"P-256","x":"` + j.X + `","y":"` + j.Y + `","d":"AAAA"}`,
		`{"kty":"EC","crv":"P-256","x":"` + j.X + `","y":"` + j.X + `"}`,
		`{"kty":"EC","crv":"P-256","x":"` + j.X[:20] + `\n` + j.X[20:] + `","y":"` + j.Y + `"}`,
		`{"kty":"EC","crv":"P-256","x":"` + j.X + `=","y":"` + j.Y + `"}`,
		`{"kty":"EC","crv":"P-256","X":"` + j.X + `","x":"` + j.Y + `","y":"` + j.Y + `"}`,
		`{"kty":"RSA","n":"AQAB","e":"AQAB"}`,
		`{"kty":"EC","crv":"P-256","x":"","y":""}`,
		`{"kty":"EC","crv":"P-256","x":null,"y":1}`,
		`[]`, `null`, `""`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		pub, j, err := ParseJWK(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error does not wrap ErrInvalidKey: %v", err)
			}
			return
		}
		if b, err := pub.Bytes(); err != nil {
			t.Fatalf("accepted an invalid key: %v", err)
		} else if _, err := ecdh.P256().NewPublicKey(b); err != nil {
			t.Fatalf("accepted a point off the curve: %v", err)
		}
		// An accepted JWK is the key's one spelling: its thumbprint names the key.
		if canon := JWKOf(pub); canon != j || canon.Thumbprint() != j.Thumbprint() {
			t.Fatalf("accepted %q as %+v, but the key's JWK is %+v", raw, j, canon)
		}
		again, err := j.Public()
		if err != nil || !again.Equal(pub) {
			t.Fatalf("Public of the accepted JWK: %v", err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	k := newKey(f)
	tok, err := Sign(k, testDevice, testAudience, testNow)
	if err != nil {
		f.Fatal(err)
	}
	dec, err := SignDecision(k, "req-1", Approve, "47", testNow)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	for _, s := range []string{
		tok, dec, none,
		signMap(f, k, claims(map[string]any{"exp": nil})),
		signMap(f, k, claims(map[string]any{"exp": testNow.Add(time.Hour).Unix()})),
		signMap(f, k, claims(map[string]any{"iat": "now", "exp": 1e300})),
		signMap(f, k, claims(map[string]any{"aud": []any{1, nil, testAudience}})),
		parts[0] + "." + parts[1] + ".",
		parts[0] + ".." + parts[2],
		"." + parts[1] + "." + parts[2],
		parts[0] + "." + parts[1] + "." + parts[2] + ".",
		b64([]byte(`{"alg":"ES256"}`)) + "." + b64([]byte(`null`)) + "." + parts[2],
		b64([]byte(`{"alg":"ES256","crit":["x"]}`)) + "." + parts[1] + "." + parts[2],
		"", ".", "..", "a.b.c", "eyJ.eyJ.x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Verify(s, &k.PublicKey, testDevice, testAudience, testNow)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Verify error does not wrap ErrInvalidToken: %v", err)
			}
		} else {
			if c.Issuer != testDevice || c.ID == "" || c.IssuedAt == nil || c.ExpiresAt == nil ||
				c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxLifetime || !testNow.Before(c.ExpiresAt.Time) ||
				c.IssuedAt.After(testNow.Add(Skew)) {
				t.Fatalf("Verify accepted %q with claims %+v", s, c)
			}
		}
		if _, err := Peek(s); err != nil && !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("Peek error does not wrap ErrInvalidToken: %v", err)
		}
		d, err := VerifyDecision(s, &k.PublicKey, "req-1", testNow)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("VerifyDecision error does not wrap ErrInvalidToken: %v", err)
			}
			return
		}
		if d.RequestID != "req-1" || (d.Decision != Approve && d.Decision != Deny) || d.ID == "" || d.IssuedAt == nil {
			t.Fatalf("VerifyDecision accepted %q as %+v", s, d)
		}
	})
}
