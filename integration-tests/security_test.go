package integrationtests

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAuthorizeRefusals: requests the IdP must not redirect (unknown client, a redirect_uri
// not exactly registered) get a 400 page without Location; requests it may redirect but must
// refuse (public client without PKCE, PKCE plain) go back with an error and no code.
func TestAuthorizeRefusals(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	conf := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	pub := p.relyingParty(t, p.registerPublicClient(t, "openid", "profile"), "openid", "profile")

	noRedirect := []struct {
		name string
		opts []AuthOption
	}{
		{"unknown client_id", []AuthOption{withParam("client_id", "no-such-client")}},
		{"missing client_id", []AuthOption{withoutParam("client_id")}},
		{"redirect_uri with an extra path", []AuthOption{withParam("redirect_uri", redirectURI+"/evil")}},
		{"redirect_uri with a query", []AuthOption{withParam("redirect_uri", redirectURI+"?x=1")}},
		{"redirect_uri with a trailing slash", []AuthOption{withParam("redirect_uri", redirectURI+"/")}},
		{"redirect_uri on another port", []AuthOption{withParam("redirect_uri", "http://127.0.0.1:10/cb")}},
		{"redirect_uri of another host", []AuthOption{withParam("redirect_uri", "https://evil.example/cb")}},
		{"no redirect_uri", []AuthOption{withoutParam("redirect_uri")}},
	}
	for _, tc := range noRedirect {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, accept := range []string{"application/json", "text/html"} {
				b := p.newBrowser(t)
				b.Accept = accept
				_, u := b.authURL(conf, tc.opts...)
				r := b.get(t, u)
				if r.Status != http.StatusBadRequest || r.Header.Get("Location") != "" {
					t.Errorf("Accept %s: %d Location %q, want 400 without redirect: %s", accept, r.Status, r.Header.Get("Location"), r)
				}
			}
		})
	}

	redirectBack := []struct {
		name string
		rp   *RP
		opts []AuthOption
	}{
		{"public client without PKCE", pub, []AuthOption{withoutParam("code_challenge"), withoutParam("code_challenge_method")}},
		{"PKCE method plain", conf, []AuthOption{withParam("code_challenge", strings.Repeat("a", 43)), withParam("code_challenge_method", "plain")}},
		{"PKCE method plain, public client", pub, []AuthOption{withParam("code_challenge", strings.Repeat("a", 43)), withParam("code_challenge_method", "plain")}},
		{"response_type token", conf, []AuthOption{withParam("response_type", "token")}},
	}
	for _, tc := range redirectBack {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := p.newBrowser(t).authorize(t, tc.rp, tc.opts...)
			t.Logf("back %v, last %v", l.Back, l.Last)
			switch {
			case l.Back != nil:
				q := l.Back.Query()
				if q.Get("code") != "" || q.Get("error") == "" {
					t.Errorf("redirected back with %s, want an error and no code", l.Back)
				}
				if tc.name != "response_type token" && q.Get("error") != "invalid_request" {
					t.Errorf("error = %q, want invalid_request", q.Get("error"))
				}
			case l.Last != nil && l.Last.Status == http.StatusBadRequest:
				// Refused outright: fine too.
			default:
				t.Errorf("the request was not refused: steps %v, view %+v, last %v", l.Steps, l.View, l.Last)
			}
		})
	}

	t.Run("public client with PKCE is accepted", func(t *testing.T) {
		t.Parallel()
		l := p.newBrowser(t).authorize(t, pub)
		l.requireStep("password")
	})
}

