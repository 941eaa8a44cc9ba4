package integrationtests

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/nemidp/nemidp/idp/keyapp/deviceclient"
	"github.com/nemidp/nemidp/keys/device"
)

// decide sends a signed decision with a fresh device JWT of d, raw, and returns the answer.
func decide(t *testing.T, p *IdP, d *deviceclient.Device, requestID, jws string) *Resp {
	t.Helper()
	return p.keyapp(t, http.MethodPost, "/keyapp/v1/requests/"+requestID, token(t, d), map[string]string{"decision": jws})
}

func wantAnswer(t *testing.T, what string, r *Resp, status int, code string) {
	t.Helper()
	if r.Status != status || (code != "" && errorCode(r) != code) {
		t.Fatalf("%s: %s, want %d %s", what, r, status, code)
	}
}

// stillPending requires the login to wait at its keyapp step for req, which d still offers.
func stillPending(t *testing.T, l *Login, d *deviceclient.Device, req deviceclient.Request) {
	t.Helper()
	if again := onlyRequest(t, d); again.ID != req.ID {
		t.Fatalf("the device offers %+v, want the pending %s", again, req.ID)
	}
	if f := l.flow(); f.Step != "keyapp" || f.Approval == nil || f.Approval.ID != req.ID {
		t.Fatalf("the login is at %s (request %+v), want keyapp waiting for %s", f.Step, f.Approval, req.ID)
	}
	l.wantPoll("keyapp", "")
}

// approveAndFinish approves req with the browser's code and ends the login back at the relying
// party with amr pwd, swk, user.
func approveAndFinish(t *testing.T, p *IdP, l *Login, d *deviceclient.Device, req deviceclient.Request) {
	t.Helper()
	wantAnswer(t, "approve", decide(t, p, d, req.ID, decision(t, d, req.ID, device.Approve, l.bindingCode())), http.StatusOK, "")
	l.wantPoll("done", "")
	l.finish()
	if tok := l.mustExchange(); !slices.Equal(tok.IDTokenClaims.AuthenticationMethodsReferences, []string{"pwd", "swk", "user"}) {
		t.Fatalf("amr %v", tok.IDTokenClaims.AuthenticationMethodsReferences)
	}
}

// TestKeyAppDecisionByAnotherCitizensDevice: a device decides only its own citizen's
// requests: another citizen's device, with its own good key and JWT, is 404 unknown_request;
// the request stays pending and the right device approves it.
func TestKeyAppDecisionByAnotherCitizensDevice(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	a, dA := p.appCitizen(t, bank, "Asta Ejer")
	_, dB := p.appCitizen(t, bank, "Bjarne Fremmed")
	l := p.newBrowser(t).authorize(t, bank)
	l.passwordToApp(a)
	req := onlyRequest(t, dA)
	if reqs := pending(t, dB); len(reqs) != 0 {
		t.Fatalf("another citizen's device sees %+v", reqs)
	}
	before := p.metrics(t)[refused("unknown_request")]
	for _, verdict := range []string{device.Approve, device.Deny} {
		r := decide(t, p, dB, req.ID, decision(t, dB, req.ID, verdict, l.bindingCode()))
		wantAnswer(t, "another citizen's device: "+verdict, r, http.StatusNotFound, "unknown_request")
	}
	if got := p.metrics(t)[refused("unknown_request")]; got != before+2 {
		t.Fatalf("unknown_request refusals %v → %v, want 2 more", before, got)
	}
	stillPending(t, l, dA, req)
	approveAndFinish(t, p, l, dA, req)
}

