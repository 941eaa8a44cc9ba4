package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
)

const appPassword = "Karen2026nemid"

// appCitizen is a citizen with a code card and, unless made without, an active key-app device.
type appCitizen struct {
	uid, device string
	res         *issuance.Result
}

func (f *fixture) citizen(t *testing.T, withApp bool) appCitizen {
	t.Helper()
	ctx := context.Background()
	res, err := f.issuer.IssueWithPassword(ctx, issuance.Request{CPR: storetest.NewCPR(), Name: "Karen Jensen"}, appPassword)
	if err != nil {
		t.Fatal(err)
	}
	c := appCitizen{uid: res.UserID, res: res}
	if withApp {
		c.device = store.NewDeviceID(res.UserID)
		d := store.Device{ID: c.device, Name: "phone", PublicKey: json.RawMessage(`{}`), CreatedAt: time.Now()}
		if err := f.st.AddDevice(ctx, res.UserID, d, 3); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func jsonPost(csrf string) map[string]string {
	return map[string]string{"Accept": "application/json", "X-CSRF-Token": csrf}
}

// login opens a login for c in a new browser and answers its password: with the app, the
// flow waits at its keyapp step.
func (f *fixture) login(t *testing.T, c appCitizen) (*http.Client, string, View) {
	t.Helper()
	id := f.flow(t)
	b := browser()
	code, v, raw := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept)
	if code != 200 || v.CSRFToken == "" {
		t.Fatalf("first view: %d %s", code, raw)
	}
	body := `{"username":"` + c.uid + `","password":"` + appPassword + `"}`
	code, v, raw = do(t, b, "POST", f.srv.URL+"/login/"+id+"/password", "application/json", body, jsonPost(v.CSRFToken))
	if code != 200 {
		t.Fatalf("password: %d %s", code, raw)
	}
	return b, id, v
}

// poll is the browser's look at the key-app request (query: "?wait=N" or "").
func (f *fixture) poll(t *testing.T, b *http.Client, id, query, csrf string) (int, View, string) {
	t.Helper()
	return do(t, b, "POST", f.srv.URL+"/login/"+id+"/keyapp"+query, "application/json", `{}`, jsonPost(csrf))
}

func (f *fixture) method(t *testing.T, b *http.Client, id, method, csrf string) (int, View, string) {
	t.Helper()
	return do(t, b, "POST", f.srv.URL+"/login/"+id+"/method", "application/json", `{"method":"`+method+`"}`, jsonPost(csrf))
}

func (f *fixture) approval(t *testing.T, id string) *flows.PendingApproval {
	t.Helper()
	fl, err := f.engine.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if fl.Approval == nil {
		t.Fatalf("flow %s at %s has no key-app request", id, fl.Step)
	}
	return fl.Approval
}

// decide is the key-app API's part: the device's decision, judged once in Redis, then applied
// to the login (which wakes its poll). code "" chooses the browser's binding code.
func (f *fixture) decide(t *testing.T, c appCitizen, id, decision, code string) {
	t.Helper()
	ctx := context.Background()
	a := f.approval(t, id)
	if code == "" {
		code = a.Code
	}
	outcome, state, flowID, err := f.st.Decide(ctx, c.uid, a.ID, decision, code, c.device, f.engine.Time())
	if err != nil || flowID != id || (outcome != store.DecideOK && outcome != store.DecideMismatch) {
		t.Fatalf("decide %s: %s %s %s %v", decision, outcome, state, flowID, err)
	}
	if err := f.engine.ApplyDecision(ctx, id, a.ID, state); err != nil {
		t.Fatal(err)
	}
}

// steps reads the step metric of the fixture's handler.
func steps(t *testing.T, f *fixture, step, outcome string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(f.h.Metrics.Steps.WithLabelValues(step, outcome))
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("step metric: %v", err)
	}
	return mfs[0].GetMetric()[0].GetCounter().GetValue()
}

func errCode(v View) string {
	if v.Error == nil {
		return ""
	}
	return v.Error.Code
}

func ssoCookie(f *fixture, b *http.Client) string {
	u, _ := url.Parse(f.srv.URL)
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	return ""
}

