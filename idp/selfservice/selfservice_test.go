package selfservice_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/admin"
	"github.com/nemidp/nemidp/idp/selfservice"
	"github.com/nemidp/nemidp/idp/store"
)

const (
	cprA = "1506901234"
	cprB = "0303701234"
)

// TestLoginLandsOnOverview: without a session every page sends the browser to a login flow;
// the normal login (password, card key) comes back through the callback to the overview with
// the citizen's name, NemID number, status, expiry, cards and devices; the callback is good
// once; a cookie that does not open is no session; the SSO session answers a second login.
func TestLoginLandsOnOverview(t *testing.T) {
	t.Parallel()
	lc := &fakeLC{cards: []selfservice.Card{{Serial: "G750159724", Status: "active", KeysLeft: 131}, {Serial: "G111111111", Status: "sent", KeysLeft: 148}}}
	e := newEnv(t, lc)
	c := e.citizen(cprA, "Karen Jensen")
	ctx := context.Background()
	if err := e.srv.Store.AddDevice(ctx, c.uid, store.Device{ID: store.NewDeviceID(c.uid), Name: "Karens telefon",
		PublicKey: json.RawMessage(`{}`), CreatedAt: time.Now()}, 3); err != nil {
		t.Fatal(err)
	}

	b := e.browser()
	for _, tc := range []struct{ method, path string }{
		{"GET", selfservice.Path}, {"GET", selfservice.Path + "/adresse"}, {"GET", selfservice.Path + "/spaerring"},
		{"POST", selfservice.Path + "/adresse"},
	} {
		var a answer
		if tc.method == "GET" {
			a = b.get(tc.path)
		} else {
			a = b.post(tc.path, url.Values{"address": {"x"}})
		}
		if a.status != http.StatusSeeOther || !strings.HasPrefix(a.location, "/login/") {
			t.Errorf("%s %s without a session: %d %q, want 303 to a login", tc.method, tc.path, a.status, a.location)
		}
	}
	if v, _ := e.srv.Store.AltAddress(ctx, c.uid); v != "" {
		t.Fatalf("a POST without a session changed the address: %q", v)
	}

	page := b.login(c)
	c0, _ := e.srv.Store.Citizen(ctx, c.uid)
	for _, want := range []string{`id="name">Karen Jensen<`, `id="user-id">` + c.uid + `<`, `data-status="active">Aktivt<`,
		`id="expires">`, `data-serial="G750159724" data-status="active"`, `<td class="keys-left">131</td>`,
		`data-serial="G111111111" data-status="sent"`, "Karens telefon", "Dit NemID"} {
		if !strings.Contains(page, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if c0.ExpiresAt == "" {
		t.Error("the test citizen has no expiry to show")
	}
	// The cookie is HttpOnly and SameSite=Lax, not readable by script.
	a := b.get(selfservice.Path)
	sc := strings.Join(a.header.Values("Set-Cookie"), "\n")
	if !strings.Contains(sc, "nemidp_selvbetjening=") || !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Lax") ||
		!strings.Contains(sc, "Max-Age=900") {
		t.Errorf("session cookie: %s", sc)
	}
	if got := e.rec.Find("selfservice.login"); len(got) != 1 || got[0]["by"] != "citizen" || got[0]["who"] != c.uid || got[0]["user_id"] != c.uid {
		t.Errorf("audit selfservice.login: %v", got)
	}

	// A cookie that does not open (forged, or sealed by another secret) is no session.
	forged := e.browser()
	forged.setCookie("nemidp_selvbetjening", b.cookie("nemidp_selvbetjening")[:40]+"AAAA")
	if a := forged.get(selfservice.Path); a.status != http.StatusSeeOther {
		t.Errorf("forged cookie: %d", a.status)
	}

	// The SSO session answers a new self-service login in the same browser: no password.
	b.setCookie("nemidp_selvbetjening", "")
	a = b.get(selfservice.Path)
	if a.status != http.StatusSeeOther {
		t.Fatalf("without the self-service cookie: %d", a.status)
	}
	st, v := b.json("GET", a.location, "", nil)
	if st != http.StatusOK || v["step"] != "done" {
		t.Fatalf("with an SSO session the login answered %d %v, want done", st, v)
	}
	back := v["redirect_to"].(string)
	if a := b.get(back); a.status != http.StatusSeeOther || a.location != selfservice.Path {
		t.Fatalf("callback: %d %q", a.status, a.location)
	}
	// The callback is good once: another browser, or the same again, makes no session.
	other := e.browser()
	if a := other.get(back); a.status != http.StatusForbidden {
		t.Errorf("callback in another browser: %d, want 403", a.status)
	}
	if a := b.get(back); a.status != http.StatusSeeOther || a.location != selfservice.Path {
		t.Errorf("callback again: %d %q", a.status, a.location)
	}
	if got := e.rec.Find("selfservice.login"); len(got) != 2 {
		t.Errorf("%d selfservice.login lines, want 2 (the repeated callback made none)", len(got))
	}
	// An OIDC flow's id is not a self-service login.
	if a := b.get(selfservice.Path + "/callback?id=AAAAAAAAAAAAAAAAAAAAAA"); a.status != http.StatusGone {
		t.Errorf("unknown flow: %d", a.status)
	}
}

// TestCSRF: a POST without the session's token, with a wrong one, with another session's,
// or cross-site / cross-origin with the right one, is refused 403 and changes nothing.
func TestCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &fakeLC{})
	c := e.citizen(cprA, "Karen Jensen")
	d := e.citizen(cprB, "Dorte Dam")
	b, other := e.browser(), e.browser()
	token := csrf(t, b.login(c))
	otherToken := csrf(t, other.login(d))
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		token string
		hdr   []string
	}{
		{"no token", "", nil},
		{"wrong token", "AAAA" + token[4:], nil},
		{"another session's token", otherToken, nil},
		{"cross-site", token, []string{"Sec-Fetch-Site", "cross-site"}},
		{"other origin", token, []string{"Origin", "https://evil.example"}},
		{"opaque origin", token, []string{"Origin", "null"}},
	} {
		for _, path := range []string{"/adresse", "/kort", "/adgangskode", "/noegleapp/fjern"} {
			form := url.Values{"address": {"Gade 1"}, "reason": {"extra"}, "current_password": {c.pw},
				"new_password": {"Nyt2027kodeord"}, "repeat_password": {"Nyt2027kodeord"}, "device_id": {c.uid + ".AAAAAAAAAAAAAAAAAAAAAA"}}
			if tc.token != "" {
				form.Set("csrf_token", tc.token)
			}
			a := b.post(selfservice.Path+path, form, tc.hdr...)
			if a.status != http.StatusForbidden || errorCode(a.body) != "csrf" {
				t.Errorf("%s %s: %d code %q, want 403 csrf", tc.name, path, a.status, errorCode(a.body))
			}
		}
	}
	if v, _ := e.srv.Store.AltAddress(ctx, c.uid); v != "" {
		t.Errorf("address changed: %q", v)
	}
	if n := len(e.lc.orders()); n != 0 {
		t.Errorf("%d cards ordered", n)
	}
	if c1, _ := e.srv.Store.Citizen(ctx, c.uid); c1.Failures != 0 {
		t.Errorf("a refused form counted %d failures", c1.Failures)
	}
	// A JSON body is not a form.
	req, _ := http.NewRequest("POST", e.base+selfservice.Path+"/adresse", strings.NewReader(`{"address":"x","csrf_token":"`+token+`"}`))
	req.Header.Set("Content-Type", "application/json")
	if a := b.do(req); a.status != http.StatusUnsupportedMediaType {
		t.Errorf("JSON POST: %d", a.status)
	}
	// The right token works (the page's own form).
	if a := b.post(selfservice.Path+"/adresse", url.Values{"csrf_token": {token}, "address": {"Gade 1"}}); a.status != http.StatusSeeOther {
		t.Fatalf("right token: %d %s", a.status, a.body)
	}
	if v, _ := e.srv.Store.AltAddress(ctx, c.uid); v != "Gade 1" {
		t.Errorf("address after the right token: %q", v)
	}
}

