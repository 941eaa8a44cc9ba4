package integrationtests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// danishToday is today in Denmark, as a UTC midnight (for date arithmetic).
func danishToday(t *testing.T) time.Time {
	t.Helper()
	y, m, d := time.Now().In(copenhagen(t)).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// setExpiry moves a NemID's expiry (as time passing would: the record is what a real one
// issued 3 years before that date holds).
func (p *IdP) setExpiry(t *testing.T, uid string, exp time.Time) {
	t.Helper()
	if err := p.Store.Redis().HSet(t.Context(), p.Prefix+"{c:"+uid+"}", "expires_at", exp.Format(time.DateOnly)).Err(); err != nil {
		t.Fatal(err)
	}
}

// notice is the notice code of the login's current view ("" none).
func (l *Login) notice() string {
	l.t.Helper()
	r := l.b.do(l.t, http.MethodGet, "/login/"+l.View.Flow, nil, map[string]string{"Accept": "application/json"})
	var v struct {
		Notice *struct{ Code, Message string } `json:"notice"`
	}
	if err := json.Unmarshal(r.Body, &v); err != nil {
		l.t.Fatalf("view: %s", r)
	}
	if v.Notice == nil {
		return ""
	}
	return v.Notice.Code
}

// TestExpiredRenewedByOperator: the day after its expiry a NemID is refused after the right
// password with expired and the instructions (JSON, and the page in Danish), also in a browser
// whose SSO session began before the expiry; the operator renews it (POST …/renew) and it logs
// in again, everywhere.
func TestExpiredRenewedByOperator(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	c := p.issueNemID(t, freshCPR(), "Gammel Jensen", map[string]any{"kind": "oces"})
	p.activate(t, bank, c)
	sso := p.newBrowser(t)
	sso.login(t, bank, c) // an SSO session from before the expiry

	yesterday := danishToday(t).AddDate(0, 0, -1)
	p.setExpiry(t, c.UserID, yesterday)
	for name, b := range map[string]*Browser{"SSO browser": sso, "new browser": p.newBrowser(t)} {
		l := b.authorize(t, bank)
		l.requireStep("password") // the session does not log an expired NemID in
		code, v := l.password(c, c.Password)
		if code != http.StatusForbidden || v.Error == nil || v.Error.Code != "expired" ||
			!strings.Contains(v.Error.Message, "expired on "+yesterday.Format("2 January 2006")) || !strings.Contains(v.Error.Message, "borgerservice") {
			t.Fatalf("%s: right password of an expired NemID: %d %s", name, code, v.Error)
		}
		if code, v := l.password(c, "Forkert99x"); code != http.StatusUnauthorized || v.Error == nil || v.Error.Code != "invalid_credentials" {
			t.Fatalf("%s: wrong password of an expired NemID: %d %s, want 401 invalid_credentials", name, code, v.Error)
		}
	}
	// prompt=none from the SSO session: no login, and no expired NemID's session either.
	if l := sso.authorize(t, bank, withParam("prompt", "none")); l.Back == nil || l.Back.Query().Get("error") != "login_required" {
		t.Fatalf("prompt=none with an expired NemID's session: back %v, view %+v", l.Back, l.View)
	}
	// The page, in Danish.
	l := p.newBrowser(t).authorize(t, bank)
	l.requireStep("password")
	form := fmt.Sprintf("username=%s&password=%s&csrf_token=%s", c.UserID, c.Password, l.csrf)
	r := l.b.do(t, http.MethodPost, "/login/"+l.View.Flow+"/password?lang=da", strings.NewReader(form),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
	if r.Status != http.StatusForbidden || errorCode(r) != "expired" || !strings.Contains(string(r.Body), "kan ikke fornyes på nettet") ||
		!strings.Contains(string(r.Body), "billedlegitimation") {
		t.Fatalf("expired page (da): %s", r)
	}

	var renewed citizenRecord
	if code := p.admin(t, http.MethodPost, "/admin/v1/citizens/"+c.UserID+"/renew", nil, &renewed); code != http.StatusOK {
		t.Fatalf("renew: %d", code)
	}
	if want := danishToday(t).AddDate(3, 0, 0).Format(time.DateOnly); renewed.ExpiresAt != want || renewed.Status != "active" {
		t.Fatalf("renewed: %+v, want active until %s", renewed, want)
	}
	p.newBrowser(t).login(t, bank, c)
	sso.login(t, bank, c, withParam("prompt", "login"))
}

// TestSelfServiceRenewalClearsYouthMarker: a NemID whose OCES was issued before the 18th
// birthday, in its last 60 days, logs in with notice renewal_due (one renewal_due event for
// its logins); renewed by the citizen with a key from the code card (issuance.RenewWithKey,
// which the self-service page calls), it expires 3 years from today and its OCES is reissued
// without the youth marker, which the next login's claims show; the key is used by then.
func TestSelfServiceRenewalClearsYouthMarker(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	ctx := t.Context()
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	today := danishToday(t)
	// 19 today, 16 on the issue day 3 years minus 30 days ago (7th digit 4: born in the 2000s).
	birth := today.AddDate(-19, 0, 0)
	cprNo := birth.Format("020106") + fmt.Sprintf("4%03d", time.Now().UnixNano()%1000)
	issued := today.AddDate(-3, 0, 30)
	c := p.issueNemID(t, cprNo, "Ung Jensen", map[string]any{"kind": "oces", "issued_at": issued.Format(time.DateOnly)})
	p.activate(t, bank, c)
	if rec := p.citizenRecord(t, c.UserID); !rec.YouthCert || rec.ExpiresAt != today.AddDate(0, 0, 30).Format(time.DateOnly) {
		t.Fatalf("as issued: %+v", rec)
	}

	b := p.newBrowser(t)
	l := b.authorize(t, bank)
	l.run(c)
	if !youth(t, "before renewal", l.mustExchange()) {
		t.Fatal("the OCES issued at 16 has no youth marker")
	}
	l = p.newBrowser(t).authorize(t, bank)
	if code, v := l.password(c, c.Password); code != http.StatusOK || v.Step != "codecard" {
		t.Fatalf("password: %d %+v", code, v)
	}
	if got := l.notice(); got != "renewal_due" {
		t.Fatalf("notice %q in the last 30 days, want renewal_due", got)
	}
	l.run(c)
	evs, err := p.Store.Events(ctx, c.UserID, 50)
	if err != nil {
		t.Fatal(err)
	}
	due := slices.DeleteFunc(evs, func(e store.Event) bool { return e.Type != "renewal_due" })
	if len(due) != 1 || due[0].Fields["expires_at"] != today.AddDate(0, 0, 30).Format(time.DateOnly) {
		t.Fatalf("renewal_due events after 3 logins in the window: %+v, want one", due)
	}

	// Self-service renewal: the card's pending key.
	is := p.Server.Issuer
	serial, number, err := is.RenewalKey(ctx, c.UserID)
	if err != nil || serial != c.Serial {
		t.Fatalf("RenewalKey: %s %s %v", serial, number, err)
	}
	renewed, err := is.RenewWithKey(ctx, c.UserID, serial, number, c.Keys[number])
	if err != nil {
		t.Fatalf("RenewWithKey: %v", err)
	}
	if renewed.YouthCert || renewed.ExpiresAt != today.AddDate(3, 0, 0).Format(time.DateOnly) || renewed.OCESIssuedAt != today.Format(time.DateOnly) {
		t.Fatalf("renewed: youth %v, expires %s, oces issued %s", renewed.YouthCert, renewed.ExpiresAt, renewed.OCESIssuedAt)
	}
	if rec := p.citizenRecord(t, c.UserID); rec.YouthCert || rec.ExpiresAt != renewed.ExpiresAt {
		t.Fatalf("operator's view after renewal: %+v", rec)
	}
	// The next login: no youth marker, and no renewal notice.
	l = p.newBrowser(t).authorize(t, bank)
	if code, v := l.password(c, c.Password); code != http.StatusOK || v.Step != "codecard" {
		t.Fatalf("password after renewal: %d %+v", code, v)
	}
	if got := l.notice(); got != "" {
		t.Fatalf("notice %q after renewal", got)
	}
	l.run(c)
	if youth(t, "after renewal", l.mustExchange()) {
		t.Fatal("the renewed OCES still carries the youth marker")
	}
	if unused, err := p.Store.KeyUnused(ctx, c.UserID, serial, number); err != nil || unused {
		t.Fatalf("the renewal's key is still unused: %v %v", unused, err)
	}
}

// TestExpiryEndsGrants: once a NemID's expiry date has passed, its grants end like a block's:
// a refresh answers invalid_grant, userinfo 401, the SSO session no longer answers, with no
// status ever written (the date decides). Renewal does not bring the old grant back.
func TestExpiryEndsGrants(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile", "offline_access"), "openid", "profile", "offline_access")
	c := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	p.activate(t, bank, c)
	b := p.newBrowser(t)
	tok := b.login(t, bank, c)
	if st := userinfoStatus(t, p, bank, tok.AccessToken); st != http.StatusOK {
		t.Fatalf("userinfo before the expiry: %d", st)
	}
	p.setExpiry(t, c.UserID, danishToday(t).AddDate(0, 0, -1))
	if st := userinfoStatus(t, p, bank, tok.AccessToken); st != http.StatusUnauthorized {
		t.Fatalf("userinfo after the expiry date: %d, want 401", st)
	}
	if l := b.authorize(t, bank, withParam("prompt", "none")); l.Back == nil || l.Back.Query().Get("error") != "login_required" {
		t.Fatalf("prompt=none after the expiry date: back %v, want login_required", l.Back)
	}
	if _, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, tok.RefreshToken, "", ""); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("refresh after the expiry date: %v, want invalid_grant", err)
	}
	if code, _ := p.adminCall(t, "/admin/v1/citizens/"+c.UserID+"/renew", nil); code != http.StatusOK {
		t.Fatalf("renew: %d", code)
	}
	// The refused refresh revoked the grant: renewal gives a new login, not the old grant.
	if _, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, tok.RefreshToken, "", ""); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("refresh of the revoked grant after renewal: %v, want invalid_grant", err)
	}
}
