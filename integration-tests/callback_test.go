package integrationtests

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nemidp/nemidp/config"
)

// The callback loads the finished flow and claims its one-time code mark in one script
// (LoadFlowClaiming); the code is sealed by the front end and judged at the token endpoint
// from the mark's time. These tests attack that: a reloaded or raced callback, a callback from
// another browser, an old code, a forged one.

// atDone runs a login of c (activated) up to its done view, without following it: the
// callback is the test's to call.
func atDone(t *testing.T, p *IdP, r *RP, c *Citizen) *Login {
	t.Helper()
	l := p.newBrowser(t).authorize(t, r)
	l.requireStep("password")
	if code, v := l.password(c, c.Password); code != http.StatusOK || v.Step != "codecard" {
		t.Fatalf("password: %d %s", code, v.Error)
	}
	if v := l.key(c); v.Step != "done" || v.RedirectTo == "" {
		t.Fatalf("key: step %q redirect %q", v.Step, v.RedirectTo)
	}
	return l
}

// callbackAnswer is what one GET of a login's callback got: the code in the redirect back to
// the relying party ("" none), the redirect's error description, and the answer itself.
type callbackAnswer struct {
	code, errDesc string
	resp          *Resp
}

func getCallback(t *testing.T, b *Browser, l *Login) callbackAnswer {
	t.Helper()
	r, err := b.try(t.Context(), http.MethodGet, l.View.RedirectTo, nil, nil)
	if err != nil {
		t.Errorf("GET %s: %v", l.View.RedirectTo, err) // may run in a racing goroutine
		return callbackAnswer{}
	}
	a := callbackAnswer{resp: r}
	if loc := r.Location(l.b.idp.Issuer); strings.HasPrefix(loc, redirectURI) {
		u, err := url.Parse(loc)
		if err == nil {
			a.code, a.errDesc = u.Query().Get("code"), u.Query().Get("error_description")
		}
	}
	return a
}

// race runs n calls of fn released together (each waits at the barrier until all are ready).
func race(n int, fn func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// TestCallbackReloadMintsNoSecondCode: a finished login's callback hands out one code, once.
// Reloaded afterwards, or sent many times at once by its own browser, every other answer is
// refused as "already been answered" with no code, and the one code is redeemed once.
func TestCallbackReloadMintsNoSecondCode(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	for _, tc := range []struct {
		name    string
		callers int // callbacks released together
	}{
		{"reloaded", 1},
		{"ten at once", 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := p.issueCitizen(t, freshCPR(), "Karen Jensen")
			p.activate(t, bank, c)
			l := atDone(t, p, bank, c)
			answers := make([]callbackAnswer, tc.callers)
			race(tc.callers, func(i int) { answers[i] = getCallback(t, l.b, l) })
			if tc.callers == 1 { // then reloaded, twice
				answers = append(answers, getCallback(t, l.b, l), getCallback(t, l.b, l))
			}
			var codes []string
			for i, a := range answers {
				if a.resp == nil {
					t.Fatalf("callback %d failed", i)
				}
				if a.code != "" {
					codes = append(codes, a.code)
					continue
				}
				if !strings.Contains(a.errDesc+string(a.resp.Body), "already been answered") {
					t.Errorf("callback %d: %s (Location %q), want refused as already answered", i, a.resp, a.resp.Header.Get("Location"))
				}
			}
			if len(codes) != 1 {
				t.Fatalf("%d callbacks got a code, want exactly 1", len(codes))
			}
			if _, err := l.exchange(codes[0]); err != nil {
				t.Fatalf("exchange of the one code: %v", err)
			}
			if _, err := l.exchange(codes[0]); !isOAuthError(err, "invalid_grant") {
				t.Fatalf("the one code redeemed twice: %v", err)
			}
		})
	}
}

// TestCallbackFromAnotherBrowserClaimsNothing: the callback of a login from a browser it is
// not bound to (no cookie, or its own cookie of another login) is 403 wrong_browser with no
// redirect, and claims nothing: the right browser's callback, after it or racing it, still
// gets the login's code, which redeems.
func TestCallbackFromAnotherBrowserClaimsNothing(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	for _, tc := range []struct {
		name    string
		cookie  bool // the other browser has a browser cookie of its own
		racing  bool // the other browsers' callbacks race the right one's
		thieves int
	}{
		{"no cookie, before", false, false, 3},
		{"its own cookie, before", true, false, 3},
		{"its own cookie, racing", true, true, 8},
		{"no cookie, racing", false, true, 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := p.issueCitizen(t, freshCPR(), "Karen Jensen")
			p.activate(t, bank, c)
			thieves := make([]*Browser, tc.thieves)
			for i := range thieves {
				thieves[i] = p.newBrowser(t)
				if tc.cookie {
					thieves[i].authorize(t, bank) // opens a login: the browser cookie
				}
			}
			l := atDone(t, p, bank, c)
			answers := make([]callbackAnswer, tc.thieves+1) // the last is the right browser's
			if tc.racing {
				race(len(answers), func(i int) {
					b := l.b
					if i < tc.thieves {
						b = thieves[i]
					}
					answers[i] = getCallback(t, b, l)
				})
			} else {
				for i, b := range thieves {
					answers[i] = getCallback(t, b, l)
				}
				answers[tc.thieves] = getCallback(t, l.b, l)
			}
			for i, a := range answers[:tc.thieves] {
				if a.resp == nil {
					t.Fatalf("callback %d failed", i)
				}
				if a.resp.Status != http.StatusForbidden || errorCode(a.resp) != "wrong_browser" || a.resp.Header.Get("Location") != "" {
					t.Errorf("callback from another browser: %s (Location %q), want 403 wrong_browser and no redirect", a.resp, a.resp.Header.Get("Location"))
				}
			}
			own := answers[tc.thieves]
			if own.code == "" {
				t.Fatalf("the right browser's callback got no code: %v (Location %q)", own.resp, own.resp.Header.Get("Location"))
			}
			if _, err := l.exchange(own.code); err != nil {
				t.Fatalf("exchange: %v", err)
			}
		})
	}
}

