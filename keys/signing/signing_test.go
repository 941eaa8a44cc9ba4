package signing

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/nemidp/nemidp/keys/secret"
)

func TestMarshalRoundTrip(t *testing.T) {
	t.Parallel()
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := Marshal(&Set{Keys: []*Key{k}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Unmarshal(raw)
	if err != nil {
		t.Fatal(err)
	}
	if s.Default().KID != k.KID || s.Default().Alg != jose.ES256 {
		t.Fatalf("round trip changed the key: %s/%s", s.Default().KID, s.Default().Alg)
	}
}

func TestLoadDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ekDER, _ := x509.MarshalECPrivateKey(ek)
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a-rsa.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk))
	write("b-ec.pem", "EC PRIVATE KEY", ekDER)
	_ = os.WriteFile(filepath.Join(dir, "README"), []byte("ignored"), 0o600)
	s, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Keys) != 2 || s.Default().Alg != jose.ES256 {
		t.Fatalf("want ES256 first of 2 keys, got %v", s.Algorithms())
	}
	if _, ok := s.ByAlg(jose.RS256); !ok {
		t.Fatal("RS256 key missing")
	}
}

func TestLoadDirRefusesWeakKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ek, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(ek)
	_ = os.WriteFile(filepath.Join(dir, "p384.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	if _, err := LoadDir(dir); err == nil {
		t.Fatal("a P-384 key must be refused (ES256 only)")
	}
	if _, err := LoadDir(t.TempDir()); err == nil {
		t.Fatal("an empty folder must be refused")
	}
}

// memMeta is the store's first-writer-wins contract, in memory.
type memMeta struct {
	mu sync.Mutex
	v  map[string][]byte
}

func (m *memMeta) Meta(_ context.Context, name string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.v[name]
	return v, ok, nil
}

func (m *memMeta) GetOrCreateMeta(_ context.Context, name string, value []byte) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.v[name]; ok {
		return v, false, nil
	}
	m.v[name] = value
	return value, true, nil
}

func TestSharedAgreesAcrossInstances(t *testing.T) {
	t.Parallel()
	ms := &memMeta{v: map[string][]byte{}}
	sec := secret.Secret("0123456789abcdef0123456789abcdef")
	a, created, err := Shared(context.Background(), ms, sec)
	if err != nil || !created {
		t.Fatalf("first: created=%v err=%v", created, err)
	}
	b, created, err := Shared(context.Background(), ms, sec)
	if err != nil || created {
		t.Fatalf("second: created=%v err=%v", created, err)
	}
	if a.Default().KID != b.Default().KID {
		t.Fatal("two instances publish different keys")
	}
	if _, _, err := Shared(context.Background(), ms, secret.Secret("another-secret-0123456789abcdefgh")); err == nil {
		t.Fatal("a wrong secret must not open the stored keys")
	}
}
