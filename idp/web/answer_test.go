package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store/storetest"
)

// The login POST checks the browser cookie and the CSRF token before anything is loaded, and
// lets the answer load the flow itself (flows.Engine.Answer, with the handler's guard). These
// tests attack the refusals of that path: their order and what they leave counted.

// browserCookieOf is the value of the browser cookie b holds ("" none).
func (f *fixture) browserCookieOf(b *http.Client) string {
	u, _ := url.Parse(f.srv.URL)
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == browserCookie {
			return c.Value
		}
	}
	return ""
}

// tokenFor is the CSRF token the handler expects for flow id from browser b (its cookie).
func (f *fixture) tokenFor(b *http.Client, id string) string {
	return f.h.csrfToken(id, digest(f.browserCookieOf(b)))
}

// stepsCounted sums the login step answers the metrics counted, whatever their outcome.
func (f *fixture) stepsCounted(t *testing.T) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() { f.h.Metrics.Steps.Collect(ch); close(ch) }()
	sum := 0.0
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		sum += d.GetCounter().GetValue()
	}
	return sum
}

// inFlight counts the password attempts reserved on uid's record and not settled.
func (f *fixture) inFlight(t *testing.T, uid string) int64 {
	t.Helper()
	n, err := f.st.Redis().ZCard(context.Background(), storetest.CitizenKey(f.prefix, uid)+":att").Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// keyOf is the key printed beside number on the card res was issued.
func keyOf(res *issuance.Result, number string) string {
	for _, k := range res.Card.Keys {
		if k.Number == number {
			return k.Key
		}
	}
	return ""
}

// TestPostRefusalsInTheOldOrder: a login POST without the browser cookie, from another
// browser, or with a wrong CSRF token is answered as before the answer loaded its own flow:
// an unknown flow first (410 flow_expired), then the browser (403 wrong_browser), then the
// token (403 csrf); an activation flow is no page (404). This holds whether the token is
// checked before the load (a wrong token) or the guard refuses the flow the answer loaded (a
// token right for the browser that sends it, of a flow bound to another). None of them counts
// anything: not the flow's wrong answers, not the citizen's attempts in flight, not the
// address's failures (a limit of one would throttle the next answer), not the step metrics;
// no key is used. The right browser's answers then go through at once.
func TestPostRefusalsInTheOldOrder(t *testing.T) {
	t.Parallel()
	f := newFixtureWith(t, fixtureConfig{throttle: 1})
	ctx := context.Background()
	res, err := f.issuer.IssueWithPassword(ctx, issuance.Request{CPR: storetest.NewCPR(), Name: "Karen Jensen"}, "Karen2026nemid")
	if err != nil {
		t.Fatal(err)
	}
	a, b, none := browser(), browser(), browser()
	open := func(c *http.Client) (string, View) {
		t.Helper()
		id := f.flow(t)
		code, v, raw := do(t, c, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept)
		if code != http.StatusOK || v.CSRFToken == "" {
			t.Fatalf("first view: %d %s", code, raw)
		}
		return id, v
	}
	mine, _ := open(a)   // bound to a, at its password step
	theirs, _ := open(b) // bound to b
	atCard, v := open(a) // bound to a, at its code card
	code, v, raw := do(t, a, "POST", f.srv.URL+"/login/"+atCard+"/password", "application/json",
		`{"username":"`+res.UserID+`","password":"Karen2026nemid"}`, jsonPost(v.CSRFToken))
	if code != http.StatusOK || v.Step != flows.StepCodeCard {
		t.Fatalf("password: %d %s", code, raw)
	}
	number := v.KeyNumber
	act, err := f.engine.BeginActivation(ctx) // the key-app API's: no page
	if err != nil {
		t.Fatal(err)
	}
	unknown := flows.NewID()
	counted := f.stepsCounted(t)

	pw := `{"username":"` + res.UserID + `","password":"Karen2026nemid"}`
	key := `{"key":"` + keyOf(res, number) + `"}`
	const wrongToken = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	for _, tc := range []struct {
		name   string
		client *http.Client
		flow   string
		step   string
		token  string // "" none
		form   bool   // an HTML form (csrf_token field) instead of JSON
		status int
		code   string
	}{
		{"unknown flow, no cookie", none, unknown, "password", "", false, http.StatusGone, flows.CodeFlowExpired},
		{"unknown flow, wrong token", b, unknown, "password", wrongToken, false, http.StatusGone, flows.CodeFlowExpired},
		{"unknown flow, the browser's token", b, unknown, "password", f.tokenFor(b, unknown), false, http.StatusGone, flows.CodeFlowExpired},
		{"unknown flow, the browser's token, code card", b, unknown, "codecard", f.tokenFor(b, unknown), false, http.StatusGone, flows.CodeFlowExpired},
		{"no cookie, the flow's token", none, mine, "password", f.tokenFor(a, mine), false, http.StatusForbidden, flows.CodeWrongBrowser},
		{"no cookie, no token", none, mine, "password", "", false, http.StatusForbidden, flows.CodeWrongBrowser},
		{"other browser, wrong token", b, mine, "password", wrongToken, false, http.StatusForbidden, flows.CodeWrongBrowser},
		{"other browser, no token", b, mine, "password", "", false, http.StatusForbidden, flows.CodeWrongBrowser},
		{"other browser, the owner's token", b, mine, "password", f.tokenFor(a, mine), false, http.StatusForbidden, flows.CodeWrongBrowser},
		{"other browser, its own token for the flow", b, mine, "password", f.tokenFor(b, mine), false, http.StatusForbidden, flows.CodeWrongBrowser},
		{"other browser, its own token, code card", b, atCard, "codecard", f.tokenFor(b, atCard), false, http.StatusForbidden, flows.CodeWrongBrowser},
		{"other browser, its own token, form", b, mine, "password", f.tokenFor(b, mine), true, http.StatusForbidden, flows.CodeWrongBrowser},
		{"owner, wrong token", a, mine, "password", wrongToken, false, http.StatusForbidden, "csrf"},
		{"owner, no token", a, mine, "password", "", false, http.StatusForbidden, "csrf"},
		{"owner, another flow's token", a, mine, "password", f.tokenFor(a, atCard), false, http.StatusForbidden, "csrf"},
		{"owner, another browser's token", a, mine, "password", f.tokenFor(b, theirs), false, http.StatusForbidden, "csrf"},
		{"owner, wrong token, code card", a, atCard, "codecard", wrongToken, false, http.StatusForbidden, "csrf"},
		{"owner, no token, form", a, mine, "password", "", true, http.StatusForbidden, "csrf"},
		{"activation flow, wrong token", b, act.ID, "password", wrongToken, false, http.StatusNotFound, codeNotFound},
		{"activation flow, the browser's token", b, act.ID, "password", f.tokenFor(b, act.ID), false, http.StatusNotFound, codeNotFound},
		{"activation flow, no cookie", none, act.ID, "password", "", false, http.StatusNotFound, codeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, ctype, hdr := pw, "application/json", map[string]string{"Accept": "application/json"}
			if tc.step == "codecard" {
				body = key
			}
			if tc.token != "" {
				hdr["X-CSRF-Token"] = tc.token
			}
			if tc.form {
				form := url.Values{"username": {res.UserID}, "password": {"Karen2026nemid"}}
				if tc.token != "" {
					form.Set("csrf_token", tc.token)
				}
				body, ctype, hdr = form.Encode(), "application/x-www-form-urlencoded", nil
			}
			code, v, raw := do(t, tc.client, "POST", f.srv.URL+"/login/"+tc.flow+"/"+tc.step, ctype, body, hdr)
			if code != tc.status {
				t.Fatalf("got %d %.300s, want %d %s", code, raw, tc.status, tc.code)
			}
			if !tc.form && (v.Error == nil || v.Error.Code != tc.code) {
				t.Fatalf("got %d %.300s, want error %s", code, raw, tc.code)
			}
			if tc.form && !strings.Contains(raw, `data-code="`+tc.code+`"`) {
				t.Fatalf("HTML answer %.300s, want data-code %s", raw, tc.code)
			}
		})
	}

	for _, id := range []string{mine, atCard, act.ID} {
		fl, err := f.engine.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if fl.Failures != 0 {
			t.Errorf("refused POSTs counted %d wrong answers against flow %s", fl.Failures, id)
		}
	}
	if n := f.inFlight(t, res.UserID); n != 0 {
		t.Errorf("refused POSTs left %d attempts in flight", n)
	}
	if c, err := f.st.Citizen(ctx, res.UserID); err != nil || c.Failures != 0 {
		t.Errorf("refused POSTs counted against the citizen: %+v %v", c, err)
	}
	if unused, err := f.st.KeyUnused(ctx, res.UserID, res.Card.Serial, number); err != nil || !unused {
		t.Errorf("a refused POST used key %s (%v)", number, err)
	}
	if got := f.stepsCounted(t); got != counted {
		t.Errorf("refused POSTs counted %v step answers in the metrics", got-counted)
	}
	// The owner's answers go through at once: nothing throttled, nothing "busy".
	code, v, raw = do(t, a, "POST", f.srv.URL+"/login/"+mine+"/password", "application/json", pw, jsonPost(f.tokenFor(a, mine)))
	if code != http.StatusOK || v.Step != flows.StepCodeCard {
		t.Fatalf("the owner's password after the refusals: %d %s", code, raw)
	}
	// A failed answer does count (and, at a limit of one, throttles the next): what the
	// refusals would have done had they counted.
	wrong := `{"key":"` + wrongKeyOf(keyOf(res, v.KeyNumber)) + `"}`
	if code, v, raw := do(t, a, "POST", f.srv.URL+"/login/"+mine+"/codecard", "application/json", wrong, jsonPost(f.tokenFor(a, mine))); code != http.StatusUnauthorized || v.Error == nil || v.Error.Code != flows.CodeWrongKey {
		t.Fatalf("wrong key: %d %s", code, raw)
	}
	if code, _, raw := do(t, a, "POST", f.srv.URL+"/login/"+atCard+"/codecard", "application/json", key, jsonPost(f.tokenFor(a, atCard))); code != http.StatusTooManyRequests {
		t.Fatalf("after a counted failure at a limit of one: %d %s, want 429", code, raw)
	}
}