// TestKeyAppWrongBindingCode: approving with an offered code that is not the browser's is 409
// wrong_binding_code and spends the request (three guesses must not make one in three a
// certainty): the device no longer offers it, the right code is then 409 already_decided, and
// the browser's poll says keyapp_wrong_code while the login waits at its keyapp step.
func TestKeyAppWrongBindingCode(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c, d := p.appCitizen(t, bank, "Kirsten Kode")
	l := p.newBrowser(t).authorize(t, bank)
	l.passwordToApp(c)
	req := onlyRequest(t, d)
	code := l.bindingCode()
	wrong := otherCode(t, req, code)
	before := p.metrics(t)
	wantAnswer(t, "a wrong binding code", decide(t, p, d, req.ID, decision(t, d, req.ID, device.Approve, wrong)), http.StatusConflict, "wrong_binding_code")
	if reqs := pending(t, d); len(reqs) != 0 {
		t.Fatalf("the spent request is still offered: %+v", reqs)
	}
	wantAnswer(t, "the right code after a wrong one", decide(t, p, d, req.ID, decision(t, d, req.ID, device.Approve, code)), http.StatusConflict, "already_decided")
	wantAnswer(t, "deny after a wrong code", decide(t, p, d, req.ID, decision(t, d, req.ID, device.Deny, "")), http.StatusConflict, "already_decided")
	after := p.metrics(t)
	if after[refused("wrong_binding_code")] != before[refused("wrong_binding_code")]+1 || after[requests("approved")] != before[requests("approved")] {
		t.Fatalf("metrics: wrong_binding_code %v → %v, approved %v → %v", before[refused("wrong_binding_code")],
			after[refused("wrong_binding_code")], before[requests("approved")], after[requests("approved")])
	}
	l.wantPoll("keyapp", "keyapp_wrong_code")
	if f := l.flow(); f.Step != "keyapp" || slices.Contains(f.Methods, "swk") {
		t.Fatalf("after a wrong code the login is at %s with %v", f.Step, f.Methods)
	}
	// The wrong code counts toward the lockout like a wrong key; an approval resets it.
	if v := p.citizen(t, c.UserID); v.Failures != 1 || v.Status != "active" {
		t.Fatalf("after a wrong binding code: failures %d status %s, want 1 active", v.Failures, v.Status)
	}
	l.mustPost("method", map[string]string{"method": "keyapp"})
	next := onlyRequest(t, d)
	wantAnswer(t, "approve the new request", decide(t, p, d, next.ID, decision(t, d, next.ID, device.Approve, l.bindingCode())), http.StatusOK, "")
	if v := p.citizen(t, c.UserID); v.Failures != 0 {
		t.Fatalf("after an approval: failures %d, want 0", v.Failures)
	}
}

// TestKeyAppWrongCodesLock: someone holding the password who keeps pushing until the citizen
// picks a code at random gets max_failures wrong codes, then the NemID is locked.
func TestKeyAppWrongCodesLock(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c, d := p.appCitizen(t, bank, "Trætte Træls")
	for i := range 5 {
		l := p.newBrowser(t).authorize(t, bank)
		l.passwordToApp(c) // the right password: the lockout is not reached before the codes
		req := onlyRequest(t, d)
		wantAnswer(t, fmt.Sprintf("wrong code %d", i+1), decide(t, p, d, req.ID, decision(t, d, req.ID, device.Approve, otherCode(t, req, l.bindingCode()))), http.StatusConflict, "wrong_binding_code")
	}
	if v := p.citizen(t, c.UserID); v.Status != "blocked" || v.BlockReason != "failures" {
		t.Fatalf("after 5 wrong codes: %s %s, want blocked for failures", v.Status, v.BlockReason)
	}
	l := p.newBrowser(t).authorize(t, bank)
	if code, v := l.password(c, c.Password); code != http.StatusForbidden || codeOf(v.Error) != "locked" {
		t.Fatalf("password after the lockout: %d %s, want 403 locked", code, v.Error)
	}
}

// TestKeyAppDecisionReplay: a decision counts once: the same JWS sent again is 409
// already_decided; a decision over one request sent for another is 400 invalid_decision and
// leaves that one pending.
func TestKeyAppDecisionReplay(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c, d := p.appCitizen(t, bank, "Rune Gentag")
	l := p.newBrowser(t).authorize(t, bank)
	l.passwordToApp(c)
	req := onlyRequest(t, d)
	jws := decision(t, d, req.ID, device.Approve, l.bindingCode())
	before := p.metrics(t)[requests("approved")]
	wantAnswer(t, "approve", decide(t, p, d, req.ID, jws), http.StatusOK, "")
	wantAnswer(t, "the same decision again", decide(t, p, d, req.ID, jws), http.StatusConflict, "already_decided")
	if got := p.metrics(t)[requests("approved")]; got != before+1 {
		t.Fatalf("approved %v → %v, want one more", before, got)
	}
	l.wantPoll("done", "")

	l2 := p.newBrowser(t).authorize(t, bank)
	l2.passwordToApp(c)
	req2 := onlyRequest(t, d)
	wantAnswer(t, "a decision over another request", decide(t, p, d, req2.ID, jws), http.StatusBadRequest, "invalid_decision")
	stillPending(t, l2, d, req2)
}

