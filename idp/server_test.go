package idp_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp"
	"github.com/nemidp/nemidp/idp/admin"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/password"
)

// testServer is the whole IdP over real HTTP on a real Redis, under its own key prefix.
type testServer struct {
	*idp.Server
	base  string
	admin string
}

func redisURL(tb testing.TB) string {
	u := os.Getenv("NEMIDP_REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	st, err := store.Open(u, "probe:")
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	if err := st.Ping(context.Background()); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("redis at %s does not answer: %v", u, err)
		}
		tb.Skipf("redis at %s does not answer: %v", u, err)
	}
	return u
}

func newTestServer(tb testing.TB, kdf password.Params) *testServer {
	tb.Helper()
	return newTestServerWith(tb, nil, idp.Options{PasswordParams: kdf})
}

// newTestServerWith is newTestServer with the configuration changed by mod (nil: none) and
// the given options.
func newTestServerWith(tb testing.TB, mod func(*config.Config), opts idp.Options) *testServer {
	tb.Helper()
	u := redisURL(tb)
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	prefix := "test-" + hex.EncodeToString(rb[:]) + ":"
	st, err := store.Open(u, prefix)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		storetest.DeletePrefix(st.Redis(), prefix) // the shared Redis keeps nothing of the test
		st.Close()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	cfg := config.Default()
	cfg.Addr = ln.Addr().String()
	cfg.Issuer = "http://" + cfg.Addr
	cfg.RedisURL, cfg.RedisPrefix = u, prefix // the address throttle's keys under it too: no bucket shared between tests
	cfg.AdminToken = "test-admin-token-0123456789"
	cfg.Secret = "test-secret-0123456789abcdef0123456789"
	off := false
	cfg.Demo = &off
	if mod != nil {
		mod(&cfg)
	}
	srv, err := idp.New(context.Background(), cfg, st, opts)
	if err != nil {
		tb.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler}
	go func() { _ = hs.Serve(ln) }()
	tb.Cleanup(func() { hs.Close() })
	return &testServer{Server: srv, base: cfg.Issuer, admin: cfg.AdminToken}
}

func (s *testServer) client(tb testing.TB, id, secret string, scopes ...string) {
	tb.Helper()
	c, _, err := admin.BuildClient(admin.ClientRequest{ClientID: id, Name: id, RedirectURIs: []string{"http://127.0.0.1:9/cb"},
		Secret: secret, Scopes: scopes}, s.Keys.Algorithms())
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Store.CreateClient(context.Background(), c); err != nil {
		tb.Fatal(err)
	}
}

