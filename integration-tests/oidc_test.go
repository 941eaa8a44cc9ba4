package integrationtests

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nemidp/nemidp/idp/store/storetest"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ageOn is the age of someone born on 1990-06-15 at now, in Danish time.
func karenAge(now time.Time) int {
	cph, err := time.LoadLocation("Europe/Copenhagen")
	if err != nil {
		cph = time.UTC
	}
	y, m, d := now.In(cph).Date()
	age := y - 1990
	if m < time.June || (m == time.June && d < 15) {
		age--
	}
	return age
}

// checkIdentityClaims checks the claims both the ID token and userinfo carry for Karen.
func checkIdentityClaims(t *testing.T, where string, c map[string]any, wantCPR bool) {
	t.Helper()
	want := map[string]any{
		"name": "Karen Jensen", "given_name": "Karen", "family_name": "Jensen",
		"birthdate": "1990-06-15", "idp": "nemid", "acr": acrSubstantial,
	}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("%s: %s = %#v, want %#v", where, k, c[k], v)
		}
	}
	if age, ok := c["age"].(float64); !ok || int(age) != karenAge(time.Now()) {
		t.Errorf("%s: age = %#v, want %d", where, c["age"], karenAge(time.Now()))
	}
	amr, _ := c["amr"].([]any)
	if len(amr) != 2 || amr[0] != "pwd" || amr[1] != "otp" {
		t.Errorf("%s: amr = %#v, want [pwd otp]", where, c["amr"])
	}
	if _, ok := c["auth_time"].(float64); !ok {
		t.Errorf("%s: auth_time = %#v, want a number", where, c["auth_time"])
	}
	cpr, has := c["dk.cpr"]
	switch {
	case wantCPR && cpr != karenCPR:
		t.Errorf("%s: dk.cpr = %#v, want %s", where, cpr, karenCPR)
	case !wantCPR && has:
		t.Errorf("%s: dk.cpr = %#v present for a client not allowed or not asking scope ssn", where, cpr)
	}
}

// TestFirstLoginActivationToTokens walks the first login of a new NemID (activation password,
// code card, own password — rules enforced), checks every claim of the ID token and userinfo,
// pairwise subjects, and that the activation password stops working.
func TestFirstLoginActivationToTokens(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bankClient := p.registerClient(t, "openid", "profile", "offline_access", "ssn")
	bank := p.relyingParty(t, bankClient, "openid", "profile", "ssn")
	shop := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, karenCPR, "Karen Jensen")
	activation := karen.Password

	start := time.Now().Add(-time.Second).Truncate(time.Second)
	b := p.newBrowser(t)
	l := b.authorize(t, bank)
	l.requireStep("password")
	if code, v := l.password(karen, activation); code != http.StatusOK {
		t.Fatalf("activation password: %d %s", code, v.Error)
	}
	l.requireStep("codecard")
	if l.View.CardSerial != karen.Serial {
		t.Errorf("card_serial = %q, want %q", l.View.CardSerial, karen.Serial)
	}
	l.key(karen)
	l.requireStep("new_password")

	for _, weak := range []string{"1234", "4321", "1111", "0690", "abcdef", "12345"} {
		code, v := l.post("new-password", map[string]string{"password": weak})
		if code != http.StatusBadRequest || v.Error == nil || v.Error.Code != "invalid_password" {
			t.Errorf("new password %q: %d %s, want 400 invalid_password", weak, code, v.Error)
		}
	}
	if code, v := l.post("new-password", map[string]string{"password": activation}); code != http.StatusBadRequest || v.Error == nil || v.Error.Code != "invalid_password" {
		t.Errorf("new password = the activation password: %d %s, want 400 invalid_password", code, v.Error)
	}
	l.requireStep("new_password")
	newPW := goodPassword()
	l.mustPost("new-password", map[string]string{"password": newPW})
	karen.Password = newPW
	l.finish()
	tok := l.mustExchange()
	end := time.Now().Add(time.Second)

	// The ID token: rp verified signature (JWKS), iss, aud, nonce; check the rest here.
	id := tok.IDTokenClaims
	if id.Issuer != p.Issuer {
		t.Errorf("iss = %q, want %q", id.Issuer, p.Issuer)
	}
	if !slices.Equal([]string(id.Audience), []string{bankClient.ID}) {
		t.Errorf("aud = %v, want [%s]", id.Audience, bankClient.ID)
	}
	if id.Nonce != l.Nonce {
		t.Errorf("nonce = %q, want %q", id.Nonce, l.Nonce)
	}
	if !uuidRE.MatchString(id.Subject) {
		t.Errorf("sub = %q, want a UUID", id.Subject)
	}
	if at := id.AuthTime.AsTime(); at.Before(start) || at.After(end) {
		t.Errorf("auth_time = %v, want between %v and %v", at, start, end)
	}
	if id.AuthenticationContextClassReference != acrSubstantial {
		t.Errorf("acr = %q", id.AuthenticationContextClassReference)
	}
	if !slices.Equal([]string(id.AuthenticationMethodsReferences), []string{"pwd", "otp"}) {
		t.Errorf("amr = %v, want [pwd otp]", id.AuthenticationMethodsReferences)
	}
	checkIdentityClaims(t, "ID token", id.Claims, true)

	// Userinfo answers the same.
	ui, err := rp.Userinfo[*oidc.UserInfo](t.Context(), tok.AccessToken, "Bearer", id.Subject, bank)
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	checkIdentityClaims(t, "userinfo", ui.Claims, true)
	if ui.Claims["auth_time"] != id.Claims["auth_time"] {
		t.Errorf("userinfo auth_time = %v, ID token %v", ui.Claims["auth_time"], id.Claims["auth_time"])
	}

	// A new browser: the activation password no longer works, the new one does, and the same
	// client sees the same subject.
	b2 := p.newBrowser(t)
	l2 := b2.authorize(t, bank)
	if code, v := l2.password(karen, activation); code != http.StatusUnauthorized || v.Error == nil || v.Error.Code != "invalid_credentials" {
		t.Fatalf("old activation password: %d %s, want 401 invalid_credentials", code, v.Error)
	}
	if code, v := l2.password(karen, karen.Password); code != http.StatusOK {
		t.Fatalf("new password: %d %s", code, v.Error)
	}
	l2.key(karen)
	l2.requireStep("done") // no new_password step any more
	l2.finish()
	tok2 := l2.mustExchange()
	if tok2.IDTokenClaims.Subject != id.Subject {
		t.Errorf("same client, same citizen: sub %q then %q", id.Subject, tok2.IDTokenClaims.Subject)
	}

	// Another client gets another (pairwise) subject and no CPR.
	tok3 := p.newBrowser(t).login(t, shop, karen)
	if s := tok3.IDTokenClaims.Subject; s == id.Subject || !uuidRE.MatchString(s) {
		t.Errorf("second client: sub %q, first client %q: want a different UUID", s, id.Subject)
	}
	checkIdentityClaims(t, "ID token at a client without ssn", tok3.IDTokenClaims.Claims, false)
}