// TestLoginRequestProtections: CSRF tokens, binding to the browser, expired flows, cookie
// flags and security headers.
func TestLoginRequestProtections(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	p.activate(t, bank, karen)

	pwBody := func() string { return `{"username":"` + karen.UserID + `","password":"` + karen.Password + `"}` }
	jsonPost := func(b *Browser, path, body string, headers map[string]string) *Resp {
		t.Helper()
		h := map[string]string{"Content-Type": "application/json", "Accept": "application/json"}
		for k, v := range headers {
			h[k] = v
		}
		return b.do(t, http.MethodPost, path, strings.NewReader(body), h)
	}

	t.Run("CSRF token required", func(t *testing.T) {
		t.Parallel()
		l := p.newBrowser(t).authorize(t, bank)
		path := "/login/" + l.View.Flow + "/password"
		for name, h := range map[string]map[string]string{
			"no token":          nil,
			"wrong token":       {"X-CSRF-Token": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
			"cross-site fetch":  {"X-CSRF-Token": l.csrf, "Sec-Fetch-Site": "cross-site"},
			"foreign Origin":    {"X-CSRF-Token": l.csrf, "Origin": "https://evil.example"},
			"opaque Origin":     {"X-CSRF-Token": l.csrf, "Origin": "null"},
			"another flow's id": {"X-CSRF-Token": p.newBrowser(t).authorize(t, bank).csrf},
		} {
			r := jsonPost(l.b, path, pwBody(), h)
			if r.Status != http.StatusForbidden {
				t.Errorf("%s: %s, want 403", name, r)
			}
		}
		form := url.Values{"username": {karen.UserID}, "password": {karen.Password}}
		r := l.b.do(t, http.MethodPost, path, strings.NewReader(form.Encode()), map[string]string{
			"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
		if r.Status != http.StatusForbidden {
			t.Errorf("form without csrf_token: %s, want 403", r)
		}
		// The flow did not move: the right token still works.
		if code, v := l.password(karen, karen.Password); code != http.StatusOK || v.Step != "codecard" {
			t.Errorf("with the token: %d %+v", code, v)
		}
	})

	// Not parallel: logins of one card race for its one pending key (the loser is used_key).
	t.Run("flow bound to its browser", func(t *testing.T) {
		l := p.newBrowser(t).authorize(t, bank)
		path := "/login/" + l.View.Flow + "/password"
		thief := p.newBrowser(t)
		r := jsonPost(thief, path, pwBody(), map[string]string{"X-CSRF-Token": l.csrf})
		if r.Status != http.StatusForbidden || errorCode(r) != "wrong_browser" {
			t.Errorf("POST from a browser without cookie: %s, want 403 wrong_browser", r)
		}
		// A browser with its own cookie (it opened another login) is refused too, GET and POST.
		thief.authorize(t, bank)
		if r := thief.get(t, "/login/"+l.View.Flow); r.Status != http.StatusForbidden || errorCode(r) != "wrong_browser" {
			t.Errorf("GET from another browser: %s, want 403 wrong_browser", r)
		}
		r = jsonPost(thief, path, pwBody(), map[string]string{"X-CSRF-Token": l.csrf})
		if r.Status != http.StatusForbidden || errorCode(r) != "wrong_browser" {
			t.Errorf("POST from another browser: %s, want 403 wrong_browser", r)
		}
		// The code of a finished login is not handed to another browser either.
		l.run(karen)
		if l.Back == nil {
			t.Fatal("login did not end")
		}
	})

	// Not parallel: logins of one card race for its one pending key (the loser is used_key).
	t.Run("callback in another browser", func(t *testing.T) {
		l := p.newBrowser(t).authorize(t, bank)
		if code, v := l.password(karen, karen.Password); code != http.StatusOK {
			t.Fatalf("password: %d %s", code, v.Error)
		}
		v := l.key(karen)
		if v.Step != "done" {
			t.Fatalf("step %q", v.Step)
		}
		r := p.newBrowser(t).get(t, v.RedirectTo)
		if r.Status != http.StatusForbidden || r.Header.Get("Location") != "" {
			t.Errorf("callback from another browser: %s Location %q, want 403 and no code", r, r.Header.Get("Location"))
		}
		l.finish()
		l.mustExchange()
	})

	t.Run("unknown or expired flow", func(t *testing.T) {
		t.Parallel()
		b := p.newBrowser(t)
		for _, id := range []string{"AAAAAAAAAAAAAAAAAAAAAA", "not-a-flow", strings.Repeat("x", 300)} {
			r := b.get(t, "/login/"+id)
			if r.Status != http.StatusGone || errorCode(r) != "flow_expired" {
				t.Errorf("GET /login/%.30s: %s, want 410 flow_expired", id, r)
			}
			r = jsonPost(b, "/login/"+id+"/password", pwBody(), nil)
			if r.Status != http.StatusGone || errorCode(r) != "flow_expired" {
				t.Errorf("POST /login/%.30s/password: %s, want 410 flow_expired", id, r)
			}
		}
		// A flow whose record expired in Redis (TTL reached): the same answer.
		l := b.authorize(t, bank)
		if err := p.Store.Redis().Del(t.Context(), p.Prefix+"flow:"+l.View.Flow).Err(); err != nil {
			t.Fatal(err)
		}
		if r := b.get(t, "/login/"+l.View.Flow); r.Status != http.StatusGone || errorCode(r) != "flow_expired" {
			t.Errorf("GET of an expired flow: %s, want 410 flow_expired", r)
		}
		if code, v := l.password(karen, karen.Password); code != http.StatusGone || codeOf(v.Error) != "flow_expired" {
			t.Errorf("POST to an expired flow: %d %s, want 410 flow_expired", code, v.Error)
		}
	})

	// Not parallel: logins of one card race for its one pending key (the loser is used_key).
	t.Run("cookies and headers", func(t *testing.T) {
		b := p.newBrowser(t)
		b.Accept = "text/html"
		l, u := b.authURL(bank)
		l.t = t
		var cookies []*http.Cookie
		var pages []*Resp
		for range 10 {
			r := b.get(t, u)
			pages = append(pages, r)
			cookies = append(cookies, (&http.Response{Header: r.Header}).Cookies()...)
			if r.Status/100 != 3 {
				break
			}
			u = r.Location(u)
		}
		// Finish through JSON to collect the SSO cookie.
		b.Accept = "application/json"
		l.follow(u)
		l.requireStep("password")
		pw := l.postRaw("password", map[string]string{"username": karen.UserID, "password": karen.Password})
		l.View = pw.View(t)
		l.csrf = l.View.CSRFToken
		key := l.postRaw("codecard", map[string]string{"key": karen.Keys[l.View.KeyNumber]})
		pages = append(pages, pw, key)
		cookies = append(cookies, (&http.Response{Header: key.Header}).Cookies()...)

		names := map[string]bool{}
		for _, c := range cookies {
			names[c.Name] = true
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("cookie %s: HttpOnly=%v SameSite=%v, want HttpOnly and SameSite=Lax", c.Name, c.HttpOnly, c.SameSite)
			}
		}
		if !names["nemidp_browser"] || !names["nemidp_sso"] {
			t.Errorf("cookies set: %v, want nemidp_browser and nemidp_sso", names)
		}
		for _, r := range pages {
			csp := r.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("Content-Security-Policy = %q, want frame-ancestors 'none'", csp)
			}
			if r.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", r.Header.Get("X-Content-Type-Options"))
			}
		}
		for _, r := range pages[len(pages)-2:] {
			if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
				t.Errorf("login answer Cache-Control = %q, want no-store", cc)
			}
		}
	})
}