// TestFreshLoginForBlockAndRenew: a login older than 5 minutes is sent through a new login
// (prompt=login: the SSO session does not answer it) before the block and renewal pages and
// their POSTs, and nothing is blocked or renewed meanwhile; the fresh login comes back to the
// page it left.
func TestFreshLoginForBlockAndRenew(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &fakeLC{})
	c := e.citizen(cprA, "Karen Jensen")
	b := e.browser()
	token := csrf(t, b.login(c))
	ctx := context.Background()
	// Fresh: the pages show.
	for _, p := range []string{"/spaerring", "/fornyelse"} {
		if a := b.get(selfservice.Path + p); a.status != http.StatusOK {
			t.Fatalf("GET %s with a fresh login: %d", p, a.status)
		}
	}
	e.clock.shift(selfservice.FreshLogin + time.Minute)
	for _, tc := range []struct {
		method, path string
		form         url.Values
	}{
		{"GET", "/spaerring", nil},
		{"POST", "/spaerring", url.Values{"confirm": {"yes"}}},
		{"GET", "/fornyelse", nil},
		{"POST", "/fornyelse", url.Values{"serial": {"G750159724"}, "number": {"0042"}, "key": {"123456"}}},
		// Where cards go and ordering one: a stolen session must not send a card elsewhere.
		{"GET", "/adresse", nil},
		{"POST", "/adresse", url.Values{"address": {"Elsewhere 1"}}},
		{"POST", "/kort", url.Values{"reason": {"extra"}}},
		{"GET", "/kort/mistet", nil},
	} {
		var a answer
		if tc.method == "GET" {
			a = b.get(selfservice.Path + tc.path)
		} else {
			tc.form.Set("csrf_token", token)
			a = b.post(selfservice.Path+tc.path, tc.form)
		}
		if a.status != http.StatusSeeOther || !strings.HasPrefix(a.location, "/login/") {
			t.Fatalf("%s %s with an old login: %d %q, want a new login", tc.method, tc.path, a.status, a.location)
		}
		if v := b.view(a.location); v["step"] != "password" {
			t.Fatalf("%s %s: the new login is at %v, want the password (not the SSO session)", tc.method, tc.path, v["step"])
		}
	}
	// The rest of self-service still takes the old login.
	if a := b.get(selfservice.Path + "/adgangskode"); a.status != http.StatusOK {
		t.Errorf("password page with an old login: %d", a.status)
	}
	if n := len(e.lc.orders()); n != 0 {
		t.Fatalf("a card ordered by a stale login: %d", n)
	}
	if c1, _ := e.srv.Store.Citizen(ctx, c.uid); c1.Status != store.StatusActive {
		t.Fatalf("blocked by a stale login: %s", c1.Status)
	}
	if n := len(e.lc.renewals()); n != 0 {
		t.Fatalf("renewed by a stale login: %d", n)
	}
	// The new login comes back to the page that asked for it.
	e.clock.reset()
	a := b.get(selfservice.Path + "/spaerring")
	e.clock.shift(selfservice.FreshLogin + time.Minute)
	a = b.get(selfservice.Path + "/spaerring")
	e.clock.reset()
	if next := b.finish(a.location, c); next != selfservice.Path+"/spaerring" {
		t.Fatalf("after the fresh login: sent to %q", next)
	}
	if a := b.get(selfservice.Path + "/spaerring"); a.status != http.StatusOK || !strings.Contains(a.body, `id="block-confirm"`) {
		t.Fatalf("block page after the fresh login: %d", a.status)
	}
}