// TestKeyAppInvalidDecision: a decision that is not a fresh JWS by the calling device's key
// over this request, approving or denying, is 400 invalid_decision (a body that is not the
// JSON asked for, 400 invalid_request): nothing is decided, and the request is approved
// afterwards.
func TestKeyAppInvalidDecision(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c, d := p.appCitizen(t, bank, "Ivan Ugyldig")
	d2 := p.activateDevice(t, c, "Ivans tablet")
	l := p.newBrowser(t).authorize(t, bank)
	l.passwordToApp(c)
	req := onlyRequest(t, d)
	code := l.bindingCode()
	now := time.Now()
	claims := func(change func(*device.Decision)) device.Decision {
		dec := device.Decision{RequestID: req.ID, Decision: device.Approve, BindingCode: code,
			RegisteredClaims: jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(now), ID: randHex(16)}}
		change(&dec)
		return dec
	}
	stranger, _ := device.GenerateKey()
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(func(*device.Decision) {})).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	before := p.metrics(t)[refused("invalid_decision")]
	n := 0
	for _, tc := range []struct {
		name string
		jws  string
	}{
		{"signed by another device of the citizen", decision(t, d2, req.ID, device.Approve, code)},
		{"signed by a stranger's key", signJWT(t, stranger, claims(func(*device.Decision) {}))},
		{"deny signed by another key", signJWT(t, stranger, claims(func(d *device.Decision) { d.Decision = device.Deny }))},
		{"over another request", signJWT(t, d.Key, claims(func(d *device.Decision) { d.RequestID = randHex(11) }))},
		{"neither approve nor deny", signJWT(t, d.Key, claims(func(d *device.Decision) { d.Decision = "maybe" }))},
		{"signed 3 minutes ago", signJWT(t, d.Key, claims(func(d *device.Decision) { d.IssuedAt = jwt.NewNumericDate(now.Add(-3 * time.Minute)) }))},
		{"signed in the future", signJWT(t, d.Key, claims(func(d *device.Decision) { d.IssuedAt = jwt.NewNumericDate(now.Add(5 * time.Minute)) }))},
		{"no iat", signJWT(t, d.Key, claims(func(d *device.Decision) { d.IssuedAt = nil }))},
		{"no jti", signJWT(t, d.Key, claims(func(d *device.Decision) { d.ID = "" }))},
		{"alg none", none},
		{"not a JWS", "abc"},
		{"empty", ""},
	} {
		wantAnswer(t, tc.name, decide(t, p, d, req.ID, tc.jws), http.StatusBadRequest, "invalid_decision")
		n++
	}
	if got := p.metrics(t)[refused("invalid_decision")]; got != before+float64(n) {
		t.Fatalf("invalid_decision refusals %v → %v, want %d more", before, got, n)
	}
	for _, body := range []string{`not json`, `{"decision": "x", "extra": 1}`, `[]`} {
		r := p.keyapp(t, http.MethodPost, "/keyapp/v1/requests/"+req.ID, token(t, d), body)
		wantAnswer(t, "body "+body, r, http.StatusBadRequest, "invalid_request")
	}
	stillPending(t, l, d, req)
	approveAndFinish(t, p, l, d, req)
}

