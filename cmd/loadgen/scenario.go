package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nemidp/nemidp/idp/keyapp/deviceclient"
	"github.com/nemidp/nemidp/keys/device"
)

// lowKeys is where a login-mode citizen is replaced by a new one: above the 20 keys left at
// which the IdP sends a new card, so every timed login is the plain password → key one.
const lowKeys = 24

// env is what every worker of one run shares: settings, the transport, discovery, the
// registered client and the ID-token verifier.
type env struct {
	cfg    Config
	tr     *http.Transport
	hc     *http.Client // operator API, token endpoint, userinfo, devices
	disc   *discovery
	client struct{ ID, Secret string }
	scopes string
	// verifier checks the first ID token of the run (signature via the JWKS, iss, aud, exp,
	// nonce); verified says one passed, so later ones are only parsed.
	verifier *rp.IDTokenVerifier
	verified atomic.Bool
	// issued counts citizens issued during the timed run (login mode, cards running low).
	issued atomic.Int64
	log    io.Writer
}

type nonceKey struct{}

// newEnv discovers the IdP and registers the driver's own confidential client.
func newEnv(ctx context.Context, cfg Config, log io.Writer) (*env, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 4*cfg.Concurrency + 16
	tr.MaxIdleConnsPerHost = 4*cfg.Concurrency + 16
	e := &env{cfg: cfg, tr: tr, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}, log: log,
		scopes: "openid profile"}
	if cfg.Mode == "refresh" {
		e.scopes += " offline_access"
	}
	d, err := discover(ctx, e.hc, cfg.IdP)
	if err != nil {
		return nil, err
	}
	e.disc = d
	e.client.ID, e.client.Secret = "loadgen-"+randHex(6), randHex(24)
	err = e.admin(ctx, http.MethodPost, "/admin/v1/clients", map[string]any{
		"client_id": e.client.ID, "name": "Load driver " + e.client.ID, "redirect_uris": []string{redirectURI},
		"secret": e.client.Secret, "scopes": []string{"openid", "profile", "offline_access"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("registering the client: %w", err)
	}
	keys := rp.NewRemoteKeySet(e.hc, d.JWKS)
	e.verifier = rp.NewIDTokenVerifier(d.Issuer, e.client.ID, keys, rp.WithNonce(func(ctx context.Context) string {
		n, _ := ctx.Value(nonceKey{}).(string)
		return n
	}))
	return e, nil
}

// ---- citizens ----

// citizen is one NemID the driver issued: its password and printed card, the keys used.
type citizen struct {
	uid, password string
	keys          map[string]string // key number → key
	used          map[string]bool
	dev           *deviceclient.Device // keyapp mode
}

func (c *citizen) keysLeft() int { return len(c.keys) - len(c.used) }

// randomCPR is a CPR number of someone born 1950–1999 (7th digit ≤ 3), random enough that
// runs against one server rarely collide; a collision is retried.
func randomCPR() string {
	return fmt.Sprintf("%02d%02d%02d%04d", 1+mrand.IntN(28), 1+mrand.IntN(12), 50+mrand.IntN(50), mrand.IntN(4000))
}

// newPassword meets the NemID password rules.
func newPassword() string { return "Load" + randHex(4) + "7" }

// issueCitizen creates an OCES NemID and does its first login (activation password → own
// password); in keyapp mode it activates a device too.
func (e *env) issueCitizen(ctx context.Context) (*citizen, error) {
	var out struct {
		UserID             string `json:"user_id"`
		ActivationPassword string `json:"activation_password"`
		Card               struct {
			Keys []struct {
				Number string `json:"number"`
				Key    string `json:"key"`
			} `json:"keys"`
		} `json:"card"`
	}
	var err error
	for range 5 {
		err = e.admin(ctx, http.MethodPost, "/admin/v1/citizens",
			map[string]any{"cpr": randomCPR(), "name": "Belastning Borger", "kind": "oces"}, &out)
		var oe *opError
		if !errors.As(err, &oe) || oe.Status != http.StatusConflict {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("issuing a citizen: %w", err)
	}
	c := &citizen{uid: out.UserID, password: out.ActivationPassword, keys: map[string]string{}, used: map[string]bool{}}
	for _, k := range out.Card.Keys {
		c.keys[k.Number] = k.Key
	}
	if len(c.keys) == 0 {
		return nil, errors.New("issuing a citizen: the answer carries no card")
	}
	l := e.newLogin(newBrowser(e.tr), &trace{})
	if err := l.start(ctx); err != nil {
		return nil, fmt.Errorf("first login of %s: %w", c.uid, err)
	}
	if err := l.run(ctx, c); err != nil {
		return nil, fmt.Errorf("first login of %s: %w", c.uid, err)
	}
	if e.cfg.Mode == "keyapp" {
		if err := e.activateDevice(ctx, c); err != nil {
			return nil, fmt.Errorf("device activation of %s: %w", c.uid, err)
		}
	}
	return c, nil
}

func (e *env) activateDevice(ctx context.Context, c *citizen) error {
	k, err := device.GenerateKey()
	if err != nil {
		return err
	}
	d := &deviceclient.Device{Base: e.disc.Issuer, Key: k, HTTP: e.hc}
	a, err := d.BeginActivation(ctx, c.uid, c.password)
	if err != nil {
		return err
	}
	key, ok := c.keys[a.KeyNumber]
	if !ok {
		return fmt.Errorf("key number %q is not on the card", a.KeyNumber)
	}
	if err := d.CompleteActivation(ctx, a, key, "loadgen"); err != nil {
		return err
	}
	c.used[a.KeyNumber] = true
	c.dev = d
	return nil
}

// ---- one login through the JSON contract ----

// trace is the time each step of one operation took (a step met twice adds up).
type trace struct {
	names []string
	times []time.Duration
}

func (t *trace) add(name string, d time.Duration) {
	for i, n := range t.names {
		if n == name {
			t.times[i] += d
			return
		}
	}
	t.names = append(t.names, name)
	t.times = append(t.times, d)
}

// view is the JSON answer of every login URL (DESIGN.md §5).
type view struct {
	Flow        string `json:"flow"`
	Step        string `json:"step"`
	KeyNumber   string `json:"key_number"`
	BindingCode string `json:"binding_code"`
	RedirectTo  string `json:"redirect_to"`
	CSRFToken   string `json:"csrf_token"`
	Error       *struct {
		Code string `json:"code"`
	} `json:"error"`
}

// login is one authorization request in progress in one browser.
type login struct {
	e                      *env
	b                      *http.Client
	tr                     *trace
	state, nonce, verifier string
	v                      view
	csrf                   string
	back                   *url.URL
}

func (e *env) newLogin(b *http.Client, tr *trace) *login {
	return &login{e: e, b: b, tr: tr, state: randHex(8), nonce: randHex(8)}
}

// start sends the browser to the authorization endpoint and follows it to the first step (or,
// with an SSO session, straight back to the client).
func (l *login) start(ctx context.Context) error {
	var challenge string
	l.verifier, challenge = pkce()
	q := url.Values{"client_id": {l.e.client.ID}, "redirect_uri": {redirectURI}, "response_type": {"code"},
		"scope": {l.e.scopes}, "state": {l.state}, "nonce": {l.nonce},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	sep := "?"
	if strings.Contains(l.e.disc.Authorization, "?") {
		sep = "&"
	}
	return l.follow(ctx, l.e.disc.Authorization+sep+q.Encode())
}

// hopName names a GET of the browser by its path.
func hopName(u string) string {
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return "redirect"
	case p.Path == "/authorize":
		return "authorize"
	case p.Path == "/authorize/callback":
		return "callback"
	case strings.HasPrefix(p.Path, "/login/"):
		return "login_page"
	}
	return "redirect"
}

// follow GETs u and follows redirects and done views until a step view or the redirect URI.
func (l *login) follow(ctx context.Context, u string) error {
	for range 20 {
		if strings.HasPrefix(u, redirectURI) {
			back, err := url.Parse(u)
			if err != nil {
				return &opError{Step: "callback", Code: "bad_redirect", Err: err}
			}
			l.back = back
			return nil
		}
		name := hopName(u)
		t0 := time.Now()
		r, err := send(ctx, l.b, http.MethodGet, u, nil, nil)
		l.tr.add(name, time.Since(t0))
		if err != nil {
			return &opError{Step: name, Err: err}
		}
		if r.Status/100 == 3 {
			if u, err = r.location(); err != nil {
				return &opError{Step: name, Status: r.Status, Code: "bad_redirect", Err: err}
			}
			continue
		}
		var v view
		if json.Unmarshal(r.Body, &v) != nil || v.Step == "" || r.Status != http.StatusOK {
			return &opError{Step: name, Status: r.Status, Code: errorCode(r.Body)}
		}
		l.setView(v)
		if v.Step == "done" && v.RedirectTo != "" {
			u = v.RedirectTo
			continue
		}
		if v.Step == "failed" {
			return l.viewError(name, r.Status)
		}
		return nil
	}
	return &opError{Step: "redirect", Code: "too_many_redirects"}
}

func (l *login) setView(v view) {
	l.v = v
	if v.CSRFToken != "" {
		l.csrf = v.CSRFToken
	}
}

func (l *login) viewError(step string, status int) error {
	code := "step_" + l.v.Step
	if l.v.Error != nil {
		code = l.v.Error.Code
	}
	return &opError{Step: step, Status: status, Code: code}
}

// post answers the current step (path segment) with a JSON body, timed as name.
func (l *login) post(ctx context.Context, path, name string, body map[string]string) error {
	t0 := time.Now()
	r, err := send(ctx, l.b, http.MethodPost, l.e.disc.Issuer+"/login/"+url.PathEscape(l.v.Flow)+"/"+path, body,
		map[string]string{"X-CSRF-Token": l.csrf})
	l.tr.add(name, time.Since(t0))
	if err != nil {
		return &opError{Step: name, Err: err}
	}
	var v view
	if json.Unmarshal(r.Body, &v) != nil || v.Step == "" {
		return &opError{Step: name, Status: r.Status, Code: errorCode(r.Body)}
	}
	l.setView(v)
	if r.Status != http.StatusOK || v.Error != nil || v.Step == "failed" {
		return l.viewError(name, r.Status)
	}
	return nil
}

// run answers every step for c until the browser is back at the client.
func (l *login) run(ctx context.Context, c *citizen) error {
	for i := 0; l.back == nil; i++ {
		if i > 10 {
			return &opError{Step: l.v.Step, Code: "login_does_not_end"}
		}
		var err error
		switch l.v.Step {
		case "password":
			err = l.post(ctx, "password", "password", map[string]string{"username": c.uid, "password": c.password})
		case "codecard":
			num := l.v.KeyNumber
			key, ok := c.keys[num]
			if !ok {
				return &opError{Step: "codecard", Code: "key_number_not_on_card"}
			}
			err = l.post(ctx, "codecard", "codecard", map[string]string{"key": key})
			var oe *opError
			if err == nil || errors.As(err, &oe) && oe.Code == "used_key" {
				c.used[num] = true
			}
		case "new_password":
			pw := newPassword()
			if err = l.post(ctx, "new-password", "new_password", map[string]string{"password": pw}); err == nil {
				c.password = pw
			}
		case "act_as":
			err = l.post(ctx, "act-as", "act_as", map[string]string{"principal": "self"})
		case "keyapp":
			err = l.keyapp(ctx, c)
		case "done":
			err = l.follow(ctx, l.v.RedirectTo)
		default:
			return &opError{Step: l.v.Step, Code: "unexpected_step"}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// keyapp approves the pending request on the citizen's device with the code the browser shows,
// then polls the flow as the browser does.
func (l *login) keyapp(ctx context.Context, c *citizen) error {
	if c.dev == nil {
		return &opError{Step: "keyapp", Code: "no_device"}
	}
	code := l.v.BindingCode
	t0 := time.Now()
	reqs, err := c.dev.Requests(ctx, 0)
	l.tr.add("device_list", time.Since(t0))
	if err != nil {
		return deviceError("device_list", err)
	}
	var pick *deviceclient.Request
	for i, r := range reqs {
		for _, bc := range r.BindingCodes {
			if bc == code && (pick == nil || r.ExpiresAt > pick.ExpiresAt) {
				pick = &reqs[i]
			}
		}
	}
	if pick == nil {
		return &opError{Step: "device_list", Code: "no_request_with_binding_code"}
	}
	t0 = time.Now()
	err = c.dev.Decide(ctx, pick.ID, device.Approve, code)
	l.tr.add("device_decide", time.Since(t0))
	if err != nil {
		return deviceError("device_decide", err)
	}
	for range 5 {
		if err := l.post(ctx, "keyapp", "keyapp_poll", map[string]string{}); err != nil {
			return err
		}
		if l.v.Step != "keyapp" {
			return nil
		}
	}
	return &opError{Step: "keyapp_poll", Code: "still_pending"}
}

func deviceError(step string, err error) error {
	var de *deviceclient.Error
	if errors.As(err, &de) {
		return &opError{Step: step, Status: de.Status, Code: de.Code}
	}
	return &opError{Step: step, Err: err}
}

// exchange redeems the code of the redirect back with PKCE and checks the ID token.
func (l *login) exchange(ctx context.Context) (*tokens, error) {
	if l.back == nil {
		return nil, &opError{Step: "callback", Code: "not_back"}
	}
	q := l.back.Query()
	if e := q.Get("error"); e != "" {
		return nil, &opError{Step: "callback", Code: e}
	}
	if q.Get("state") != l.state || q.Get("code") == "" {
		return nil, &opError{Step: "callback", Code: "bad_state_or_code"}
	}
	t0 := time.Now()
	tok, err := l.e.tokenCall(ctx, "token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {redirectURI}, "code_verifier": {l.verifier}})
	l.tr.add("token", time.Since(t0))
	if err != nil {
		return nil, err
	}
	return tok, l.e.checkIDToken(ctx, tok.IDToken, l.nonce)
}

// checkIDToken verifies the run's first ID token via the JWKS; later ones are parsed and
// their nonce compared.
func (e *env) checkIDToken(ctx context.Context, idt, nonce string) error {
	if idt == "" {
		return &opError{Step: "id_token", Code: "missing"}
	}
	if e.verified.CompareAndSwap(false, true) {
		if _, err := rp.VerifyIDToken[*oidc.IDTokenClaims](context.WithValue(ctx, nonceKey{}, nonce), idt, e.verifier); err != nil {
			e.verified.Store(false)
			return &opError{Step: "id_token", Code: "not_verified", Err: err}
		}
		return nil
	}
	var claims struct {
		Nonce string `json:"nonce"`
	}
	if _, err := oidc.ParseToken(idt, &claims); err != nil {
		return &opError{Step: "id_token", Code: "unparsable", Err: err}
	}
	if claims.Nonce != nonce {
		return &opError{Step: "id_token", Code: "wrong_nonce"}
	}
	return nil
}

// fullLogin is one complete login of c in browser b: authorize to tokens.
func (e *env) fullLogin(ctx context.Context, b *http.Client, c *citizen, tr *trace) (*tokens, error) {
	l := e.newLogin(b, tr)
	if err := l.start(ctx); err != nil {
		return nil, err
	}
	if err := l.run(ctx, c); err != nil {
		return nil, err
	}
	return l.exchange(ctx)
}
