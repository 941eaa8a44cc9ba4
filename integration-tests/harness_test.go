// Package integrationtests runs nemidp end to end: the real server over real HTTP on a real
// Redis, registered through the operator API, with zitadel/oidc's relying party on one side
// and a scripted browser (cookie jar, JSON contract or HTML forms) on the other.
//
// Redis: NEMIDP_REDIS_URL, else redis://127.0.0.1:6379/0. When it does not answer, the tests
// skip — unless CI is set, where they fail. Every server gets its own key prefix, so tests run
// in parallel on one Redis.
package integrationtests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/idp"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/password"
)

// redirectURI is where relying parties want the browser back; nothing listens there: the
// browser stops at the first Location that starts with it.
const redirectURI = "http://127.0.0.1:9/cb"

const (
	acrSubstantial = "https://data.gov.dk/concept/core/nsis/Substantial"
	karenCPR       = "1506901234"
)

// ---- Redis ----

func redisURL() string {
	if u := os.Getenv("NEMIDP_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

var redisPing = sync.OnceValue(func() error { return pingRedis(redisURL()) })

func pingRedis(u string) error {
	opt, err := redis.ParseURL(u)
	if err != nil {
		return err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// needRedis returns the Redis URL, skipping the test when Redis is not there (failing on CI).
func needRedis(t *testing.T) string {
	t.Helper()
	if err := redisPing(); err != nil {
		unavailable(t, "Redis at %s does not answer PING: %v", redisURL(), err)
	}
	return redisURL()
}

// unavailable skips locally and fails on CI, where nothing may be skipped silently.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set, so this is an error: "+format, args...)
	}
	t.Skipf(format, args...)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ---- the IdP ----

// IdP is one running nemidp server with its own Redis key prefix.
type IdP struct {
	Issuer string
	// URL is where this instance listens: its Issuer, except for a second instance behind the
	// same issuer (startSecondInstance), reached at its own address as a load balancer would.
	URL        string
	AdminToken string
	Server     *idp.Server
	Store      *store.Store
	Prefix     string
	http       *http.Client
}

// startIdP starts a server on the shared test Redis.
func startIdP(t *testing.T, mods ...func(*config.Config)) *IdP {
	t.Helper()
	return startIdPOn(t, needRedis(t), mods...)
}

// startIdPOn starts a server on the Redis at redisURL.
func startIdPOn(t *testing.T, redisURL string, mods ...func(*config.Config)) *IdP {
	t.Helper()
	prefix := "it-" + randHex(6) + ":"
	st, err := store.Open(redisURL, prefix)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() {
		deletePrefix(st.Redis(), prefix)
		_ = st.Close()
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	demo := false
	cfg := config.Default()
	cfg.Addr = ln.Addr().String()
	cfg.Issuer = "http://" + ln.Addr().String()
	cfg.RedisURL = redisURL
	cfg.RedisPrefix = prefix
	cfg.AdminToken = "admin-" + randHex(16)
	cfg.Secret = "secret-" + randHex(20)
	cfg.Demo = &demo
	cfg.Login.PasswordKDF = password.TestParams.String() // cheap: the tests measure no KDF
	for _, m := range mods {
		m(&cfg)
	}
	return serveIdP(t, ln, cfg, st)
}

// serveIdP validates cfg, assembles the server on st and serves it on ln until the test ends.
func serveIdP(t *testing.T, ln net.Listener, cfg config.Config, st *store.Store) *IdP {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		_ = ln.Close()
		t.Fatalf("config: %v", err)
	}
	quiet := slog.Default()
	srv, err := idp.New(t.Context(), cfg, st, idp.Options{Logger: quiet}) // the KDF cost is cfg's
	if err != nil {
		_ = ln.Close()
		t.Fatalf("idp.New: %v", err)
	}
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
	return &IdP{Issuer: cfg.Issuer, URL: "http://" + ln.Addr().String(), AdminToken: cfg.AdminToken, Server: srv,
		Store: st, Prefix: cfg.RedisPrefix, http: &http.Client{Timeout: 30 * time.Second}}
}

// startSecondInstance starts another server behind p's issuer: the same Redis, key prefix,
// secret and operator token, p's Issuer in its configuration, listening on its own address
// (its URL). Browsers and devices that talk to it reach it at URL; tokens, audiences and
// redirects still name the one issuer, as behind a load balancer. mods change the copied
// configuration (a rolling update's new settings).
func startSecondInstance(t *testing.T, p *IdP, mods ...func(*config.Config)) *IdP {
	t.Helper()
	cfg := p.Server.Config
	st, err := store.Open(cfg.RedisURL, cfg.RedisPrefix)
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() }) // the prefix is p's to delete
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	cfg.Addr = ln.Addr().String() // cfg.Issuer stays p's
	for _, m := range mods {
		m(&cfg)
	}
	q := serveIdP(t, ln, cfg, st)
	if q.Issuer != p.Issuer || q.URL == p.URL {
		t.Fatalf("second instance: issuer %s at %s, first %s at %s", q.Issuer, q.URL, p.Issuer, p.URL)
	}
	return q
}

// routeTo is a transport that sends every request to the instance at base (scheme and host),
// keeping its path: a load balancer that routes one client to one instance.
type routeTo struct {
	base *url.URL
	next http.RoundTripper
}

func (r routeTo) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host = r.base.Scheme, r.base.Host
	req.Host = r.base.Host
	return r.next.RoundTrip(req)
}