// TestKeyAppDecisionAfterExpiry: a request decided after its time is 410 request_expired
// (counted once as expired), no longer offered, and the browser's poll says keyapp_timeout;
// the citizen may send a new request (POST /login/{flow}/method keyapp), which is approved.
// A request that runs out undecided is ended by the browser's poll the same way.
func TestKeyAppDecisionAfterExpiry(t *testing.T) {
	t.Parallel()
	shortTTL := func(t *testing.T) (*IdP, *RP) {
		p := startIdP(t)                                   // its own metrics
		p.Server.Flows.KeyAppTTL = 1500 * time.Millisecond // before any login of this server
		return p, p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	}

	t.Run("decided late", func(t *testing.T) {
		t.Parallel()
		p, bank := shortTTL(t)
		c, d := p.appCitizen(t, bank, "Sigurd Sen")
		l := p.newBrowser(t).authorize(t, bank)
		l.passwordToApp(c)
		req := onlyRequest(t, d)
		jws := decision(t, d, req.ID, device.Approve, l.bindingCode())
		time.Sleep(time.Until(l.flow().Approval.ExpiresAt) + 100*time.Millisecond)
		before := p.metrics(t)[requests("expired")]
		wantAnswer(t, "a decision after expiry", decide(t, p, d, req.ID, jws), http.StatusGone, "request_expired")
		wantAnswer(t, "the same decision again", decide(t, p, d, req.ID, jws), http.StatusConflict, "already_decided")
		if reqs := pending(t, d); len(reqs) != 0 {
			t.Fatalf("an expired request is offered: %+v", reqs)
		}
		l.wantPoll("keyapp", "keyapp_timeout")
		if got := p.metrics(t)[requests("expired")]; got != before+1 {
			t.Fatalf("expired %v → %v, want one more", before, got)
		}
		// A new request.
		if status, v := l.method("keyapp"); v.Step != "keyapp" || v.Error != nil || status != http.StatusOK {
			t.Fatalf("a new request: %d %+v %s", status, v, v.Error)
		}
		fresh := onlyRequest(t, d)
		if fresh.ID == req.ID {
			t.Fatalf("the new request has the old one's id")
		}
		approveAndFinish(t, p, l, d, fresh)
	})

	t.Run("undecided", func(t *testing.T) {
		t.Parallel()
		p, bank := shortTTL(t)
		before := p.metrics(t)[requests("expired")]
		c, d := p.appCitizen(t, bank, "Ulla Uafgjort")
		l := p.newBrowser(t).authorize(t, bank)
		l.passwordToApp(c)
		req := onlyRequest(t, d)
		time.Sleep(time.Until(l.flow().Approval.ExpiresAt) + 100*time.Millisecond)
		l.wantPoll("keyapp", "keyapp_timeout")
		l.wantPoll("keyapp", "keyapp_timeout")
		wantAnswer(t, "a decision after the poll ended it", decide(t, p, d, req.ID, decision(t, d, req.ID, device.Approve, l.bindingCode())),
			http.StatusConflict, "already_decided")
		if got := p.metrics(t)[requests("expired")]; got != before+1 {
			t.Fatalf("expired %v → %v, want one more (counted once, by the poll that ended it)", before, got)
		}
	})
}