// TestCPRClaimOnlyForSSNScope: dk.cpr is released only to a client registered for scope ssn
// that asked for it — in the ID token and at userinfo.
func TestCPRClaimOnlyForSSNScope(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	ssnClient := p.registerClient(t, "openid", "profile", "ssn")
	plainClient := p.registerClient(t, "openid", "profile")
	karen := p.issueCitizen(t, karenCPR, "Karen Jensen")
	p.activate(t, p.relyingParty(t, plainClient, "openid", "profile"), karen)

	for _, tc := range []struct {
		name    string
		client  Client
		scopes  []string
		wantCPR bool
	}{
		{"registered for ssn and asking", ssnClient, []string{"openid", "profile", "ssn"}, true},
		{"registered for ssn, not asking", ssnClient, []string{"openid", "profile"}, false},
		{"not registered, asking", plainClient, []string{"openid", "profile", "ssn"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) { // not parallel: logins of one card share its pending key
			r := p.relyingParty(t, tc.client, tc.scopes...)
			tok := p.newBrowser(t).login(t, r, karen)
			checkIdentityClaims(t, "ID token", tok.IDTokenClaims.Claims, tc.wantCPR)
			ui, err := rp.Userinfo[*oidc.UserInfo](t.Context(), tok.AccessToken, "Bearer", tok.IDTokenClaims.Subject, r)
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			checkIdentityClaims(t, "userinfo", ui.Claims, tc.wantCPR)
		})
	}
}

// TestAuthCodeReplayRevokesTokens: a code works once; presenting it again is invalid_grant
// and revokes the access and refresh tokens the first exchange issued.
func TestAuthCodeReplayRevokesTokens(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile", "offline_access"), "openid", "profile", "offline_access")
	karen := p.issueCitizen(t, karenCPR, "Karen Jensen")

	l := p.newBrowser(t).authorize(t, bank)
	l.run(karen)
	code := l.code()
	tok, err := l.exchange(code)
	if err != nil {
		t.Fatalf("first exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	if _, err := rp.Userinfo[*oidc.UserInfo](t.Context(), tok.AccessToken, "Bearer", tok.IDTokenClaims.Subject, bank); err != nil {
		t.Fatalf("userinfo before the replay: %v", err)
	}

	if _, err := l.exchange(code); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("second exchange of the same code: err = %v, want invalid_grant", err)
	}
	if _, err := rp.Userinfo[*oidc.UserInfo](t.Context(), tok.AccessToken, "Bearer", tok.IDTokenClaims.Subject, bank); err == nil {
		t.Error("the access token of the first exchange still works at userinfo after the code replay")
	}
	if _, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, tok.RefreshToken, "", ""); err == nil {
		t.Error("the refresh token of the first exchange still refreshes after the code replay")
	}
	// A third presentation is refused too.
	if _, err := l.exchange(code); !isOAuthError(err, "invalid_grant") {
		t.Errorf("third exchange: err = %v, want invalid_grant", err)
	}
}

