//go:build unix

package integrationtests

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// chromiumPath is where Debian's chromium package puts the browser (scripts/test.sh installs
// it, with chromium-driver, when it is missing).
const chromiumPath = "/usr/bin/chromium"

// TestBrowserLogin logs a citizen in through a real headless Chromium driven over W3C
// WebDriver: relying party → IdP login page (Danish) → activation password → code card → new
// password → back at the relying party with the ID token's name and amr; then a second visit
// is answered from the SSO session without a login form. The relying party is addressed as
// localhost and the IdP as 127.0.0.1, so the redirects between them are cross-site and the
// SameSite=Lax cookies of both sides must survive them. This is what the scripted browser of
// the other tests cannot show: the CSP, the cookies, the CSRF form fields and the redirects as
// a browser applies them.
func TestBrowserLogin(t *testing.T) {
	driverPath := needBrowser(t)
	start := time.Now()

	p := startIdP(t)
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	rpURL := startBrowserRP(t, p)
	t.Logf("IdP %s, relying party %s (setup %v)", p.Issuer, rpURL, time.Since(start).Round(time.Millisecond))

	wd := startWebDriver(t, driverPath)
	t.Logf("chromedriver + chromium session up after %v", time.Since(start).Round(time.Millisecond))

	// First visit: the whole first login of a new NemID.
	first := time.Now()
	wd.navigate(rpURL + "/login")
	wd.waitFor("#username")
	if u := wd.currentURL(); !strings.HasPrefix(u, p.Issuer+"/login/") {
		wd.fatalf("the relying party's /login should land on the IdP's login page, is at %s", u)
	}
	if src := wd.source(); !strings.Contains(src, "Bruger-id") || !strings.Contains(src, "Browser Bank") {
		wd.fatalf("login page is not the Danish one for Browser Bank (no \"Bruger-id\" / client name)")
	}
	wd.typeInto("#username", karen.UserID)
	wd.typeInto("#password", karen.Password) // the activation password
	wd.click("button[type=submit]")

	wd.waitFor("#key-number")
	number := wd.text("#key-number")
	key, ok := karen.Keys[number]
	if !ok {
		wd.fatalf("key number %q is not on card %s", number, karen.Serial)
	}
	wd.typeInto("#key", key)
	wd.click("button[type=submit]")

	wd.waitFor("#new-password")
	wd.typeInto("#new-password", "Browser"+randHex(3)+"7")
	wd.click("button[type=submit]")

	wd.waitFor("#who")
	if u := wd.currentURL(); !strings.HasPrefix(u, rpURL+"/cb?") {
		wd.fatalf("should be back at %s/cb, is at %s", rpURL, u)
	}
	if who := wd.text("#who"); who != "Karen Jensen" {
		wd.fatalf("ID token name = %q, want Karen Jensen", who)
	}
	if amr := wd.text("#amr"); amr != "pwd otp" {
		wd.fatalf("ID token amr = %q, want \"pwd otp\"", amr)
	}
	t.Logf("first login (password, key, new password) took %v", time.Since(first).Round(time.Millisecond))

	// Second visit, same browser: the SSO session answers, no login form.
	second := time.Now()
	wd.navigate(rpURL + "/login")
	if sel := wd.waitFor("#who", "#username", "#key", "#new-password"); sel != "#who" {
		wd.fatalf("second visit should be answered by the SSO session, but shows %s", sel)
	}
	if u := wd.currentURL(); !strings.HasPrefix(u, rpURL+"/cb?") {
		wd.fatalf("second visit should end at %s/cb, is at %s", rpURL, u)
	}
	if who := wd.text("#who"); who != "Karen Jensen" {
		wd.fatalf("second visit: ID token name = %q, want Karen Jensen", who)
	}
	t.Logf("SSO login took %v; whole test %v", time.Since(second).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// needBrowser returns the chromedriver to use, or skips (fails on CI) when chromium or
// chromedriver is missing.
func needBrowser(t *testing.T) string {
	t.Helper()
	driverPath := findChromedriver()
	if _, err := os.Stat(chromiumPath); err != nil {
		unavailable(t, "no browser: %v (scripts/test.sh installs Debian's chromium and chromium-driver)", err)
	}
	if driverPath == "" {
		unavailable(t, "no chromedriver on PATH or at /usr/bin/chromedriver (scripts/test.sh installs Debian's chromium-driver)")
	}
	return driverPath
}

// startBrowserRP serves a relying party (zitadel's rp, client "Browser Bank", scopes openid
// and profile) on 127.0.0.1 and returns its base URL, which names it localhost. GET /login
// starts a login, GET /login/again one with prompt=login; /cb shows the ID token's name
// (#who) and amr (#amr, space-separated).
func startBrowserRP(t *testing.T, p *IdP) string {
	t.Helper()
	// The relying party: a real server on 127.0.0.1, which the browser calls localhost.
	mux := http.NewServeMux()
	rpSrv := httptest.NewUnstartedServer(mux)
	_, port, err := net.SplitHostPort(rpSrv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	rpURL := "http://localhost:" + port
	client := Client{ID: "web-" + randHex(4), Secret: randHex(16), Scopes: []string{"openid", "profile"}}
	p.mustRegister(t, map[string]any{"client_id": client.ID, "name": "Browser Bank",
		"redirect_uris": []string{rpURL + "/cb"}, "secret": client.Secret, "scopes": client.Scopes})
	cookies := httphelper.NewCookieHandler([]byte(randHex(16)), []byte(randHex(16)), httphelper.WithUnsecure())
	relying, err := rp.NewRelyingPartyOIDC(t.Context(), p.Issuer, client.ID, client.Secret, rpURL+"/cb",
		client.Scopes, rp.WithPKCE(cookies), rp.WithSigningAlgsFromDiscovery())
	if err != nil {
		t.Fatalf("rp.NewRelyingPartyOIDC: %v", err)
	}
	mux.Handle("GET /login", rp.AuthURLHandler(func() string { return randHex(8) }, relying))
	mux.Handle("GET /login/again", rp.AuthURLHandler(func() string { return randHex(8) }, relying,
		rp.WithPromptURLParam(oidc.PromptLogin)))
	mux.Handle("GET /cb", rp.CodeExchangeHandler(func(w http.ResponseWriter, _ *http.Request,
		tok *oidc.Tokens[*oidc.IDTokenClaims], _ string, _ rp.RelyingParty) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><title>Browser Bank</title><p id=\"who\">%s</p><p id=\"amr\">%s</p>",
			html.EscapeString(tok.IDTokenClaims.Name),
			html.EscapeString(strings.Join(tok.IDTokenClaims.AuthenticationMethodsReferences, " ")))
	}, relying))
	rpSrv.Start()
	t.Cleanup(rpSrv.Close)
	return rpURL
}

// findChromedriver returns chromedriver from PATH or Debian's place, or "".
func findChromedriver() string {
	if p, err := exec.LookPath("chromedriver"); err == nil {
		return p
	}
	if fi, err := os.Stat("/usr/bin/chromedriver"); err == nil && !fi.IsDir() {
		return "/usr/bin/chromedriver"
	}
	return ""
}

// ---- a minimal W3C WebDriver client ----

// webDriver is one browser session on a chromedriver this test started.
type webDriver struct {
	t       *testing.T
	base    string // http://127.0.0.1:PORT
	session string // base + "/session/" + id
	http    *http.Client
	dir     string // where screenshots go
	shot    bool   // a failure screenshot was taken
}

// elementKey is the W3C key of an element reference.
const elementKey = "element-6066-11e4-a52e-4f735466cecf"

// wdError is an error answer of the WebDriver protocol.
type wdError struct {
	Status  int
	Code    string `json:"error"`
	Message string `json:"message"`
}

func (e *wdError) Error() string {
	return fmt.Sprintf("webdriver %d %s: %.300s", e.Status, e.Code, e.Message)
}

// startWebDriver starts chromedriver on a free port and opens a headless Chromium session;
// both end in t.Cleanup.
func startWebDriver(t *testing.T, driverPath string) *webDriver {
	t.Helper()
	dir := t.TempDir()
	profile := filepath.Join(dir, "profile")
	logFile, err := os.Create(filepath.Join(dir, "chromedriver.log"))
	if err != nil {
		t.Fatal(err)
	}
	readLog := func() string {
		b, _ := os.ReadFile(logFile.Name())
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		return string(b)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()

	cmd := exec.Command(driverPath, fmt.Sprintf("--port=%d", port))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so the Chromium it starts can be killed with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("start %s: %v", driverPath, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		// Chromium may outlive chromedriver for a moment; kill the whole group and wait until
		// it is gone, so the profile directory can be removed.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			if err := syscall.Kill(-cmd.Process.Pid, 0); errors.Is(err, syscall.ESRCH) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = logFile.Close()
	})

	wd := &webDriver{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), dir: dir,
		http: &http.Client{Timeout: 60 * time.Second}}

	// Wait (bounded) until chromedriver answers /status with ready.
	deadline := time.Now().Add(15 * time.Second)
	for {
		var st struct {
			Value struct {
				Ready bool `json:"ready"`
			} `json:"value"`
		}
		if err := wd.call(http.MethodGet, wd.base+"/status", nil, &st); err == nil && st.Value.Ready {
			break
		}
		select {
		case <-exited:
			t.Fatalf("chromedriver exited before it was ready; its log:\n%s", readLog())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver on port %d not ready after 15s; its log:\n%s", port, readLog())
		}
		time.Sleep(50 * time.Millisecond)
	}

	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": chromiumPath,
			"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--no-first-run", "--user-data-dir=" + profile, "--lang=da-DK"},
			// A Danish citizen's browser: the pages follow its Accept-Language (DESIGN.md §5),
			// and chromium's default is en-US.
			"prefs": map[string]any{"intl.accept_languages": "da-DK,da"},
		},
	}}}
	var created struct {
		Value struct {
			SessionID string `json:"sessionId"`
		} `json:"value"`
	}
	if err := wd.call(http.MethodPost, wd.base+"/session", caps, &created); err != nil || created.Value.SessionID == "" {
		t.Fatalf("new WebDriver session: %v; chromedriver log:\n%s", err, readLog())
	}
	wd.session = wd.base + "/session/" + created.Value.SessionID
	t.Cleanup(func() {
		if t.Failed() && !wd.shot {
			wd.screenshot()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if req, err := http.NewRequestWithContext(ctx, http.MethodDelete, wd.session, nil); err == nil {
			if resp, err := wd.http.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}
	})
	return wd
}

