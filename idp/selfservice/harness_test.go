package selfservice_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/idp"
	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/selfservice"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/password"
)

// env is the whole IdP over real HTTP on the shared test Redis (under a fresh prefix,
// deleted after), with self-service's LifeCycle a fake and its clock movable.
type env struct {
	t     *testing.T
	srv   *idp.Server
	base  string
	rec   *audit.Recorder
	lc    *fakeLC
	clock *clock
}

// clock is the real clock shifted by a movable offset.
type clock struct{ off atomic.Int64 }

func (c *clock) now() time.Time        { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) shift(d time.Duration) { c.off.Store(int64(d)) }
func (c *clock) reset()                { c.off.Store(0) }

// newEnv serves an IdP; lc nil leaves self-service unwired (its LifeCycle nil).
func newEnv(t *testing.T, lc *fakeLC) *env {
	t.Helper()
	st, prefix := storetest.NewStorePrefixed(t, storetest.Real().Client(t)) // skips without Redis
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	demo := false
	cfg := config.Default()
	cfg.Addr = ln.Addr().String()
	cfg.Issuer = "http://" + cfg.Addr
	cfg.RedisURL, cfg.RedisPrefix = storetest.RedisURL(), prefix
	cfg.AdminToken = "admin-token-0123456789abcdefghij"
	cfg.Secret = "selfservice-test-secret-0123456789abcdef"
	cfg.Demo = &demo
	rec := &audit.Recorder{}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := idp.New(t.Context(), cfg, st, idp.Options{PasswordParams: password.TestParams, Logger: quiet, AuditOut: rec})
	if err != nil {
		_ = ln.Close()
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, base: cfg.Issuer, rec: rec, lc: lc, clock: &clock{}}
	// Set before serving starts: no request reads them before.
	switch {
	case lc == realLC:
		// the server's own, as wired: the issuer's cards and renewal
	case lc != nil:
		srv.SelfService.LifeCycle = lc
	default:
		srv.SelfService.LifeCycle = nil
	}
	srv.SelfService.Now = e.clock.now
	hs := &http.Server{Handler: srv.Handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		<-served
		_ = srv.Close()
	})
	return e
}

type citizen struct {
	uid, cpr, pw string
	keys         map[string]string
}

func (e *env) citizen(cpr, name string) *citizen {
	e.t.Helper()
	pw := "Borger2026nemid"
	res, err := e.srv.Issuer.IssueWithPassword(context.Background(), issuance.Request{CPR: cpr, Name: name}, pw)
	if err != nil {
		e.t.Fatal(err)
	}
	c := &citizen{uid: res.UserID, cpr: cpr, pw: pw, keys: map[string]string{}}
	for _, k := range res.Card.Keys {
		c.keys[k.Number] = k.Key
	}
	return c
}

// browser is a cookie jar that follows no redirect.
type browser struct {
	e   *env
	jar *cookiejar.Jar
	hc  *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, jar: jar, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	status   int
	location string
	body     string
	header   http.Header
}

func (b *browser) do(req *http.Request) answer {
	b.e.t.Helper()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, location: resp.Header.Get("Location"), body: string(body), header: resp.Header}
}