// wrongKeyOf is a well-formed key other than k.
func wrongKeyOf(k string) string {
	b := []byte(k)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

// ssoSet is the SSO cookie a response set ("" none) and whether it set one.
func ssoSet(resp *http.Response) (*http.Cookie, bool) {
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			return c, true
		}
	}
	return nil, false
}

// post sends a JSON answer from b and returns the response (body read) and its view.
func (f *fixture) post(t *testing.T, b *http.Client, id, step, body string) (*http.Response, View, string) {
	t.Helper()
	req, err := http.NewRequest("POST", f.srv.URL+"/login/"+id+"/"+step, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-CSRF-Token", f.tokenFor(b, id))
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw := readAll(t, resp)
	return resp, decodeView(t, resp.Header.Get("Content-Type"), raw), raw
}

// TestSSOCookieSetByCompletingAnswer: the SSO cookie is set by the POST whose answer
// completed the login (the card key, or the new password after an activation) and by no
// other answer; it names a stored session of the citizen, kept as long as the session, and
// the login's sid. A later login in the same browser is completed from it without a new one.
func TestSSOCookieSetByCompletingAnswer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		activation bool
	}{
		{"code card", false},
		{"activation: new password", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := issuance.Request{CPR: storetest.NewCPR(), Name: "Karen Jensen"}
			var res *issuance.Result
			var err error
			pwd := "Karen2026nemid"
			if tc.activation {
				res, err = f.issuer.Issue(ctx, req)
				pwd = res.ActivationPassword
			} else {
				res, err = f.issuer.IssueWithPassword(ctx, req, pwd)
			}
			if err != nil {
				t.Fatal(err)
			}
			b := browser()
			id := f.flow(t)
			if code, _, raw := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept); code != http.StatusOK {
				t.Fatalf("first view: %d %s", code, raw)
			}
			type answer struct {
				step, body string
				want       flows.Step // the step after it
				completes  bool
			}
			resp, v, raw := f.post(t, b, id, "password", `{"username":"`+res.UserID+`","password":"`+pwd+`"}`)
			answers := []struct {
				resp *http.Response
				v    View
				raw  string
				a    answer
			}{{resp, v, raw, answer{"password", "", flows.StepCodeCard, false}}}
			next := func(a answer) {
				t.Helper()
				resp, v, raw := f.post(t, b, id, a.step, a.body)
				answers = append(answers, struct {
					resp *http.Response
					v    View
					raw  string
					a    answer
				}{resp, v, raw, a})
			}
			k := keyOf(res, v.KeyNumber)
			next(answer{"codecard", `{"key":"` + wrongKeyOf(k) + `"}`, flows.StepCodeCard, false})
			if tc.activation {
				next(answer{"codecard", `{"key":"` + k + `"}`, flows.StepNewPassword, false})
				next(answer{"new-password", `{"new_password":"1234"}`, flows.StepNewPassword, false})
				next(answer{"new-password", `{"new_password":"Karen2026nemidNy"}`, flows.StepDone, true})
			} else {
				next(answer{"codecard", `{"key":"` + k + `"}`, flows.StepDone, true})
			}
			next(answer{"codecard", `{"key":"` + k + `"}`, flows.StepDone, false}) // a late duplicate
			var cookie string
			for i, ans := range answers {
				c, set := ssoSet(ans.resp)
				if !ans.a.completes {
					if set {
						t.Fatalf("answer %d (%s, %d) set the SSO cookie", i, ans.a.step, ans.resp.StatusCode)
					}
					continue
				}
				if ans.resp.StatusCode != http.StatusOK || ans.v.Step != ans.a.want {
					t.Fatalf("completing answer %d: %d %s", i, ans.resp.StatusCode, ans.raw)
				}
				if !set || c.Value == "" || c.MaxAge != int(f.engine.SessionTTL.Seconds()) || !c.HttpOnly {
					t.Fatalf("completing answer %d: SSO cookie %+v", i, c)
				}
				cookie = c.Value
			}
			s, err := f.engine.Session(ctx, cookie)
			if err != nil || s == nil || s.CitizenID != res.UserID {
				t.Fatalf("the SSO cookie names session %+v (%v)", s, err)
			}
			if fl, err := f.engine.Load(ctx, id); err != nil || fl.Result == nil || fl.Result.SessionID != s.SID {
				t.Fatalf("the login's result %+v (%v), session sid %s", fl, err, s.SID)
			}
			// The next login of this browser: done from the session, no new cookie.
			later := f.flow(t)
			req2, _ := http.NewRequest("GET", f.srv.URL+"/login/"+later, nil)
			req2.Header.Set("Accept", "application/json")
			resp2, err := b.Do(req2)
			if err != nil {
				t.Fatal(err)
			}
			raw2 := readAll(t, resp2)
			resp2.Body.Close()
			if v := decodeView(t, resp2.Header.Get("Content-Type"), raw2); resp2.StatusCode != http.StatusOK || v.Step != flows.StepDone {
				t.Fatalf("a later login in the same browser: %d %s", resp2.StatusCode, raw2)
			}
			if c, set := ssoSet(resp2); set {
				t.Fatalf("the login completed from the session set SSO cookie %+v", c)
			}
		})
	}
}