// TestKeyAppView: a citizen with the app is asked the key app after the password; the view
// carries the binding code, when its request runs out, and the methods to switch to — the
// key app only for citizens who have it.
func TestKeyAppView(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	withApp, withoutApp := f.citizen(t, true), f.citizen(t, false)
	tests := []struct {
		name    string
		c       appCitizen
		step    flows.Step
		methods []string
	}{
		{"with the app", withApp, flows.StepKeyApp, []string{"keyapp", "codecard"}},
		{"without the app", withoutApp, flows.StepCodeCard, []string{"codecard"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, id, v := f.login(t, tc.c)
			if v.Step != tc.step || !slices.Equal(v.Methods, tc.methods) || v.Error != nil || v.CSRFToken == "" {
				t.Fatalf("after the password: %+v", v)
			}
			code, again, raw := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept)
			if code != 200 || again.Step != tc.step || !slices.Equal(again.Methods, tc.methods) {
				t.Fatalf("GET: %d %s", code, raw)
			}
			if tc.step != flows.StepKeyApp {
				if v.BindingCode != "" || v.KeyAppExpiresAt != nil || v.KeyNumber == "" {
					t.Fatalf("codecard view: %+v", v)
				}
				return
			}
			a := f.approval(t, id)
			if !regexp.MustCompile(`^\d\d$`).MatchString(v.BindingCode) || v.BindingCode != a.Code || again.BindingCode != a.Code {
				t.Fatalf("binding code %q (GET %q), the request's %q", v.BindingCode, again.BindingCode, a.Code)
			}
			if v.KeyAppExpiresAt == nil || !v.KeyAppExpiresAt.Equal(a.ExpiresAt) || !strings.Contains(raw, `"keyapp_expires_at":"`+a.ExpiresAt.UTC().Format("2006-01-02T15:04:05")) {
				t.Fatalf("keyapp_expires_at %v, the request's %v: %s", v.KeyAppExpiresAt, a.ExpiresAt, raw)
			}
		})
	}
}

// TestKeyAppPollPending: a poll of a pending request without a wait answers at once, at the
// keyapp step, without an error.
func TestKeyAppPollPending(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b, id, v := f.login(t, f.citizen(t, true))
	quick := *b
	quick.Timeout = 10 * time.Second // a poll that waited would outlast it (till its request ran out, 20 s)
	for _, query := range []string{"?wait=0", "", "?wait=-5"} {
		code, p, raw := f.poll(t, &quick, id, query, v.CSRFToken)
		if code != 200 || p.Step != flows.StepKeyApp || p.Error != nil || p.BindingCode != v.BindingCode {
			t.Fatalf("poll%s: %d %s", query, code, raw)
		}
	}
}