// transport is how a client reaches this instance: directly, or, for a second instance, by
// routing requests for the issuer to its URL.
func (p *IdP) transport() http.RoundTripper {
	if p.URL == p.Issuer {
		return http.DefaultTransport
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		panic(err)
	}
	return routeTo{base: u, next: http.DefaultTransport}
}

// deletePrefix removes what a test server left in Redis.
func deletePrefix(rdb redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			rdb.Del(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		rdb.Del(ctx, batch...)
	}
}

// ---- operator API ----

// admin calls the operator API and decodes the JSON answer into out (if not nil).
func (p *IdP) admin(t *testing.T, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, p.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.AdminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d: not JSON: %v: %.300s", method, path, resp.StatusCode, err, raw)
		}
	}
	return resp.StatusCode
}

// Client is a registered relying party.
type Client struct {
	ID     string
	Secret string
	Public bool
	Scopes []string
}

// registerClient registers a confidential client with the given scopes.
func (p *IdP) registerClient(t *testing.T, scopes ...string) Client {
	t.Helper()
	c := Client{ID: "rp-" + randHex(4), Secret: randHex(16), Scopes: scopes}
	p.mustRegister(t, map[string]any{"client_id": c.ID, "name": "Test Bank " + c.ID,
		"redirect_uris": []string{redirectURI}, "secret": c.Secret, "scopes": scopes})
	return c
}

// registerOnBehalfClient registers a confidential client with allow_on_behalf_of: a guardian
// may act for a ward there.
func (p *IdP) registerOnBehalfClient(t *testing.T, scopes ...string) Client {
	t.Helper()
	c := Client{ID: "kommune-" + randHex(4), Secret: randHex(16), Scopes: scopes}
	p.mustRegister(t, map[string]any{"client_id": c.ID, "name": "Test Kommune " + c.ID,
		"redirect_uris": []string{redirectURI}, "secret": c.Secret, "scopes": scopes, "allow_on_behalf_of": true})
	return c
}

// registerPublicClient registers a public (native) client.
func (p *IdP) registerPublicClient(t *testing.T, scopes ...string) Client {
	t.Helper()
	c := Client{ID: "app-" + randHex(4), Public: true, Scopes: scopes}
	p.mustRegister(t, map[string]any{"client_id": c.ID, "name": "Test App", "public": true,
		"redirect_uris": []string{redirectURI}, "scopes": scopes})
	return c
}

func (p *IdP) mustRegister(t *testing.T, body map[string]any) {
	t.Helper()
	var out map[string]any
	if code := p.admin(t, http.MethodPost, "/admin/v1/clients", body, &out); code != http.StatusCreated {
		t.Fatalf("POST /admin/v1/clients: %d %v", code, out)
	}
}

// Citizen is a NemID as issued: user id, current password and the printed card.
type Citizen struct {
	UserID   string
	CPR      string
	Name     string
	Password string // the activation password until the citizen chose their own
	Serial   string
	Keys     map[string]string // key number → key
	// mu makes whole logins of this citizen (run) one at a time: parallel logins of one card
	// race for its one pending key number (the loser is answered used_key), and a first login
	// changes Password.
	mu sync.Mutex
}