// TestBlock: the citizen blocks the NemID (misuse); the page says so, the self-service and SSO
// sessions are over — also copies of their cookies kept elsewhere — and an OIDC authorize
// asks for the password again.
func TestBlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &fakeLC{})
	c := e.citizen(cprA, "Karen Jensen")
	cl, _, err := admin.BuildClient(admin.ClientRequest{ClientID: "bank", Name: "Banken", RedirectURIs: []string{"http://127.0.0.1:9/cb"},
		Secret: "bank-secret-0123456789", Scopes: []string{"openid"}}, e.srv.Keys.Algorithms())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Store.CreateClient(context.Background(), cl); err != nil {
		t.Fatal(err)
	}
	b, other := e.browser(), e.browser()
	b.login(c)
	other.login(c) // another browser of the citizen: its sessions are not the ones this one ends
	page := b.get(selfservice.Path + "/spaerring")
	token := csrf(t, page.body)
	sso, ss := b.cookie("nemidp_sso"), b.cookie("nemidp_selvbetjening")
	if sso == "" || ss == "" {
		t.Fatalf("cookies before the block: sso %q self-service %q", sso, ss)
	}
	// Not without the confirmation.
	if a := b.post(selfservice.Path+"/spaerring", url.Values{"csrf_token": {token}}); a.status != http.StatusBadRequest {
		t.Fatalf("block without confirm: %d", a.status)
	}
	a := b.post(selfservice.Path+"/spaerring", url.Values{"csrf_token": {token}, "confirm": {"yes"}})
	if a.status != http.StatusOK || !strings.Contains(a.body, `id="blocked"`) {
		t.Fatalf("block: %d %s", a.status, a.body)
	}
	c1, err := e.srv.Store.Citizen(context.Background(), c.uid)
	if err != nil || c1.Status != store.StatusBlocked || c1.BlockReason != store.BlockMisuse {
		t.Fatalf("after the block: %+v %v", c1, err)
	}
	if got := e.rec.Find("citizen.blocked"); len(got) != 1 || got[0]["who"] != c.uid || got[0]["by"] != "citizen" {
		t.Errorf("audit citizen.blocked: %v", got)
	}
	if b.cookie("nemidp_selvbetjening") != "" || b.cookie("nemidp_sso") != "" {
		t.Error("the block did not clear the cookies")
	}
	// The other browser's sessions are over too, by the block's cutoff, even once an
	// operator lifted the block.
	if _, err := e.srv.Store.Unblock(context.Background(), c.uid, "operator", time.Now()); err != nil {
		t.Fatal(err)
	}
	if a := other.get(selfservice.Path); a.status != http.StatusSeeOther || !strings.HasPrefix(a.location, "/login/") {
		t.Fatalf("the other browser after the block: %d %q, want a login", a.status, a.location)
	}
	// The cookies as they were (another tab's copy): neither session answers.
	b.setCookie("nemidp_sso", sso)
	b.setCookie("nemidp_selvbetjening", ss)
	if a := b.get(selfservice.Path); a.status != http.StatusSeeOther || !strings.HasPrefix(a.location, "/login/") {
		t.Fatalf("self-service after the block: %d %q, want a login", a.status, a.location)
	}
	b.setCookie("nemidp_sso", sso)
	a = b.get("/authorize?" + url.Values{"client_id": {"bank"}, "redirect_uri": {"http://127.0.0.1:9/cb"}, "response_type": {"code"},
		"scope": {"openid"}, "code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}.Encode())
	if a.status != http.StatusFound && a.status != http.StatusSeeOther {
		t.Fatalf("authorize: %d %s", a.status, a.body)
	}
	loc, _ := url.Parse(a.location)
	if v := b.view(loc.RequestURI()); v["step"] != "password" {
		t.Fatalf("authorize after the block: step %v, want password", v["step"])
	}
}

// TestDevices: the citizen removes their own key-app device; another citizen's device id, and
// an unknown one, are refused and remove nothing.
func TestDevices(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &fakeLC{})
	c := e.citizen(cprA, "Karen Jensen")
	d := e.citizen(cprB, "Dorte Dam")
	ctx := context.Background()
	add := func(uid, name string) string {
		id := store.NewDeviceID(uid)
		if err := e.srv.Store.AddDevice(ctx, uid, store.Device{ID: id, Name: name, PublicKey: json.RawMessage(`{}`), CreatedAt: time.Now()}, 3); err != nil {
			t.Fatal(err)
		}
		return id
	}
	own, theirs := add(c.uid, "Karens telefon"), add(d.uid, "Dortes telefon")
	active := func(uid, id string) bool {
		dev, err := e.srv.Store.Device(ctx, uid, id)
		if err != nil {
			t.Fatal(err)
		}
		return dev.Active
	}
	b := e.browser()
	page := b.login(c)
	token := csrf(t, page)
	if !strings.Contains(page, `data-device="`+own+`"`) || strings.Contains(page, theirs) {
		t.Fatal("the overview does not list exactly the citizen's own device")
	}
	for _, tc := range []struct {
		name, id string
		status   int
		code     string
	}{
		{"another citizen's", theirs, http.StatusForbidden, "not_own_device"},
		{"another citizen's id under mine", c.uid + "." + strings.SplitN(theirs, ".", 2)[1], http.StatusNotFound, "no_device"},
		{"made up", "nonsense", http.StatusForbidden, "not_own_device"},
	} {
		a := b.post(selfservice.Path+"/noegleapp/fjern", url.Values{"csrf_token": {token}, "device_id": {tc.id}})
		if a.status != tc.status || errorCode(a.body) != tc.code {
			t.Errorf("%s: %d %q, want %d %s", tc.name, a.status, errorCode(a.body), tc.status, tc.code)
		}
	}
	if !active(d.uid, theirs) || !active(c.uid, own) {
		t.Fatal("a refused removal removed a device")
	}
	a := b.post(selfservice.Path+"/noegleapp/fjern", url.Values{"csrf_token": {token}, "device_id": {own}})
	if a.status != http.StatusSeeOther || a.location != selfservice.Path {
		t.Fatalf("remove own: %d %s", a.status, a.body)
	}
	if active(c.uid, own) {
		t.Fatal("own device still active")
	}
	page = b.get(selfservice.Path).body
	if !strings.Contains(page, `data-code="device_removed"`) || strings.Contains(page, `data-device="`+own+`"`) {
		t.Error("the overview after the removal")
	}
	if got := e.rec.Find("device.removed"); len(got) != 1 || got[0]["who"] != c.uid {
		t.Errorf("audit device.removed: %v", got)
	}
}

