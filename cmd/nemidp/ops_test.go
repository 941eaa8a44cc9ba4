package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/alicebob/miniredis/v2/server"
	"github.com/redis/go-redis/v9"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
)

// served is one `nemidp serve` run in the background.
type served struct {
	base   string
	env    map[string]string
	out    *syncBuffer
	cancel context.CancelFunc
	done   chan error

	stopOnce sync.Once
}

// startServe runs `nemidp serve` with env until the test ends (or stop is called) and waits
// for discovery to answer. It fails the test when serve exits or does not come up.
func startServe(t *testing.T, env map[string]string) *served {
	t.Helper()
	s, err := tryServe(t, env)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tryServe is startServe that returns serve's error instead of failing.
func tryServe(t *testing.T, env map[string]string) (*served, error) {
	t.Helper()
	env = maps.Clone(env)
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{base: "http://" + env["NEMIDP_ADDR"], env: env, out: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, s.out) }()
	t.Cleanup(s.stop)
	for range 150 {
		select {
		case err := <-s.done:
			s.done <- err
			if err == nil {
				err = errors.New("serve returned nil before it was stopped")
			}
			return nil, err
		default:
		}
		if resp, err := http.Get(s.base + "/.well-known/openid-configuration"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no discovery at %s within 15 s; output: %s", s.base, s.out.String())
	return nil, nil
}

// addr is the address the run was given in the environment variable name.
func (s *served) addr(name string) string { return s.env[name] }

// stop ends the run and waits for serve to return (once; later calls return at once).
func (s *served) stop() {
	s.stopOnce.Do(func() {
		s.cancel()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
		}
	})
}

// realRedisEnv is the environment of a server on the shared test Redis under a fresh prefix
// that is deleted when the test ends.
func realRedisEnv(t *testing.T) map[string]string {
	t.Helper()
	rdb := storetest.Real().Client(t) // skips (or fails under CI) without Redis
	prefix := storetest.RandomPrefix()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		it := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
		for it.Next(ctx) {
			rdb.Del(ctx, it.Val())
		}
		rdb.Close()
	})
	return map[string]string{"NEMIDP_REDIS_URL": storetest.RedisURL(), "NEMIDP_REDIS_PREFIX": prefix}
}

type demoCard struct {
	UserID string `json:"user_id"`
	Card   struct {
		Serial string
		Keys   []struct{ Number, Key string }
	}
}

// demoCredentials reads the banner's user id and password and the /demo/card page.
func (s *served) demoCredentials(t *testing.T) (uid, pw string, card demoCard) {
	t.Helper()
	m := regexp.MustCompile(`user ID (\d{9}), password (\S+)`).FindStringSubmatch(s.out.String())
	if m == nil {
		t.Fatalf("banner lacks the demo credentials:\n%s", s.out.String())
	}
	req, _ := http.NewRequest("GET", s.base+"/demo/card", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&card); err != nil {
		t.Fatal(err)
	}
	if card.UserID != m[1] || len(card.Card.Keys) != 148 {
		t.Fatalf("card page: user %q (banner %s) with %d keys", card.UserID, m[1], len(card.Card.Keys))
	}
	return m[1], m[2], card
}

type loginView struct {
	Flow       string `json:"flow"`
	Step       string `json:"step"`
	KeyNumber  string `json:"key_number"`
	CSRFToken  string `json:"csrf_token"`
	RedirectTo string `json:"redirect_to"`
	Error      *struct{ Code, Message string }
}

