package store_test

import (
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
)

// TestConformance runs the store's contract (idp/store/storetest) against every backend:
// the embedded demo server, miniredis with a clock the test moves, a real Redis
// (NEMIDP_REDIS_URL, skipped when absent unless CI is set) and a three-node Redis Cluster
// (skipped without redis-server).
func TestConformance(t *testing.T) {
	for _, b := range []storetest.Backend{
		storetest.Embedded(),
		storetest.Miniredis(),
		storetest.Real(),
		storetest.Cluster(),
	} {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, b)
		})
	}
}

// TestUnavailableNobodyListens: an address nobody listens on is ErrUnavailable, not a
// generic error (so the front ends answer 503).
func TestUnavailableNobodyListens(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	t.Cleanup(func() { _ = client.Close() })
	storetest.CheckUnavailable(t, store.New(client, storetest.RandomPrefix(), storetest.Pepper))
}

// TestUnavailableOpen: a store opened from a URL of a dead server reports ErrUnavailable too.
func TestUnavailableOpen(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	s, err := store.Open("redis://"+addr+"/0?max_retries=-1&dial_timeout=200ms", storetest.RandomPrefix())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	storetest.CheckUnavailable(t, s)
}
