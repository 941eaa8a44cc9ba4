// Package device holds what the IdP and a key-app device share about the device key: the EC
// P-256 public key as a JWK, the device JWT every device call carries, and the signed decision
// over one approval request. Both sides use it: the server verifies, cmd/keyapp and tests sign.
package device

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxLifetime is the longest a device JWT may live (exp − iat).
const MaxLifetime = 2 * time.Minute

// Skew is how far a device's clock may run ahead of ours.
const Skew = 30 * time.Second

// Decisions.
const (
	Approve = "approve"
	Deny    = "deny"
)

// ErrInvalidKey: the public key is not an EC P-256 JWK with a point on the curve.
var ErrInvalidKey = errors.New("device: not an EC P-256 public JWK")

// ErrLifetime: a device JWT whose exp is more than MaxLifetime after its iat.
var ErrLifetime = errors.New("device: token lifetime too long")

// ErrInvalidToken: a device JWT or decision that does not verify, or breaks a rule.
var ErrInvalidToken = errors.New("device: invalid token")

// JWK is the public key as the device sends it (RFC 7517, kty EC, crv P-256).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// ParseJWK checks a public JWK and returns the key. Private members ("d") are refused: a
// device that sends its private key has leaked it.
func ParseJWK(raw json.RawMessage) (*ecdsa.PublicKey, JWK, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, JWK{}, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	if _, ok := m["d"]; ok {
		return nil, JWK{}, fmt.Errorf("%w: it holds the private key", ErrInvalidKey)
	}
	var j JWK
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, JWK{}, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	if j.Kty != "EC" || j.Crv != "P-256" {
		return nil, JWK{}, fmt.Errorf("%w: kty %q crv %q", ErrInvalidKey, j.Kty, j.Crv)
	}
	pub, err := j.Public()
	if err != nil {
		return nil, JWK{}, err
	}
	return pub, j, nil
}

// Public returns the key of a JWK already checked (as stored).
func (j JWK) Public() (*ecdsa.PublicKey, error) {
	x, errX := base64.RawURLEncoding.DecodeString(j.X)
	y, errY := base64.RawURLEncoding.DecodeString(j.Y)
	// The decoder skips line breaks and ignores the unused bits of the last character, so a
	// key has several spellings; only its canonical one (as JWKOf writes it) is accepted, so
	// that the stored JWK and its Thumbprint name the key.
	if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 ||
		base64.RawURLEncoding.EncodeToString(x) != j.X || base64.RawURLEncoding.EncodeToString(y) != j.Y {
		return nil, fmt.Errorf("%w: x and y must be 32 bytes, base64url", ErrInvalidKey)
	}
	// The uncompressed point form; parsing it checks the point is on the curve.
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		return nil, fmt.Errorf("%w: point not on the curve", ErrInvalidKey)
	}
	return pub, nil
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of the key, base64url.
func (j JWK) Thumbprint() string {
	// Members in lexicographic order, no whitespace (RFC 7638 §3).
	s := `{"crv":"` + j.Crv + `","kty":"` + j.Kty + `","x":"` + j.X + `","y":"` + j.Y + `"}`
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// JWKOf is the public JWK of a P-256 key (the device side); the zero JWK, which ParseJWK
// refuses, for any other.
func JWKOf(pub *ecdsa.PublicKey) JWK {
	b, err := pub.Bytes() // 0x04 || x || y
	if err != nil || len(b) != 65 {
		return JWK{}
	}
	return JWK{Kty: "EC", Crv: "P-256", X: base64.RawURLEncoding.EncodeToString(b[1:33]), Y: base64.RawURLEncoding.EncodeToString(b[33:])}
}

// GenerateKey makes a device key.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("device: generate key: %w", err)
	}
	return k, nil
}