// demoLogin logs in at the demo relying party with the card and password shown, through the
// JSON login contract, and follows the answer back to the relying party's callback page.
func (s *served) demoLogin(t *testing.T, uid, pw string, card demoCard) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(s.base + "/demo/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	flow, ok := strings.CutPrefix(resp.Request.URL.Path, "/login/")
	if resp.StatusCode != 200 || !ok {
		t.Fatalf("demo login landed on %d %s", resp.StatusCode, resp.Request.URL)
	}
	call := func(method, path string, body any) loginView {
		t.Helper()
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, s.base+path, rd)
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v loginView
		_ = json.NewDecoder(resp.Body).Decode(&v)
		if resp.StatusCode != 200 || v.Error != nil {
			t.Fatalf("%s %s: %d %+v", method, path, resp.StatusCode, v.Error)
		}
		return v
	}
	v := call("GET", "/login/"+flow, nil)
	post := func(step string, body any) loginView {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", s.base+"/login/"+flow+"/"+step, bytes.NewReader(raw))
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", v.CSRFToken)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var nv loginView
		_ = json.NewDecoder(resp.Body).Decode(&nv)
		if resp.StatusCode != 200 || nv.Error != nil {
			t.Fatalf("POST %s: %d %+v", step, resp.StatusCode, nv.Error)
		}
		if nv.CSRFToken != "" {
			v.CSRFToken = nv.CSRFToken
		}
		return nv
	}
	v2 := post("password", map[string]string{"username": uid, "password": pw})
	if v2.Step != "codecard" {
		t.Fatalf("after the password: step %q", v2.Step)
	}
	key := ""
	for _, k := range card.Card.Keys {
		if k.Number == v2.KeyNumber {
			key = k.Key
		}
	}
	if key == "" {
		t.Fatalf("key number %q is not on the card shown (%s)", v2.KeyNumber, card.Card.Serial)
	}
	v3 := post("codecard", map[string]string{"key": key})
	if v3.Step != "done" || v3.RedirectTo == "" {
		t.Fatalf("after the key: step %q", v3.Step)
	}
	back := v3.RedirectTo
	if strings.HasPrefix(back, "/") {
		back = s.base + back
	}
	resp, err = c.Get(back)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/demo/callback" || !bytes.Contains(body, []byte("Logged in")) {
		t.Fatalf("back at the relying party: %d %s: %.300s", resp.StatusCode, resp.Request.URL, body)
	}
}

// TestDemoRestartOnRedis runs demo mode twice on one Redis and prefix: the second run finds
// the seeded client and citizen instead of failing with a conflict, resets the citizen (even
// one locked meanwhile) to the demo password, and shows a fresh card whose keys log in.
func TestDemoRestartOnRedis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret string
	}{
		{"generated secret kept in redis", ""},
		{"configured secret", "demo-restart-secret-0123456789abcdef"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := realRedisEnv(t)
			env["NEMIDP_DEMO"] = "true"
			env["NEMIDP_SECRET"] = tc.secret
			env["NEMIDP_ADDR"] = freeAddr(t)
			first := startServe(t, env)
			uid1, _, card1 := first.demoCredentials(t)
			first.stop()

			// Someone playing with the demo locked it.
			rdb := storetest.Real().Client(t)
			defer rdb.Close()
			ck := env["NEMIDP_REDIS_PREFIX"] + "{c:" + uid1 + "}"
			if err := rdb.HSet(context.Background(), ck, "status", "blocked", "block_reason", "failures", "failures", 5).Err(); err != nil {
				t.Fatal(err)
			}

			env["NEMIDP_ADDR"] = freeAddr(t) // another issuer: the demo client follows it
			second := startServe(t, env)
			uid2, pw2, card2 := second.demoCredentials(t)
			if uid2 != uid1 {
				t.Fatalf("second run shows citizen %s, first %s: want the one found", uid2, uid1)
			}
			if card2.Card.Serial == card1.Card.Serial {
				t.Fatalf("second run shows the old card %s: its keys are only stored hashed", card1.Card.Serial)
			}
			second.demoLogin(t, uid2, pw2, card2)

			st, err := rdb.HGet(context.Background(), env["NEMIDP_REDIS_PREFIX"]+"{c:"+uid1+"}:card:"+card1.Card.Serial, "status").Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				t.Fatal(err)
			}
			if st != "retired" {
				t.Fatalf("old card status %q, want retired", st)
			}
		})
	}
}