// call sends one WebDriver command; out (if not nil) receives the JSON answer.
func (wd *webDriver) call(method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	resp, err := wd.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Value wdError `json:"value"`
		}
		_ = json.Unmarshal(raw, &e)
		e.Value.Status = resp.StatusCode
		if e.Value.Code == "" {
			e.Value.Message = string(raw)
		}
		return &e.Value
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("webdriver %s %s: not JSON: %v: %.300s", method, url, err, raw)
		}
	}
	return nil
}

// must sends a command of the session and fails the test (with screenshot and page source)
// when it fails.
func (wd *webDriver) must(method, path string, body, out any) {
	wd.t.Helper()
	if err := wd.call(method, wd.session+path, body, out); err != nil {
		wd.fatalf("%s %s: %v", method, path, err)
	}
}

func (wd *webDriver) navigate(u string) {
	wd.t.Helper()
	wd.must(http.MethodPost, "/url", map[string]string{"url": u}, nil)
}

func (wd *webDriver) currentURL() string {
	wd.t.Helper()
	var v struct {
		Value string `json:"value"`
	}
	wd.must(http.MethodGet, "/url", nil, &v)
	return v.Value
}

// find returns the element id of the first match of css, or an error (no such element).
func (wd *webDriver) find(css string) (string, error) {
	var v struct {
		Value map[string]string `json:"value"`
	}
	if err := wd.call(http.MethodPost, wd.session+"/element", map[string]string{"using": "css selector", "value": css}, &v); err != nil {
		return "", err
	}
	id := v.Value[elementKey]
	if id == "" {
		return "", fmt.Errorf("webdriver: no element reference in answer for %q", css)
	}
	return id, nil
}

