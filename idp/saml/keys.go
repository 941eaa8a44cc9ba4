package saml

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/nemidp/nemidp/keys/signing"
)

// SigningKey is the key the IdP signs SAML messages with and its certificate.
type SigningKey struct {
	Signer crypto.Signer
	Cert   *x509.Certificate
}

// Keys are the SAML keys: the first RS256 key of the server's signing set signs, the other
// RS256 keys (the next one during a rollover) are published beside it.
type Keys struct {
	Current SigningKey
	Next    []*x509.Certificate
}

// ErrNoRSAKey is a signing set without an RSA key: SAML (OIOSAML 3.0) signs with rsa-sha256.
var ErrNoRSAKey = errors.New("saml: the signing keys have no RSA (RS256) key; SAML needs one")

// KeysFrom derives the SAML keys from the server's signing keys. Each certificate is made
// deterministically from its key (see Certificate), so every instance sharing the keys
// publishes the same certificates.
func KeysFrom(set *signing.Set, subject string) (*Keys, error) {
	var out *Keys
	for _, k := range set.Keys {
		if k.Alg != jose.RS256 {
			continue
		}
		cert, err := Certificate(k.Priv, subject)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = &Keys{Current: SigningKey{Signer: k.Priv, Cert: cert}}
			continue
		}
		out.Next = append(out.Next, cert)
	}
	if out == nil {
		return nil, ErrNoRSAKey
	}
	return out, nil
}

// certEpoch and certLifetime fix the certificate's validity: SAML peers trust the key in the
// metadata, not the validity period, and a fixed one keeps the certificate the same on every
// instance and after every restart.
var (
	certEpoch    = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	certLifetime = 30 * 365 * 24 * time.Hour
)

// Certificate is a self-signed certificate for an RSA key, the same bytes every time for the
// same key: its serial is a digest of the public key, its validity fixed, and an RSA
// PKCS #1 v1.5 signature is deterministic.
func Certificate(key crypto.Signer, subject string) (*x509.Certificate, error) {
	pub, ok := key.Public().(*rsa.PublicKey)
	if !ok {
		return nil, ErrNoRSAKey
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("saml: certificate: %w", err)
	}
	sum := sha256.Sum256(der)
	serial := new(big.Int).SetBytes(sum[:16]) // positive, 128 bits
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: subject},
		NotBefore:             certEpoch,
		NotAfter:              certEpoch.Add(certLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		SubjectKeyId:          sum[:20],
		SignatureAlgorithm:    x509.SHA256WithRSA,
	}
	raw, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("saml: certificate: %w", err)
	}
	return x509.ParseCertificate(raw)
}
