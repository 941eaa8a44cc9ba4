package throttle_test

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/idp/throttle"
)

func TestClientAddr(t *testing.T) {
	t.Parallel()
	proxies, err := throttle.ParseProxies([]string{"10.0.0.0/8", " 192.0.2.7 ", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxy, no header", "203.0.113.9:4000", nil, "203.0.113.9"},
		{"untrusted peer's header is ignored", "203.0.113.9:4000", []string{"198.51.100.1"}, "203.0.113.9"},
		{"trusted proxy, one hop", "10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client-written entries left of the real one are ignored", "10.1.2.3:4000", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"our own proxies right of the client are skipped", "10.1.2.3:4000", []string{"198.51.100.1, 10.9.9.9", "192.0.2.7"}, "198.51.100.1"},
		{"a malformed hop stops the walk at what we vouched for", "10.1.2.3:4000", []string{"198.51.100.1, bogus, 10.9.9.9"}, "10.9.9.9"},
		{"trusted peer without a header", "10.1.2.3:4000", nil, "10.1.2.3"},
		{"all hops trusted: the left-most", "10.1.2.3:4000", []string{"10.5.5.5, 10.6.6.6"}, "10.5.5.5"},
		{"IPv6 loopback proxy, v4-mapped client", "[::1]:4000", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"IPv6 peer", "[2001:db8::1]:4000", []string{"198.51.100.1"}, "2001:db8::1"},
		{"a hop with a port", "10.1.2.3:4000", []string{"198.51.100.1:5678"}, "198.51.100.1"},
		{"an IPv6 hop in brackets, with and without a port", "10.1.2.3:4000", []string{"[2001:db8::7], [2001:db8::8]:443"}, "2001:db8::8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/login/x/password", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := proxies.ClientAddr(r); got.String() != tc.want {
				t.Fatalf("ClientAddr = %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := throttle.ParseProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("ParseProxies accepted a bad CIDR")
	}
}

func TestBucketIPv6PerSlash64(t *testing.T) {
	t.Parallel()
	a := throttle.Bucket("login", netip.MustParseAddr("2001:db8:1:2:aaaa::1"))
	b := throttle.Bucket("login", netip.MustParseAddr("2001:db8:1:2:bbbb::2"))
	c := throttle.Bucket("login", netip.MustParseAddr("2001:db8:1:3::1"))
	if a != b || a == c {
		t.Fatalf("buckets %q %q %q: want one per /64", a, b, c)
	}
}

func backends() []storetest.Backend {
	return []storetest.Backend{storetest.Embedded(), storetest.Real()}
}

// TestLimitThenThrottled: max failures pass; from then on the bucket is throttled here without
// asking Redis, with a Retry-After of one emission interval; another instance, which has not
// seen the failures, learns it from its own first failure (answered "over").
func TestLimitThenThrottled(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			rdb := b.Client(t)
			t.Cleanup(func() { _ = rdb.Close() })
			prefix := storetest.RandomPrefix()
			const max, window = 3, time.Minute
			a := throttle.New(rdb, prefix, max, window)
			other := throttle.New(rdb, prefix, max, window)
			ctx := context.Background()
			for i := 1; i <= max; i++ {
				if _, ok := a.Throttled("login:192.0.2.1"); ok {
					t.Fatalf("throttled before failure %d", i)
				}
				over, err := a.Fail(ctx, "login:192.0.2.1")
				if err != nil || over {
					t.Fatalf("failure %d: over %v, %v", i, over, err)
				}
			}
			wait, ok := a.Throttled("login:192.0.2.1")
			if !ok || wait <= 0 || wait > window/max+time.Second {
				t.Fatalf("after %d failures: throttled %v for %v, want about %v", max, ok, wait, window/max)
			}
			if _, ok := a.Throttled("login:192.0.2.2"); ok {
				t.Fatal("another address is throttled too")
			}
			if _, ok := other.Throttled("login:192.0.2.1"); ok {
				t.Fatal("the other instance knows without a failure of its own")
			}
			over, err := other.Fail(ctx, "login:192.0.2.1")
			if err != nil || !over {
				t.Fatalf("the other instance's first failure: over %v, %v; want over", over, err)
			}
			if _, ok := other.Throttled("login:192.0.2.1"); !ok {
				t.Fatal("the other instance did not learn the address is throttled")
			}
			// Time passes (in process): the throttle lifts as GCRA says.
			a.Now = func() time.Time { return time.Now().Add(window) }
			if _, ok := a.Throttled("login:192.0.2.1"); ok {
				t.Fatal("still throttled a window later")
			}
		})
	}
}

// TestRacingFailuresCountExactly: failures racing from one address (released together) are
// each counted once: exactly max of them are within the limit.
func TestRacingFailuresCountExactly(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			rdb := b.Client(t)
			t.Cleanup(func() { _ = rdb.Close() })
			const max, racers = 10, 40
			l := throttle.New(rdb, storetest.RandomPrefix(), max, time.Hour)
			start := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			within := 0
			for range racers {
				wg.Go(func() {
					<-start
					over, err := l.Fail(context.Background(), "login:198.51.100.7")
					if err != nil {
						t.Error(err)
						return
					}
					if !over {
						mu.Lock()
						within++
						mu.Unlock()
					}
				})
			}
			close(start)
			wg.Wait()
			if within != max {
				t.Fatalf("%d of %d racing failures within the limit, want %d", within, racers, max)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", 1500 * time.Millisecond: "2", 20 * time.Second: "20"} {
		if got := throttle.RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%v) = %s, want %s", d, got, want)
		}
	}
}