// TestRedisNeedsSecret: on Redis, outside demo mode, neither serve nor the operator CLI runs
// without NEMIDP_SECRET, and the error says what to set and why.
func TestRedisNeedsSecret(t *testing.T) {
	t.Parallel()
	base := realRedisEnv(t)
	tests := []struct {
		name string
		args []string
	}{
		{"serve", []string{"serve"}},
		{"citizen add", []string{"citizen", "add", "--cpr", "150690-1234", "--name", "Karen Jensen"}},
		{"client add", []string{"client", "add", "--id", "bank", "--redirect-uri", "https://bank.example/cb"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"NEMIDP_ADDR": freeAddr(t)}
			for k, v := range base {
				env[k] = v
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var out syncBuffer
			err := run(ctx, tc.args, func(k string) string { return env[k] }, &out)
			if err == nil {
				t.Fatalf("%s ran without NEMIDP_SECRET; output: %s", tc.name, out.String())
			}
			for _, want := range []string{"NEMIDP_SECRET", "NEMIDP_SECRET_FILE", "32", "Redis dump"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestSeparateListeners: NEMIDP_ADMIN_ADDR and NEMIDP_METRICS_ADDR take the operator API and
// /metrics off the public listener; without them the public listener serves both.
func TestSeparateListeners(t *testing.T) {
	t.Parallel()
	const token = "listener-test-admin-token-0123456789"
	split := startServe(t, map[string]string{"NEMIDP_ADDR": freeAddr(t), "NEMIDP_ADMIN_ADDR": freeAddr(t),
		"NEMIDP_METRICS_ADDR": freeAddr(t), "NEMIDP_ADMIN_TOKEN": token})
	one := startServe(t, map[string]string{"NEMIDP_ADDR": freeAddr(t), "NEMIDP_ADMIN_TOKEN": token})
	public, admin, metrics := split.base, "http://"+split.addr("NEMIDP_ADMIN_ADDR"), "http://"+split.addr("NEMIDP_METRICS_ADDR")
	client := func(id string) string {
		return `{"client_id":"` + id + `","redirect_uris":["https://bank.example/cb"]}`
	}
	tests := []struct {
		name, method, url, body string
		auth, json              bool
		status                  int
		wantJSONError           string // the error code of a JSON answer
	}{
		{"public: operator API is not there", "POST", public + "/admin/v1/clients", client("a"), true, true, 404, "not_found"},
		{"public: nor without the token", "POST", public + "/admin/v1/clients", client("a"), false, true, 404, "not_found"},
		{"public: any /admin/ path, HTML", "GET", public + "/admin/", "", false, false, 404, ""},
		{"public: no /metrics", "GET", public + "/metrics", "", false, false, 404, ""},
		{"admin listener: operator API", "POST", admin + "/admin/v1/clients", client("b"), true, true, 201, ""},
		{"admin listener: bearer token still required", "POST", admin + "/admin/v1/clients", client("c"), false, true, 401, "unauthorized"},
		{"admin listener: nothing else", "GET", admin + "/.well-known/openid-configuration", "", false, false, 404, ""},
		{"admin listener: no /metrics", "GET", admin + "/metrics", "", false, false, 404, ""},
		{"metrics listener: /metrics", "GET", metrics + "/metrics", "", false, false, 200, ""},
		{"metrics listener: no operator API", "POST", metrics + "/admin/v1/clients", client("d"), true, true, 404, ""},
		{"one listener: operator API", "POST", one.base + "/admin/v1/clients", client("e"), true, true, 201, ""},
		{"one listener: /metrics", "GET", one.base + "/metrics", "", false, false, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.url, strings.NewReader(tc.body))
			if tc.json {
				req.Header.Set("Accept", "application/json")
				req.Header.Set("Content-Type", "application/json")
			}
			if tc.auth {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: %d, want %d: %.200s", tc.method, tc.url, resp.StatusCode, tc.status, body)
			}
			if tc.wantJSONError != "" {
				var e struct{ Error struct{ Code string } }
				if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != tc.wantJSONError {
					t.Fatalf("answer %q, want a JSON error %q", body, tc.wantJSONError)
				}
			}
		})
	}
}

// TestEvictionPolicyWarning: an evicting Redis (maxmemory-policy other than noeviction) is
// warned about at start; a Redis that refuses CONFIG (managed Redis) is noted and accepted.
// The shared Redis's config is never changed: the policy is answered by a stand-in.
func TestEvictionPolicyWarning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		answer    func(c *server.Peer)
		wantLevel slog.Level // the level of the line that names maxmemory-policy
		wantText  string
	}{
		{"allkeys-lru", policy("allkeys-lru"), slog.LevelWarn, "noeviction"},
		{"volatile-lru", policy("volatile-lru"), slog.LevelWarn, "noeviction"},
		{"noeviction", policy("noeviction"), slog.LevelDebug, "noeviction"},
		{"CONFIG refused", func(c *server.Peer) { c.WriteError("ERR unknown command 'CONFIG'") }, slog.LevelInfo, "could not read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := miniredis.RunT(t)
			if err := m.Server().Register("CONFIG", func(c *server.Peer, cmd string, args []string) { tc.answer(c) }); err != nil {
				t.Fatal(err)
			}
			st, err := store.Open("redis://"+m.Addr(), "t:")
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var logs syncBuffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			checkEvictionPolicy(context.Background(), st, log)
			var line string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "maxmemory-policy") {
					line = l
				}
			}
			if !strings.Contains(line, "level="+tc.wantLevel.String()) || !strings.Contains(line, tc.wantText) {
				t.Fatalf("log %q, want a %s line saying %q", logs.String(), tc.wantLevel, tc.wantText)
			}
		})
	}
}

// policy answers CONFIG GET maxmemory-policy.
func policy(p string) func(c *server.Peer) {
	return func(c *server.Peer) {
		c.WriteMapLen(1)
		c.WriteBulk("maxmemory-policy")
		c.WriteBulk(p)
	}
}
