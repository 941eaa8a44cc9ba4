package idp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/keys/password"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type loginCitizen struct {
	uid  string
	keys map[string]string
	left int
}

// benchLogin runs complete logins through HTTP, as a relying party and a browser would:
// authorize, login page, password, code-card key, callback, code exchange. Reported: wall
// time per login and the CPU the whole process (server and the test's client) spent per login.
func benchLogin(b *testing.B, kdf password.Params) {
	rp := newBenchRP(b)
	ctx := context.Background()
	cpr := 0
	var c *loginCitizen
	newCitizen := func() {
		cpr++
		res, err := rp.s.Issuer.IssueWithPassword(ctx, issuance.Request{CPR: fmt.Sprintf("0101%02d%04d", 50+cpr/10000, cpr%10000), Name: "Bench Borger"}, "Bench2026nemid")
		if err != nil {
			b.Fatal(err)
		}
		c = &loginCitizen{uid: res.UserID, keys: map[string]string{}, left: len(res.Card.Keys)}
		for _, k := range res.Card.Keys {
			c.keys[k.Number] = k.Key
		}
	}
	h := password.NewHasher(kdf)
	rp.s.Flows.Passwords, rp.s.Issuer.Passwords = h, h
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		if c == nil || c.left == 0 {
			b.StopTimer()
			newCitizen()
			b.StartTimer()
		}
		start := cpuTime()
		loginOnce(b, rp, c)
		cpu += cpuTime() - start
		c.left--
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/login")
}

func loginOnce(tb testing.TB, rp *benchRP, c *loginCitizen) {
	jar, _ := cookiejar.New(nil)
	br := noRedirects(jar)
	v, ch := pkce()
	resp, err := br.Get(rp.s.base + "/authorize?" + url.Values{"client_id": {"bank"}, "redirect_uri": {"http://127.0.0.1:9/cb"},
		"response_type": {"code"}, "scope": {"openid profile"}, "state": {"s"}, "code_challenge": {ch},
		"code_challenge_method": {"S256"}}.Encode())
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	login := rp.s.base + resp.Header.Get("Location")
	rp.mark("authorize")
	view := jsonCall(tb, br, "GET", login, "", nil)
	rp.mark("view")
	csrf := view["csrf_token"].(string)
	view = jsonCall(tb, br, "POST", login+"/password", csrf, map[string]string{"username": c.uid, "password": "Bench2026nemid"})
	rp.mark("password")
	num, _ := view["key_number"].(string)
	view = jsonCall(tb, br, "POST", login+"/codecard", csrf, map[string]string{"key": c.keys[num]})
	rp.mark("codecard")
	if view["step"] != "done" {
		tb.Fatalf("login ended at %v", view)
	}
	resp, err = br.Get(view["redirect_to"].(string))
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	rp.mark("callback")
	u, _ := url.Parse(resp.Header.Get("Location"))
	rp.verifier = v
	rp.exchange(tb, u.Query().Get("code"))
	rp.mark("token")
}

func jsonCall(tb testing.TB, c *http.Client, method, u, csrf string, body any) map[string]any {
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, u, rd)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", csrf)
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		tb.Fatalf("%s %s: %d %v %v", method, strings.TrimPrefix(u, "http://"), resp.StatusCode, out, err)
	}
	return out
}

// BenchmarkCompleteLogin is one whole login with the production KDF (argon2id m=19 MiB t=2).
func BenchmarkCompleteLogin(b *testing.B) { benchLogin(b, password.Params{}) }

// BenchmarkCompleteLoginCheapKDF is the same with a near-free KDF: the difference to the one
// above is the password hash; what remains is everything else of a login.
func BenchmarkCompleteLoginCheapKDF(b *testing.B) { benchLogin(b, password.TestParams) }