var cprSeq struct {
	sync.Mutex
	n int
}

// freshCPR returns a valid CPR number not used by another citizen of this test binary.
func freshCPR() string {
	cprSeq.Lock()
	defer cprSeq.Unlock()
	cprSeq.n++
	n := cprSeq.n
	// Day 01–28, month 01–12, year 50–99, serial from the sequence (7th digit ≤ 3: 1900s).
	return fmt.Sprintf("%02d%02d%02d%04d", 1+n%28, 1+(n/28)%12, 50+(n/336)%50, 1000+n%9000)
}

// issueCitizen creates an OCES NemID through the operator API and keeps the printed card.
func (p *IdP) issueCitizen(t *testing.T, cpr, name string) *Citizen {
	t.Helper()
	return p.issueNemID(t, cpr, name, map[string]any{"kind": "oces"})
}

// issueNemID creates a NemID through the operator API with extra fields (kind, issued_at)
// and keeps the printed card.
func (p *IdP) issueNemID(t *testing.T, cpr, name string, extra map[string]any) *Citizen {
	t.Helper()
	var out struct {
		UserID             string `json:"user_id"`
		ActivationPassword string `json:"activation_password"`
		Card               struct {
			Serial string `json:"serial"`
			Keys   []struct {
				Number string `json:"number"`
				Key    string `json:"key"`
			} `json:"keys"`
		} `json:"card"`
	}
	body := map[string]any{"cpr": cpr, "name": name}
	for k, v := range extra {
		body[k] = v
	}
	code := p.admin(t, http.MethodPost, "/admin/v1/citizens", body, &out)
	if code != http.StatusCreated || out.UserID == "" || out.ActivationPassword == "" {
		t.Fatalf("POST /admin/v1/citizens: %d %+v", code, out)
	}
	c := &Citizen{UserID: out.UserID, CPR: cpr, Name: name, Password: out.ActivationPassword,
		Serial: out.Card.Serial, Keys: map[string]string{}}
	for _, k := range out.Card.Keys {
		c.Keys[k.Number] = k.Key
	}
	if len(c.Keys) != 148 {
		t.Fatalf("card %s has %d keys, want 148", c.Serial, len(c.Keys))
	}
	return c
}

// citizenStatus reads the NemID's status through the operator API.
func (p *IdP) citizenStatus(t *testing.T, uid string) string {
	t.Helper()
	var out struct {
		Status string `json:"status"`
	}
	if code := p.admin(t, http.MethodGet, "/admin/v1/citizens/"+uid, nil, &out); code != http.StatusOK {
		t.Fatalf("GET /admin/v1/citizens/%s: %d", uid, code)
	}
	return out.Status
}

// ---- the relying party (zitadel/oidc rp) ----

// RP is a zitadel/oidc relying party for a registered client.
type RP struct {
	rp.RelyingParty
	Client Client
	Scopes []string
}

type nonceKey struct{}

// relyingParty runs discovery and returns an RP asking for scopes. ID tokens are verified
// (signature via the JWKS, iss, aud, and the nonce put in the context by exchange).
func (p *IdP) relyingParty(t *testing.T, c Client, scopes ...string) *RP {
	t.Helper()
	r, err := rp.NewRelyingPartyOIDC(t.Context(), p.Issuer, c.ID, c.Secret, redirectURI, scopes,
		rp.WithSigningAlgsFromDiscovery(),
		rp.WithVerifierOpts(rp.WithNonce(func(ctx context.Context) string {
			n, _ := ctx.Value(nonceKey{}).(string)
			return n
		})))
	if err != nil {
		t.Fatalf("rp.NewRelyingPartyOIDC: %v", err)
	}
	return &RP{RelyingParty: r, Client: c, Scopes: scopes}
}

// Tokens is what a code exchange returns.
type Tokens = oidc.Tokens[*oidc.IDTokenClaims]

// ---- the browser ----

// Browser is one user agent: a cookie jar, no automatic redirects.
type Browser struct {
	idp  *IdP
	http *http.Client
	// Accept is sent with every GET: application/json (the contract) or text/html.
	Accept string
	// Headers go with every request (X-Forwarded-For, to be a client behind a proxy).
	Headers map[string]string
}

