// Package signing holds the token-signing keys: generated once and kept in Redis sealed by
// the server secret (so every instance publishes one JWKS), or loaded from a folder of PEM/JWK
// files (NEMIDP_SIGNING_KEYS).
package signing

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Key is one private signing key with its id and algorithm.
type Key struct {
	KID  string
	Alg  jose.SignatureAlgorithm
	Priv crypto.Signer
}

// ID implements op.SigningKey and op.Key.
func (k *Key) ID() string { return k.KID }

// SignatureAlgorithm implements op.SigningKey.
func (k *Key) SignatureAlgorithm() jose.SignatureAlgorithm { return k.Alg }

// Key implements op.SigningKey: the private key.
func (k *Key) Key() any { return k.Priv }

// Public is the key as published in the JWKS.
func (k *Key) Public() *PublicKey { return &PublicKey{k} }

// PublicKey implements op.Key for the JWKS.
type PublicKey struct{ k *Key }

// ID implements op.Key.
func (p *PublicKey) ID() string { return p.k.KID }

// Algorithm implements op.Key.
func (p *PublicKey) Algorithm() jose.SignatureAlgorithm { return p.k.Alg }

// Use implements op.Key.
func (p *PublicKey) Use() string { return "sig" }

// Key implements op.Key.
func (p *PublicKey) Key() any { return p.k.Priv.Public() }

// Set is the keys in use: the first ES256 key signs by default.
type Set struct {
	Keys []*Key
}

// Default returns the key that signs unless a client asked for another algorithm.
func (s *Set) Default() *Key { return s.Keys[0] }

// ByAlg returns the first key of an algorithm.
func (s *Set) ByAlg(alg jose.SignatureAlgorithm) (*Key, bool) {
	for _, k := range s.Keys {
		if k.Alg == alg {
			return k, true
		}
	}
	return nil, false
}

// Algorithms lists the algorithms the set can sign with.
func (s *Set) Algorithms() []jose.SignatureAlgorithm {
	var out []jose.SignatureAlgorithm
	for _, k := range s.Keys {
		out = append(out, k.Alg)
	}
	return out
}

// GenerateRSA makes a fresh RS256 key (2048 bits) for clients that cannot verify ES256.
func GenerateRSA() (*Key, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("signing: generate rsa: %w", err)
	}
	return newKey(priv)
}

// Generate makes a fresh ES256 key.
func Generate() (*Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("signing: generate: %w", err)
	}
	return newKey(priv)
}

func newKey(priv crypto.Signer) (*Key, error) {
	var alg jose.SignatureAlgorithm
	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		if p.Curve != elliptic.P256() {
			return nil, errors.New("signing: only P-256 EC keys (ES256) are supported")
		}
		alg = jose.ES256
	case *rsa.PrivateKey:
		if p.N.BitLen() < 2048 {
			return nil, errors.New("signing: RSA keys must have at least 2048 bits")
		}
		alg = jose.RS256
	default:
		return nil, fmt.Errorf("signing: unsupported key type %T", priv)
	}
	jwk := jose.JSONWebKey{Key: priv.Public()}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing: thumbprint: %w", err)
	}
	return &Key{KID: fmt.Sprintf("%x", tp[:12]), Alg: alg, Priv: priv}, nil
}

// Marshal encodes a set as a JSON array of private JWKs (to be sealed before storing).
func Marshal(s *Set) ([]byte, error) {
	var jwks []jose.JSONWebKey
	for _, k := range s.Keys {
		jwks = append(jwks, jose.JSONWebKey{Key: k.Priv, KeyID: k.KID, Algorithm: string(k.Alg), Use: "sig"})
	}
	return json.Marshal(jwks)
}

// Unmarshal decodes Marshal's output.
func Unmarshal(raw []byte) (*Set, error) {
	var jwks []jose.JSONWebKey
	if err := json.Unmarshal(raw, &jwks); err != nil {
		return nil, fmt.Errorf("signing: decode key set: %w", err)
	}
	s := &Set{}
	for _, j := range jwks {
		k, err := fromJWK(j)
		if err != nil {
			return nil, err
		}
		s.Keys = append(s.Keys, k)
	}
	if len(s.Keys) == 0 {
		return nil, errors.New("signing: empty key set")
	}
	return s, nil
}