// TestKeyAppDeny: a denied request ends the login: the poll says failed keyapp_denied with
// the way back, and the relying party gets error=access_denied on its callback.
func TestKeyAppDeny(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c, d := p.appCitizen(t, bank, "Dorthe Nej")
	l := p.newBrowser(t).authorize(t, bank)
	l.passwordToApp(c)
	req := onlyRequest(t, d)
	before := p.metrics(t)
	r := decide(t, p, d, req.ID, decision(t, d, req.ID, device.Deny, ""))
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"denied"`) {
		t.Fatalf("deny: %s", r)
	}
	after := p.metrics(t)
	if after[requests("denied")] != before[requests("denied")]+1 || after[requests("approved")] != before[requests("approved")] {
		t.Fatalf("denied %v → %v", before[requests("denied")], after[requests("denied")])
	}
	v := l.wantPoll("failed", "keyapp_denied")
	if v.RedirectTo == "" {
		t.Fatalf("a denied login has no way back: %+v", v)
	}
	l.follow(v.RedirectTo)
	if l.Back == nil || l.Back.Query().Get("error") != "access_denied" || l.Back.Query().Get("state") != l.State ||
		!strings.Contains(l.Back.Query().Get("error_description"), "keyapp_denied") {
		t.Fatalf("back at the relying party: %v (last %v)", l.Back, l.Last)
	}
	if l.Back.Query().Get("code") != "" {
		t.Fatalf("a denied login got a code: %s", l.Back)
	}
}

// TestKeyAppRacingDecisions: 24 decisions of one request racing (from the citizen's three
// devices, each with its own JWT and JWS): exactly one is 200, every other 409
// already_decided, and the login ends as the winner decided.
func TestKeyAppRacingDecisions(t *testing.T) {
	t.Parallel()
	for _, mixed := range []bool{false, true} {
		name := "approve vs approve"
		if mixed {
			name = "approve vs deny"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := startIdP(t) // its own metrics
			bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
			c, d1 := p.appCitizen(t, bank, "Rikke Kapløb")
			devs := []*deviceclient.Device{d1, p.activateDevice(t, c, "to"), p.activateDevice(t, c, "tre")}
			l := p.newBrowser(t).authorize(t, bank)
			l.passwordToApp(c)
			req := onlyRequest(t, d1)
			code := l.bindingCode()
			const racers = 24
			toks, jwss, verdicts := make([]string, racers), make([]string, racers), make([]string, racers)
			for i := range racers {
				d := devs[i%len(devs)]
				verdicts[i] = device.Approve
				if mixed && i%2 == 1 {
					verdicts[i] = device.Deny
				}
				toks[i], jwss[i] = token(t, d), decision(t, d, req.ID, verdicts[i], code)
			}
			before := p.metrics(t)
			answers := barrier(racers, func(i int) *Resp {
				return p.keyapp(t, http.MethodPost, "/keyapp/v1/requests/"+req.ID, toks[i], map[string]string{"decision": jwss[i]})
			})
			winner := -1
			for i, r := range answers {
				switch {
				case r.Status == http.StatusOK:
					if winner >= 0 {
						t.Errorf("racers %d and %d both won", winner, i)
					}
					winner = i
				case r.Status != http.StatusConflict || errorCode(r) != "already_decided":
					t.Errorf("racer %d: %s, want 409 already_decided", i, r)
				}
			}
			if winner < 0 {
				t.Fatal("no racer won")
			}
			after := p.metrics(t)
			decided := after[requests("approved")] + after[requests("denied")] - before[requests("approved")] - before[requests("denied")]
			if decided != 1 || after[refused("already_decided")] != before[refused("already_decided")]+racers-1 {
				t.Fatalf("metrics: %v decisions counted, %v already_decided refusals; want 1 and %d", decided,
					after[refused("already_decided")]-before[refused("already_decided")], racers-1)
			}
			if verdicts[winner] == device.Approve {
				l.wantPoll("done", "")
			} else {
				l.wantPoll("failed", "keyapp_denied")
			}
		})
	}
}

// TestKeyAppDecisionAfterBlock: a NemID blocked after its request was made approves (or
// denies) nothing: 403 blocked, the request stays pending; once unblocked it is approved.
func TestKeyAppDecisionAfterBlock(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c, d := p.appCitizen(t, bank, "Bertel Spærret")
	l := p.newBrowser(t).authorize(t, bank)
	l.passwordToApp(c)
	req := onlyRequest(t, d)
	p.setStatus(t, c.UserID, "blocked", "misuse")
	before := p.metrics(t)[refused("blocked")]
	for _, verdict := range []string{device.Approve, device.Deny} {
		r := decide(t, p, d, req.ID, decision(t, d, req.ID, verdict, l.bindingCode()))
		wantAnswer(t, verdict+" for a blocked NemID", r, http.StatusForbidden, "blocked")
	}
	if got := p.metrics(t)[refused("blocked")]; got != before+2 {
		t.Fatalf("blocked refusals %v → %v, want 2 more", before, got)
	}
	stillPending(t, l, d, req)
	p.setStatus(t, c.UserID, "active", "")
	approveAndFinish(t, p, l, d, req)
}

// TestKeyAppRequestNamesRelyingParty: the device is shown which relying party asks (its
// registered name) and a text in the login's language, three distinct 2-digit codes (the
// browser's among them) and when the request runs out.
func TestKeyAppRequestNamesRelyingParty(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	client := p.registerClient(t, "openid")
	bank := p.relyingParty(t, client, "openid")
	c, d := p.appCitizen(t, bank, "Nanna Navn")
	name := "Test Bank " + client.ID
	for _, tc := range []struct {
		locales []AuthOption
		text    string
	}{
		{nil, "Log på hos " + name},
		{[]AuthOption{withParam("ui_locales", "en")}, "Log in to " + name},
		{[]AuthOption{withParam("ui_locales", "da en")}, "Log på hos " + name},
	} {
		l := p.newBrowser(t).authorize(t, bank, tc.locales...)
		start := time.Now()
		l.passwordToApp(c)
		req := onlyRequest(t, d)
		if req.ClientName != name || req.Text != tc.text {
			t.Fatalf("the device is shown %q / %q, want %q / %q", req.ClientName, req.Text, name, tc.text)
		}
		if req.ID != l.flow().Approval.ID {
			t.Fatalf("request id %s is not the login's", req.ID)
		}
		codes := slices.Clone(req.BindingCodes)
		slices.Sort(codes)
		if len(codes) != 3 || slices.Compact(codes)[2] != codes[2] || !slices.Contains(codes, l.bindingCode()) {
			t.Fatalf("binding codes %v (browser %s)", req.BindingCodes, l.bindingCode())
		}
		for _, code := range codes {
			if n, err := strconv.Atoi(code); err != nil || len(code) != 2 || n < 0 {
				t.Fatalf("binding code %q", code)
			}
		}
		exp, err := time.Parse(time.RFC3339, req.ExpiresAt)
		if err != nil || exp.Before(start.Add(2*time.Minute-2*time.Second)) || exp.After(time.Now().Add(2*time.Minute+time.Second)) {
			t.Fatalf("expires_at %q (%v), want about 2 minutes from now", req.ExpiresAt, err)
		}
		wantAnswer(t, "deny", decide(t, p, d, req.ID, decision(t, d, req.ID, device.Deny, "")), http.StatusOK, "")
	}
}