// TestRefreshTokenRotationAndReuseDetection: a refresh rotates the refresh token; the old one
// is refused, and presenting it revokes the new one too.
func TestRefreshTokenRotationAndReuseDetection(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile", "offline_access"), "openid", "profile", "offline_access")
	karen := p.issueCitizen(t, karenCPR, "Karen Jensen")
	tok := p.newBrowser(t).login(t, bank, karen)
	rt1 := tok.RefreshToken
	if rt1 == "" {
		t.Fatal("no refresh token with offline_access")
	}

	ref, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, rt1, "", "")
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	rt2 := ref.RefreshToken
	if rt2 == "" || rt2 == rt1 {
		t.Fatalf("refresh token did not rotate: old %q new %q", rt1, rt2)
	}
	if ref.AccessToken == "" || ref.AccessToken == tok.AccessToken {
		t.Errorf("refresh did not issue a new access token")
	}
	if ref.IDTokenClaims != nil && ref.IDTokenClaims.Subject != tok.IDTokenClaims.Subject {
		t.Errorf("refreshed ID token sub %q, want %q", ref.IDTokenClaims.Subject, tok.IDTokenClaims.Subject)
	}
	if _, err := rp.Userinfo[*oidc.UserInfo](t.Context(), ref.AccessToken, "Bearer", tok.IDTokenClaims.Subject, bank); err != nil {
		t.Fatalf("userinfo with the refreshed access token: %v", err)
	}

	// Reuse of the rotated-out token: refused, and the whole grant is revoked.
	if _, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, rt1, "", ""); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("old refresh token: err = %v, want invalid_grant", err)
	}
	if _, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, rt2, "", ""); err == nil {
		t.Error("the new refresh token still works after the old one was reused")
	}
	if _, err := rp.Userinfo[*oidc.UserInfo](t.Context(), ref.AccessToken, "Bearer", tok.IDTokenClaims.Subject, bank); err == nil {
		t.Error("the access token of the grant still works after refresh-token reuse")
	}
}

// TestSSOSession: after one login the browser's SSO session completes further authorize
// requests without a step (same auth_time); prompt=login and max_age=0 ask again;
// prompt=none without a session answers login_required.
func TestSSOSession(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bankC := p.registerClient(t, "openid", "profile")
	bank := p.relyingParty(t, bankC, "openid", "profile")
	shop := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, karenCPR, "Karen Jensen")
	p.activate(t, bank, karen)

	b := p.newBrowser(t)
	first := b.login(t, bank, karen)
	authTime := first.IDTokenClaims.AuthTime

	for _, tc := range []struct {
		name string
		rp   *RP
		opts []AuthOption
	}{
		{"same client", bank, nil},
		{"another client", shop, nil},
		{"prompt=none with a session", shop, []AuthOption{withParam("prompt", "none")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := b.authorize(t, tc.rp, tc.opts...)
			if !slices.Equal(l.Steps, []string{"done"}) {
				t.Fatalf("steps shown = %v, want [done] at once", l.Steps)
			}
			tok := l.mustExchange()
			if tok.IDTokenClaims.AuthTime != authTime {
				t.Errorf("auth_time = %v, want the session's %v", tok.IDTokenClaims.AuthTime.AsTime(), authTime.AsTime())
			}
			if tc.rp == bank && tok.IDTokenClaims.Subject != first.IDTokenClaims.Subject {
				t.Errorf("same client, sub %q then %q", first.IDTokenClaims.Subject, tok.IDTokenClaims.Subject)
			}
			if tc.rp == shop && tok.IDTokenClaims.Subject == first.IDTokenClaims.Subject {
				t.Errorf("another client got the same (non-pairwise) sub %q", tok.IDTokenClaims.Subject)
			}
		})
	}

	for _, tc := range []struct {
		name string
		opt  AuthOption
	}{
		{"prompt=login", withParam("prompt", "login")},
		{"max_age=0", withParam("max_age", "0")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := b.authorize(t, bank, tc.opt)
			l.requireStep("password")
			l.run(karen)
			tok := l.mustExchange()
			if tok.IDTokenClaims.AuthTime.AsTime().Before(authTime.AsTime()) {
				t.Errorf("auth_time %v is before the first login's %v", tok.IDTokenClaims.AuthTime.AsTime(), authTime.AsTime())
			}
		})
	}

	t.Run("prompt=none without a session", func(t *testing.T) {
		l := p.newBrowser(t).authorize(t, bank, withParam("prompt", "none"))
		if l.Back == nil {
			t.Fatalf("not redirected back: view %+v, last %v", l.View, l.Last)
		}
		q := l.Back.Query()
		if q.Get("error") != "login_required" || q.Get("code") != "" || q.Get("state") != l.State {
			t.Errorf("redirect back = %s, want error=login_required with state and no code", l.Back)
		}
	})
}