func (p *IdP) newBrowser(t *testing.T) *Browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Browser{idp: p, Accept: "application/json", http: &http.Client{
		Jar: jar, Timeout: 30 * time.Second, Transport: p.transport(),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Resp is one HTTP answer, read completely.
type Resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *Resp) String() string { return fmt.Sprintf("%d %.400s", r.Status, r.Body) }

// Location is the redirect target, resolved against base.
func (r *Resp) Location(base string) string {
	loc := r.Header.Get("Location")
	if loc == "" {
		return ""
	}
	b, err := url.Parse(base)
	if err != nil {
		return loc
	}
	u, err := b.Parse(loc)
	if err != nil {
		return loc
	}
	return u.String()
}

// View decodes a JSON view of the login contract.
func (r *Resp) View(t *testing.T) View {
	t.Helper()
	var v View
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("not a JSON view: %v: %s", err, r)
	}
	return v
}

// do sends one request. headers are extra headers; body may be nil.
func (b *Browser) do(t *testing.T, method, rawURL string, body io.Reader, headers map[string]string) *Resp {
	t.Helper()
	r, err := b.try(t.Context(), method, rawURL, body, headers)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	return r
}

func (b *Browser) try(ctx context.Context, method, rawURL string, body io.Reader, headers map[string]string) (*Resp, error) {
	if !strings.HasPrefix(rawURL, "http") {
		rawURL = b.idp.Issuer + rawURL
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", b.Accept)
	for k, v := range b.Headers {
		req.Header.Set(k, v)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Resp{Status: resp.StatusCode, Header: resp.Header, Body: raw}, nil
}

func (b *Browser) get(t *testing.T, rawURL string) *Resp {
	t.Helper()
	return b.do(t, http.MethodGet, rawURL, nil, nil)
}

// ---- the login contract ----

// View is the JSON answer of every login URL (DESIGN.md §5).
type View struct {
	Flow       string `json:"flow"`
	Step       string `json:"step"`
	KeyNumber  string `json:"key_number"`
	CardSerial string `json:"card_serial"`
	// BindingCode is the code the keyapp step shows; Methods what the citizen may switch to.
	BindingCode string     `json:"binding_code"`
	Methods     []string   `json:"methods"`
	RedirectTo  string     `json:"redirect_to"`
	CSRFToken   string     `json:"csrf_token"`
	Wards       []ViewWard `json:"wards"`
	Error       *ViewError `json:"error"`
}

// ViewWard is a ward offered at the act_as step.
type ViewWard struct {
	Ref  string `json:"ref"`
	Name string `json:"name"`
}

// ViewError is the error of a view.
type ViewError struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	AttemptsLeft *int   `json:"attempts_left"`
}

func (e *ViewError) String() string {
	if e == nil {
		return "<no error>"
	}
	if e.AttemptsLeft != nil {
		return fmt.Sprintf("%s (attempts_left %d): %s", e.Code, *e.AttemptsLeft, e.Message)
	}
	return e.Code + ": " + e.Message
}

// Login is one authorization request in progress, driven through the JSON contract.
type Login struct {
	t        *testing.T
	b        *Browser
	rp       *RP
	State    string
	Nonce    string
	Verifier string
	// View is the last step view the IdP showed; Steps lists every step GET showed.
	View  View
	Steps []string
	// Back is the redirect to the relying party once the login ended.
	Back *url.URL
	// Last is the last answer that was neither a redirect nor a step view (an error page).
	Last *Resp
	csrf string
}

// AuthOption changes the authorization request.
type AuthOption func(q url.Values)

func withParam(k, v string) AuthOption { return func(q url.Values) { q.Set(k, v) } }
func withoutParam(k string) AuthOption { return func(q url.Values) { q.Del(k) } }

// authURL builds the authorization request the way zitadel's rp does (PKCE S256), plus a nonce.
func (b *Browser) authURL(r *RP, opts ...AuthOption) (*Login, string) {
	l := &Login{b: b, rp: r, State: randHex(8), Nonce: randHex(8), Verifier: randHex(32)}
	u, err := url.Parse(rp.AuthURL(l.State, r, rp.WithCodeChallenge(oidc.NewSHACodeChallenge(l.Verifier))))
	if err != nil {
		panic(err)
	}
	q := u.Query()
	q.Set("nonce", l.Nonce)
	for _, o := range opts {
		o(q)
	}
	u.RawQuery = q.Encode()
	return l, u.String()
}

// authorize starts a login at the relying party and follows it to the first step view (or
// straight back to the relying party).
func (b *Browser) authorize(t *testing.T, r *RP, opts ...AuthOption) *Login {
	t.Helper()
	l, u := b.authURL(r, opts...)
	l.t = t
	l.follow(u)
	return l
}

// follow GETs u and follows redirects and done views until a step view, the relying party's
// redirect URI, or an error answer.
func (l *Login) follow(u string) {
	t := l.t
	t.Helper()
	for range 20 {
		if strings.HasPrefix(u, redirectURI) {
			back, err := url.Parse(u)
			if err != nil {
				t.Fatalf("redirect back %q: %v", u, err)
			}
			l.Back = back
			return
		}
		r := l.b.get(t, u)
		if r.Status/100 == 3 {
			u = r.Location(u)
			continue
		}
		var v View
		if json.Unmarshal(r.Body, &v) != nil || v.Step == "" || (r.Status != http.StatusOK && v.Step != "failed") {
			l.Last = r
			return
		}
		l.Steps = append(l.Steps, v.Step)
		l.View = v
		if v.CSRFToken != "" {
			l.csrf = v.CSRFToken
		}
		if (v.Step == "done" || v.Step == "failed") && v.RedirectTo != "" {
			u = v.RedirectTo
			continue
		}
		return
	}
	t.Fatalf("more than 20 redirects")
}

// reload GETs the current step again.
func (l *Login) reload() View {
	l.t.Helper()
	r := l.b.get(l.t, "/login/"+l.View.Flow)
	if r.Status != http.StatusOK {
		l.t.Fatalf("GET /login/%s: %s", l.View.Flow, r)
	}
	v := r.View(l.t)
	l.View = v
	if v.CSRFToken != "" {
		l.csrf = v.CSRFToken
	}
	return v
}

// post answers a step with a JSON body, echoing the CSRF token; it returns the status and view.
func (l *Login) post(step string, body map[string]string) (int, View) {
	l.t.Helper()
	r := l.postRaw(step, body)
	v := r.View(l.t)
	if v.Step != "" {
		l.View = v
	}
	if v.CSRFToken != "" {
		l.csrf = v.CSRFToken
	}
	return r.Status, v
}

func (l *Login) postRaw(step string, body map[string]string) *Resp {
	l.t.Helper()
	raw, _ := json.Marshal(body)
	return l.b.do(l.t, http.MethodPost, "/login/"+l.View.Flow+"/"+step, bytes.NewReader(raw), map[string]string{
		"Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": l.csrf})
}

// mustPost answers a step and requires 200.
func (l *Login) mustPost(step string, body map[string]string) View {
	l.t.Helper()
	code, v := l.post(step, body)
	if code != http.StatusOK || v.Error != nil {
		l.t.Fatalf("POST /login/{flow}/%s: %d %s", step, code, v.Error)
	}
	return v
}

func (l *Login) requireStep(want string) {
	l.t.Helper()
	if l.Back != nil {
		l.t.Fatalf("want step %q, but the browser is back at the relying party: %s", want, l.Back)
	}
	if l.Last != nil && l.View.Step == "" {
		l.t.Fatalf("want step %q, got %s", want, l.Last)
	}
	if l.View.Step != want {
		l.t.Fatalf("want step %q, got %q (error %s)", want, l.View.Step, l.View.Error)
	}
}

func (l *Login) password(c *Citizen, pw string) (int, View) {
	l.t.Helper()
	return l.post("password", map[string]string{"username": c.UserID, "password": pw})
}

// key answers the codecard step with the right key for the number asked.
func (l *Login) key(c *Citizen) View {
	l.t.Helper()
	l.requireStep("codecard")
	k, ok := c.Keys[l.View.KeyNumber]
	if !ok {
		l.t.Fatalf("key number %q is not on card %s", l.View.KeyNumber, c.Serial)
	}
	return l.mustPost("codecard", map[string]string{"key": k})
}

// wrongKey is a 6-digit key that is not the one asked.
func (l *Login) wrongKey(c *Citizen) string {
	right := c.Keys[l.View.KeyNumber]
	b := []byte(right)
	b[5] = '0' + (b[5]-'0'+1)%10
	return string(b)
}

// finish follows a done view back to the relying party.
func (l *Login) finish() {
	l.t.Helper()
	l.requireStep("done")
	if l.View.RedirectTo == "" {
		l.t.Fatalf("done view has no redirect_to")
	}
	l.follow(l.View.RedirectTo)
	if l.Back == nil {
		l.t.Fatalf("done, but not back at the relying party: %v", l.Last)
	}
}

// code returns the authorization code of the redirect back, checking state.
func (l *Login) code() string {
	l.t.Helper()
	if l.Back == nil {
		l.t.Fatalf("not back at the relying party (view %+v, last %v)", l.View, l.Last)
	}
	q := l.Back.Query()
	if e := q.Get("error"); e != "" {
		l.t.Fatalf("redirected back with error=%s (%s)", e, q.Get("error_description"))
	}
	if q.Get("state") != l.State {
		l.t.Fatalf("state = %q, want %q", q.Get("state"), l.State)
	}
	if q.Get("code") == "" {
		l.t.Fatalf("no code in %s", l.Back)
	}
	return q.Get("code")
}

// exchange redeems code with the relying party (PKCE verifier, nonce checked).
func (l *Login) exchange(code string) (*Tokens, error) {
	ctx := context.WithValue(l.t.Context(), nonceKey{}, l.Nonce)
	return rp.CodeExchange[*oidc.IDTokenClaims](ctx, code, l.rp, rp.WithCodeVerifier(l.Verifier))
}

func (l *Login) mustExchange() *Tokens {
	l.t.Helper()
	tok, err := l.exchange(l.code())
	if err != nil {
		l.t.Fatalf("code exchange: %v", err)
	}
	return tok
}

// ---- whole logins ----

// goodPassword is a password that meets the NemID rules.
func goodPassword() string { return "Kode" + randHex(3) + "7" }

// login runs a whole login through the JSON contract, choosing a new password when asked
// (and remembering it), and returns the tokens.
func (b *Browser) login(t *testing.T, r *RP, c *Citizen, opts ...AuthOption) *Tokens {
	t.Helper()
	l := b.authorize(t, r, opts...)
	l.run(c)
	return l.mustExchange()
}

// run answers every step until the browser is back at the relying party.
func (l *Login) run(c *Citizen) {
	l.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; l.Back == nil; i++ {
		if i > 6 {
			l.t.Fatalf("login does not end; steps %v", l.Steps)
		}
		switch l.View.Step {
		case "password":
			if code, v := l.password(c, c.Password); code != http.StatusOK {
				l.t.Fatalf("password: %d %s", code, v.Error)
			}
		case "codecard":
			l.key(c)
		case "new_password":
			pw := goodPassword()
			l.mustPost("new-password", map[string]string{"password": pw})
			c.Password = pw
		case "act_as":
			l.mustPost("act-as", map[string]string{"principal": "self"})
		case "done":
			l.finish()
		default:
			l.t.Fatalf("unexpected step %q (last %v)", l.View.Step, l.Last)
		}
	}
}

// activate makes the first login (activation password → own password) in a throwaway
// browser, so later logins go password → key → done.
func (p *IdP) activate(t *testing.T, r *RP, c *Citizen) {
	t.Helper()
	p.newBrowser(t).login(t, r, c)
}

// errorCode reads {"error":{"code"}} from a JSON answer, or data-code="…" from an HTML page.
func errorCode(r *Resp) string {
	var v struct {
		Error *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(r.Body, &v) == nil && v.Error != nil {
		return v.Error.Code
	}
	if m := regexp.MustCompile(`data-code="([^"]+)"`).FindSubmatch(r.Body); m != nil {
		return string(m[1])
	}
	return ""
}

// isOAuthError reports whether err is an OAuth error response with the given code.
func isOAuthError(err error, code string) bool {
	if err == nil {
		return false
	}
	var oe *oidc.Error
	if errors.As(err, &oe) {
		return string(oe.ErrorType) == code
	}
	return strings.Contains(err.Error(), code)
}
