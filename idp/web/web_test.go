package web

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/idp/throttle"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
)

type fixture struct {
	srv    *httptest.Server
	h      *Handler
	engine *flows.Engine
	issuer *issuance.Issuer
	st     *store.Store
	prefix string // the store's key prefix
	// skew moves the engine's clock (nanoseconds ahead of the real one), race-free.
	skew *atomic.Int64
}

// fixtureConfig is what a test may change in its fixture before its server starts.
type fixtureConfig struct {
	// throttle is the failed answers an address may give per minute (0: no address limit).
	throttle int
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	return newFixtureWith(t, fixtureConfig{})
}

func newFixtureWith(t testing.TB, cfg fixtureConfig) *fixture {
	t.Helper()
	rdb := storetest.Real().Client(t)
	st, prefix := storetest.NewStorePrefixed(t, rdb)
	cards, err := codecard.NewHasher([]byte("card-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	pws := password.NewHasher(password.TestParams)
	skew := new(atomic.Int64)
	waiters := st.NewWaiters()
	t.Cleanup(func() { _ = waiters.Close() }) // before the client closes (cleanups run last first)
	e := &flows.Engine{Store: st, Passwords: pws, Cards: cards, MaxFailures: 5, FlowTTL: time.Minute,
		SessionTTL: time.Hour, Grace: time.Hour, KeyAppTTL: 20 * time.Second, Waiters: waiters,
		Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }}
	h := &Handler{Flows: e, CSRFKey: []byte("csrf-key-0123456789"), Origin: "http://example.invalid",
		Metrics: NewMetrics(prometheus.NewRegistry())}
	if cfg.throttle > 0 {
		h.Throttle = &throttle.Guard{Limiter: throttle.New(rdb, prefix+"throttle:", cfg.throttle, time.Minute), Purpose: "login"}
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(h.CleanPaths(mux))
	h.Origin = srv.URL
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, h: h, engine: e, st: st, prefix: prefix, skew: skew, issuer: &issuance.Issuer{Store: st, Passwords: pws, Cards: cards}}
}

func (f *fixture) flow(t testing.TB) string {
	t.Helper()
	return f.flowWith(t, nil)
}

// flowWith begins a flow whose relying party asked for the ui_locales given.
func (f *fixture) flowWith(t testing.TB, locales []string) string {
	t.Helper()
	fl, err := f.engine.Begin(context.Background(), flows.Start{ClientID: "rp", Locales: locales, ReturnURL: func(id string) string {
		return "https://rp.example/back?id=" + id
	}})
	if err != nil {
		t.Fatal(err)
	}
	return fl.ID
}

func browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t testing.TB, c *http.Client, method, url, ctype, body string, hdr map[string]string) (int, View, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw := readAll(t, resp)
	return resp.StatusCode, decodeView(t, resp.Header.Get("Content-Type"), raw), raw
}

func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return string(raw)
}

// decodeView decodes a JSON answer; any other answer is the zero View.
func decodeView(t testing.TB, ctype, raw string) View {
	t.Helper()
	var v View
	if strings.HasPrefix(ctype, "application/json") {
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			t.Fatalf("bad JSON %q", raw)
		}
	}
	return v
}

var jsonAccept = map[string]string{"Accept": "application/json"}

func TestUnknownFlow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	code, v, _ := do(t, browser(), "GET", f.srv.URL+"/login/no-such-flow", "", "", jsonAccept)
	if code != http.StatusGone || v.Error == nil || v.Error.Code != flows.CodeFlowExpired {
		t.Fatalf("got %d %+v", code, v)
	}
	code, _, html := do(t, browser(), "GET", f.srv.URL+"/login/no-such-flow", "", "", nil)
	if code != http.StatusGone || !strings.Contains(html, "udløbet") || !strings.Contains(html, `lang="da"`) {
		t.Fatalf("HTML error page: %d %q", code, html)
	}
}

func TestPostRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.flow(t)
	b := browser()
	code, v, _ := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept)
	if code != 200 || v.Step != flows.StepPassword || v.CSRFToken == "" {
		t.Fatalf("first view: %d %+v", code, v)
	}
	csrf := v.CSRFToken
	target := f.srv.URL + "/login/" + id + "/password"
	good := `{"username":"123456789","password":"x"}`
	tests := []struct {
		name   string
		client *http.Client
		ctype  string
		body   string
		hdr    map[string]string
		status int
		code   string
	}{
		{"no csrf", b, "application/json", good, jsonAccept, 403, "csrf"},
		{"wrong csrf", b, "application/json", good, map[string]string{"Accept": "application/json", "X-CSRF-Token": "x"}, 403, "csrf"},
		{"cross-site", b, "application/json", good, map[string]string{"Accept": "application/json", "X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}, 403, "csrf"},
		{"foreign origin", b, "application/json", good, map[string]string{"Accept": "application/json", "X-CSRF-Token": csrf, "Origin": "https://evil.example"}, 403, "csrf"},
		{"text/plain", b, "text/plain", good, map[string]string{"Accept": "application/json", "X-CSRF-Token": csrf}, 415, flows.CodeInvalidRequest},
		{"malformed json", b, "application/json", `{"username":`, map[string]string{"X-CSRF-Token": csrf}, 400, flows.CodeInvalidRequest},
		{"empty json", b, "application/json", ``, map[string]string{"X-CSRF-Token": csrf}, 400, flows.CodeInvalidRequest},
		{"oversized", b, "application/json", `{"password":"` + strings.Repeat("a", 1<<20) + `"}`, map[string]string{"X-CSRF-Token": csrf}, 413, flows.CodeInvalidRequest},
		{"other browser", browser(), "application/json", good, map[string]string{"Accept": "application/json", "X-CSRF-Token": csrf}, 403, flows.CodeWrongBrowser},
		{"wrong step", b, "application/json", `{"key":"123456"}`, map[string]string{"X-CSRF-Token": csrf}, 409, flows.CodeWrongStep},
		{"empty answer", b, "application/json", `{}`, map[string]string{"X-CSRF-Token": csrf}, 400, flows.CodeInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := target
			if tc.name == "wrong step" {
				u = f.srv.URL + "/login/" + id + "/codecard"
			}
			code, v, raw := do(t, tc.client, "POST", u, tc.ctype, tc.body, tc.hdr)
			if code != tc.status || v.Error == nil || v.Error.Code != tc.code {
				t.Fatalf("got %d %q, want %d %s", code, raw[:min(len(raw), 200)], tc.status, tc.code)
			}
		})
	}
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func TestHTMLForms(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	res, err := f.issuer.IssueWithPassword(context.Background(), issuance.Request{CPR: "1506901234", Name: "Karen Jensen"}, "Karen2026nemid")
	if err != nil {
		t.Fatal(err)
	}
	id := f.flow(t)
	b := browser()
	code, _, page := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", nil)
	m := csrfField.FindStringSubmatch(page)
	if code != 200 || m == nil || !strings.Contains(page, "Bruger-id") {
		t.Fatalf("password page: %d %q", code, page)
	}
	form := "username=" + res.UserID + "&password=wrong1234x&csrf_token=" + m[1]
	code, _, page = do(t, b, "POST", f.srv.URL+"/login/"+id+"/password", "application/x-www-form-urlencoded", form, nil)
	if code != 401 || !strings.Contains(page, "Forkert bruger-id eller adgangskode") || !strings.Contains(page, "Forsøg tilbage: 4") {
		t.Fatalf("wrong password page: %d %q", code, page)
	}
	form = "username=" + res.UserID + "&password=Karen2026nemid&csrf_token=" + m[1]
	code, _, page = do(t, b, "POST", f.srv.URL+"/login/"+id+"/password", "application/x-www-form-urlencoded", form, nil)
	num := regexp.MustCompile(`id="key-number">(\d{4})<`).FindStringSubmatch(page)
	if code != 200 || num == nil {
		t.Fatalf("codecard page: %d %q", code, page)
	}
	var key string
	for _, k := range res.Card.Keys {
		if k.Number == num[1] {
			key = k.Key
		}
	}
	req, _ := http.NewRequest("POST", f.srv.URL+"/login/"+id+"/codecard", strings.NewReader("key="+key+"&csrf_token="+m[1]))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "https://rp.example/back?id="+id {
		t.Fatalf("done: %d Location=%q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var sso bool
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			sso = c.HttpOnly && c.SameSite == http.SameSiteLaxMode
		}
	}
	if !sso {
		t.Fatal("no HttpOnly SameSite=Lax SSO cookie after login")
	}
}

func TestLanguage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.flow(t)
	b := browser()
	tests := []struct{ query, hdr, want string }{
		{"", "", "Bruger-id"},               // Danish by default
		{"", "en-US,en;q=0.9", "User ID"},   // else the browser's preference
		{"?lang=da", "en", "Bruger-id"},     // an explicit choice over the browser's
		{"", "en-US,en;q=0.9", "Bruger-id"}, // is remembered in a cookie
		{"?lang=en", "", "User ID"},
		{"", "da", "User ID"},
	}
	for _, tc := range tests {
		_, _, page := do(t, b, "GET", f.srv.URL+"/login/"+id+tc.query, "", "", map[string]string{"Accept-Language": tc.hdr})
		if !strings.Contains(page, tc.want) {
			t.Errorf("GET%s (Accept-Language %q): want %q", tc.query, tc.hdr, tc.want)
		}
	}
}

