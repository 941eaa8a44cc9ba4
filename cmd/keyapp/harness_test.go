package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp"
	"github.com/nemidp/nemidp/idp/idptest"
)

// The tests run the command's functions against a real IdP served in-process on the shared
// test Redis (NEMIDP_REDIS_URL, else 127.0.0.1:6379) under a fresh key prefix, deleted after
// the test; without Redis they skip (on CI, where CI is set, they fail).

const redirectURI = "http://127.0.0.1:9/cb"

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type testIdP struct {
	base  string
	admin string
	srv   *idp.Server
	http  *http.Client
}

func startIdP(t *testing.T) *testIdP {
	t.Helper()
	s := idptest.Start(t)
	return &testIdP{base: s.URL, admin: s.AdminToken, srv: s.IdP, http: &http.Client{Timeout: 30 * time.Second}}
}

// call sends JSON to the IdP and decodes the answer into out.
func (p *testIdP) call(t *testing.T, c *http.Client, method, rawURL string, headers map[string]string, body, out any) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	if !strings.HasPrefix(rawURL, "http") {
		rawURL = p.base + rawURL
	}
	req, err := http.NewRequestWithContext(t.Context(), method, rawURL, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d, not JSON: %.300s", method, rawURL, resp.StatusCode, raw)
		}
	}
	return resp
}

func (p *testIdP) adminCall(t *testing.T, path string, body, out any) int {
	t.Helper()
	return p.call(t, p.http, http.MethodPost, path, map[string]string{"Authorization": "Bearer " + p.admin}, body, out).StatusCode
}

// registerClient registers a confidential relying party named name.
func (p *testIdP) registerClient(t *testing.T, name string) string {
	t.Helper()
	id := "rp-" + randHex(4)
	var out map[string]any
	if code := p.adminCall(t, "/admin/v1/clients", map[string]any{"client_id": id, "name": name,
		"redirect_uris": []string{redirectURI}, "secret": randHex(16), "scopes": []string{"openid"}}, &out); code != http.StatusCreated {
		t.Fatalf("register client: %d %v", code, out)
	}
	return id
}

// citizen is a NemID as the operator API issued it.
type citizen struct {
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

func (c *citizen) key(number string) string {
	for _, k := range c.Card.Keys {
		if k.Number == number {
			return k.Key
		}
	}
	return ""
}

// randomCPR is a valid CPR number (a 1900s birth date); each test has its own IdP, so
// collisions between tests do not matter.
func randomCPR() string {
	n := randInt(1 << 30)
	return fmt.Sprintf("%02d%02d%02d%04d", 1+n%28, 1+(n/28)%12, 50+(n/336)%50, 1000+(n/16800)%3000)
}

func randInt(n int64) int64 {
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		panic(err)
	}
	return v.Int64()
}

// issueCitizen issues an OCES NemID through the operator API; raw is the answer as printed
// (user id, activation password, card), the shape --card reads.
func (p *testIdP) issueCitizen(t *testing.T) (*citizen, []byte) {
	t.Helper()
	var raw json.RawMessage
	if code := p.adminCall(t, "/admin/v1/citizens", map[string]any{"cpr": randomCPR(), "name": "Test Borger", "kind": "oces"}, &raw); code != http.StatusCreated {
		t.Fatalf("issue citizen: %d %s", code, raw)
	}
	var c citizen
	if err := json.Unmarshal(raw, &c); err != nil || c.UserID == "" || len(c.Card.Keys) != 148 {
		t.Fatalf("issue citizen: %v %s", err, raw)
	}
	return &c, raw
}

// view is the JSON answer of the login URLs.
type view struct {
	Flow        string `json:"flow"`
	Step        string `json:"step"`
	KeyNumber   string `json:"key_number"`
	BindingCode string `json:"binding_code"`
	CSRFToken   string `json:"csrf_token"`
	Error       *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// login is one authorization request driven through the JSON login contract.
type login struct {
	p    *testIdP
	http *http.Client
	flow string
	csrf string
}

// authorize starts a login at client (PKCE S256) and reads its first view.
func (p *testIdP) authorize(t *testing.T, client string) *login {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	sum := sha256.Sum256([]byte(randHex(32)))
	q := url.Values{"client_id": {client}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid"},
		"state": {randHex(8)}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	resp := p.call(t, c, http.MethodGet, "/authorize?"+q.Encode(), nil, nil, nil)
	loc, err := resp.Location()
	if err != nil || !strings.HasPrefix(loc.Path, "/login/") {
		t.Fatalf("authorize: %d, Location %v", resp.StatusCode, loc)
	}
	l := &login{p: p, http: c, flow: path.Base(loc.Path)}
	var v view
	p.call(t, c, http.MethodGet, "/login/"+l.flow, nil, nil, &v)
	if v.Step != "password" || v.CSRFToken == "" {
		t.Fatalf("first view: %+v", v)
	}
	l.csrf = v.CSRFToken
	return l
}

// post answers a step and requires the answer to be accepted.
func (l *login) post(t *testing.T, step string, body map[string]string) view {
	t.Helper()
	var v view
	resp := l.p.call(t, l.http, http.MethodPost, "/login/"+l.flow+"/"+step, map[string]string{"X-CSRF-Token": l.csrf}, body, &v)
	if resp.StatusCode != http.StatusOK || v.Error != nil {
		t.Fatalf("POST /login/{flow}/%s: %d %+v", step, resp.StatusCode, v.Error)
	}
	if v.CSRFToken != "" {
		l.csrf = v.CSRFToken
	}
	return v
}

// firstLogin logs c in once with the activation password and chooses pw.
func (p *testIdP) firstLogin(t *testing.T, client string, c *citizen, pw string) {
	t.Helper()
	l := p.authorize(t, client)
	v := l.post(t, "password", map[string]string{"username": c.UserID, "password": c.ActivationPassword})
	if v.Step != "codecard" {
		t.Fatalf("after the password: %+v", v)
	}
	if v = l.post(t, "codecard", map[string]string{"key": c.key(v.KeyNumber)}); v.Step != "new_password" {
		t.Fatalf("after the key: %+v", v)
	}
	if v = l.post(t, "new-password", map[string]string{"password": pw}); v.Step != "done" {
		t.Fatalf("after the new password: %+v", v)
	}
}

// keyAppLogin starts a login of c (who has a device) up to the keyapp step and returns it
// with the binding code the browser shows.
func (p *testIdP) keyAppLogin(t *testing.T, client string, c *citizen, pw string) (*login, string) {
	t.Helper()
	l := p.authorize(t, client)
	v := l.post(t, "password", map[string]string{"username": c.UserID, "password": pw})
	if v.Step != "keyapp" {
		t.Fatalf("after the password: want step keyapp, got %+v", v)
	}
	code := v.BindingCode
	if code == "" { // the web view does not carry it yet on this branch: read the flow
		f := l.load(t)
		if f.Approval == nil {
			t.Fatalf("flow at keyapp has no approval: %+v", f)
		}
		code = f.Approval.Code
	}
	return l, code
}

func (l *login) load(t *testing.T) *flows.Flow {
	t.Helper()
	f, err := l.p.srv.Flows.Load(context.WithoutCancel(t.Context()), l.flow)
	if err != nil {
		t.Fatalf("load flow: %v", err)
	}
	return f
}