func (wd *webDriver) mustFind(css string) string {
	wd.t.Helper()
	id, err := wd.find(css)
	if err != nil {
		wd.fatalf("find %q: %v", css, err)
	}
	return id
}

// waitFor polls (up to 10 s) until one of the selectors matches and returns it. An IdP error
// box (.error) ends the wait at once, as a failure.
func (wd *webDriver) waitFor(selectors ...string) string {
	wd.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last error
	for {
		for _, css := range selectors {
			if _, err := wd.find(css); err == nil {
				return css
			} else {
				last = err
			}
		}
		if id, err := wd.find(".error"); err == nil {
			wd.fatalf("waiting for %v, the page shows an error: %q (data-code %q) at %s",
				selectors, wd.elementText(id), wd.attr(id, "data-code"), wd.currentURL())
		}
		if time.Now().After(deadline) {
			wd.fatalf("none of %v appeared within 10s (last: %v) at %s", selectors, last, wd.currentURL())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (wd *webDriver) typeInto(css, text string) {
	wd.t.Helper()
	id := wd.mustFind(css)
	wd.must(http.MethodPost, "/element/"+id+"/value", map[string]string{"text": text}, nil)
}

func (wd *webDriver) click(css string) {
	wd.t.Helper()
	id := wd.mustFind(css)
	wd.must(http.MethodPost, "/element/"+id+"/click", map[string]any{}, nil)
}

func (wd *webDriver) text(css string) string {
	wd.t.Helper()
	return wd.elementText(wd.mustFind(css))
}

func (wd *webDriver) elementText(id string) string {
	wd.t.Helper()
	var v struct {
		Value string `json:"value"`
	}
	wd.must(http.MethodGet, "/element/"+id+"/text", nil, &v)
	return strings.TrimSpace(v.Value)
}

func (wd *webDriver) attr(id, name string) string {
	var v struct {
		Value *string `json:"value"`
	}
	if err := wd.call(http.MethodGet, wd.session+"/element/"+id+"/attribute/"+name, nil, &v); err != nil || v.Value == nil {
		return ""
	}
	return *v.Value
}

// source is the current page's HTML ("" if it cannot be read).
func (wd *webDriver) source() string {
	var v struct {
		Value string `json:"value"`
	}
	if err := wd.call(http.MethodGet, wd.session+"/source", nil, &v); err != nil {
		return "<page source unavailable: " + err.Error() + ">"
	}
	return v.Value
}

// screenshot saves the current page as PNG and returns the path: in $NEMIDP_TEST_ARTIFACTS
// when set (kept), else in the test's temp dir (removed with it).
func (wd *webDriver) screenshot() string {
	wd.shot = true
	var v struct {
		Value string `json:"value"`
	}
	if err := wd.call(http.MethodGet, wd.session+"/screenshot", nil, &v); err != nil {
		wd.t.Logf("screenshot: %v", err)
		return ""
	}
	png, err := base64.StdEncoding.DecodeString(v.Value)
	if err != nil {
		wd.t.Logf("screenshot: %v", err)
		return ""
	}
	dir := wd.dir
	if d := os.Getenv("NEMIDP_TEST_ARTIFACTS"); d != "" {
		dir = d
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.png", wd.t.Name(), time.Now().UnixNano()))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		wd.t.Logf("screenshot: %v", err)
		return ""
	}
	wd.t.Logf("screenshot saved to %s", path)
	return path
}

// fatalf fails the test with the current URL and page source, after a screenshot.
func (wd *webDriver) fatalf(format string, args ...any) {
	wd.t.Helper()
	shot := wd.screenshot()
	var u struct {
		Value string `json:"value"`
	}
	_ = wd.call(http.MethodGet, wd.session+"/url", nil, &u)
	src := wd.source()
	if len(src) > 8000 {
		src = src[:8000] + "…"
	}
	wd.t.Fatalf(format+"\n  url: %s\n  screenshot: %s\n  page source:\n%s", append(args, u.Value, shot, src)...)
}