// FuzzLoginPost throws arbitrary bodies, content types and step names at a live flow: the
// answer is always a clear 4xx with a JSON error, never a panic, a redirect or a 5xx.
func FuzzLoginPost(f *testing.F) {
	fx := newFixture(f)
	id := fx.flow(f)
	b := browser()
	_, v, _ := do(f, b, "GET", fx.srv.URL+"/login/"+id, "", "", jsonAccept)
	f.Add("password", "application/json", `{"username":"123456789","password":"1234"}`)
	f.Add("codecard", "application/json", `{"key":"12345"}`)
	f.Add("new-password", "application/x-www-form-urlencoded", "password=%zz")
	f.Add("nope", "multipart/form-data; boundary=x", "--x\r\n")
	f.Add("password", "application/json", `[1,2,3]`)
	f.Add("keyapp", "application/json", `{}`)
	f.Add("method", "application/json", `{"method":"keyapp"}`)
	f.Add("method", "application/x-www-form-urlencoded", "method=codecard")
	f.Add("password", "application/json", `{"username":"\u0000","password":"`+strings.Repeat("9", 300)+`"}`)
	f.Fuzz(func(t *testing.T, step, ctype, body string) {
		if step == "" || strings.IndexFunc(ctype, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			return // not a request a client can send
		}
		code, view, raw := do(t, b, "POST", fx.srv.URL+"/login/"+id+"/"+url.PathEscape(step), ctype, body,
			map[string]string{"Accept": "application/json", "X-CSRF-Token": v.CSRFToken})
		if code >= 500 || code/100 == 3 {
			t.Fatalf("POST %s (%s) %q: %d %s", step, ctype, body, code, raw)
		}
		if code >= 400 && (view.Error == nil || view.Error.Code == "") {
			t.Fatalf("POST %s: %d without a JSON error: %s", step, code, raw)
		}
	})
}

// TestExpiredFlowOffersWayBack: an expired login answers 410 and leads back to the relying
// party (its return URL), as JSON and as a Danish page with a link.
func TestExpiredFlowOffersWayBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.flow(t)
	f.engine.Now = func() time.Time { return time.Now().Add(2 * time.Minute) } // past the 1-minute FlowTTL
	back := "https://rp.example/back?id=" + id
	b := browser()
	code, v, _ := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept)
	if code != http.StatusGone || v.Error == nil || v.Error.Code != flows.CodeFlowExpired || v.RedirectTo != back || v.Step != flows.StepFailed {
		t.Fatalf("JSON: %d %+v", code, v)
	}
	code, _, page := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", nil)
	if code != http.StatusGone || !strings.Contains(page, `href="`+back+`"`) || !strings.Contains(page, "Tilbage til tjenesten") {
		t.Fatalf("HTML: %d %q", code, page)
	}
}

// TestSecureCookies: with an https issuer every cookie is Secure, HttpOnly, SameSite=Lax and
// __Host- prefixed.
func TestSecureCookies(t *testing.T) {
	t.Parallel()
	h := &Handler{Secure: true}
	rec := httptest.NewRecorder()
	h.setCookie(rec, sessionCookie, "v", 60)
	c := rec.Result().Cookies()[0]
	if c.Name != "__Host-"+sessionCookie || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Domain != "" {
		t.Fatalf("cookie %+v", c)
	}
}