// TestKeyAppPollWokenByDecision: a long-poll is answered by the approval made while it waits
// (in another goroutine, as the key-app API would on another instance), before its wait ran
// out; the answer is done, with the way back and the SSO session, given once.
func TestKeyAppPollWokenByDecision(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.citizen(t, true)
	b, id, v := f.login(t, c)
	const wait = 2 * time.Second

	type answer struct {
		status int
		v      View
		err    error
	}
	answered := make(chan answer, 1)
	// The wait of the poll begins once the server has it, after this timer started: a done
	// answer before the timer fires was woken, not timed out.
	waitOver := time.NewTimer(wait)
	defer waitOver.Stop()
	go func() {
		req, _ := http.NewRequest("POST", f.srv.URL+"/login/"+id+"/keyapp?wait=2", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("X-CSRF-Token", v.CSRFToken)
		resp, err := b.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var got View
		err = json.NewDecoder(resp.Body).Decode(&got)
		answered <- answer{resp.StatusCode, got, err}
	}()
	decided := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for deadline := time.Now().Add(10 * time.Second); f.engine.Waiters.Waiting() == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				decided <- errors.New("the poll never waited for the decision")
				return
			}
		}
		// The poll watches its flow: the decision wakes it (or its next look sees it).
		fl, err := f.engine.Load(ctx, id)
		if err != nil {
			decided <- err
			return
		}
		_, state, _, err := f.st.Decide(ctx, c.uid, fl.Approval.ID, "approve", fl.Approval.Code, c.device, time.Now())
		if err == nil && state != store.ApprovalApproved {
			err = fmt.Errorf("decided %q", state)
		}
		if err == nil {
			err = f.engine.ApplyDecision(ctx, id, fl.Approval.ID, state)
		}
		decided <- err
	}()
	var got answer
	select {
	case got = <-answered:
	case <-waitOver.C:
		t.Fatalf("the poll was not woken by the decision: its wait of %v ran out first", wait)
	}
	if err := <-decided; err != nil {
		t.Fatal(err)
	}
	back := "https://rp.example/back?id=" + id
	if got.err != nil || got.status != 200 || got.v.Step != flows.StepDone || got.v.RedirectTo != back {
		t.Fatalf("woken poll: %d %+v %v", got.status, got.v, got.err)
	}
	sso := ssoCookie(f, b)
	if sso == "" {
		t.Fatal("no SSO cookie after the key-app login")
	}
	// A look again (a second tab's poll, a double click) answers done, with the same session.
	code, again, raw := f.poll(t, b, id, "", v.CSRFToken)
	if code != 200 || again.Step != flows.StepDone || again.RedirectTo != back || ssoCookie(f, b) != sso {
		t.Fatalf("second poll: %d %s (session %q, was %q)", code, raw, ssoCookie(f, b), sso)
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/login/"+id, nil)
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != back || ssoCookie(f, b) != sso {
		t.Fatalf("page of the done login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := steps(t, f, "keyapp", "ok"); n != 2 {
		t.Fatalf("keyapp ok answers counted %v, want 2", n)
	}
	// Logged out (the cookie gone), the finished login kept for the way back mints no new
	// session: it was handed out once.
	u, _ := url.Parse(f.srv.URL)
	b.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1}})
	if code, _, raw := f.poll(t, b, id, "", v.CSRFToken); code != 200 || ssoCookie(f, b) != "" {
		t.Fatalf("poll after logout: %d %s, session %q; want no new session", code, raw, ssoCookie(f, b))
	}
}