// TestChangePassword: a wrong current password is refused and counts as a failed attempt; a
// new one that breaks the rules or differs from its repetition is refused; the right one
// changes it, and the next login takes the new password and refuses the old.
func TestChangePassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &fakeLC{})
	c := e.citizen(cprA, "Karen Jensen")
	b := e.browser()
	b.login(c)
	token := csrf(t, b.get(selfservice.Path+"/adgangskode").body)
	ctx := context.Background()
	const newPw = "Nyt2027kodeord"
	for _, tc := range []struct {
		name, current, next, repeat string
		status                      int
		code                        string
	}{
		{"wrong current", "Forkert2026x", newPw, newPw, http.StatusUnauthorized, "wrong_password"},
		{"too short", c.pw, "ab1", "ab1", http.StatusBadRequest, "password_too_short"},
		{"PIN from the CPR number", c.pw, "1506", "1506", http.StatusBadRequest, "password_pin_in_cpr"},
		{"differs", c.pw, newPw, newPw + "x", http.StatusBadRequest, "passwords_differ"},
		{"missing", "", newPw, newPw, http.StatusBadRequest, "invalid_request"},
	} {
		a := b.post(selfservice.Path+"/adgangskode", url.Values{"csrf_token": {token}, "current_password": {tc.current},
			"new_password": {tc.next}, "repeat_password": {tc.repeat}})
		if a.status != tc.status || errorCode(a.body) != tc.code {
			t.Errorf("%s: %d %q, want %d %s", tc.name, a.status, errorCode(a.body), tc.status, tc.code)
		}
		if tc.code == "wrong_password" && !strings.Contains(a.body, `id="attempts-left">4<`) {
			t.Errorf("wrong current password: no attempts left shown")
		}
	}
	c1, _ := e.srv.Store.Citizen(ctx, c.uid)
	if c1.Failures != 1 {
		t.Errorf("failures after one wrong current password: %d, want 1", c1.Failures)
	}
	if refused := e.rec.Find("citizen.password_change_refused"); len(refused) != 1 {
		t.Errorf("audit password_change_refused: %v", refused)
	}
	a := b.post(selfservice.Path+"/adgangskode", url.Values{"csrf_token": {token}, "current_password": {c.pw},
		"new_password": {newPw}, "repeat_password": {newPw}})
	if a.status != http.StatusSeeOther {
		t.Fatalf("change: %d %s", a.status, a.body)
	}
	if page := b.get(selfservice.Path).body; !strings.Contains(page, `data-code="password_changed"`) {
		t.Error("no outcome shown after the change")
	}
	if got := e.rec.Find("citizen.password_changed"); len(got) != 1 {
		t.Errorf("audit password_changed: %v", got)
	}
	if strings.Contains(e.rec.String(), newPw) || strings.Contains(e.rec.String(), c.pw) || strings.Contains(e.rec.String(), cprA) {
		t.Fatal("an audit line holds a password or the CPR number")
	}
	// The old password no longer logs in; the new one does.
	old := e.browser()
	a = old.get(selfservice.Path)
	v := old.view(a.location)
	if st, _ := old.json("POST", a.location+"/password", v["csrf_token"].(string), map[string]string{"username": c.uid, "password": c.pw}); st != http.StatusUnauthorized {
		t.Fatalf("old password: %d, want 401", st)
	}
	c.pw = newPw
	e.browser().login(c)
}