// TestCodeOlderThanItsLifetime: a code is redeemed within tokens.code_ttl of its making (the
// time its callback claimed the mark), and is invalid_grant after it, whatever Redis still
// keeps of its flow. The server's clock is moved, not waited for.
func TestCodeOlderThanItsLifetime(t *testing.T) {
	t.Parallel()
	const codeTTL = 2 * time.Minute
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	p := startIdP(t, func(c *config.Config) { c.Tokens.CodeTTL = config.Duration(codeTTL) })
	p.Server.Storage.Now, p.Server.Flows.Now = clock, clock
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	c := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	p.activate(t, bank, c)
	for _, tc := range []struct {
		name string
		age  time.Duration
		ok   bool
	}{
		{"fresh", 0, true},
		{"near its end", codeTTL - 5*time.Second, true},
		{"just past its end", codeTTL + time.Second, false},
		{"long past its end", 3 * codeTTL, false},
	} {
		t.Run(tc.name, func(t *testing.T) { // not parallel: one clock
			offset.Store(0)
			l := p.newBrowser(t).authorize(t, bank)
			l.run(c)
			code := l.code()
			offset.Store(int64(tc.age))
			_, err := l.exchange(code)
			offset.Store(0)
			if tc.ok && err != nil {
				t.Fatalf("a code %v old: %v, want tokens", tc.age, err)
			}
			if !tc.ok && !isOAuthError(err, "invalid_grant") {
				t.Fatalf("a code %v old: err = %v, want invalid_grant", tc.age, err)
			}
		})
	}
	// A code replayed after its lifetime still revokes what its first use issued: the replay
	// is judged as one, not as a code run out.
	offset.Store(0)
	l := p.newBrowser(t).authorize(t, bank)
	l.run(c)
	code := l.code()
	tok, err := l.exchange(code)
	if err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(codeTTL + 10*time.Second))
	_, err = l.exchange(code)
	offset.Store(0)
	if !isOAuthError(err, "invalid_grant") {
		t.Fatalf("the replay past the code's lifetime: err = %v, want invalid_grant", err)
	}
	if _, err := rp.Userinfo[*oidc.UserInfo](t.Context(), tok.AccessToken, "Bearer", tok.IDTokenClaims.Subject, bank); err == nil {
		t.Fatal("the first use's access token still works after the code was replayed past its lifetime")
	}
}

// TestForgedCodeIsInvalidGrant: a code changed anywhere (a byte flipped in its nonce, in the
// sealed grant, in the tag; cut short; grown; a JWE-shaped value, the older format) is
// invalid_grant for the client that otherwise authenticates and passes PKCE — and burns
// nothing: the real code then redeems, and its tokens are not revoked as by a replay.
func TestForgedCodeIsInvalidGrant(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	c := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	p.activate(t, bank, c)
	l := p.newBrowser(t).authorize(t, bank)
	l.run(c)
	code := l.code()
	raw, err := base64.RawURLEncoding.DecodeString(code)
	if err != nil || len(raw) < 24+16+1 {
		t.Fatalf("code %q is not a sealed value (nonce, box, tag): %v", code, err)
	}
	// flip flips one byte at offset at of the decoded code (so the change is real).
	flip := func(at int) string {
		forged := append([]byte(nil), raw...)
		forged[at] ^= 0x01
		return base64.RawURLEncoding.EncodeToString(forged)
	}
	for _, tc := range []struct {
		name, code string
	}{
		{"nonce flipped", flip(3)},
		{"sealed grant flipped", flip(24 + 2)},
		{"tag flipped", flip(len(raw) - 2)},
		{"cut short", code[:len(code)-4]},
		{"grown", code + "AAAA"},
		{"as a compact JWE", strings.Join([]string{code[:10], code[10:20], code[20:30], code[30:40], code[40:]}, ".")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.code == code {
				t.Fatal("the forged code is the real one")
			}
			if _, err := l.exchange(tc.code); !isOAuthError(err, "invalid_grant") {
				t.Fatalf("forged code: err = %v, want invalid_grant", err)
			}
		})
	}
	tok, err := l.exchange(code)
	if err != nil {
		t.Fatalf("the real code after the forgeries: %v", err)
	}
	if _, err := rp.Userinfo[*oidc.UserInfo](t.Context(), tok.AccessToken, "Bearer", tok.IDTokenClaims.Subject, bank); err != nil {
		t.Fatalf("its access token at userinfo: %v", err)
	}
}
