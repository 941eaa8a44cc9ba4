package integrationtests

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/nemidp/nemidp/keys/device"
)

// deviceClaims are the claims of a device JWT, valid unless a row changes them.
func deviceClaims(iss, aud string, iat, exp time.Time) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{Issuer: iss, Audience: jwt.ClaimStrings{aud}, IssuedAt: jwt.NewNumericDate(iat),
		ExpiresAt: jwt.NewNumericDate(exp), ID: randHex(16)}
}

// TestDeviceJWTRefusals: GET /keyapp/v1/requests refuses every device JWT that is not a fresh
// ES256 JWT by an active device's own key for <issuer>/keyapp, living at most 2 minutes: 401
// with WWW-Authenticate, the code, and the refusal counted under its reason. Nothing changes:
// the citizen's pending request is still there for the right device.
func TestDeviceJWTRefusals(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	a, dA := p.appCitizen(t, bank, "Anna Enhed")
	dA2 := p.activateDevice(t, a, "Annas tablet")
	gone := p.activateDevice(t, a, "Annas gamle telefon")
	if code := p.admin(t, http.MethodDelete, "/admin/v1/citizens/"+a.UserID+"/devices/"+gone.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE device: %d", code)
	}
	_, dB := p.appCitizen(t, bank, "Bo Andenborger")
	l := p.newBrowser(t).authorize(t, bank)
	l.passwordToApp(a)
	req := onlyRequest(t, dA)

	now := time.Now()
	aud := p.Issuer + "/keyapp"
	forger, _ := device.GenerateKey()
	_, rnd, _ := strings.Cut(dA.ID, ".")
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, deviceClaims(dA.ID, aud, now, now.Add(time.Minute))).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	noJTI := deviceClaims(dA.ID, aud, now, now.Add(time.Minute))
	noJTI.ID = ""
	noExp := deviceClaims(dA.ID, aud, now, now)
	noExp.ExpiresAt = nil
	for _, tc := range []struct {
		name   string
		header string // the whole Authorization header; "" for none
		code   string
		reason string
	}{
		{"no token", "", "invalid_token", "no_token"},
		{"not bearer", "Basic " + token(t, dA), "invalid_token", "no_token"},
		{"empty bearer", "Bearer ", "invalid_token", "no_token"},
		{"not a JWT", "Bearer abc.def", "invalid_token", "malformed_token"},
		{"forged signature", "Bearer " + signJWT(t, forger, deviceClaims(dA.ID, aud, now, now.Add(time.Minute))), "invalid_token", "bad_signature"},
		{"another device's key, same citizen", "Bearer " + signJWT(t, dA2.Key, deviceClaims(dA.ID, aud, now, now.Add(time.Minute))), "invalid_token", "bad_signature"},
		{"another citizen's device's key", "Bearer " + signJWT(t, dB.Key, deviceClaims(dA.ID, aud, now, now.Add(time.Minute))), "invalid_token", "bad_signature"},
		{"alg none", "Bearer " + none, "invalid_token", "bad_signature"},
		{"unknown device of the citizen", "Bearer " + signJWT(t, dA.Key, deviceClaims(a.UserID+"."+randHex(11), aud, now, now.Add(time.Minute))), "unknown_device", "unknown_device"},
		{"the device's id under another citizen", "Bearer " + signJWT(t, dA.Key, deviceClaims(strings.Split(dB.ID, ".")[0]+"."+rnd, aud, now, now.Add(time.Minute))), "unknown_device", "unknown_device"},
		{"no device id", "Bearer " + signJWT(t, dA.Key, deviceClaims("someone", aud, now, now.Add(time.Minute))), "unknown_device", "unknown_device"},
		{"deactivated device", "Bearer " + token(t, gone), "device_deactivated", "device_deactivated"},
		{"wrong audience: the issuer", "Bearer " + signJWT(t, dA.Key, deviceClaims(dA.ID, p.Issuer, now, now.Add(time.Minute))), "invalid_token", "wrong_audience"},
		{"wrong audience: another IdP", "Bearer " + signJWT(t, dA.Key, deviceClaims(dA.ID, "https://idp.example/keyapp", now, now.Add(time.Minute))), "invalid_token", "wrong_audience"},
		{"long-lived (10 minutes)", "Bearer " + signJWT(t, dA.Key, deviceClaims(dA.ID, aud, now, now.Add(10*time.Minute))), "invalid_token", "long_lived_token"},
		{"expired", "Bearer " + signJWT(t, dA.Key, deviceClaims(dA.ID, aud, now.Add(-3*time.Minute), now.Add(-2*time.Minute))), "invalid_token", "expired_token"},
		{"issued in the future", "Bearer " + signJWT(t, dA.Key, deviceClaims(dA.ID, aud, now.Add(5*time.Minute), now.Add(6*time.Minute))), "invalid_token", "future_token"},
		{"no exp", "Bearer " + signJWT(t, dA.Key, noExp), "invalid_token", "invalid_token"},
		{"no jti", "Bearer " + signJWT(t, dA.Key, noJTI), "invalid_token", "invalid_token"},
	} {
		before := p.metrics(t)[refused(tc.reason)]
		hr, err := http.NewRequestWithContext(t.Context(), http.MethodGet, p.URL+"/keyapp/v1/requests", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.header != "" {
			hr.Header.Set("Authorization", tc.header)
		}
		resp, err := p.http.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		r := &Resp{Status: resp.StatusCode, Header: resp.Header}
		r.Body = readAll(resp)
		if r.Status != http.StatusUnauthorized || errorCode(r) != tc.code || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Errorf("%s: %s (WWW-Authenticate %q), want 401 %s", tc.name, r, r.Header.Get("WWW-Authenticate"), tc.code)
			continue
		}
		if got := p.metrics(t)[refused(tc.reason)]; got != before+1 {
			t.Errorf("%s: nemidp_keyapp_refused_total{reason=%q} %v → %v, want one more", tc.name, tc.reason, before, got)
		}
	}
	if again := onlyRequest(t, dA); again.ID != req.ID {
		t.Fatalf("the pending request changed: %+v → %+v", req, again)
	}
	if f := l.flow(); f.Step != "keyapp" || f.Approval == nil || f.Approval.ID != req.ID {
		t.Fatalf("the login moved: %+v", f)
	}
}