// TestRequestBodies: an oversized body is 413, malformed JSON 400 invalid_request, an
// unknown media type 415.
func TestRequestBodies(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	b := p.newBrowser(t)
	l := b.authorize(t, bank)
	l.requireStep("password")
	path := "/login/" + l.View.Flow + "/password"
	post := func(ct string, body []byte) *Resp {
		return b.do(t, http.MethodPost, path, bytes.NewReader(body), map[string]string{
			"Content-Type": ct, "Accept": "application/json", "X-CSRF-Token": l.csrf})
	}

	big := []byte(`{"username":"123456789","password":"` + strings.Repeat("a", 1<<20) + `"}`)
	for _, tc := range []struct {
		name       string
		ct         string
		body       []byte
		wantStatus int
		wantCode   string
	}{
		{"1 MiB JSON", "application/json", big, http.StatusRequestEntityTooLarge, "invalid_request"},
		{"1 MiB form", "application/x-www-form-urlencoded", []byte("username=1&password=" + strings.Repeat("a", 1<<20)), http.StatusRequestEntityTooLarge, "invalid_request"},
		{"malformed JSON", "application/json", []byte(`{"username": "1234`), http.StatusBadRequest, "invalid_request"},
		{"not an object", "application/json", []byte(`["a"]`), http.StatusBadRequest, "invalid_request"},
		{"empty JSON body", "application/json", nil, http.StatusBadRequest, "invalid_request"},
		{"text/plain", "text/plain", []byte(`{"username":"1","password":"2"}`), http.StatusUnsupportedMediaType, "invalid_request"},
	} {
		r := post(tc.ct, tc.body)
		if r.Status != tc.wantStatus || errorCode(r) != tc.wantCode {
			t.Errorf("%s: %s, want %d %s", tc.name, r, tc.wantStatus, tc.wantCode)
		}
	}
	// The flow is intact.
	if v := l.reload(); v.Step != "password" {
		t.Errorf("after bad bodies the flow is at %q", v.Step)
	}
}

// TestCrossSitePostAuthorizeKeepsOtherLogins: a cross-site POST to /authorize comes without
// the browser cookie (SameSite=Lax withholds it) but the browser still stores what the answer
// sets. It must not replace the browser cookie: the citizen's other open login keeps working,
// and the new one is the browser's too.
func TestCrossSitePostAuthorizeKeepsOtherLogins(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	b := p.newBrowser(t)
	open := b.authorize(t, bank) // an open login in another tab
	open.requireStep("password")

	// Two cross-site form POSTs (two tabs) before either login page opens: each sent without
	// cookies, what each answer sets stored by the browser.
	bare := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base, _ := url.Parse(p.Issuer)
	crossSitePost := func() (*Login, string) {
		l, authURL := b.authURL(bank)
		l.t = t
		u, _ := url.Parse(authURL)
		req, _ := http.NewRequest(http.MethodPost, u.Scheme+"://"+u.Host+u.Path, strings.NewReader(u.RawQuery))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp, err := bare.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if resp.StatusCode/100 != 3 || err != nil {
			t.Fatalf("POST /authorize: %d %v, want a redirect to the login", resp.StatusCode, err)
		}
		b.http.Jar.SetCookies(base, resp.Cookies())
		return l, loc.String()
	}
	second, secondURL := crossSitePost()
	third, thirdURL := crossSitePost()
	second.follow(secondURL)
	second.requireStep("password")
	third.follow(thirdURL)
	third.requireStep("password")

	// All three logins belong to this browser.
	open.run(karen)
	open.mustExchange()
	second.run(karen)
	second.mustExchange()
	third.run(karen)
	third.mustExchange()

	// Another browser (no cookies) cannot take over a claimed flow's page.
	_, authURL := b.authURL(bank)
	u, _ := url.Parse(authURL)
	req, _ := http.NewRequest(http.MethodPost, u.Scheme+"://"+u.Host+u.Path, strings.NewReader(u.RawQuery))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := bare.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	if r := p.newBrowser(t).get(t, loc.String()); r.Status != http.StatusForbidden || errorCode(r) != "wrong_browser" {
		t.Fatalf("another browser opening a claimed login: %s, want 403 wrong_browser", r)
	}
}