// TestAltAddress: the citizen sets an alternative address (shown on the overview), one too
// long or with a control character is refused and changes nothing, and clearing it goes back
// to the register address.
func TestAltAddress(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &fakeLC{})
	c := e.citizen(cprA, "Karen Jensen")
	b := e.browser()
	b.login(c)
	token := csrf(t, b.get(selfservice.Path+"/adresse").body)
	ctx := context.Background()
	stored := func() string {
		v, err := e.srv.Store.AltAddress(ctx, c.uid)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a := b.post(selfservice.Path+"/adresse", url.Values{"csrf_token": {token}, "address": {"c/o Hansen\r\nStorgade 1\r\n8000 Aarhus C"}})
	if a.status != http.StatusSeeOther || stored() != "c/o Hansen\nStorgade 1\n8000 Aarhus C" {
		t.Fatalf("set: %d, stored %q", a.status, stored())
	}
	if page := b.get(selfservice.Path).body; !strings.Contains(page, "c/o Hansen\nStorgade 1\n8000 Aarhus C") ||
		!strings.Contains(page, `data-code="address_set"`) {
		t.Error("the overview does not show the address set")
	}
	for _, tc := range []struct{ name, addr, code string }{
		{"too long", strings.Repeat("x", store.MaxAltAddress+1), "address_too_long"},
		{"too many lines", "a\nb\nc\nd\ne\nf", "address_too_many_lines"},
		{"control character", "Gade 1\x07", "address_invalid_characters"},
	} {
		a := b.post(selfservice.Path+"/adresse", url.Values{"csrf_token": {token}, "address": {tc.addr}})
		if a.status != http.StatusBadRequest || errorCode(a.body) != tc.code {
			t.Errorf("%s: %d %q", tc.name, a.status, errorCode(a.body))
		}
	}
	if stored() != "c/o Hansen\nStorgade 1\n8000 Aarhus C" {
		t.Fatalf("a refused address changed it: %q", stored())
	}
	if a := b.post(selfservice.Path+"/adresse", url.Values{"csrf_token": {token}, "clear": {"1"}}); a.status != http.StatusSeeOther || stored() != "" {
		t.Fatalf("clear: %d, stored %q", a.status, stored())
	}
	var whats []string
	for _, l := range e.rec.Lines() {
		if w, _ := l["what"].(string); strings.HasPrefix(w, "citizen.alt_address") {
			whats = append(whats, w)
		}
	}
	if !slices.Equal(whats, []string{"citizen.alt_address_set", "citizen.alt_address_cleared"}) {
		t.Errorf("audit lines: %v", whats)
	}
	if strings.Contains(e.rec.String(), "Storgade") {
		t.Error("an audit line holds the address")
	}
}

