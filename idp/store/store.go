// Package store keeps every record and every piece of one-time state of nemidp in Redis,
// through a go-redis UniversalClient (single node, Sentinel or Cluster). The embedded demo
// default is an in-process Redis-protocol server behind the same client, so demo and
// production run the same commands and Lua scripts.
//
// Key layout (all under a configurable prefix): one citizen's records share the hash tag
// {c:<user id>}; one grant's tokens share {g:<grant id>}; one code and its replay marker share
// {code:<hash>}. Multi-key scripts therefore stay within one Cluster slot.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ErrNotFound is returned when a record does not exist (or has expired).
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a record that must be unique already exists, or an
// optimistic update lost a race.
var ErrConflict = errors.New("conflict")

// ErrUnavailable wraps failures to reach Redis, so callers can answer 503.
var ErrUnavailable = errors.New("store unavailable")

// Store is the Redis-backed store.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	pepper  []byte // keys the index hashes of CPR numbers and user IDs
	clients *clientCache
	// bg counts the background relays in flight (relayLater), which Close and Wait wait for.
	bg *sync.WaitGroup
}

// New wraps a go-redis client. prefix is prepended to every key; pepper keys the hashed
// indexes (all instances must share it).
func New(rdb redis.UniversalClient, prefix string, pepper []byte) *Store {
	return &Store{rdb: rdb, prefix: prefix, pepper: pepper, clients: &clientCache{m: map[string]cachedClient{}}, bg: &sync.WaitGroup{}}
}

// WithPepper returns a store on the same client with another pepper (set once the server
// secret is known).
func (s *Store) WithPepper(pepper []byte) *Store {
	return &Store{rdb: s.rdb, prefix: s.prefix, pepper: pepper, clients: s.clients, bg: s.bg}
}

// Open connects to the Redis named by a redis:// or rediss:// URL. A URL with several
// extra addr parameters ("redis://h1:6379?addr=h2:6379&addr=h3:6379") opens a Cluster client.
func Open(rawURL, prefix string) (*Store, error) {
	if strings.Contains(rawURL, "addr=") {
		opt, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("store: parse cluster url: %w", err)
		}
		return New(redis.NewClusterClient(opt), prefix, nil), nil
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store: parse redis url: %w", err)
	}
	return New(redis.NewClient(opt), prefix, nil), nil
}

// Prefix is what every key of the store begins with.
func (s *Store) Prefix() string { return s.prefix }

// Redis returns the underlying client (for health checks and tests).
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// Close closes the client.
func (s *Store) Close() error {
	s.Wait()
	return s.rdb.Close()
}

// Wait waits for the store's background relays (relayLater) to finish.
func (s *Store) Wait() { s.bg.Wait() }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return wrap("ping", err)
	}
	return nil
}

func (s *Store) key(parts ...string) string {
	return s.prefix + strings.Join(parts, ":")
}

// wrap classifies a Redis error: redis.Nil → ErrNotFound; connection trouble → ErrUnavailable.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUserIDTaken) {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	var nerr net.Error
	if errors.As(err, &nerr) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redis.ErrClosed) ||
		isConnErr(err) {
		return fmt.Errorf("store: %s: %w: %v", op, ErrUnavailable, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

func isConnErr(err error) bool {
	msg := err.Error()
	for _, s := range []string{"connection refused", "EOF", "broken pipe", "connection reset", "i/o timeout",
		"LOADING", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "pool timeout"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// digest is the key-safe SHA-256 of a bearer secret (code, token, session id), so a Redis
// dump or key listing does not hand out usable credentials.
func digest(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
