package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// redirectURI is the client's registered redirect URI: nothing listens there; a login ends
// when the IdP redirects the browser to it, and the code is read from that Location.
const redirectURI = "http://127.0.0.1:9/loadgen/cb"

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// opError is a failed step: its kind (step, HTTP status, error code) is what the summary counts.
type opError struct {
	Step   string
	Status int    // 0: no HTTP answer
	Code   string // the answer's error code, if any
	Err    error  // transport or decoding error, if any
}

func (e *opError) Error() string {
	s := e.Kind()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Kind is "step status code", e.g. "password 401 invalid_credentials" or "token transport".
func (e *opError) Kind() string {
	switch {
	case e.Status == 0 && e.Code != "":
		return e.Step + " " + e.Code
	case e.Status == 0:
		return e.Step + " transport"
	case e.Code == "":
		return e.Step + " " + strconv.Itoa(e.Status)
	}
	return e.Step + " " + strconv.Itoa(e.Status) + " " + e.Code
}

func (e *opError) Unwrap() error { return e.Err }

// response is one HTTP answer, read completely.
type response struct {
	Status int
	Header http.Header
	Body   []byte
	URL    *url.URL
}

// location is the redirect target resolved against the request URL.
func (r *response) location() (string, error) {
	loc := r.Header.Get("Location")
	if loc == "" {
		return "", errors.New("redirect without Location")
	}
	u, err := r.URL.Parse(loc)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// errorCode reads {"error": {"code"}} (login contract, operator API) or {"error": "…"} (OAuth).
func errorCode(body []byte) string {
	var v struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &v) != nil || len(v.Error) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(v.Error, &s) == nil {
		return s
	}
	var o struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(v.Error, &o)
	return o.Code
}

// send makes one request with client hc and reads the whole answer. body is JSON (any),
// url.Values (a form) or nil.
func send(ctx context.Context, hc *http.Client, method, rawURL string, body any, headers map[string]string) (*response, error) {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ctype = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd, ctype = bytes.NewReader(raw), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: raw, URL: resp.Request.URL}, nil
}

// newBrowser is one user agent: its own cookie jar, no automatic redirects, the shared transport.
func newBrowser(tr http.RoundTripper) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: tr, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// discovery is what the driver needs of /.well-known/openid-configuration.
type discovery struct {
	Issuer        string `json:"issuer"`
	Authorization string `json:"authorization_endpoint"`
	Token         string `json:"token_endpoint"`
	Userinfo      string `json:"userinfo_endpoint"`
	JWKS          string `json:"jwks_uri"`
}

func discover(ctx context.Context, hc *http.Client, base string) (*discovery, error) {
	r, err := send(ctx, hc, http.MethodGet, base+"/.well-known/openid-configuration", nil, nil)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("discovery: %d %.200s", r.Status, r.Body)
	}
	var d discovery
	if err := json.Unmarshal(r.Body, &d); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	// Every endpoint the driver will call must be on this machine too.
	for _, u := range []string{d.Issuer, d.Authorization, d.Token, d.Userinfo, d.JWKS} {
		if _, err := loopbackBase(strings.SplitN(u, "?", 2)[0]); err != nil {
			return nil, fmt.Errorf("discovery names an endpoint off this machine: %w", err)
		}
	}
	return &d, nil
}

// pkce returns a verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	verifier = randHex(32)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// tokens is a token endpoint answer.
type tokens struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
}

// tokenCall posts a grant to the token endpoint with client_secret_basic.
func (e *env) tokenCall(ctx context.Context, step string, form url.Values) (*tokens, error) {
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(e.client.ID)+":"+url.QueryEscape(e.client.Secret)))
	r, err := send(ctx, e.hc, http.MethodPost, e.disc.Token, form, map[string]string{"Authorization": auth})
	if err != nil {
		return nil, &opError{Step: step, Err: err}
	}
	if r.Status != http.StatusOK {
		return nil, &opError{Step: step, Status: r.Status, Code: errorCode(r.Body)}
	}
	var t tokens
	if err := json.Unmarshal(r.Body, &t); err != nil || t.AccessToken == "" {
		return nil, &opError{Step: step, Status: r.Status, Code: "bad_answer", Err: err}
	}
	return &t, nil
}

// admin calls the operator API and decodes a 2xx answer into out.
func (e *env) admin(ctx context.Context, method, path string, body, out any) error {
	r, err := send(ctx, e.hc, method, e.cfg.IdP+path, body, map[string]string{"Authorization": "Bearer " + e.cfg.AdminToken})
	if err != nil {
		return &opError{Step: "admin", Err: err}
	}
	if r.Status/100 != 2 {
		return &opError{Step: "admin", Status: r.Status, Code: errorCode(r.Body), Err: fmt.Errorf("%s %s: %.300s", method, path, r.Body)}
	}
	if out != nil {
		if err := json.Unmarshal(r.Body, out); err != nil {
			return &opError{Step: "admin", Status: r.Status, Code: "bad_answer", Err: err}
		}
	}
	return nil
}
