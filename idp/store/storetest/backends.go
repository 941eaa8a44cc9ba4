// Package storetest is the conformance suite of idp/store (after Dex's storage/conformance):
// the store's contract — one-time use, TTLs, races, error classes — is written once here and
// run against every Redis backend: the embedded in-process server of demo mode, a real Redis
// and a Redis Cluster. It also hands other packages' tests a ready backend.
package storetest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/nemidp/nemidp/idp/store"
)

// Pepper keys the hashed indexes of every store the suite makes.
var Pepper = []byte("pepper-0123456789abcdef")

// Backend is one kind of Redis the suite runs against.
type Backend struct {
	Name string
	// Client returns a client for the backend; the suite may close it.
	Client func(t testing.TB) redis.UniversalClient
	// TTL is the shortest lifetime the TTL subtests give records, and Advance makes at least
	// d pass in the backend's clock (so a record saved with TTL d is gone afterwards).
	TTL     time.Duration
	Advance func(t testing.TB, d time.Duration)
	// Shared: other tests (other packages) use this Redis at the same time, so nothing may
	// change it beyond the suite's own keys (no SCRIPT FLUSH).
	Shared bool
	// Encodings: the backend answers OBJECT ENCODING with Redis's own compact encodings
	// (listpack, intset) under the default limits (hash-max-listpack-value 64,
	// set-max-intset-entries 512). Not miniredis.
	Encodings bool
}

// RandomPrefix returns a fresh key prefix "t-<random>:".
func RandomPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "t-" + hex.EncodeToString(b[:]) + ":"
}

// NewStore wraps client in a store under a fresh prefix; on cleanup every key under the
// prefix is deleted (a shared Redis stays tidy) and the client closed.
func NewStore(t testing.TB, client redis.UniversalClient) *store.Store {
	t.Helper()
	s, _ := NewStorePrefixed(t, client)
	return s
}

// NewStorePrefixed is NewStore that also returns the prefix, for tests that must reach a
// record no store API writes yet (see CitizenKey).
func NewStorePrefixed(t testing.TB, client redis.UniversalClient) (*store.Store, string) {
	t.Helper()
	prefix := RandomPrefix()
	st := store.New(client, prefix, Pepper)
	t.Cleanup(func() {
		st.Wait() // a background relay must not write after the keys are gone
		deletePrefix(client, prefix)
		_ = client.Close()
	})
	return st, prefix
}

// DeletePrefix deletes every key under prefix (a test's own keys on a shared Redis).
func DeletePrefix(client redis.UniversalClient, prefix string) { deletePrefix(client, prefix) }

func deletePrefix(client redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	del := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for it.Next(ctx) {
			c.Del(ctx, it.Val())
		}
		return it.Err()
	}
	switch c := client.(type) {
	case *redis.ClusterClient:
		_ = c.ForEachMaster(ctx, del)
	case *redis.Client:
		_ = del(ctx, c)
	}
}

// CitizenKey is the Redis hash of a citizen under prefix (the layout of idp/store's package
// doc), for tests that set a state no store API sets yet, such as a block by an operator.
func CitizenKey(prefix, uid string) string { return prefix + "{c:" + uid + "}" }

// Embedded is the demo-mode backend: store.StartEmbedded (miniredis behind go-redis). Its
// clock moves one second per wall-clock second, so Advance sleeps.
func Embedded() Backend {
	return Backend{
		Name: "embedded",
		Client: func(t testing.TB) redis.UniversalClient {
			t.Helper()
			e, err := store.StartEmbedded()
			if err != nil {
				t.Fatalf("start embedded: %v", err)
			}
			t.Cleanup(e.Close)
			opt, err := redis.ParseURL(e.URL())
			if err != nil {
				t.Fatalf("embedded url %q: %v", e.URL(), err)
			}
			return redis.NewClient(opt)
		},
		// The embedded ticker jumps one second at a time: a TTL shorter than a jump could
		// run out between a write and the read right after it.
		TTL: 1500 * time.Millisecond,
		Advance: func(_ testing.TB, d time.Duration) {
			time.Sleep(d + 1100*time.Millisecond)
		},
	}
}