// TestUnauthenticatedCodeUseChangesNothing: zitadel/oidc looks a code up before it checks
// PKCE and the client's credentials. Neither a wrong secret nor a wrong PKCE verifier may burn
// the code, and a replay by someone who cannot authenticate must not revoke the tokens the
// rightful exchange got.
func TestUnauthenticatedCodeUseChangesNothing(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	l := p.newBrowser(t).authorize(t, bank)
	l.run(karen)
	code := l.code()

	attempt := func(secret, verifier string) (int, string) {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
			"code_verifier": {verifier}}
		req, _ := http.NewRequest(http.MethodPost, p.Issuer+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(bank.Client.ID, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Error
	}
	if st, e := attempt("not-the-secret-0123456789", l.Verifier); st/100 != 4 {
		t.Fatalf("wrong secret: %d %s", st, e)
	}
	if st, e := attempt(bank.Client.Secret, "wrong-verifier-wrong-verifier-wrong-verifier-12"); st/100 != 4 {
		t.Fatalf("wrong PKCE verifier: %d %s", st, e)
	}
	tok, err := l.exchange(code)
	if err != nil {
		t.Fatalf("the rightful exchange after failed attempts: %v", err)
	}
	if st, e := attempt("not-the-secret-0123456789", l.Verifier); st/100 != 4 {
		t.Fatalf("replay with a wrong secret: %d %s", st, e)
	}
	if _, err := rp.Userinfo[*oidc.UserInfo](t.Context(), tok.AccessToken, "Bearer", tok.IDTokenClaims.Subject, bank); err != nil {
		t.Fatalf("an unauthenticated replay revoked the rightful tokens: %v", err)
	}
}

// TestBlockedNemIDLosesItsTokens: a NemID blocked after the login gets no refreshed tokens,
// its userinfo stops answering, and unblocking does not bring the grant back.
func TestBlockedNemIDLosesItsTokens(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile", "offline_access"), "openid", "profile", "offline_access")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	tok := p.newBrowser(t).login(t, bank, karen)
	key := storetest.CitizenKey(p.Prefix, karen.UserID)
	if err := p.Store.Redis().HSet(t.Context(), key, "status", "blocked", "block_reason", "misuse").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := rp.Userinfo[*oidc.UserInfo](t.Context(), tok.AccessToken, "Bearer", tok.IDTokenClaims.Subject, bank); err == nil {
		t.Error("userinfo answers for a blocked NemID")
	}
	if _, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, tok.RefreshToken, "", ""); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("refresh for a blocked NemID: err = %v, want invalid_grant", err)
	}
	if err := p.Store.Redis().HSet(t.Context(), key, "status", "active", "block_reason", "").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, tok.RefreshToken, "", ""); err == nil {
		t.Error("the grant came back after the NemID was unblocked")
	}
}

// TestRefreshNarrowsOnlyTheAccessToken: a refresh asking for fewer scopes narrows that access
// token, but the new refresh token keeps the original scope (RFC 6749 §6); the refreshed ID
// token keeps acr.
func TestRefreshNarrowsOnlyTheAccessToken(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile", "offline_access"), "openid", "profile", "offline_access")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	tok := p.newBrowser(t).login(t, bank, karen)
	narrowRP := p.relyingParty(t, bank.Client, "openid", "offline_access") // asks for fewer scopes
	narrow, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), narrowRP, tok.RefreshToken, "", "")
	if err != nil {
		t.Fatalf("narrowed refresh: %v", err)
	}
	info, err := rp.Userinfo[*oidc.UserInfo](t.Context(), narrow.AccessToken, "Bearer", tok.IDTokenClaims.Subject, bank)
	if err != nil || info.Name != "" {
		t.Fatalf("narrowed access token: name %q, err %v; want no profile", info.Name, err)
	}
	wide, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, narrow.RefreshToken, "", "")
	if err != nil {
		t.Fatalf("refresh back to the original scope: %v", err)
	}
	if wide.IDTokenClaims == nil || wide.IDTokenClaims.AuthenticationContextClassReference != "https://data.gov.dk/concept/core/nsis/Substantial" {
		t.Errorf("refreshed ID token acr = %+v", wide.IDTokenClaims)
	}
}
