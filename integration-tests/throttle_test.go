package integrationtests

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/nemidp/nemidp/config"
)

const ipLimit = 8

func withIPLimit(proxies ...string) func(*config.Config) {
	return func(c *config.Config) {
		c.Login.IPMaxFailures = ipLimit
		c.TrustedProxies = proxies
	}
}

// behind is a browser whose requests reach the IdP through the (trusted) proxy on 127.0.0.1
// on behalf of client.
func (p *IdP) behind(t *testing.T, client string) *Browser {
	b := p.newBrowser(t)
	b.Headers = map[string]string{"X-Forwarded-For": "203.0.113.250, " + client}
	return b
}

// TestPasswordSprayingIsThrottled: four common PINs tried against many CPR numbers, each
// flow spraying across user IDs (no NemID locks): past login.ip_max_failures failed answers
// from one address every password or key answer from it gets 429 throttled with Retry-After,
// in JSON and HTML — even the right password of a real citizen — while another address and
// the citizens themselves are untouched.
func TestPasswordSprayingIsThrottled(t *testing.T) {
	t.Parallel()
	p := startIdP(t, withIPLimit("127.0.0.1/32"))
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	real := p.issueCitizen(t, freshCPR(), "Niels Hansen")

	attacker := p.behind(t, "198.51.100.66")
	failed := 0
	for failed < ipLimit {
		l := attacker.authorize(t, bank)
		for _, pin := range []string{"1397", "2468", "1357", "8642"} {
			if failed == ipLimit {
				break
			}
			user := freshCPR()
			if failed == 3 {
				user = real.CPR // a real citizen among them: one failure, not locked
			}
			code, v := l.post("password", map[string]string{"username": user, "password": pin})
			if code != http.StatusUnauthorized || codeOf(v.Error) != "invalid_credentials" {
				t.Fatalf("failed answer %d: %d %+v, want 401 invalid_credentials", failed+1, code, v.Error)
			}
			failed++
		}
	}
	l := attacker.authorize(t, bank)
	r := l.postRaw("password", map[string]string{"username": karen.UserID, "password": karen.Password})
	if r.Status != http.StatusTooManyRequests || errorCode(r) != "throttled" {
		t.Fatalf("the right password from a throttled address: %s, want 429 throttled", r)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 600 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	if v := r.View(t); v.Step != "password" || v.CSRFToken == "" {
		t.Fatalf("throttled view: %+v, want the password step to retry later", v)
	}
	// The HTML form gets a 429 page.
	page := attacker.do(t, http.MethodGet, "/login/"+l.View.Flow, nil, map[string]string{"Accept": "text/html"})
	_, csrf := htmlForm(t, page)
	form := url.Values{"username": {karen.UserID}, "password": {karen.Password}, "csrf_token": {csrf}}
	r = attacker.do(t, http.MethodPost, "/login/"+l.View.Flow+"/password", strings.NewReader(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
	if r.Status != http.StatusTooManyRequests || !strings.Contains(r.Header.Get("Content-Type"), "text/html") ||
		r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), "For mange mislykkede forsøg") {
		t.Fatalf("HTML answer from a throttled address: %s", r)
	}
	// Pages are not throttled.
	if r := attacker.get(t, "/login/"+l.View.Flow); r.Status != http.StatusOK {
		t.Fatalf("GET from a throttled address: %s", r)
	}

	// Another address logs Karen in; a key answer sent from the throttled address is refused.
	other := p.behind(t, "198.51.100.67")
	lo := other.authorize(t, bank)
	if code, v := lo.password(karen, karen.Password); code != http.StatusOK || v.Step != "codecard" {
		t.Fatalf("another address: %d %+v", code, v)
	}
	other.Headers["X-Forwarded-For"] = "198.51.100.66"
	r = lo.postRaw("codecard", map[string]string{"key": karen.Keys[lo.View.KeyNumber]})
	if r.Status != http.StatusTooManyRequests || errorCode(r) != "throttled" {
		t.Fatalf("a key answer from the throttled address: %s, want 429", r)
	}
	other.Headers["X-Forwarded-For"] = "198.51.100.67"
	lo.key(karen)
	for _, c := range []*Citizen{karen, real} {
		if st := p.citizenStatus(t, c.UserID); st != "active" {
			t.Fatalf("citizen %s is %q after the spray, want active", c.Name, st)
		}
	}
}

// TestUntrustedForwardedForIsIgnored: without a trusted proxy, X-Forwarded-For cannot make an
// attacker a new address for each guess.
func TestUntrustedForwardedForIsIgnored(t *testing.T) {
	t.Parallel()
	p := startIdP(t, withIPLimit()) // no trusted proxies
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	for i := range ipLimit {
		b := p.behind(t, "198.51.100."+strconv.Itoa(i+1)) // a "new address" each time
		l := b.authorize(t, bank)
		if code, v := l.post("password", map[string]string{"username": freshCPR(), "password": "1397"}); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %+v", i+1, code, v.Error)
		}
	}
	l := p.behind(t, "198.51.100.200").authorize(t, bank)
	if r := l.postRaw("password", map[string]string{"username": karen.UserID, "password": karen.Password}); r.Status != http.StatusTooManyRequests {
		t.Fatalf("after %d failures from 127.0.0.1 with forged X-Forwarded-For: %s, want 429", ipLimit, r)
	}
}