// TestLanguage: Danish by default, English with ?lang=en (remembered) or an Accept-Language
// that prefers English.
func TestLanguage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &fakeLC{})
	c := e.citizen(cprA, "Karen Jensen")
	b := e.browser()
	if page := b.login(c); !strings.Contains(page, `<html lang="da">`) || !strings.Contains(page, "Dit NemID") {
		t.Fatal("default page not Danish")
	}
	if a := b.get(selfservice.Path+"?lang=en", "Accept-Language", "da"); !strings.Contains(a.body, `<html lang="en">`) ||
		!strings.Contains(a.body, "Your NemID") || !strings.Contains(a.body, "Code cards") {
		t.Fatal("?lang=en not English")
	}
	if a := b.get(selfservice.Path+"/adresse", "Accept-Language", "da"); !strings.Contains(a.body, "Alternative address") {
		t.Error("the choice of English was not remembered")
	}
	other := e.browser()
	other.login(c)
	if a := other.get(selfservice.Path, "Accept-Language", "en-GB,en;q=0.9,da;q=0.5"); !strings.Contains(a.body, "Your NemID") {
		t.Error("Accept-Language preferring English not English")
	}
	// An error page too.
	if a := other.get(selfservice.Path+"/nope", "Accept-Language", "en"); a.status != http.StatusNotFound || !strings.Contains(a.body, "There is no such page.") {
		t.Errorf("English 404: %d", a.status)
	}
}

