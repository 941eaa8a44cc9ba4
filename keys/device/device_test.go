package device

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestJWKRoundTrip(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(JWKOf(&k.PublicKey))
	pub, j, err := ParseJWK(raw)
	if err != nil {
		t.Fatalf("ParseJWK(JWKOf(key)): %v", err)
	}
	if !pub.Equal(&k.PublicKey) || j.Thumbprint() == "" {
		t.Fatal("the parsed key is not the device's")
	}
	// A device JWT signed by the key verifies with the parsed public key.
	now := time.Now()
	tok, err := Sign(k, "dev", "aud", now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(tok, pub, "dev", "aud", now); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	// A point off the curve, a private member and another curve are refused.
	off := j
	y, _ := base64.RawURLEncoding.DecodeString(j.Y)
	y[31] ^= 1
	off.Y = base64.RawURLEncoding.EncodeToString(y)
	withD := map[string]string{"kty": "EC", "crv": "P-256", "x": j.X, "y": j.Y, "d": "AAAA"}
	other := j
	other.Crv = "P-384"
	for name, v := range map[string]any{"off the curve": off, "private member": withD, "other curve": other} {
		raw, _ := json.Marshal(v)
		if _, _, err := ParseJWK(raw); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("%s: ParseJWK = %v, want ErrInvalidKey", name, err)
		}
	}
}