// TestKeyAppDecisions: what the browser's next look at the request answers once the app
// decided — approved: done (the SSO session too, though another instance applied it);
// denied: the login failed; a wrong binding code: the request is spent — in JSON and on the
// page.
func TestKeyAppDecisions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name     string
		decision string
		wrong    bool // the app chose another of its codes
		status   int
		step     flows.Step
		code     string
		page     []string // texts of the page a GET then shows
		notPage  []string
	}{
		{"approved", "approve", false, 200, flows.StepDone, "", nil, nil},
		{"denied", "deny", false, 403, flows.StepFailed, flows.CodeKeyAppDenied,
			[]string{"Login blev afvist i nøgleappen", "Login blev afbrudt", `href="https://rp.example/back?id=`}, []string{"keyapp.js", "/method"}},
		{"wrong code", "approve", true, 409, flows.StepKeyApp, flows.CodeKeyAppWrongCode,
			[]string{"ikke den, der står her", `value="keyapp"`, "Send en ny anmodning", `value="codecard"`, "Brug nøglekort"},
			[]string{"keyapp.js", `id="binding-code"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := f.citizen(t, true)
			b, id, v := f.login(t, c)
			code := ""
			if tc.wrong {
				a := f.approval(t, id)
				i := slices.IndexFunc(a.Codes, func(s string) bool { return s != a.Code })
				code = a.Codes[i]
			}
			f.decide(t, c, id, tc.decision, code)
			status, p, raw := f.poll(t, b, id, "?wait=0", v.CSRFToken)
			if status != tc.status || p.Step != tc.step || errCode(p) != tc.code {
				t.Fatalf("poll: %d %s, want %d %s %q", status, raw, tc.status, tc.step, tc.code)
			}
			if tc.step == flows.StepDone {
				if p.RedirectTo == "" || ssoCookie(f, b) == "" {
					t.Fatalf("approved: %s, SSO cookie %q", raw, ssoCookie(f, b))
				}
				return
			}
			if tc.step == flows.StepFailed && p.RedirectTo != "https://rp.example/back?id="+id {
				t.Fatalf("denied without the way back: %s", raw)
			}
			status, _, page := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", nil)
			if status != tc.status {
				t.Fatalf("page: %d, want %d: %s", status, tc.status, page)
			}
			for _, s := range tc.page {
				if !strings.Contains(page, s) {
					t.Errorf("page without %q: %s", s, page)
				}
			}
			for _, s := range tc.notPage {
				if strings.Contains(page, s) {
					t.Errorf("page with %q: %s", s, page)
				}
			}
			if ssoCookie(f, b) != "" {
				t.Fatal("an SSO cookie without a login")
			}
		})
	}
}

// TestKeyAppTimeout: a request that ran out is said so in the view (409 keyapp_timeout), with
// the choice of a new request or the card on the page; a new request asks the app again.
func TestKeyAppTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t) // its own clock: moved below
	b, id, v := f.login(t, f.citizen(t, true))
	old := f.approval(t, id)
	f.skew.Store(int64(30 * time.Second)) // past the 20 s of the request, within the flow's minute
	code, got, raw := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept)
	if code != 409 || got.Step != flows.StepKeyApp || errCode(got) != flows.CodeKeyAppTimeout ||
		!slices.Equal(got.Methods, []string{"keyapp", "codecard"}) {
		t.Fatalf("view: %d %s", code, raw)
	}
	code, got, raw = f.poll(t, b, id, "?wait=5", v.CSRFToken)
	if code != 409 || got.Step != flows.StepKeyApp || errCode(got) != flows.CodeKeyAppTimeout {
		t.Fatalf("poll: %d %s", code, raw)
	}
	code, _, page := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", nil)
	for _, s := range []string{"Anmodningen i nøgleappen er udløbet", "Send en ny anmodning", "Brug nøglekort", `value="keyapp"`, `value="codecard"`} {
		if code != 409 || !strings.Contains(page, s) {
			t.Fatalf("page: %d without %q: %s", code, s, page)
		}
	}
	if strings.Contains(page, "keyapp.js") {
		t.Fatal("the page of a request that ran out polls it")
	}
	code, got, raw = f.method(t, b, id, "keyapp", v.CSRFToken)
	if code != 200 || got.Step != flows.StepKeyApp || got.Error != nil || got.BindingCode == "" {
		t.Fatalf("new request: %d %s", code, raw)
	}
	if a := f.approval(t, id); a.ID == old.ID || got.BindingCode != a.Code {
		t.Fatalf("new request %s (code %s), old %s", a.ID, a.Code, old.ID)
	}
}

// TestKeyAppSwitchMethods: one login switches from the key app to the card and back (a new
// request, the one before cancelled), then logs in with the card; a page's form is answered
// with a redirect to the login's page. Wrong choices are refused.
func TestKeyAppSwitchMethods(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	c := f.citizen(t, true)
	b, id, v := f.login(t, c)
	first := f.approval(t, id)

	code, got, raw := f.method(t, b, id, "codecard", v.CSRFToken)
	if code != 200 || got.Step != flows.StepCodeCard || got.KeyNumber == "" || got.CardSerial == "" ||
		!slices.Equal(got.Methods, []string{"keyapp", "codecard"}) {
		t.Fatalf("to the card: %d %s", code, raw)
	}
	if st, err := f.st.ApprovalState(ctx, c.uid, first.ID); err != nil || st != store.ApprovalCancelled {
		t.Fatalf("the request after switching to the card: %q %v", st, err)
	}
	if code, got, raw = f.poll(t, b, id, "?wait=3", v.CSRFToken); code != 200 || got.Step != flows.StepCodeCard {
		t.Fatalf("poll at the card: %d %s", code, raw)
	}

	code, got, raw = f.method(t, b, id, "keyapp", v.CSRFToken)
	second := f.approval(t, id)
	if code != 200 || got.Step != flows.StepKeyApp || got.BindingCode != second.Code || second.ID == first.ID {
		t.Fatalf("back to the app: %d %s (request %s, first %s)", code, raw, second.ID, first.ID)
	}

	// A page's form: redirected to the login's page, which shows the card and the way back.
	req, _ := http.NewRequest("POST", f.srv.URL+"/login/"+id+"/method", strings.NewReader("method=codecard&csrf_token="+url.QueryEscape(v.CSRFToken)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login/"+id {
		t.Fatalf("form: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	code, _, page := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", nil)
	num := regexp.MustCompile(`id="key-number">(\d{4})<`).FindStringSubmatch(page)
	if code != 200 || num == nil || !strings.Contains(page, "Brug nøgleappen i stedet") || !strings.Contains(page, `value="keyapp"`) {
		t.Fatalf("card page: %d %s", code, page)
	}
	var key string
	for _, k := range c.res.Card.Keys {
		if k.Number == num[1] {
			key = k.Key
		}
	}
	code, got, raw = do(t, b, "POST", f.srv.URL+"/login/"+id+"/codecard", "application/json", `{"key":"`+key+`"}`, jsonPost(v.CSRFToken))
	if code != 200 || got.Step != flows.StepDone {
		t.Fatalf("card key: %d %s", code, raw)
	}
	if n := steps(t, f, "method", "ok"); n != 3 {
		t.Fatalf("method ok answers counted %v, want 3", n)
	}

	refusals := []struct {
		name   string
		app    bool
		method string
		status int
		code   string
	}{
		{"unknown method", true, "sms", 400, flows.CodeInvalidRequest},
		{"no method", true, "", 400, flows.CodeInvalidRequest},
		{"no device", false, "keyapp", 409, flows.CodeNoDevice},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, id, v := f.login(t, f.citizen(t, tc.app))
			code, got, raw := f.method(t, b, id, tc.method, v.CSRFToken)
			if code != tc.status || errCode(got) != tc.code || got.Step != v.Step {
				t.Fatalf("got %d %s, want %d %s", code, raw, tc.status, tc.code)
			}
		})
	}
}

// TestKeyAppTooManyRequests: a login sends at most 5 key-app requests; the next is refused
// (429, no Retry-After: waiting does not help), and the page offers the card only.
func TestKeyAppTooManyRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b, id, v := f.login(t, f.citizen(t, true)) // the first request
	for i := 2; i <= 5; i++ {
		if code, _, raw := f.method(t, b, id, "keyapp", v.CSRFToken); code != 200 {
			t.Fatalf("request %d: %d %s", i, code, raw)
		}
	}
	req, _ := http.NewRequest("POST", f.srv.URL+"/login/"+id+"/method", strings.NewReader(`{"method":"keyapp"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", v.CSRFToken)
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw := readAll(t, resp)
	got := decodeView(t, resp.Header.Get("Content-Type"), raw)
	if resp.StatusCode != 429 || errCode(got) != flows.CodeTooManyRequests || got.Step != flows.StepKeyApp || resp.Header.Get("Retry-After") != "" {
		t.Fatalf("request 6: %d (Retry-After %q) %s", resp.StatusCode, resp.Header.Get("Retry-After"), raw)
	}
	code, _, page := do(t, b, "POST", f.srv.URL+"/login/"+id+"/method", "application/x-www-form-urlencoded",
		"method=keyapp&csrf_token="+url.QueryEscape(v.CSRFToken), nil)
	if code != 429 || !strings.Contains(page, "Dette login har sendt så mange anmodninger") || strings.Contains(page, "Send en ny anmodning") ||
		!strings.Contains(page, `value="codecard"`) {
		t.Fatalf("page: %d %s", code, page)
	}
}

// TestKeyAppPostRefusals: the poll and the method choice pass the checks of every answer —
// CSRF token, same origin, the browser the login is bound to — and a poll's wait is a whole
// number of seconds.
func TestKeyAppPostRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b, id, v := f.login(t, f.citizen(t, true))
	csrf := v.CSRFToken
	tests := []struct {
		name   string
		client *http.Client
		path   string
		ctype  string
		body   string
		hdr    map[string]string
		status int
		code   string
	}{
		{"poll: no csrf", b, "keyapp", "application/json", `{}`, jsonAccept, 403, "csrf"},
		{"poll: wrong csrf", b, "keyapp", "application/json", `{}`, jsonPost("x"), 403, "csrf"},
		{"poll: form without csrf", b, "keyapp", "application/x-www-form-urlencoded", ``, jsonAccept, 403, "csrf"},
		{"poll: cross-site", b, "keyapp", "application/json", `{}`, map[string]string{"Accept": "application/json", "X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}, 403, "csrf"},
		{"poll: foreign origin", b, "keyapp", "application/json", `{}`, map[string]string{"Accept": "application/json", "X-CSRF-Token": csrf, "Origin": "https://evil.example"}, 403, "csrf"},
		{"poll: other browser", browser(), "keyapp", "application/json", `{}`, jsonPost(csrf), 403, flows.CodeWrongBrowser},
		{"poll: text/plain", b, "keyapp", "text/plain", `{}`, jsonPost(csrf), 415, flows.CodeInvalidRequest},
		{"poll: wait not a number", b, "keyapp?wait=soon", "application/json", `{}`, jsonPost(csrf), 400, flows.CodeInvalidRequest},
		{"poll: wait not whole", b, "keyapp?wait=1.5", "application/json", `{}`, jsonPost(csrf), 400, flows.CodeInvalidRequest},
		{"poll: wait empty", b, "keyapp?wait=", "application/json", `{}`, jsonPost(csrf), 400, flows.CodeInvalidRequest},
		{"method: no csrf", b, "method", "application/json", `{"method":"codecard"}`, jsonAccept, 403, "csrf"},
		{"method: wrong csrf", b, "method", "application/json", `{"method":"codecard"}`, jsonPost("x"), 403, "csrf"},
		{"method: form without csrf", b, "method", "application/x-www-form-urlencoded", `method=codecard`, jsonAccept, 403, "csrf"},
		{"method: cross-site", b, "method", "application/json", `{"method":"codecard"}`, map[string]string{"Accept": "application/json", "X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}, 403, "csrf"},
		{"method: other browser", browser(), "method", "application/json", `{"method":"codecard"}`, jsonPost(csrf), 403, flows.CodeWrongBrowser},
		{"method: malformed json", b, "method", "application/json", `{"method":`, jsonPost(csrf), 400, flows.CodeInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, got, raw := do(t, tc.client, "POST", f.srv.URL+"/login/"+id+"/"+tc.path, tc.ctype, tc.body, tc.hdr)
			if code != tc.status || errCode(got) != tc.code {
				t.Fatalf("got %d %s, want %d %s", code, raw, tc.status, tc.code)
			}
		})
	}
	t.Cleanup(func() {
		// None of them changed the login.
		if a := f.approval(t, id); a.Code != v.BindingCode {
			t.Errorf("the request changed: %s, was %s", a.Code, v.BindingCode)
		}
	})
}

// TestPollWait: ?wait= is whole seconds, clamped to [0, flows.MaxWait]; none is 0.
func TestPollWait(t *testing.T) {
	t.Parallel()
	tests := []struct {
		query string
		want  time.Duration
		bad   bool
	}{
		{"", 0, false},
		{"wait=0", 0, false},
		{"wait=25", 25 * time.Second, false},
		{"wait=30", flows.MaxWait, false},
		{"wait=31", flows.MaxWait, false},
		{"wait=-1", 0, false},
		{"wait=99999999999999999999", flows.MaxWait, false},
		{"wait=-99999999999999999999", 0, false},
		{"wait=%2B5", 5 * time.Second, false},
		{"wait=", 0, true},
		{"wait=1.5", 0, true},
		{"wait=1e3", 0, true},
		{"wait=%205", 0, true},
		{"wait=soon", 0, true},
	}
	for _, tc := range tests {
		q, _ := url.ParseQuery(tc.query)
		got, err := pollWait(q)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("%q: %v %v, want %v (bad %v)", tc.query, got, err, tc.want, tc.bad)
		}
		if he, ok := err.(*httpError); err != nil && (!ok || he.status != 400 || he.err.Code != flows.CodeInvalidRequest) {
			t.Errorf("%q: error %v", tc.query, err)
		}
	}
}

// TestActivationFlowNotServed: a key-app activation (the key-app API's flow) does not exist
// for a browser: its page and every POST to it answer 404.
func TestActivationFlowNotServed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fl, err := f.engine.BeginActivation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path, ctype, body string }{
		{"GET", "", "", ""},
		{"POST", "/password", "application/json", `{"username":"123456789","password":"x"}`},
		{"POST", "/password", "application/x-www-form-urlencoded", `username=123456789&password=x`},
		{"POST", "/codecard", "application/json", `{"key":"123456"}`},
		{"POST", "/keyapp", "application/json", `{}`},
		{"POST", "/keyapp", "application/x-www-form-urlencoded", ``},
		{"POST", "/method", "application/json", `{"method":"keyapp"}`},
		{"POST", "/method", "application/x-www-form-urlencoded", `method=codecard`},
	} {
		for _, accept := range []bool{true, false} {
			asJSON := accept || tc.ctype == "application/json"
			if !accept && asJSON {
				continue // a JSON body is answered in JSON, whatever it accepts
			}
			name := tc.method + " " + tc.path + " " + tc.ctype
			if !asJSON {
				name += " (HTML)"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				var hdr map[string]string
				if accept {
					hdr = jsonAccept
				}
				code, got, raw := do(t, browser(), tc.method, f.srv.URL+"/login/"+fl.ID+tc.path, tc.ctype, tc.body, hdr)
				if code != 404 {
					t.Fatalf("got %d: %.300s", code, raw)
				}
				if asJSON && (errCode(got) != codeNotFound || got.Flow != "" || got.CSRFToken != "") {
					t.Fatalf("JSON: %s", raw)
				}
				if !asJSON && !strings.Contains(raw, `data-code="not_found"`) {
					t.Fatalf("HTML: %.300s", raw)
				}
			})
		}
	}
}

// TestKeyAppPage: the page of the keyapp step shows the binding code big, names the relying
// party, loads the polling script (and no inline script) and has a "Check again" form that
// works without it, and the way to the card; the card page offers the key app back. The
// script is served from /static/.
func TestKeyAppPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	b, id, v := f.login(t, f.citizen(t, true))
	code, _, page := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", nil)
	csrf := regexp.QuoteMeta(v.CSRFToken)
	for _, want := range []string{
		`<script src="/static/keyapp.js" defer></script>`,
		`id="binding-code"[^>]*>` + v.BindingCode + `<`,
		`<form method="post" action="/login/` + id + `/keyapp" id="keyapp" data-flow="` + id + `" data-csrf="` + csrf + `">\s*<input type="hidden" name="csrf_token" value="` + csrf + `">\s*<button type="submit">Tjek igen</button>`,
		`action="/login/` + id + `/method"[^<]*\s*<input type="hidden" name="csrf_token" value="` + csrf + `">\s*<input type="hidden" name="method" value="codecard">`,
		`Brug nøglekort i stedet`,
		`Åbn nøgleappen på din telefon`,
		`<strong>NemID</strong>`, // the relying party's name, as the app shows it (none here)
	} {
		if code != 200 || !regexp.MustCompile(want).MatchString(page) {
			t.Fatalf("page: %d without %s: %s", code, want, page)
		}
	}
	if n := strings.Count(page, "<script"); n != 1 || regexp.MustCompile(`\son[a-z]+=`).MatchString(page) {
		t.Fatalf("scripts: %d <script> tags, or an inline handler: %s", n, page)
	}

	// Without JavaScript: "Check again" posts the form and gets the page again.
	code, _, again := do(t, b, "POST", f.srv.URL+"/login/"+id+"/keyapp", "application/x-www-form-urlencoded", "csrf_token="+url.QueryEscape(v.CSRFToken), nil)
	if code != 200 || !strings.Contains(again, `id="binding-code"`) || !strings.Contains(again, "Tjek igen") {
		t.Fatalf("check again: %d %s", code, again)
	}
	resp, err := b.Get(f.srv.URL + "/static/keyapp.js")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	js := readAll(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") ||
		!strings.Contains(js, "X-CSRF-Token") || !strings.Contains(js, "wait=25") {
		t.Fatalf("script: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	// The card pages: the way to the key app for a citizen who has it, no script on either.
	if code, _, raw := f.method(t, b, id, "codecard", v.CSRFToken); code != 200 {
		t.Fatalf("to the card: %d %s", code, raw)
	}
	_, _, card := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", nil)
	b2, id2, _ := f.login(t, f.citizen(t, false))
	_, _, plain := do(t, b2, "GET", f.srv.URL+"/login/"+id2, "", "", nil)
	if !strings.Contains(card, "Brug nøgleappen i stedet") || strings.Contains(card, "<script") {
		t.Fatalf("card page of a citizen with the app: %s", card)
	}
	if !strings.Contains(plain, `id="key-number"`) || strings.Contains(plain, "Brug nøgleappen") || strings.Contains(plain, "/method") || strings.Contains(plain, "<script") {
		t.Fatalf("card page of a citizen without the app: %s", plain)
	}

	// In English.
	b3, id3, _ := f.login(t, f.citizen(t, true))
	_, _, english := do(t, b3, "GET", f.srv.URL+"/login/"+id3+"?lang=en", "", "", nil)
	for _, want := range []string{"Approve with the key app", "Open the key app on your phone", "Check again", "Use code card instead"} {
		if !strings.Contains(english, want) {
			t.Fatalf("English page without %q: %s", want, english)
		}
	}
}

// TestKeyAppNotCountedAgainstAddress: key-app answers — denied, a wrong code, run out, no
// device, too many requests, a bad method — are no failed guesses: they neither count against
// the client address nor are throttled, while wrong passwords from it are.
func TestKeyAppNotCountedAgainstAddress(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, fixtureConfig{throttle: 2})
	// A wrong code, then more requests than a login may send.
	c := f.citizen(t, true)
	b, id, v := f.login(t, c)
	a := f.approval(t, id)
	f.decide(t, c, id, "approve", a.Codes[slices.IndexFunc(a.Codes, func(s string) bool { return s != a.Code })])
	for range 3 {
		if code, got, raw := f.poll(t, b, id, "", v.CSRFToken); code != 409 || errCode(got) != flows.CodeKeyAppWrongCode {
			t.Fatalf("wrong code: %d %s", code, raw)
		}
	}
	for range 6 {
		f.method(t, b, id, "keyapp", v.CSRFToken)
	}
	if code, got, raw := f.method(t, b, id, "keyapp", v.CSRFToken); code != 429 || errCode(got) != flows.CodeTooManyRequests {
		t.Fatalf("too many requests: %d %s", code, raw)
	}
	f.method(t, b, id, "sms", v.CSRFToken)
	// Denied, and polled after.
	b, id, v = f.login(t, c)
	f.decide(t, c, id, "deny", "")
	for range 3 {
		if code, got, raw := f.poll(t, b, id, "", v.CSRFToken); code != 403 || errCode(got) != flows.CodeKeyAppDenied {
			t.Fatalf("denied: %d %s", code, raw)
		}
	}
	// No device.
	b, id, v = f.login(t, f.citizen(t, false))
	for range 3 {
		if code, got, raw := f.method(t, b, id, "keyapp", v.CSRFToken); code != 409 || errCode(got) != flows.CodeNoDevice {
			t.Fatalf("no device: %d %s", code, raw)
		}
	}
	if n := steps(t, f, "keyapp", flows.CodeKeyAppDenied); n != 3 {
		t.Fatalf("keyapp_denied polls counted %v, want 3", n)
	}
	if n := steps(t, f, "method", flows.CodeNoDevice); n != 3 {
		t.Fatalf("no_device choices counted %v, want 3", n)
	}
	// The address has its whole budget: two wrong passwords are judged, then it is throttled.
	id = f.flow(t)
	b = browser()
	_, v, _ = do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept)
	var codes []int
	for range 4 {
		code, _, _ := do(t, b, "POST", f.srv.URL+"/login/"+id+"/password", "application/json",
			`{"username":"`+c.uid+`","password":"wrong1234x"}`, jsonPost(v.CSRFToken))
		codes = append(codes, code)
	}
	if !slices.Equal(codes[:2], []int{401, 401}) || !slices.Contains(codes[2:], 429) {
		t.Fatalf("wrong passwords answered %v, want 401 401 then 429", codes)
	}
}