// Miniredis is miniredis driven directly, whose clock moves only by FastForward: TTL
// subtests run without sleeping.
func Miniredis() Backend {
	var (
		mu  sync.Mutex
		srv *miniredis.Miniredis
	)
	return Backend{
		Name: "miniredis",
		Client: func(t testing.TB) redis.UniversalClient {
			t.Helper()
			mu.Lock()
			defer mu.Unlock()
			if srv == nil {
				srv = miniredis.RunT(t)
			}
			return redis.NewClient(&redis.Options{Addr: srv.Addr()})
		},
		TTL:     time.Second,
		Advance: func(_ testing.TB, d time.Duration) { srv.FastForward(d) },
	}
}

// RedisURL is the real Redis the tests use: NEMIDP_REDIS_URL or the local default.
func RedisURL() string {
	if u := os.Getenv("NEMIDP_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Real is a real Redis at RedisURL. When it does not answer the test is skipped, unless the
// environment sets CI: there a missing Redis fails the test.
func Real() Backend {
	return Backend{
		Name:      "redis",
		Shared:    true,
		Encodings: true,
		Client: func(t testing.TB) redis.UniversalClient {
			t.Helper()
			opt, err := redis.ParseURL(RedisURL())
			if err != nil {
				t.Fatalf("NEMIDP_REDIS_URL: %v", err)
			}
			c := redis.NewClient(opt)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := c.Ping(ctx).Err(); err != nil {
				_ = c.Close()
				unavailable(t, "redis at %s: %v", RedisURL(), err)
			}
			return c
		},
		TTL: 500 * time.Millisecond,
		Advance: func(_ testing.TB, d time.Duration) {
			time.Sleep(d + 100*time.Millisecond)
		},
	}
}

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format+" (CI is set: a real Redis is required)", args...)
	}
	t.Skipf(format+" (set CI to make this fatal)", args...)
}

// Cluster is a three-master Redis Cluster started from NEMIDP_TEST_REDIS_SERVER or the
// redis-server on PATH (with redis-cli beside it). Every multi-key command and script the
// store sends must then stay within one hash slot, or Redis answers CROSSSLOT. Without the
// binaries the test is skipped. The cluster is started once per Backend value.
func Cluster() Backend {
	var (
		mu    sync.Mutex
		addrs []string
	)
	return Backend{
		Name:      "cluster",
		Encodings: true,
		Client: func(t testing.TB) redis.UniversalClient {
			t.Helper()
			mu.Lock()
			defer mu.Unlock()
			if addrs == nil {
				addrs = startCluster(t)
			}
			return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		},
		TTL: 500 * time.Millisecond,
		Advance: func(_ testing.TB, d time.Duration) {
			time.Sleep(d + 100*time.Millisecond)
		},
	}
}

func startCluster(t testing.TB) []string {
	t.Helper()
	server := os.Getenv("NEMIDP_TEST_REDIS_SERVER")
	if server == "" {
		p, err := exec.LookPath("redis-server")
		if err != nil {
			t.Skip("no redis-server on PATH and NEMIDP_TEST_REDIS_SERVER unset: cluster backend skipped")
		}
		server = p
	}
	cli := filepath.Join(filepath.Dir(server), "redis-cli")
	if _, err := os.Stat(cli); err != nil {
		p, err := exec.LookPath("redis-cli")
		if err != nil {
			t.Skip("no redis-cli to create the cluster: cluster backend skipped")
		}
		cli = p
	}
	dir := t.TempDir()
	var addrs []string
	for i := range 3 {
		port := freeClusterPort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		nodeDir := filepath.Join(dir, fmt.Sprint(i))
		if err := os.Mkdir(nodeDir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(server, "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--dir", nodeDir,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no")
		logf, err := os.Create(filepath.Join(nodeDir, "log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", server, err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			_ = logf.Close()
		})
		addrs = append(addrs, addr)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, 100*time.Millisecond)
			if err == nil {
				_ = c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s did not start: %v", a, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		for {
			out, _ := exec.Command(cli, "-h", "127.0.0.1", "-p", strings.Split(a, ":")[1], "cluster", "info").Output()
			if clusterOK(string(out)) {
				break
			}
			if time.Now().After(deadline.Add(20 * time.Second)) {
				t.Fatalf("cluster node %s not ready:\n%s", a, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return addrs
}

func clusterOK(info string) bool {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "cluster_state:ok" {
			return true
		}
	}
	return false
}

// freeClusterPort finds a port p such that p and its cluster bus port p+10000 are free.
func freeClusterPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if p+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000))
		if err != nil {
			continue
		}
		_ = bus.Close()
		return p
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}
