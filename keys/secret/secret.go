// Package secret derives the purpose-bound keys nemidp needs from the one server secret
// (NEMIDP_SECRET), and seals small values (signing keys kept in Redis) with one of them.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// Secret is the server secret. All instances behind one issuer share it.
type Secret []byte

// Generate returns a fresh random secret, base64url-encoded as it would be configured.
func Generate() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Derive returns a 32-byte key for one purpose, so a key leaked from one use (say the card
// hashes) says nothing about another (cookie seals).
func (s Secret) Derive(purpose string) []byte {
	m := hmac.New(sha256.New, s)
	m.Write([]byte("nemidp/v1/" + purpose))
	return m.Sum(nil)
}

// Seal encrypts and authenticates plain with the key derived for purpose.
func (s Secret) Seal(purpose string, plain []byte) ([]byte, error) {
	aead, err := s.aead(purpose)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secret: seal: %w", err)
	}
	return aead.Seal(nonce, nonce, plain, []byte(purpose)), nil
}

// ErrOpen means a sealed value was not made with this secret (or was altered).
var ErrOpen = errors.New("secret: cannot open sealed value (wrong NEMIDP_SECRET?)")

// Open reverses Seal.
func (s Secret) Open(purpose string, sealed []byte) ([]byte, error) {
	aead, err := s.aead(purpose)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, ErrOpen
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(purpose))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

func (s Secret) aead(purpose string) (cipher.AEAD, error) {
	block, err := aes.NewCipher(s.Derive("seal/" + purpose))
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	return cipher.NewGCM(block)
}