func (b *browser) get(path string, hdr ...string) answer {
	b.e.t.Helper()
	req, _ := http.NewRequest("GET", b.url(path), nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return b.do(req)
}

// post sends a form; hdr are extra header name/value pairs.
func (b *browser) post(path string, form url.Values, hdr ...string) answer {
	b.e.t.Helper()
	req, _ := http.NewRequest("POST", b.url(path), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return b.do(req)
}

func (b *browser) url(path string) string {
	if strings.HasPrefix(path, "http") {
		return path
	}
	return b.e.base + path
}

// json calls a login URL the way the JSON contract does.
func (b *browser) json(method, path, csrf string, body any) (int, map[string]any) {
	b.e.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, b.url(path), rd)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if csrf != "" {
		req.Header.Set("X-CSRF-Token", csrf)
	}
	a := b.do(req)
	var out map[string]any
	_ = json.Unmarshal([]byte(a.body), &out)
	return a.status, out
}

// view is the JSON view of the login page a redirect leads to.
func (b *browser) view(location string) map[string]any {
	b.e.t.Helper()
	if !strings.HasPrefix(location, "/login/") {
		b.e.t.Fatalf("redirect to %q, want a login page", location)
	}
	st, v := b.json("GET", location, "", nil)
	if st != http.StatusOK {
		b.e.t.Fatalf("GET %s: %d %v", location, st, v)
	}
	return v
}

// finish answers the login at location with c's password and card key (as far as it asks)
// and follows its return to self-service; it answers where self-service then sends the
// browser.
func (b *browser) finish(location string, c *citizen) string {
	b.e.t.Helper()
	v := b.view(location)
	flow := location
	if v["step"] == "password" {
		st, nv := b.json("POST", flow+"/password", v["csrf_token"].(string), map[string]string{"username": c.uid, "password": c.pw})
		if st != http.StatusOK {
			b.e.t.Fatalf("password: %d %v", st, nv)
		}
		v = nv
	}
	if v["step"] == "keyapp" { // a citizen with the key app: the card instead
		st, nv := b.json("POST", flow+"/method", v["csrf_token"].(string), map[string]string{"method": "codecard"})
		if st != http.StatusOK {
			b.e.t.Fatalf("method: %d %v", st, nv)
		}
		v = nv
	}
	if v["step"] == "codecard" {
		st, nv := b.json("POST", flow+"/codecard", v["csrf_token"].(string), map[string]string{"key": c.keys[v["key_number"].(string)]})
		if st != http.StatusOK {
			b.e.t.Fatalf("codecard: %d %v", st, nv)
		}
		v = nv
	}
	back, _ := v["redirect_to"].(string)
	if v["step"] != "done" || !strings.HasPrefix(back, selfservice.Path+"/callback?id=") {
		b.e.t.Fatalf("login ended %v, want done with a return to self-service", v)
	}
	a := b.get(back)
	if a.status != http.StatusSeeOther {
		b.e.t.Fatalf("callback: %d %s", a.status, a.body)
	}
	return a.location
}

// login logs c in to self-service from scratch and answers the overview page.
func (b *browser) login(c *citizen) string {
	b.e.t.Helper()
	a := b.get(selfservice.Path)
	if a.status != http.StatusSeeOther {
		b.e.t.Fatalf("GET %s without a session: %d, want 303 to the login", selfservice.Path, a.status)
	}
	if next := b.finish(a.location, c); next != selfservice.Path {
		b.e.t.Fatalf("after the login: sent to %q, want the overview", next)
	}
	page := b.get(selfservice.Path)
	if page.status != http.StatusOK {
		b.e.t.Fatalf("overview after login: %d %s", page.status, page.body)
	}
	return page.body
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// csrf is the form token of a page.
func csrf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf token on the page:\n%s", page)
	}
	return m[1]
}

// cookie is the browser's cookie of that name ("" when none).
func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.e.base)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (b *browser) setCookie(name, value string) {
	u, _ := url.Parse(b.e.base)
	b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

var dataCode = regexp.MustCompile(`id="error" data-code="([^"]*)"`)

// errorCode is the code of a page's error ("" for none).
func errorCode(page string) string {
	if m := dataCode.FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return ""
}

// realLC asks newEnv for the server's own LifeCycle (the issuer's), as `nemidp serve` wires it.
var realLC = &fakeLC{}

// fakeLC is the card and renewal service, as far as the pages see it.
type fakeLC struct {
	mu       sync.Mutex
	cards    []selfservice.Card
	orderErr error
	keyErr   error
	renewErr error
	cardsErr error
	ordered  []string // "uid:reason"
	renewed  []string // "uid:serial:number:key"
	n        int
}

func (f *fakeLC) Cards(_ context.Context, uid string) ([]selfservice.Card, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cards, f.cardsErr
}

func (f *fakeLC) OrderCard(_ context.Context, uid, reason string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.orderErr != nil {
		return "", f.orderErr
	}
	f.n++
	f.ordered = append(f.ordered, uid+":"+reason)
	return fmt.Sprintf("G%09d", 100000000+f.n), nil
}

func (f *fakeLC) RenewalKey(_ context.Context, uid string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keyErr != nil {
		return "", "", f.keyErr
	}
	return "G750159724", "0042", nil
}

func (f *fakeLC) Renew(_ context.Context, uid, serial, number, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.renewErr != nil {
		return f.renewErr
	}
	f.renewed = append(f.renewed, uid+":"+serial+":"+number+":"+key)
	return nil
}

func (f *fakeLC) set(fn func(*fakeLC)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeLC) orders() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ordered...)
}

func (f *fakeLC) renewals() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.renewed...)
}

// errOutage is what the card service answers while Redis is away.
var errOutage = fmt.Errorf("fake: %w", store.ErrUnavailable)