// EncodePrivate and DecodePrivate keep a device key as PEM (PKCS #8).
func EncodePrivate(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("device: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// DecodePrivate reads a key written by EncodePrivate.
func DecodePrivate(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("device: key file holds no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("device: decode key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("device: key file holds no EC P-256 key")
	}
	return ek, nil
}

// Claims of a device JWT.
type Claims struct {
	jwt.RegisteredClaims
}

// Sign makes a device JWT for one call (the device side).
func Sign(k *ecdsa.PrivateKey, deviceID, audience string, now time.Time) (string, error) {
	c := jwt.RegisteredClaims{
		Issuer: deviceID, Audience: jwt.ClaimStrings{audience}, IssuedAt: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)), ID: randomID(),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(k)
	if err != nil {
		return "", fmt.Errorf("device: sign: %w", err)
	}
	return s, nil
}

// Unverified is what a device JWT claims before its signature is checked: enough to find the
// key that must have signed it and to mark its jti in the same round trip.
type Unverified struct {
	Issuer string
	ID     string
	Expiry time.Time
}

// Peek reads the unverified iss, jti and exp of a device JWT.
func Peek(token string) (Unverified, error) {
	var c jwt.RegisteredClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		return Unverified{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.Issuer == "" {
		return Unverified{}, fmt.Errorf("%w: no iss", ErrInvalidToken)
	}
	u := Unverified{Issuer: c.Issuer, ID: c.ID}
	if c.ExpiresAt != nil {
		u.Expiry = c.ExpiresAt.Time
	}
	return u, nil
}

// Verify checks a device JWT: ES256 by pub, iss = deviceID, aud = audience, an iat not in the
// future (beyond Skew), an exp not passed (by our clock, no Skew) and at most MaxLifetime after
// iat, and a jti. It returns the claims; the caller refuses a jti it has seen (until exp).
func Verify(token string, pub *ecdsa.PublicKey, deviceID, audience string, now time.Time) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuer(deviceID), jwt.WithAudience(audience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(Skew), jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	// The leeway is for a device clock running ahead (iat, nbf); exp is judged by our clock
	// alone, so a caller that remembers a jti until exp refuses every replay.
	if !now.Before(c.ExpiresAt.Time) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenExpired)
	}
	if c.IssuedAt == nil || c.ID == "" || len(c.ID) > 128 {
		return nil, fmt.Errorf("%w: iat and a jti of at most 128 characters are required", ErrInvalidToken)
	}
	if c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxLifetime {
		return nil, fmt.Errorf("%w: %w: lives longer than %s", ErrInvalidToken, ErrLifetime, MaxLifetime)
	}
	return &c, nil
}

// Decision is what the device signs over one approval request.
type Decision struct {
	RequestID   string `json:"request_id"`
	Decision    string `json:"decision"`
	BindingCode string `json:"binding_code"`
	jwt.RegisteredClaims
}

// SignDecision makes the compact JWS of a decision (the device side).
func SignDecision(k *ecdsa.PrivateKey, requestID, decision, code string, now time.Time) (string, error) {
	d := Decision{RequestID: requestID, Decision: decision, BindingCode: code,
		RegisteredClaims: jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(now), ID: randomID()}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, d).SignedString(k)
	if err != nil {
		return "", fmt.Errorf("device: sign decision: %w", err)
	}
	return s, nil
}

// VerifyDecision checks a decision JWS by pub over requestID, signed no earlier than
// MaxLifetime ago and not in the future.
func VerifyDecision(jws string, pub *ecdsa.PublicKey, requestID string, now time.Time) (*Decision, error) {
	var d Decision
	_, err := jwt.ParseWithClaims(jws, &d, func(*jwt.Token) (any, error) { return pub, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithIssuedAt(), jwt.WithLeeway(Skew),
		jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		return nil, fmt.Errorf("%w: decision: %w", ErrInvalidToken, err)
	}
	switch {
	case d.RequestID != requestID:
		return nil, fmt.Errorf("%w: decision is over another request", ErrInvalidToken)
	case d.Decision != Approve && d.Decision != Deny:
		return nil, fmt.Errorf("%w: decision must be %q or %q", ErrInvalidToken, Approve, Deny)
	case d.IssuedAt == nil || now.Sub(d.IssuedAt.Time) > MaxLifetime:
		return nil, fmt.Errorf("%w: decision iat missing or older than %s", ErrInvalidToken, MaxLifetime)
	case d.ID == "" || len(d.ID) > 128:
		return nil, fmt.Errorf("%w: decision needs a jti of at most 128 characters", ErrInvalidToken)
	}
	return &d, nil
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