func noRedirects(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func TestHealthReadyMetrics(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, password.TestParams)
	for _, tc := range []struct{ path, want string }{
		{"/healthz", "ok"},
		{"/readyz", "ready"},
		{"/metrics", "nemidp_http_request_duration_seconds"},
	} {
		// /metrics shows the histogram only after a request was observed: the two before it.
		resp, err := http.Get(s.base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s = %d %q, want 200 containing %q", tc.path, resp.StatusCode, body, tc.want)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, password.TestParams)
	resp, err := http.Get(s.base + "/login/AAAAAAAAAAAAAAAAAAAAAA")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for h, want := range map[string]string{
		"Content-Security-Policy": "frame-ancestors 'none'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
	} {
		if got := resp.Header.Get(h); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
}

func TestAuthorizeRefusesWithoutRedirect(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, password.TestParams)
	s.client(t, "bank", "bank-secret-0123456789", "openid", "profile")
	tests := []struct {
		name, query, code string
	}{
		{"unknown client", "client_id=nobody&redirect_uri=http://127.0.0.1:9/cb", "unknown_client"},
		{"no client", "redirect_uri=http://127.0.0.1:9/cb", "invalid_request"},
		{"redirect with extra path", "client_id=bank&redirect_uri=http://127.0.0.1:9/cb/x", "invalid_redirect_uri"},
		{"redirect with query", "client_id=bank&redirect_uri=http://127.0.0.1:9/cb?a=1", "invalid_redirect_uri"},
		{"other port", "client_id=bank&redirect_uri=http://127.0.0.1:10/cb", "invalid_redirect_uri"},
		{"no redirect", "client_id=bank", "invalid_redirect_uri"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequest("GET", s.base+"/authorize?response_type=code&scope=openid&"+tc.query, nil)
			req.Header.Set("Accept", "application/json")
			resp, err := noRedirects(nil).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Error struct{ Code string } `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != 400 || resp.Header.Get("Location") != "" || body.Error.Code != tc.code {
				t.Errorf("got %d Location=%q code=%q, want 400, no Location, %q", resp.StatusCode,
					resp.Header.Get("Location"), body.Error.Code, tc.code)
			}
		})
	}
}

// ---- benchmarks: the token endpoint, with codes made outside the timer via SSO ----

type benchRP struct {
	s        *testServer
	http     *http.Client
	verifier string
	// phase, when set, is told each request of loginOnce as it ends (its name).
	phase func(string)
}

func (rp *benchRP) mark(name string) {
	if rp.phase != nil {
		rp.phase(name)
	}
}

func pkce() (verifier, challenge string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	verifier = base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// code runs one authorize through the SSO session of the jar and returns the code.
func (b *benchRP) code(tb testing.TB) string {
	v, ch := pkce()
	b.verifier = v
	next := b.s.base + "/authorize?" + url.Values{"client_id": {"bank"}, "redirect_uri": {"http://127.0.0.1:9/cb"},
		"response_type": {"code"}, "scope": {"openid profile offline_access"}, "state": {"s"},
		"code_challenge": {ch}, "code_challenge_method": {"S256"}}.Encode()
	for range 6 {
		resp, err := b.http.Get(next)
		if err != nil {
			tb.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if loc == "" {
			tb.Fatalf("GET %s: %d without Location", next, resp.StatusCode)
		}
		if strings.HasPrefix(loc, "http://127.0.0.1:9/cb") {
			u, _ := url.Parse(loc)
			return u.Query().Get("code")
		}
		ref, _ := url.Parse(loc)
		base, _ := url.Parse(b.s.base + "/")
		next = base.ResolveReference(ref).String()
	}
	tb.Fatal("no code after 6 redirects")
	return ""
}

func (b *benchRP) exchange(tb testing.TB, code string) map[string]any {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:9/cb"},
		"code_verifier": {b.verifier}}
	return b.token(tb, form)
}

func (b *benchRP) token(tb testing.TB, form url.Values) map[string]any {
	code, out := b.post(tb, "/oauth/token", form)
	if code != 200 {
		tb.Fatalf("token: %d %v", code, out)
	}
	return out
}

// newBenchRP logs a citizen in once (so the jar holds an SSO session).
func newBenchRP(tb testing.TB, alg ...string) *benchRP {
	s := newTestServer(tb, password.TestParams)
	c, _, err := admin.BuildClient(admin.ClientRequest{ClientID: "bank", Name: "bank", RedirectURIs: []string{"http://127.0.0.1:9/cb"},
		Secret: "bank-secret-0123456789", Scopes: []string{"openid", "profile", "offline_access"},
		IDTokenSignedResponseAlg: strings.Join(alg, "")}, s.Keys.Algorithms())
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.Store.CreateClient(context.Background(), c); err != nil {
		tb.Fatal(err)
	}
	res, err := s.Issuer.IssueWithPassword(context.Background(), issuance.Request{CPR: "1506901234", Name: "Karen Jensen"}, "Karen2026nemid")
	if err != nil {
		tb.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	rp := &benchRP{s: s, http: noRedirects(jar)}
	sid, err := s.Flows.StartSession(context.Background(), sessionFor(res.UserID))
	if err != nil {
		tb.Fatal(err)
	}
	u, _ := url.Parse(s.base)
	jar.SetCookies(u, []*http.Cookie{{Name: "nemidp_sso", Value: sid, Path: "/"}})
	return rp
}

func BenchmarkTokenEndpointCode(b *testing.B) {
	rp := newBenchRP(b)
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		code := rp.code(b)
		b.StartTimer()
		start := cpuTime()
		rp.exchange(b, code)
		cpu += cpuTime() - start
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

func BenchmarkTokenEndpointRefresh(b *testing.B) {
	rp := newBenchRP(b)
	tok := rp.exchange(b, rp.code(b))
	rt := tok["refresh_token"].(string)
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		out := rp.token(b, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
		rt = out["refresh_token"].(string)
	}
	b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkSSOAuthorize is one authorize answered from the SSO session: authorize, the login
// page (done at once), callback, code.
func BenchmarkSSOAuthorize(b *testing.B) {
	rp := newBenchRP(b)
	b.ReportAllocs()
	for b.Loop() {
		rp.code(b)
	}
}

func sessionFor(uid string) *flows.Result {
	return &flows.Result{CitizenID: uid, AMR: []string{"pwd", "otp"}, ACR: flows.ACRSubstantial, AuthTime: time.Now().UTC()}
}

func TestDiscoveryStatesWhatIsOffered(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, password.TestParams)
	resp, err := http.Get(s.base + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d struct {
		Issuer        string   `json:"issuer"`
		ResponseTypes []string `json:"response_types_supported"`
		GrantTypes    []string `json:"grant_types_supported"`
		SubjectTypes  []string `json:"subject_types_supported"`
		PKCE          []string `json:"code_challenge_methods_supported"`
		Device        string   `json:"device_authorization_endpoint"`
		Algs          []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	got := strings.Join([]string{d.Issuer, strings.Join(d.ResponseTypes, ","), strings.Join(d.GrantTypes, ","),
		strings.Join(d.SubjectTypes, ","), strings.Join(d.PKCE, ","), d.Device, strings.Join(d.Algs, ",")}, " | ")
	want := s.base + " | code | authorization_code,refresh_token | pairwise | S256 |  | ES256,RS256"
	if got != want {
		t.Fatalf("discovery:\n got %s\nwant %s", got, want)
	}
}

// TestIDTokenAlgorithmPerClient: ES256 by default; a client registered for RS256 gets RS256,
// and both verify against the published JWKS.
func TestIDTokenAlgorithmPerClient(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"", "RS256"} {
		t.Run("alg="+alg, func(t *testing.T) {
			t.Parallel()
			rp := newBenchRP(t, alg)
			tok := rp.exchange(t, rp.code(t))
			idt, err := jose.ParseSignedCompact(tok["id_token"].(string), []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
			if err != nil {
				t.Fatal(err)
			}
			want := alg
			if want == "" {
				want = "ES256"
			}
			if got := idt.Signatures[0].Header.Algorithm; got != want {
				t.Fatalf("id_token alg %s, want %s", got, want)
			}
			resp, err := http.Get(rp.s.base + "/keys")
			if err != nil {
				t.Fatal(err)
			}
			var jwks jose.JSONWebKeySet
			_ = json.NewDecoder(resp.Body).Decode(&jwks)
			resp.Body.Close()
			keys := jwks.Key(idt.Signatures[0].Header.KeyID)
			if len(keys) != 1 {
				t.Fatalf("kid %s not in the JWKS", idt.Signatures[0].Header.KeyID)
			}
			if _, err := idt.Verify(keys[0]); err != nil {
				t.Fatalf("id_token does not verify with the JWKS key: %v", err)
			}
		})
	}
}

func (b *benchRP) post(tb testing.TB, path string, form url.Values) (int, map[string]any) {
	req, _ := http.NewRequest("POST", b.s.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("bank", "bank-secret-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func userinfoStatus(tb testing.TB, base, access string) int {
	req, _ := http.NewRequest("GET", base+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestIntrospectionAndRevocation(t *testing.T) {
	t.Parallel()
	rp := newBenchRP(t)
	tok := rp.exchange(t, rp.code(t))
	access, refresh := tok["access_token"].(string), tok["refresh_token"].(string)

	code, in := rp.post(t, "/oauth/introspect", url.Values{"token": {access}})
	if code != 200 || in["active"] != true || in["client_id"] != "bank" || in["sub"] == nil || in["name"] != "Karen Jensen" {
		t.Fatalf("introspection of a live token: %d %v", code, in)
	}
	// Revoking the refresh token revokes the whole grant, its access tokens too (RFC 7009 §2.1).
	if code, out := rp.post(t, "/revoke", url.Values{"token": {refresh}, "token_type_hint": {"refresh_token"}}); code != 200 {
		t.Fatalf("revoke: %d %v", code, out)
	}
	if code, in := rp.post(t, "/oauth/introspect", url.Values{"token": {access}}); code != 200 || in["active"] != false {
		t.Fatalf("introspection after revocation: %d %v", code, in)
	}
	if st := userinfoStatus(t, rp.s.base, access); st != http.StatusUnauthorized {
		t.Fatalf("userinfo with a revoked token: %d, want 401", st)
	}
	if code, out := rp.post(t, "/oauth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}); code != 400 || out["error"] != "invalid_grant" {
		t.Fatalf("refresh with a revoked token: %d %v", code, out)
	}

	// Revoking one access token leaves the grant's refresh token working.
	tok = rp.exchange(t, rp.code(t))
	if code, _ := rp.post(t, "/revoke", url.Values{"token": {tok["access_token"].(string)}}); code != 200 {
		t.Fatalf("revoke access token: %d", code)
	}
	if st := userinfoStatus(t, rp.s.base, tok["access_token"].(string)); st != http.StatusUnauthorized {
		t.Fatalf("userinfo with a revoked access token: %d", st)
	}
	rp.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
}

func TestEndSessionEndsSSO(t *testing.T) {
	t.Parallel()
	rp := newBenchRP(t)
	tok := rp.exchange(t, rp.code(t))
	resp, err := rp.http.Get(rp.s.base + "/end_session?id_token_hint=" + url.QueryEscape(tok["id_token"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cleared := ssoCleared(resp)
	if !cleared {
		t.Fatalf("end_session (%d) did not clear the SSO cookie", resp.StatusCode)
	}
	// The next authorize must ask for the password again.
	_, ch := pkce()
	next := rp.s.base + "/authorize?" + url.Values{"client_id": {"bank"}, "redirect_uri": {"http://127.0.0.1:9/cb"},
		"response_type": {"code"}, "scope": {"openid"}, "code_challenge": {ch}, "code_challenge_method": {"S256"}}.Encode()
	resp, err = rp.http.Get(next)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", rp.s.base+resp.Header.Get("Location"), nil)
	req.Header.Set("Accept", "application/json")
	resp, err = rp.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Step string }
	_ = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if v.Step != "password" {
		t.Fatalf("after end_session the login answered step %q, want password", v.Step)
	}
}

// TestLogoutWithoutHintAsksFirst: an end_session request without a valid id_token_hint (a
// cross-site link, say) does not end the SSO session; the citizen confirms on a page whose
// form carries a CSRF token.
func TestLogoutWithoutHintAsksFirst(t *testing.T) {
	t.Parallel()
	rp := newBenchRP(t)
	for _, hint := range []string{"", "not-a-token"} {
		resp, err := rp.http.Get(rp.s.base + "/end_session?id_token_hint=" + hint)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(page), `action="/end_session/confirm"`) {
			t.Fatalf("hint %q: %d %s", hint, resp.StatusCode, page)
		}
		rp.code(t) // the SSO session still answers
	}
	// A POST without the page's token is refused; with it, the session ends.
	resp, err := rp.http.PostForm(rp.s.base+"/end_session/confirm", url.Values{"csrf_token": {"forged"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged confirmation: %d", resp.StatusCode)
	}
	resp, err = rp.http.Get(rp.s.base + "/end_session")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	token := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(string(page))
	if token == nil {
		t.Fatalf("no CSRF token on the confirmation page: %s", page)
	}
	resp, err = rp.http.PostForm(rp.s.base+"/end_session/confirm", url.Values{"csrf_token": {token[1]}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cleared := ssoCleared(resp)
	if resp.StatusCode != http.StatusSeeOther || !cleared {
		t.Fatalf("confirmed logout: %d, SSO cookie cleared %v", resp.StatusCode, cleared)
	}
}

// ssoCleared reports whether the response deletes the SSO cookie.
func ssoCleared(resp *http.Response) bool {
	for _, c := range resp.Cookies() {
		if c.Name == "nemidp_sso" && c.MaxAge < 0 {
			return true
		}
	}
	return false
}
