// Package codecard generates NemID printed code cards ("nøglekort") and
// hashes their keys for storage.
package codecard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
)

// KeysPerCard is the number of key pairs printed on one card.
const KeysPerCard = 148

// MinSecretLen is the shortest accepted HMAC secret; shorter secrets are
// guessable enough to make an offline dictionary over 10^6 keys cheap.
const MinSecretLen = 16

// ErrShortSecret is returned by NewHasher for a secret under MinSecretLen bytes.
var ErrShortSecret = errors.New("codecard: hash secret too short")

// Key is one pair on the card: a 4-digit key number and its 6-digit key.
type Key struct {
	Number string `json:"number"` // "0001".."9999"
	Key    string `json:"key"`    // 6 ASCII digits
}

// Card is a printed code card.
type Card struct {
	Serial string `json:"serial"` // "G" + 9 digits
	Keys   []Key  `json:"keys"`   // KeysPerCard entries, sorted by Number
}

var (
	serialSpace = big.NewInt(1_000_000_000) // 9 digits
	numberSpace = big.NewInt(9999)          // 0001..9999
	keySpace    = big.NewInt(1_000_000)     // 6 digits
)

// Generate makes a card from crypto/rand: a random serial, KeysPerCard
// distinct key numbers in ascending order, each with a uniform 6-digit key.
func Generate() (Card, error) {
	s, err := rand.Int(rand.Reader, serialSpace)
	if err != nil {
		return Card{}, fmt.Errorf("codecard: serial: %w", err)
	}

	// Rejection on duplicates keeps the chosen set uniform; 148 of 9999
	// collides rarely, so this loop is short.
	seen := make(map[int64]struct{}, KeysPerCard)
	nums := make([]int64, 0, KeysPerCard)
	for len(nums) < KeysPerCard {
		n, err := rand.Int(rand.Reader, numberSpace)
		if err != nil {
			return Card{}, fmt.Errorf("codecard: key number: %w", err)
		}
		v := n.Int64() + 1
		if _, dup := seen[v]; dup {
			continue
		}
		seen[v] = struct{}{}
		nums = append(nums, v)
	}
	slices.Sort(nums)

	keys := make([]Key, KeysPerCard)
	for i, n := range nums {
		k, err := rand.Int(rand.Reader, keySpace)
		if err != nil {
			return Card{}, fmt.Errorf("codecard: key: %w", err)
		}
		keys[i] = Key{Number: fmt.Sprintf("%04d", n), Key: fmt.Sprintf("%06d", k.Int64())}
	}
	return Card{Serial: fmt.Sprintf("G%09d", s.Int64()), Keys: keys}, nil
}

// ValidKey reports whether key is exactly 6 ASCII digits.
func ValidKey(key string) bool { return len(key) == 6 && allDigits(key) }

// ValidNumber reports whether n is exactly 4 ASCII digits and not "0000".
func ValidNumber(n string) bool { return len(n) == 4 && allDigits(n) && n != "0000" }

// ValidSerial reports whether s is "G" followed by 9 ASCII digits.
func ValidSerial(s string) bool { return len(s) == 10 && s[0] == 'G' && allDigits(s[1:]) }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Hasher keys the stored hashes with a server secret so a Redis dump does
// not reveal keys (a bare SHA-256 of 10^6 possible keys is trivially reversed).
type Hasher struct {
	secret []byte
}

// NewHasher returns a Hasher keyed with a copy of secret.
func NewHasher(secret []byte) (*Hasher, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrShortSecret, len(secret), MinSecretLen)
	}
	return &Hasher{secret: slices.Clone(secret)}, nil
}

// Hash returns base64url(HMAC-SHA256(secret, "codecard\x00"+serial+"\x00"+number+"\x00"+key)).
// Including serial and number binds the key to its position on its card,
// so a key copied to another slot or card does not match.
func (h *Hasher) Hash(serial, number, key string) string {
	return base64.RawURLEncoding.EncodeToString(h.mac(serial, number, key))
}

// Verify reports in constant time whether key matches a hash made by Hash.
func (h *Hasher) Verify(serial, number, key, stored string) bool {
	want, err := base64.RawURLEncoding.DecodeString(stored)
	if err != nil {
		return false
	}
	return hmac.Equal(h.mac(serial, number, key), want)
}

func (h *Hasher) mac(serial, number, key string) []byte {
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte("codecard\x00" + serial + "\x00" + number + "\x00" + key))
	return m.Sum(nil)
}