func fromJWK(j jose.JSONWebKey) (*Key, error) {
	priv, ok := j.Key.(crypto.Signer)
	if !ok || j.IsPublic() {
		return nil, fmt.Errorf("signing: key %q is not a private key", j.KeyID)
	}
	k, err := newKey(priv)
	if err != nil {
		return nil, err
	}
	if j.KeyID != "" {
		k.KID = j.KeyID
	}
	return k, nil
}

// LoadDir loads every *.pem and *.json (JWK) private key in dir. ES256 keys come first, so
// the default signer is ES256 whenever one is present.
func LoadDir(dir string) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("signing: read %s: %w", dir, err)
	}
	s := &Set{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		var k *Key
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".pem", ".key":
			k, err = loadPEM(path)
		case ".json", ".jwk":
			k, err = loadJWK(path)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s.Keys = append(s.Keys, k)
	}
	if len(s.Keys) == 0 {
		return nil, fmt.Errorf("signing: no .pem or .json keys in %s", dir)
	}
	sort.SliceStable(s.Keys, func(i, j int) bool { return s.Keys[i].Alg == jose.ES256 && s.Keys[j].Alg != jose.ES256 })
	return s, nil
}

func loadPEM(path string) (*Key, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("signing: %s: no PEM block", path)
	}
	var priv any
	switch block.Type {
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		priv, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("signing: %s: %w", path, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing: %s: not a signing key", path)
	}
	k, err := newKey(signer)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return k, nil
}

func loadJWK(path string) (*Key, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	var j jose.JSONWebKey
	if err := j.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("signing: %s: %w", path, err)
	}
	return fromJWK(j)
}

// MetaStore is where a generated key set is kept (idp/store implements it).
type MetaStore interface {
	// Meta returns a stored value; found is false when there is none.
	Meta(ctx context.Context, name string) (value []byte, found bool, err error)
	GetOrCreateMeta(ctx context.Context, name string, value []byte) ([]byte, bool, error)
}

// Sealer seals and opens the stored key set (keys/secret implements it).
type Sealer interface {
	Seal(purpose string, plain []byte) ([]byte, error)
	Open(purpose string, sealed []byte) ([]byte, error)
}

// Shared returns the key set kept in the store — an ES256 key that signs by default and an
// RS256 key for clients registered for it — generating it on the very first start. Concurrent
// first starts agree on one set: the store keeps the first one written.
func Shared(ctx context.Context, ms MetaStore, sealer Sealer) (set *Set, created bool, err error) {
	// Read first: every start but the very first finds the set, and key generation (RSA
	// above all) is not free.
	if stored, found, err := ms.Meta(ctx, "signing-keys"); err != nil {
		return nil, false, fmt.Errorf("signing: shared keys: %w", err)
	} else if found {
		plain, err := sealer.Open("signing-keys", stored)
		if err != nil {
			return nil, false, fmt.Errorf("signing: shared keys: %w", err)
		}
		set, err := Unmarshal(plain)
		return set, false, err
	}
	k, err := Generate()
	if err != nil {
		return nil, false, err
	}
	rk, err := GenerateRSA()
	if err != nil {
		return nil, false, err
	}
	plain, err := Marshal(&Set{Keys: []*Key{k, rk}})
	if err != nil {
		return nil, false, err
	}
	sealed, err := sealer.Seal("signing-keys", plain)
	if err != nil {
		return nil, false, err
	}
	stored, created, err := ms.GetOrCreateMeta(ctx, "signing-keys", sealed)
	if err != nil {
		return nil, false, fmt.Errorf("signing: shared keys: %w", err)
	}
	plain, err = sealer.Open("signing-keys", stored)
	if err != nil {
		return nil, false, fmt.Errorf("signing: shared keys: %w", err)
	}
	set, err = Unmarshal(plain)
	return set, created, err
}
