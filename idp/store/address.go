package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// The alternative address: where letters and code cards go instead of the register address,
// set by the citizen (self-service). It is the citizen hash field alt_address; the outbox
// names it as the delivery address when it is set.

// Limits of an alternative address: a few lines of a postal address, not a document.
const (
	MaxAltAddress      = 200 // characters, line breaks included
	MaxAltAddressLines = 5
)

// Codes of an AddressError.
const (
	AddressTooLong      = "too_long"
	AddressTooManyLines = "too_many_lines"
	AddressInvalidChars = "invalid_characters"
)

// AddressError says why an alternative address was refused.
type AddressError struct{ Code string }

func (e *AddressError) Error() string {
	switch e.Code {
	case AddressTooLong:
		return fmt.Sprintf("store: address: at most %d characters", MaxAltAddress)
	case AddressTooManyLines:
		return fmt.Sprintf("store: address: at most %d lines", MaxAltAddressLines)
	}
	return "store: address: only letters, digits, spaces and the usual punctuation"
}

// CleanAltAddress is raw as it is stored: line endings made "\n", each line trimmed, blank
// lines dropped ("" clears). It refuses (*AddressError) an address that is too long, has too
// many lines, or holds a control or invisible character (a line break aside): such an address
// would end up printed on an envelope.
func CleanAltAddress(raw string) (string, error) {
	if !utf8.ValidString(raw) {
		return "", &AddressError{AddressInvalidChars}
	}
	raw = strings.ReplaceAll(strings.ReplaceAll(raw, "\r\n", "\n"), "\r", "\n")
	var lines []string
	for l := range strings.SplitSeq(raw, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	out := strings.Join(lines, "\n")
	for _, r := range out {
		if r != '\n' && (!unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r)) {
			return "", &AddressError{AddressInvalidChars}
		}
	}
	switch {
	case len(lines) > MaxAltAddressLines:
		return "", &AddressError{AddressTooManyLines}
	case utf8.RuneCountInString(out) > MaxAltAddress:
		return "", &AddressError{AddressTooLong}
	}
	return out, nil
}

// KEYS: citizen, events. ARGV: 1 the address ("" clears), 2 now (RFC 3339), 3 by. Only an
// existing citizen gets one: a record is never created by it. A change writes an
// address_changed event addressed to where letters went BEFORE it (the alternative address,
// else the postal, else the register address), so a citizen whose address someone else changed
// hears of it where they live.
var setAltAddressScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], 'user_id') == 0 then return 0 end
local function nonempty(v) if v and v ~= '' then return v end return nil end
local old = nonempty(redis.call('HGET', KEYS[1], 'alt_address')) or nonempty(redis.call('HGET', KEYS[1], 'postal_address')) or
  redis.call('HGET', KEYS[1], 'address') or ''
if (redis.call('HGET', KEYS[1], 'alt_address') or '') == ARGV[1] then return 1 end
if ARGV[1] == '' then
  redis.call('HDEL', KEYS[1], 'alt_address')
else
  redis.call('HSET', KEYS[1], 'alt_address', ARGV[1])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '200', '*', 'type', 'address_changed', 'address', old, 'cleared', ARGV[1] == '' and '1' or '0', 'at', ARGV[2], 'by', ARGV[3])
return 1
`)

// SetAltAddress sets the citizen's alternative address (cleaned by CleanAltAddress; "" clears
// it), in one script that touches only an existing citizen: ErrNotFound otherwise, an
// *AddressError for an address refused.
func (s *Store) SetAltAddress(ctx context.Context, uid, addr string) error {
	clean, err := CleanAltAddress(addr)
	if err != nil {
		return err
	}
	return s.withOutbox(ctx, uid, func() error {
		n, err := setAltAddressScript.Run(ctx, s.rdb, []string{s.citizenKey(uid), s.eventsKey(uid)}, clean,
			time.Now().UTC().Format(time.RFC3339), "self").Int()
		if err != nil {
			return wrap("set alt address", err)
		}
		if n == 0 {
			return fmt.Errorf("store: set alt address: citizen %s: %w", uid, ErrNotFound)
		}
		return nil
	})
}

// AltAddress is the citizen's alternative address ("" when none is set, or no such citizen).
func (s *Store) AltAddress(ctx context.Context, uid string) (string, error) {
	v, err := s.rdb.HGet(ctx, s.citizenKey(uid), "alt_address").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, wrap("alt address", err)
}