// TestRefusalsShown: the card and renewal service's refusals reach the page in the citizen's
// language (with attempts left), and its successes as the overview's outcome.
func TestRefusalsShown(t *testing.T) {
	t.Parallel()
	lc := &fakeLC{}
	e := newEnv(t, lc)
	c := e.citizen(cprA, "Karen Jensen")
	b := e.browser()
	token := csrf(t, b.login(c))

	lc.set(func(f *fakeLC) {
		f.orderErr = &selfservice.Refusal{Code: "card_limit", Message: "You have 3 extra cards already."}
	})
	a := b.post(selfservice.Path+"/kort", url.Values{"csrf_token": {token}, "reason": {"extra"}})
	if a.status != http.StatusConflict || errorCode(a.body) != "card_limit" || !strings.Contains(a.body, "Du har allerede så mange ekstra nøglekort") {
		t.Errorf("card_limit: %d %q", a.status, errorCode(a.body))
	}
	lc.set(func(f *fakeLC) {
		f.orderErr = &selfservice.Refusal{Code: "something_new", Message: "A reason the pages do not know."}
	})
	if a := b.post(selfservice.Path+"/kort?lang=en", url.Values{"csrf_token": {token}, "reason": {"extra"}}); !strings.Contains(a.body, "A reason the pages do not know.") {
		t.Errorf("unknown code in English: no fallback message")
	}
	lc.set(func(f *fakeLC) { f.orderErr = nil })
	if a := b.get(selfservice.Path + "/kort/mistet"); a.status != http.StatusOK || !strings.Contains(a.body, `id="lost-confirm"`) {
		t.Fatalf("lost card page: %d", a.status)
	}
	if a := b.post(selfservice.Path+"/kort?lang=da", url.Values{"csrf_token": {token}, "reason": {"lost"}}); a.status != http.StatusSeeOther {
		t.Fatalf("lost card: %d", a.status)
	}
	if page := b.get(selfservice.Path).body; !strings.Contains(page, `data-code="card_replaced"`) || !strings.Contains(page, `id="flash-serial">G`) {
		t.Error("lost card: no outcome with the new serial")
	}
	if a := b.post(selfservice.Path+"/kort", url.Values{"csrf_token": {token}, "reason": {"stolen"}}); a.status != http.StatusBadRequest {
		t.Errorf("unknown reason: %d", a.status)
	}
	if got := lc.orders(); !slices.Equal(got, []string{c.uid + ":lost"}) {
		t.Errorf("orders: %v", got)
	}
	if got := e.rec.Find("card.ordered"); len(got) != 1 || got[0]["detail"].(map[string]any)["reason"] != "lost" {
		t.Errorf("audit card.ordered: %v", got)
	}

	// Renewal: the key the service asks, its refusals, and the success.
	page := b.get(selfservice.Path + "/fornyelse")
	if page.status != http.StatusOK || !strings.Contains(page.body, `id="key-number">0042<`) {
		t.Fatalf("renewal page: %d", page.status)
	}
	lc.set(func(f *fakeLC) {
		f.renewErr = &selfservice.Refusal{Code: "wrong_key", Message: "Wrong key.", AttemptsLeft: 2}
	})
	a = b.post(selfservice.Path+"/fornyelse", url.Values{"csrf_token": {token}, "serial": {"G750159724"}, "number": {"0042"}, "key": {"123456"}})
	if a.status != http.StatusBadRequest || errorCode(a.body) != "wrong_key" || !strings.Contains(a.body, `id="attempts-left">2<`) ||
		!strings.Contains(a.body, `id="key-number">0042<`) {
		t.Errorf("wrong_key: %d %q", a.status, errorCode(a.body))
	}
	if a := b.post(selfservice.Path+"/fornyelse", url.Values{"csrf_token": {token}, "serial": {"G750159724"}, "number": {"0042"}, "key": {"12a456"}}); errorCode(a.body) != "invalid_key" {
		t.Errorf("malformed key: %q", errorCode(a.body))
	}
	lc.set(func(f *fakeLC) { f.renewErr = nil })
	if a := b.post(selfservice.Path+"/fornyelse", url.Values{"csrf_token": {token}, "serial": {"G750159724"}, "number": {"0042"}, "key": {"654321"}}); a.status != http.StatusSeeOther {
		t.Fatalf("renew: %d %s", a.status, a.body)
	}
	if got := lc.renewals(); !slices.Equal(got, []string{c.uid + ":G750159724:0042:654321"}) {
		t.Errorf("renewals: %v", got)
	}
	if strings.Contains(e.rec.String(), "654321") || strings.Contains(e.rec.String(), "123456") {
		t.Error("an audit line holds a card key")
	}
	lc.set(func(f *fakeLC) { f.keyErr = &selfservice.Refusal{Code: "not_due", Message: "Not due."} })
	if a := b.get(selfservice.Path + "/fornyelse"); a.status != http.StatusConflict || errorCode(a.body) != "not_due" || strings.Contains(a.body, `name="key"`) {
		t.Errorf("not_due: %d %q", a.status, errorCode(a.body))
	}
	// A store outage behind the service is a 503 page.
	lc.set(func(f *fakeLC) { f.cardsErr = errOutage })
	if a := b.get(selfservice.Path); a.status != http.StatusServiceUnavailable || errorCode(a.body) != "unavailable" {
		t.Errorf("outage: %d %q", a.status, errorCode(a.body))
	}
}

// TestNotWired: without a LifeCycle the overview says cards are not available, and ordering
// and renewal answer 503 not_available.
func TestNotWired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c := e.citizen(cprA, "Karen Jensen")
	b := e.browser()
	page := b.login(c)
	if !strings.Contains(page, `id="cards-unavailable"`) {
		t.Error("overview without a LifeCycle")
	}
	token := csrf(t, page)
	for _, a := range []answer{
		b.post(selfservice.Path+"/kort", url.Values{"csrf_token": {token}, "reason": {"extra"}}),
		b.get(selfservice.Path + "/fornyelse"),
		b.get(selfservice.Path + "/kort/mistet"),
	} {
		if a.status != http.StatusServiceUnavailable || errorCode(a.body) != "not_available" {
			t.Errorf("%d %q, want 503 not_available", a.status, errorCode(a.body))
		}
	}
}