// TestDeviceJWTRefusedDecision: a decision sent with a device JWT that is refused (another
// device's key, a replayed token) decides nothing: 401, the request still pending and the
// login at its keyapp step, and the right call approves it afterwards.
func TestDeviceJWTRefusedDecision(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	a, dA := p.appCitizen(t, bank, "Alma Afvist")
	dA2 := p.activateDevice(t, a, "Almas tablet")
	l := p.newBrowser(t).authorize(t, bank)
	l.passwordToApp(a)
	req := onlyRequest(t, dA)
	jws := decision(t, dA, req.ID, device.Approve, l.bindingCode())
	body := map[string]string{"decision": jws}
	now := time.Now()
	used := token(t, dA)
	if r := p.keyapp(t, http.MethodGet, "/keyapp/v1/requests", used, nil); r.Status != http.StatusOK {
		t.Fatalf("first use of a token: %s", r)
	}
	for _, tc := range []struct {
		name, token, code string
	}{
		{"signed by another device's key", signJWT(t, dA2.Key, deviceClaims(dA.ID, p.Issuer+"/keyapp", now, now.Add(time.Minute))), "invalid_token"},
		{"a used token", used, "invalid_token"},
		{"no token", "", "invalid_token"},
	} {
		if r := p.keyapp(t, http.MethodPost, "/keyapp/v1/requests/"+req.ID, tc.token, body); r.Status != http.StatusUnauthorized || errorCode(r) != tc.code {
			t.Errorf("%s: %s, want 401 %s", tc.name, r, tc.code)
		}
	}
	if again := onlyRequest(t, dA); again.ID != req.ID {
		t.Fatalf("the pending request changed: %+v", again)
	}
	if f := l.flow(); f.Step != "keyapp" {
		t.Fatalf("the login moved to %s", f.Step)
	}
	if r := p.keyapp(t, http.MethodPost, "/keyapp/v1/requests/"+req.ID, token(t, dA), body); r.Status != http.StatusOK {
		t.Fatalf("the decision with a good token: %s", r)
	}
	if f := l.flow(); f.Step != "done" {
		t.Fatalf("after approval the login is at %s", f.Step)
	}
}

// TestDeviceJWTReplay: a device JWT is good for one call: the same token again is 401
// invalid_token (counted as replayed_token); 24 calls racing with one token get exactly one
// 200.
func TestDeviceJWTReplay(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	_, d := p.appCitizen(t, bank, "Rolf Replay")
	tok := token(t, d)
	if r := p.keyapp(t, http.MethodGet, "/keyapp/v1/requests", tok, nil); r.Status != http.StatusOK {
		t.Fatalf("first use: %s", r)
	}
	before := p.metrics(t)[refused("replayed_token")]
	if r := p.keyapp(t, http.MethodGet, "/keyapp/v1/requests", tok, nil); r.Status != http.StatusUnauthorized || errorCode(r) != "invalid_token" {
		t.Fatalf("second use: %s, want 401 invalid_token", r)
	}
	if got := p.metrics(t)[refused("replayed_token")]; got != before+1 {
		t.Fatalf("replayed_token refusals %v → %v, want one more", before, got)
	}

	const racers = 24
	tok = token(t, d)
	statuses := barrier(racers, func(int) *Resp {
		return p.keyapp(t, http.MethodGet, "/keyapp/v1/requests", tok, nil)
	})
	ok := 0
	for i, r := range statuses {
		switch {
		case r.Status == http.StatusOK:
			ok++
		case r.Status != http.StatusUnauthorized || errorCode(r) != "invalid_token":
			t.Errorf("racer %d: %s, want 200 or 401 invalid_token", i, r)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d racing calls with one token were let through, want 1", ok, racers)
	}
	if got := p.metrics(t)[refused("replayed_token")]; got != before+1+racers-1 {
		t.Fatalf("replayed_token refusals %v, want %v", got, before+racers)
	}
	// The device goes on with fresh tokens.
	if _, err := d.Requests(t.Context(), 0); err != nil {
		t.Fatalf("a fresh token after the race: %v", err)
	}
}