// TestSSOCookieWhenAnotherTabSavedTheFlow: the citizen's key is on its way while a second tab
// of the same browser chooses "use the code card" again (the flow saved, still at its card and
// key number), so the key's save conflicts and is applied again. The POST that completes the
// login must still set the SSO cookie (the next login would otherwise ask the citizen again).
func TestSSOCookieWhenAnotherTabSavedTheFlow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	res, err := f.issuer.IssueWithPassword(ctx, issuance.Request{CPR: storetest.NewCPR(), Name: "Karen Jensen"}, "Karen2026nemid")
	if err != nil {
		t.Fatal(err)
	}
	b := browser()
	id := f.flow(t)
	if code, _, raw := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept); code != http.StatusOK {
		t.Fatalf("first view: %d %s", code, raw)
	}
	_, v, raw := f.post(t, b, id, "password", `{"username":"`+res.UserID+`","password":"Karen2026nemid"}`)
	if v.Step != flows.StepCodeCard {
		t.Fatalf("password: %s", raw)
	}
	tab := &secondTab{flowKey: f.prefix + "flow:" + id, done: make(chan error, 1), run: func() error {
		// POST /login/{flow}/method {"method":"codecard"} from the same browser (no t here:
		// this runs in the server's goroutine).
		req, err := http.NewRequest("POST", f.srv.URL+"/login/"+id+"/method", strings.NewReader(`{"method":"codecard"}`))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("X-CSRF-Token", f.tokenFor(b, id))
		resp, err := b.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var w View
		if err := json.NewDecoder(resp.Body).Decode(&w); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || w.Step != flows.StepCodeCard || w.KeyNumber != v.KeyNumber {
			return fmt.Errorf("method: %d %+v, want the card's key %s", resp.StatusCode, w, v.KeyNumber)
		}
		return nil
	}}
	f.st.Redis().AddHook(tab)
	resp, w, raw := f.post(t, b, id, "codecard", `{"key":"`+keyOf(res, v.KeyNumber)+`"}`)
	select {
	case err := <-tab.done:
		if err != nil {
			t.Fatalf("second tab: %v", err)
		}
	default:
		t.Fatal("the second tab did not run")
	}
	if resp.StatusCode != http.StatusOK || w.Step != flows.StepDone {
		t.Fatalf("the key: %d %s", resp.StatusCode, raw)
	}
	if _, set := ssoSet(resp); !set {
		t.Fatal("the POST that completed the login set no SSO cookie")
	}
}

// secondTab runs run (another request of the browser) once, just before the key's use
// reaches Redis: the first script naming the flow's key without its data after it is armed
// (the answer's reservation of a flow attempt, after the answer loaded the flow).
type secondTab struct {
	flowKey string
	run     func() error
	fired   atomic.Bool
	done    chan error // run's answer
}

func (s *secondTab) DialHook(next redis.DialHook) redis.DialHook { return next }
func (s *secondTab) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		s.race([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}
func (s *secondTab) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		s.race(cmds)
		return next(ctx, cmds)
	}
}

func (s *secondTab) race(cmds []redis.Cmder) {
	for _, cmd := range cmds {
		if s.reserves(cmd) && s.fired.CompareAndSwap(false, true) {
			s.done <- s.run()
			return
		}
	}
}

func (s *secondTab) reserves(cmd redis.Cmder) bool {
	if name := cmd.Name(); name != "evalsha" && name != "eval" {
		return false
	}
	key := false
	for _, a := range cmd.Args() {
		switch v := a.(type) {
		case string:
			key = key || v == s.flowKey
		case []byte:
			return false
		}
	}
	return key
}
