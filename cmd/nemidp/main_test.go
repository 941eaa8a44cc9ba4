package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/store/storetest"
)

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeDemo starts `nemidp serve` with no configuration but the address: the embedded
// store, the demo client and citizen, the printed URL and credentials, the card page, and a
// clean stop when the context ends.
func TestServeDemo(t *testing.T) {
	addr := freeAddr(t)
	env := map[string]string{"NEMIDP_ADDR": addr}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, func(k string) string { return env[k] }, out) }()
	base := "http://" + addr
	var up bool
	for range 100 {
		if resp, err := http.Get(base + "/.well-known/openid-configuration"); err == nil {
			resp.Body.Close()
			up = resp.StatusCode == 200
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !up {
		cancel()
		t.Fatalf("no discovery within 10 s; output: %s", out.String())
	}
	banner := out.String()
	m := regexp.MustCompile(`user ID (\d{9}), password (\S+)`).FindStringSubmatch(banner)
	if !strings.Contains(banner, "nemidp serving at "+base) || m == nil || !strings.Contains(banner, base+"/demo/card") {
		t.Fatalf("banner lacks URL, credentials or card page:\n%s", banner)
	}
	req, _ := http.NewRequest("GET", base+"/demo/card", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var card struct {
		UserID string `json:"user_id"`
		Card   struct {
			Keys []struct{ Number, Key string }
		}
	}
	_ = json.NewDecoder(resp.Body).Decode(&card)
	resp.Body.Close()
	if card.UserID != m[1] || len(card.Card.Keys) != 148 {
		t.Fatalf("card page: user %q with %d keys", card.UserID, len(card.Card.Keys))
	}
	// The demo relying party starts a real login at the IdP.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err = c.Get(base + "/demo/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Request.URL.Path, "/login/") {
		t.Fatalf("demo login landed on %d %s", resp.StatusCode, resp.Request.URL)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after the stop", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10 s")
	}
}

func TestCLI(t *testing.T) {
	t.Parallel()
	storetest.Real().Client(t).Close() // skips (or fails under CI) without Redis
	env := map[string]string{
		"NEMIDP_REDIS_URL":    storetest.RedisURL(),
		"NEMIDP_REDIS_PREFIX": storetest.RandomPrefix(),
		"NEMIDP_SECRET":       "cli-test-secret-0123456789abcdef0123",
	}
	getenv := func(k string) string { return env[k] }
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"citizen", "add", "--cpr", "150690-1234", "--name", "Karen Jensen"}, getenv, &out); err != nil {
		t.Fatal(err)
	}
	var citizen struct {
		UserID             string `json:"user_id"`
		ActivationPassword string `json:"activation_password"`
		Card               struct {
			Serial string
			Keys   []struct{ Number, Key string }
		}
	}
	if err := json.Unmarshal(out.Bytes(), &citizen); err != nil {
		t.Fatalf("citizen add printed %q: %v", out.String(), err)
	}
	if len(citizen.UserID) != 9 || citizen.ActivationPassword == "" || len(citizen.Card.Keys) != 148 {
		t.Fatalf("citizen add: %+v", citizen)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		wantOut string
	}{
		{"same CPR twice", []string{"citizen", "add", "--cpr", "1506901234", "--name", "Karen Jensen"}, env, "conflict", ""},
		{"bad CPR", []string{"citizen", "add", "--cpr", "3102901234", "--name", "X"}, env, "cpr", ""},
		{"client", []string{"client", "add", "--id", "bank", "--redirect-uri", "https://bank.example/cb"}, env, "", `"client_secret": "s_`},
		{"client again", []string{"client", "add", "--id", "bank", "--redirect-uri", "https://bank.example/cb"}, env, "conflict", ""},
		{"client bad uri", []string{"client", "add", "--id", "b2", "--redirect-uri", "http://bank.example/cb"}, env, "http is only allowed", ""},
		{"no redis", []string{"citizen", "add", "--cpr", "1506901234", "--name", "X"}, map[string]string{}, "NEMIDP_REDIS_URL", ""},
		{"unknown command", []string{"frobnicate"}, env, "unknown command", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(ctx, tc.args, func(k string) string { return tc.env[k] }, &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !strings.Contains(out.String(), tc.wantOut) {
				t.Fatalf("err = %v, out = %q, want %q", err, out.String(), tc.wantOut)
			}
		})
	}
}