// TestFailedOperatorCallsAreThrottled: wrong operator tokens count per address like failed
// login answers (in their own budget): past the limit even the right token is refused with
// 429 and Retry-After from that address, while logins from it go on.
func TestFailedOperatorCallsAreThrottled(t *testing.T) {
	t.Parallel()
	p := startIdP(t, withIPLimit("127.0.0.1/32"))
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	call := func(client, token string) *http.Response {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, p.Issuer+"/admin/v1/citizens/"+karen.UserID, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Forwarded-For", client)
		resp, err := p.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range ipLimit {
		if r := call("198.51.100.90", "guess-"+strconv.Itoa(i)); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d, want 401", i+1, r.StatusCode)
		}
	}
	r := call("198.51.100.90", p.AdminToken)
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("the right token from a throttled address: %d (Retry-After %q), want 429", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if r := call("198.51.100.91", p.AdminToken); r.StatusCode != http.StatusOK {
		t.Fatalf("the right token from another address: %d, want 200", r.StatusCode)
	}
	// The login budget of the address is its own.
	l := p.behind(t, "198.51.100.90").authorize(t, bank)
	if code, v := l.password(karen, karen.Password); code != http.StatusOK || v.Step != "codecard" {
		t.Fatalf("login from the address with failed operator calls: %d %+v", code, v)
	}
}

// TestSecondTabsDoNotCountAgainstTheAddress: logins of one card that type the key another
// login just used (second tabs) are no failed answers, for the address either: more of them
// than login.ip_max_failures leave the address unthrottled, while a used key typed wrong is
// counted.
func TestSecondTabsDoNotCountAgainstTheAddress(t *testing.T) {
	t.Parallel()
	p := startIdP(t, withIPLimit())
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	p.activate(t, bank, karen)
	tabs := make([]*Login, ipLimit+2)
	for i := range tabs {
		tabs[i] = p.newBrowser(t).authorize(t, bank)
		if code, v := tabs[i].password(karen, karen.Password); code != http.StatusOK || v.Step != "codecard" {
			t.Fatalf("tab %d: %d %+v", i, code, v)
		}
	}
	number := tabs[0].View.KeyNumber
	tabs[0].key(karen)
	for i, l := range tabs[1:] {
		code, v := l.post("codecard", map[string]string{"key": karen.Keys[number]})
		if code != http.StatusConflict || codeOf(v.Error) != "used_key" {
			t.Fatalf("tab %d, the used key typed right: %d %+v, want 409 used_key", i+1, code, v.Error)
		}
	}
	last := tabs[len(tabs)-1]
	r := last.postRaw("codecard", map[string]string{"key": "000000"})
	if r.Status == http.StatusTooManyRequests {
		t.Fatalf("after %d second-tab answers the address is throttled: %s", len(tabs)-1, r)
	}
}
