package integrationtests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redisServer is a throwaway redis-server process.
type redisServer struct {
	bin  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedisServer starts redis-server (NEMIDP_TEST_REDIS_SERVER, or redis-server on PATH) on
// a free port, without persistence.
func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	bin := os.Getenv("NEMIDP_TEST_REDIS_SERVER")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			unavailable(t, "no redis-server: set NEMIDP_TEST_REDIS_SERVER or put redis-server on PATH")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	s := &redisServer{bin: bin, port: port}
	s.start(t)
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

func (s *redisServer) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command(s.bin, "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", s.bin, err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)
	// Bounded wait for the server to answer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pingRedis(s.url()) == nil {
			return
		}
		select {
		case <-s.done:
			t.Fatalf("%s exited on start (port %d taken?)", s.bin, s.port)
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			t.Fatalf("%s on port %d does not answer after 10 s", s.bin, s.port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills the server (its own process, by pid) and waits until it is gone.
func (s *redisServer) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// TestRedisGoesAwayMidLogin: when Redis dies between two steps, the login answers 503 with
// JSON error unavailable (no panic, no 500), /readyz answers 503, and the server recovers
// once Redis is back.
func TestRedisGoesAwayMidLogin(t *testing.T) {
	t.Parallel()
	rs := startRedisServer(t)
	p := startIdPOn(t, rs.url())
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")

	b := p.newBrowser(t)
	l := b.authorize(t, bank)
	if code, v := l.password(karen, karen.Password); code != http.StatusOK {
		t.Fatalf("password: %d %s", code, v.Error)
	}
	l.requireStep("codecard")
	if r := b.get(t, "/readyz"); r.Status != http.StatusOK {
		t.Fatalf("/readyz before: %s", r)
	}

	rs.stop()

	r := l.postRaw("codecard", map[string]string{"key": karen.Keys[l.View.KeyNumber]})
	if r.Status != http.StatusServiceUnavailable || errorCode(r) != "unavailable" {
		t.Errorf("POST key with Redis gone: %s, want 503 unavailable", r)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if r := b.get(t, "/login/"+l.View.Flow); r.Status != http.StatusServiceUnavailable || errorCode(r) != "unavailable" {
		t.Errorf("GET login with Redis gone: %s, want 503 unavailable", r)
	}
	if r := b.get(t, "/readyz"); r.Status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Redis gone: %s, want 503", r)
	}
	if r := b.get(t, "/healthz"); r.Status != http.StatusOK {
		t.Errorf("/healthz with Redis gone: %s, want 200 (the process serves)", r)
	}
	// The token endpoint says 503 too, not invalid_grant: the client keeps its refresh token.
	tr, _ := http.NewRequest(http.MethodPost, p.Issuer+"/oauth/token",
		strings.NewReader(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x.y"}}.Encode()))
	tr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	tr.SetBasicAuth(bank.Client.ID, bank.Client.Secret)
	if resp, err := http.DefaultClient.Do(tr); err != nil {
		t.Error(err)
	} else {
		var body struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || body.Error != "temporarily_unavailable" {
			t.Errorf("token endpoint with Redis gone: %d %q, want 503 temporarily_unavailable", resp.StatusCode, body.Error)
		}
	}
	_, u := b.authURL(bank)
	if r := b.get(t, u); r.Status != http.StatusServiceUnavailable || errorCode(r) != "unavailable" || r.Header.Get("Location") != "" {
		t.Errorf("authorize with Redis gone: %s Location %q, want 503 unavailable without redirect", r, r.Header.Get("Location"))
	}

	// Redis back (empty: no persistence): ready again; the old flow is gone (410).
	rs.start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	for {
		r, err := b.try(ctx, http.MethodGet, "/readyz", nil, nil)
		if err == nil && r.Status == http.StatusOK {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("/readyz did not recover within 15 s after Redis came back: %v %v", r, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, v := l.post("codecard", map[string]string{"key": karen.Keys[l.View.KeyNumber]}); code != http.StatusGone || codeOf(v.Error) != "flow_expired" {
		t.Errorf("POST key after Redis lost its data: %d %s, want 410 flow_expired", code, v.Error)
	}
}