// TestLogout: "log off" ends the self-service and the SSO session; a copy of the self-service
// cookie kept from before is no session (its SSO session is gone), and the next login asks
// for the password.
func TestLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &fakeLC{})
	c := e.citizen(cprA, "Karen Jensen")
	b := e.browser()
	token := csrf(t, b.login(c))
	ss := b.cookie("nemidp_selvbetjening")
	if a := b.post(selfservice.Path+"/log-af", url.Values{}); a.status != http.StatusForbidden {
		t.Fatalf("log off without the token: %d", a.status)
	}
	a := b.post(selfservice.Path+"/log-af", url.Values{"csrf_token": {token}})
	if a.status != http.StatusOK || b.cookie("nemidp_selvbetjening") != "" || b.cookie("nemidp_sso") != "" {
		t.Fatalf("log off: %d, cookies left", a.status)
	}
	b.setCookie("nemidp_selvbetjening", ss)
	a = b.get(selfservice.Path)
	if a.status != http.StatusSeeOther || !strings.HasPrefix(a.location, "/login/") {
		t.Fatalf("the old cookie after log off: %d %q", a.status, a.location)
	}
	if v := b.view(a.location); v["step"] != "password" {
		t.Fatalf("the login after log off: %v", v["step"])
	}
}

// TestCallbackRace: the callback of one done login, asked many times at once in its browser,
// makes exactly one self-service session (one Set-Cookie, one audit line).
func TestCallbackRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, &fakeLC{})
	c := e.citizen(cprA, "Karen Jensen")
	b := e.browser()
	a := b.get(selfservice.Path)
	v := b.view(a.location)
	_, v = b.json("POST", a.location+"/password", v["csrf_token"].(string), map[string]string{"username": c.uid, "password": c.pw})
	_, v = b.json("POST", a.location+"/codecard", v["csrf_token"].(string), map[string]string{"key": c.keys[v["key_number"].(string)]})
	back, _ := v["redirect_to"].(string)
	if back == "" {
		t.Fatalf("login: %v", v)
	}
	const n = 12
	start := make(chan struct{})
	results := make(chan answer, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", e.base+back, nil)
			<-start
			resp, err := b.hc.Do(req)
			if err != nil {
				results <- answer{}
				return
			}
			resp.Body.Close()
			results <- answer{status: resp.StatusCode, header: resp.Header}
		})
	}
	close(start)
	wg.Wait()
	close(results)
	sessions := 0
	for a := range results {
		if a.status != http.StatusSeeOther {
			t.Errorf("callback: %d", a.status)
		}
		for _, sc := range a.header.Values("Set-Cookie") {
			if strings.HasPrefix(sc, "nemidp_selvbetjening=") && !strings.HasPrefix(sc, "nemidp_selvbetjening=;") {
				sessions++
			}
		}
	}
	if sessions != 1 {
		t.Fatalf("%d self-service sessions from one login, want 1", sessions)
	}
	if got := e.rec.Find("selfservice.login"); len(got) != 1 {
		t.Fatalf("%d selfservice.login lines, want 1", len(got))
	}
}

// TestOIDCCallbackRefusesSelfServiceFlow: a done self-service flow taken to the OIDC callback
// in its own browser is refused (400), never finished into an OIDC answer, and self-service's
// own callback still works after it.
func TestOIDCCallbackRefusesSelfServiceFlow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c := e.citizen(cprA, "Ida Holm")
	b := e.browser()
	a := b.get(selfservice.Path)
	v := b.view(a.location)
	st, nv := b.json("POST", a.location+"/password", v["csrf_token"].(string), map[string]string{"username": c.uid, "password": c.pw})
	if st != http.StatusOK {
		t.Fatalf("password: %d %v", st, nv)
	}
	if nv["step"] == "codecard" {
		st, nv = b.json("POST", a.location+"/codecard", nv["csrf_token"].(string), map[string]string{"key": c.keys[nv["key_number"].(string)]})
	}
	back, _ := nv["redirect_to"].(string)
	if st != http.StatusOK || nv["step"] != "done" {
		t.Fatalf("login: %d %v", st, nv)
	}
	id := strings.TrimPrefix(back, selfservice.Path+"/callback?id=")
	if got := b.get("/authorize/callback?id=" + id); got.status != http.StatusBadRequest || !strings.Contains(got.body, `data-code="wrong_front_end"`) {
		t.Fatalf("OIDC callback with a self-service flow: %d %q %s, want the 400 wrong_front_end page", got.status, got.location, got.body)
	}
	if got := b.get(back); got.status != http.StatusSeeOther || got.location != selfservice.Path {
		t.Fatalf("self-service callback after it: %d %q", got.status, got.location)
	}
}

// TestLoginPageNamesSelfService: the login page a self-service visit starts says whom the
// citizen logs in to, though no client is registered under that name.
func TestLoginPageNamesSelfService(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	b := e.browser()
	a := b.get(selfservice.Path)
	if a.status != http.StatusSeeOther {
		t.Fatalf("GET %s: %d", selfservice.Path, a.status)
	}
	page := b.get(a.location)
	if page.status != http.StatusOK || !strings.Contains(page.body, "<strong>NemID Selvbetjening</strong>") {
		t.Fatalf("login page %d does not name self-service:\n%.800s", page.status, page.body)
	}
}
