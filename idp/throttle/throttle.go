// Package throttle limits failed answers per client address: wrong passwords and keys at the
// login, failed operator calls. Failures are counted in Redis with GCRA
// (github.com/go-redis/redis_rate, one script call per failure); whether an address is
// throttled is remembered in process, so a successful answer costs no Redis round trip.
//
// The limit is max failures per window: a burst of max, then one more each window/max (GCRA's
// sliding window: at most max in any window once the burst is spent). Each instance learns
// that an address is throttled from the first failure it counts itself; until then it lets
// answers from that address through, so behind N instances an address can get at most N
// answers judged past its limit in each throttled spell.
package throttle

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Limiter counts failures per bucket (a client address, per purpose).
type Limiter struct {
	rl     *redis_rate.Limiter
	prefix string
	limit  redis_rate.Limit
	Now    func() time.Time

	mu    sync.Mutex
	until map[string]time.Time // bucket → throttled until, as this instance knows it
}

// maxRemembered bounds the in-process map; expired entries are dropped when it fills.
const maxRemembered = 100_000

// New makes a limiter of max failures per window on rdb, its keys under prefix.
func New(rdb redis.UniversalClient, prefix string, max int, window time.Duration) *Limiter {
	return &Limiter{
		rl: redis_rate.NewLimiter(rdb), prefix: prefix,
		limit: redis_rate.Limit{Rate: max, Burst: max, Period: window},
		until: map[string]time.Time{},
	}
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Throttled reports whether bucket is throttled, and for how long still. No Redis.
func (l *Limiter) Throttled(bucket string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u, ok := l.until[bucket]
	if !ok {
		return 0, false
	}
	left := u.Sub(l.now())
	if left <= 0 {
		delete(l.until, bucket)
		return 0, false
	}
	return left, true
}

// Fail counts one failure for bucket (one Redis round trip). over reports that this failure
// was already past the limit (another instance's failures used it up); either way, once the
// limit is used up the bucket is throttled here for as long as GCRA says.
func (l *Limiter) Fail(ctx context.Context, bucket string) (over bool, err error) {
	res, err := l.rl.Allow(ctx, l.prefix+bucket, l.limit)
	if err != nil {
		return false, fmt.Errorf("throttle: count failure: %w", err)
	}
	wait := time.Duration(0)
	switch {
	case res.Allowed == 0:
		wait = res.RetryAfter
	case res.Remaining == 0:
		// The next failure would be refused until one more emission interval has passed.
		emission := l.limit.Period / time.Duration(l.limit.Rate)
		wait = res.ResetAfter - time.Duration(l.limit.Burst-1)*emission
	}
	if wait > 0 {
		l.remember(bucket, l.now().Add(wait))
	}
	return res.Allowed == 0, nil
}

func (l *Limiter) remember(bucket string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.until) >= maxRemembered {
		now := l.now()
		for b, u := range l.until {
			if !u.After(now) {
				delete(l.until, b)
			}
		}
		if len(l.until) >= maxRemembered {
			clear(l.until) // a flood of addresses: forget rather than grow; Redis still counts
		}
	}
	if u, ok := l.until[bucket]; !ok || until.After(u) {
		l.until[bucket] = until
	}
}

// RetryAfter is the Retry-After header value for a wait: whole seconds, at least 1.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// Proxies are the reverse proxies whose X-Forwarded-For is believed.
type Proxies []netip.Prefix

// ParseProxies reads CIDRs or single addresses ("10.0.0.0/8", "192.0.2.7", "::1").
func ParseProxies(list []string) (Proxies, error) {
	var out Proxies
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (p Proxies) trusted(a netip.Addr) bool {
	for _, pr := range p {
		if pr.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the address a request comes from: the TCP peer, or, when the peer is a trusted
// proxy, the right-most X-Forwarded-For entry that is not one (entries right of it were added
// by our own proxies; anything left of it the client could have written). An untrusted
// peer's header is ignored.
func (p Proxies) ClientAddr(r *http.Request) netip.Addr {
	peer := peerAddr(r.RemoteAddr)
	if !peer.IsValid() || !p.trusted(peer) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := hopAddr(hops[i])
		if err != nil {
			break // a malformed hop: believe no further than what our proxies vouched for
		}
		client = a.Unmap()
		if !p.trusted(client) {
			break
		}
	}
	return client
}

// hopAddr reads one X-Forwarded-For entry: an address, with a port ("1.2.3.4:5678",
// "[2001:db8::1]:443") or in brackets ("[2001:db8::1]"), as proxies write them.
func hopAddr(hop string) (netip.Addr, error) {
	hop = strings.TrimSpace(hop)
	if ap, err := netip.ParseAddrPort(hop); err == nil {
		return ap.Addr(), nil
	}
	return netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(hop, "["), "]"))
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// Bucket names the counter of an address for a purpose. IPv6 addresses count per /64, the
// block one subscriber gets: otherwise every address of it would have its own budget.
func Bucket(purpose string, a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return purpose + ":" + p.String()
	}
	return purpose + ":" + a.String()
}

// Guard is a limiter with the address rule of the deployment, for HTTP handlers.
type Guard struct {
	Limiter *Limiter
	Proxies Proxies
	Purpose string // "login", "admin"
}

// Throttled reports whether r's address is throttled for g's purpose (no Redis).
func (g *Guard) Throttled(r *http.Request) (time.Duration, bool) {
	if g == nil || g.Limiter == nil {
		return 0, false
	}
	return g.Limiter.Throttled(Bucket(g.Purpose, g.Proxies.ClientAddr(r)))
}

// Fail counts a failure from r's address with a context that outlives the request (a client
// that hangs up still counts). over: this failure was already past the limit.
func (g *Guard) Fail(r *http.Request) (over bool, err error) {
	if g == nil || g.Limiter == nil {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 2*time.Second)
	defer cancel()
	return g.Limiter.Fail(ctx, Bucket(g.Purpose, g.Proxies.ClientAddr(r)))
}

// Wait is how long r's address stays throttled (0 when it is not).
func (g *Guard) Wait(r *http.Request) time.Duration {
	d, _ := g.Throttled(r)
	return d
}
