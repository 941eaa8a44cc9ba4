//go:build unix

package integrationtests

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/keys/device"
)

// TestBrowserKeyAppLogin logs in through a real headless Chromium with the key app: relying
// party → IdP login page → password → the keyapp page shows the binding code; the device (Go,
// over the key-app API) finds its request, sees the browser's code among the three it is
// offered and approves with it; then the page, untouched by the test, moves on by itself (its
// script, static/keyapp.js, long-polls the login under CSP script-src 'self') to the relying
// party, whose ID token says amr pwd swk user. A second login (prompt=login, same browser)
// leaves the keyapp page for the code card with the page's own button, which withdraws the
// device's request, and ends with amr pwd otp.
func TestBrowserKeyAppLogin(t *testing.T) {
	driverPath := needBrowser(t)
	start := time.Now()

	p := startIdP(t)
	c := p.issueCitizen(t, freshCPR(), "Mette Appelbruger")
	// The first login (activation password → own password) through the JSON harness, then the
	// device, which needs the citizen's own password.
	p.activate(t, p.relyingParty(t, p.registerClient(t, "openid"), "openid"), c)
	d := p.activateDevice(t, c, "Mettes telefon")
	rpURL := startBrowserRP(t, p)
	t.Logf("IdP %s, relying party %s (setup %v)", p.Issuer, rpURL, time.Since(start).Round(time.Millisecond))

	wd := startWebDriver(t, driverPath)

	// The key app: password, then the page waits for the approval.
	first := time.Now()
	wd.navigate(rpURL + "/login")
	wd.waitFor("#username")
	wd.typeInto("#username", c.UserID)
	wd.typeInto("#password", c.Password)
	wd.click("button[type=submit]")

	wd.waitFor("#binding-code")
	if u := wd.currentURL(); !strings.HasPrefix(u, p.Issuer+"/login/") {
		wd.fatalf("the keyapp page should be the IdP's, is at %s", u)
	}
	code := wd.text("#binding-code")
	if !regexp.MustCompile(`^[0-9]{2}$`).MatchString(code) {
		wd.fatalf("binding code %q is not two digits", code)
	}
	src := wd.source()
	if !strings.Contains(src, "Browser Bank") {
		wd.fatalf("the keyapp page does not name the relying party Browser Bank")
	}
	requireNoInlineScript(wd, src)

	reqs, err := d.Requests(t.Context(), 10*time.Second)
	if err != nil || len(reqs) != 1 {
		wd.fatalf("device requests: %v %+v", err, reqs)
	}
	r := reqs[0]
	if len(r.BindingCodes) != 3 || !slices.Contains(r.BindingCodes, code) {
		wd.fatalf("the device is offered %v, the browser shows %s", r.BindingCodes, code)
	}
	if r.ClientName != "Browser Bank" {
		t.Errorf("the device's request names %q, want Browser Bank", r.ClientName)
	}
	// The page is still waiting: nothing has moved it on before the decision.
	if u := wd.currentURL(); !strings.HasPrefix(u, p.Issuer+"/login/") {
		wd.fatalf("before the approval the page left the IdP, for %s", u)
	}
	// Give the page's first long-poll time to be under way, so the approval has to wake it.
	time.Sleep(500 * time.Millisecond)
	if err := d.Decide(t.Context(), r.ID, device.Approve, code); err != nil {
		wd.fatalf("approve: %v", err)
	}
	approved := time.Now()

	// No click: the page's script must take the browser to the relying party. Its long-poll
	// waits up to 25 s, so a decision that did not wake it would show as a miss here.
	wd.waitForURL(rpURL+"/cb?", 20*time.Second)
	wd.waitFor("#who")
	if who := wd.text("#who"); who != c.Name {
		wd.fatalf("ID token name = %q, want %s", who, c.Name)
	}
	if amr := wd.text("#amr"); amr != "pwd swk user" {
		wd.fatalf("ID token amr = %q, want \"pwd swk user\"", amr)
	}
	t.Logf("key-app login took %v; the page moved on %v after the approval",
		time.Since(first).Round(time.Millisecond), time.Since(approved).Round(time.Millisecond))

	// Again with prompt=login (the SSO session would answer otherwise): at the keyapp page the
	// citizen chooses the code card instead.
	second := time.Now()
	wd.navigate(rpURL + "/login/again")
	wd.waitFor("#username")
	wd.typeInto("#username", c.UserID)
	wd.typeInto("#password", c.Password)
	wd.click("button[type=submit]")
	wd.waitFor("#binding-code")
	requireNoInlineScript(wd, wd.source())
	wd.click("#method-codecard")

	wd.waitFor("#key-number")
	// The switch withdrew the key-app request: the phone has nothing left to approve.
	if rs, err := d.Requests(t.Context(), 0); err != nil || len(rs) != 0 {
		wd.fatalf("after the switch to the card the device still lists %+v (%v)", rs, err)
	}
	number := wd.text("#key-number")
	key, ok := c.Keys[number]
	if !ok {
		wd.fatalf("key number %q is not on card %s", number, c.Serial)
	}
	wd.typeInto("#key", key)
	wd.click("button[type=submit]")

	wd.waitFor("#who")
	if u := wd.currentURL(); !strings.HasPrefix(u, rpURL+"/cb?") {
		wd.fatalf("should be back at %s/cb, is at %s", rpURL, u)
	}
	if amr := wd.text("#amr"); amr != "pwd otp" {
		wd.fatalf("ID token amr = %q, want \"pwd otp\"", amr)
	}
	t.Logf("code-card login from the keyapp page took %v; whole test %v",
		time.Since(second).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// scriptTag matches an opening <script> tag and captures its attributes.
var scriptTag = regexp.MustCompile(`(?is)<script\b([^>]*)>`)

// requireNoInlineScript fails unless every script of the page (its HTML as the browser has
// it) is loaded by src: an inline one would be blocked by the CSP (script-src 'self').
func requireNoInlineScript(wd *webDriver, src string) {
	wd.t.Helper()
	tags := scriptTag.FindAllStringSubmatch(src, -1)
	if len(tags) == 0 {
		wd.fatalf("the keyapp page has no script")
	}
	for _, m := range tags {
		if !regexp.MustCompile(`(?i)\bsrc\s*=`).MatchString(m[1]) {
			wd.fatalf("the keyapp page has an inline script: %s", m[0])
		}
	}
}

// waitForURL polls the current URL, without touching the page, until it starts with prefix;
// it fails when within does not suffice.
func (wd *webDriver) waitForURL(prefix string, within time.Duration) {
	wd.t.Helper()
	deadline := time.Now().Add(within)
	for {
		u := wd.currentURL()
		if strings.HasPrefix(u, prefix) {
			return
		}
		if time.Now().After(deadline) {
			wd.fatalf("the page did not move on by itself to %s within %v; still at %s", prefix, within, u)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
