package integrationtests

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// citizenRecord is the operator's view of a NemID, as far as these tests read it.
type citizenRecord struct {
	UserID    string `json:"user_id"`
	Kind      string `json:"kind"`
	Status    string `json:"status"`
	IssuedAt  string `json:"issued_at"`
	ExpiresAt string `json:"expires_at"`
	PID       string `json:"pid"`
	YouthCert bool   `json:"youth_certificate"`
}

func (p *IdP) citizenRecord(t *testing.T, uid string) citizenRecord {
	t.Helper()
	var out citizenRecord
	if code := p.admin(t, http.MethodGet, "/admin/v1/citizens/"+uid, nil, &out); code != http.StatusOK {
		t.Fatalf("GET /admin/v1/citizens/%s: %d", uid, code)
	}
	return out
}

func (p *IdP) registerOCESClient(t *testing.T) Client {
	t.Helper()
	c := Client{ID: "gov-" + randHex(4), Secret: randHex(16), Scopes: []string{"openid", "profile"}}
	p.mustRegister(t, map[string]any{"client_id": c.ID, "name": "Borger.dk " + c.ID, "requires_oces": true,
		"redirect_uris": []string{redirectURI}, "secret": c.Secret, "scopes": c.Scopes})
	return c
}

var pidRE = regexp.MustCompile(`^9208-2002-2-[0-9]{12}$`)

// youthCPR is born 15 June 2008: 18 today, 15 when their NemID was issued on 1 June 2024.
const youthCPR = "1506084001"

func youth(t *testing.T, where string, tok *Tokens) bool {
	t.Helper()
	v, ok := tok.IDTokenClaims.Claims["dk.youth_certificate"].(bool)
	if !ok {
		t.Fatalf("%s: dk.youth_certificate missing or not a bool: %v", where, tok.IDTokenClaims.Claims)
	}
	return v
}

// TestYouthMarkerRenewal: an OCES issued before the 18th birthday carries dk.youth_certificate
// after 18, until renewal reissues it; the change shows at the next full login, not in a live
// SSO session (DESIGN.md §3, "renew, then log in again").
func TestYouthMarkerRenewal(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	c := p.issueNemID(t, youthCPR, "Ung Jensen", map[string]any{"kind": "oces", "issued_at": "2024-06-01"})
	p.activate(t, bank, c)

	rec := p.citizenRecord(t, c.UserID)
	if !rec.YouthCert || rec.Kind != "oces" || !pidRE.MatchString(rec.PID) || rec.IssuedAt != "2024-06-01" || rec.ExpiresAt != "2027-06-01" {
		t.Fatalf("record as issued: %+v", rec)
	}
	b := p.newBrowser(t)
	tok := b.login(t, bank, c)
	claims := tok.IDTokenClaims.Claims
	if !youth(t, "before renewal", tok) || claims["dk.age_under_18"] != false || claims["nemid.oces"] != true || claims["nemid.pid"] != rec.PID {
		t.Fatalf("before renewal: youth, age_under_18, oces, pid = %v %v %v %v", claims["dk.youth_certificate"],
			claims["dk.age_under_18"], claims["nemid.oces"], claims["nemid.pid"])
	}

	var renewed citizenRecord
	if code := p.admin(t, http.MethodPost, "/admin/v1/citizens/"+c.UserID+"/renew", nil, &renewed); code != http.StatusOK {
		t.Fatalf("renew: %d %+v", code, renewed)
	}
	today := time.Now().In(copenhagen(t))
	wantExp := today.AddDate(3, 0, 0).Format(time.DateOnly)
	if renewed.YouthCert || renewed.ExpiresAt != wantExp || renewed.PID != rec.PID || renewed.Status != "active" {
		t.Fatalf("renewed: %+v, want no youth marker, expires %s, same pid", renewed, wantExp)
	}
	if got := p.citizenRecord(t, c.UserID); got != renewed {
		t.Fatalf("GET after renew = %+v, renew answered %+v", got, renewed)
	}

	// The SSO session's login saw the old OCES: a re-login from it still says so.
	l := b.authorize(t, bank)
	if !slices.Equal(l.Steps, []string{"done"}) {
		t.Fatalf("SSO re-login showed steps %v", l.Steps)
	}
	if !youth(t, "SSO re-login after renewal", l.mustExchange()) {
		t.Fatalf("SSO re-login right after renewal lost the youth marker its session's login saw")
	}
	// A fresh login sees the renewed OCES: in the same browser with prompt=login, and in another.
	if youth(t, "prompt=login after renewal", b.login(t, bank, c, withParam("prompt", "login"))) {
		t.Fatalf("prompt=login after renewal still carries the youth marker")
	}
	if youth(t, "new browser after renewal", p.newBrowser(t).login(t, bank, c)) {
		t.Fatalf("a new browser after renewal still carries the youth marker")
	}
}

// TestRenewExpired: renewal makes an expired NemID active again; an unknown one is 404.
func TestRenewExpired(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	c := p.issueNemID(t, freshCPR(), "Gammel Jensen", map[string]any{"issued_at": "2020-01-01"})
	if err := p.Store.Redis().HSet(t.Context(), p.Prefix+"{c:"+c.UserID+"}", "status", "expired").Err(); err != nil {
		t.Fatal(err)
	}
	var renewed citizenRecord
	if code := p.admin(t, http.MethodPost, "/admin/v1/citizens/"+c.UserID+"/renew", nil, &renewed); code != http.StatusOK || renewed.Status != "active" {
		t.Fatalf("renew expired: %d %+v", code, renewed)
	}
	if code := p.admin(t, http.MethodPost, "/admin/v1/citizens/123456789/renew", nil, nil); code != http.StatusNotFound {
		t.Fatalf("renew unknown: %d, want 404", code)
	}
}

// TestBankOnlyAtBankClient: a bank-only NemID logs in at a client without requires_oces with
// nemid.oces=false and no nemid.pid.
func TestBankOnlyAtBankClient(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	netbank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	c := p.issueNemID(t, freshCPR(), "Bent Bank", map[string]any{"kind": "bank"})
	if rec := p.citizenRecord(t, c.UserID); rec.Kind != "bank" || rec.PID != "" || rec.YouthCert || rec.ExpiresAt == "" {
		t.Fatalf("bank-only record: %+v", rec)
	}
	tok := p.newBrowser(t).login(t, netbank, c)
	claims := tok.IDTokenClaims.Claims
	if claims["nemid.oces"] != false || claims["dk.youth_certificate"] != false {
		t.Fatalf("nemid.oces = %v, dk.youth_certificate = %v; want false", claims["nemid.oces"], claims["dk.youth_certificate"])
	}
	if pid, ok := claims["nemid.pid"]; ok {
		t.Fatalf("bank-only NemID got nemid.pid %v", pid)
	}
}

// TestOCESGate: a client registered with requires_oces refuses a bank-only NemID after the
// full authentication with oces_required (403, JSON and an HTML page that explains how to
// attach OCES, da/en), also when the browser has an SSO session; the operator attaches OCES
// (photo ID only, once) and the next login is accepted with the PID.
func TestOCESGate(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	gov := p.relyingParty(t, p.registerOCESClient(t), "openid", "profile")
	netbank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	c := p.issueNemID(t, freshCPR(), "Bent Bank", map[string]any{"kind": "bank"})
	p.activate(t, netbank, c)

	b := p.newBrowser(t)
	l := b.authorize(t, gov)
	l.requireStep("password")
	if code, v := l.password(c, c.Password); code != http.StatusOK || v.Step != "codecard" {
		t.Fatalf("password at an OCES client: %d %+v (the gate must wait for the key)", code, v)
	}
	code, v := l.post("codecard", map[string]string{"key": c.Keys[l.View.KeyNumber]})
	if code != http.StatusForbidden || v.Step != "failed" || v.Error == nil || v.Error.Code != "oces_required" || v.RedirectTo == "" {
		t.Fatalf("key at an OCES client: %d %+v %s, want 403 failed oces_required", code, v, v.Error)
	}
	// The JSON of the failed flow, and its HTML page in Danish and English.
	if r := b.get(t, "/login/"+v.Flow); r.Status != http.StatusForbidden || errorCode(r) != "oces_required" {
		t.Fatalf("GET failed flow (JSON): %s", r)
	}
	for _, tc := range []struct{ lang, want string }{
		{"da", "borgerservice"}, {"da", "netbank"}, {"da", "billedlegitimation"},
		{"en", "borgerservice"}, {"en", "netbank"}, {"en", "photo ID"},
	} {
		r := b.do(t, http.MethodGet, "/login/"+v.Flow+"?lang="+tc.lang, nil, map[string]string{"Accept": "text/html"})
		if r.Status != http.StatusForbidden || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") ||
			errorCode(r) != "oces_required" || !strings.Contains(string(r.Body), `id="oces-help"`) || !strings.Contains(string(r.Body), tc.want) {
			t.Fatalf("GET failed flow (HTML, %s): want 403 with the OCES help naming %q: %s", tc.lang, tc.want, r)
		}
	}
	l.follow(v.RedirectTo)
	if l.Back == nil || l.Back.Query().Get("error") != "access_denied" || !strings.Contains(l.Back.Query().Get("error_description"), "oces_required") {
		t.Fatalf("back at the relying party: %v", l.Back)
	}

	// A browser with a bank-only SSO session is not let through from it either.
	sso := p.newBrowser(t)
	sso.login(t, netbank, c)
	l = sso.authorize(t, gov)
	l.requireStep("password") // asked to log in, not completed from the session
	l.password(c, c.Password)
	if code, v := l.post("codecard", map[string]string{"key": c.Keys[l.View.KeyNumber]}); code != http.StatusForbidden || v.Error.Code != "oces_required" {
		t.Fatalf("bank-only SSO browser at an OCES client: %d %s", code, v.Error)
	}

	// Attaching OCES: a photo ID check only, once.
	oces := "/admin/v1/citizens/" + c.UserID + "/oces"
	var errOut struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if code := p.admin(t, http.MethodPost, oces, map[string]string{"id_check": "two_ids"}, &errOut); code != http.StatusBadRequest || !strings.Contains(errOut.Error.Message, "photo") {
		t.Fatalf("attach without photo ID: %d %+v, want 400 naming the photo ID", code, errOut)
	}
	var out struct {
		PID string `json:"pid"`
	}
	if code := p.admin(t, http.MethodPost, oces, map[string]string{"id_check": "photo"}, &out); code != http.StatusOK || !pidRE.MatchString(out.PID) {
		t.Fatalf("attach: %d %+v", code, out)
	}
	if rec := p.citizenRecord(t, c.UserID); rec.Kind != "oces" || rec.PID != out.PID || rec.YouthCert {
		t.Fatalf("after attach: %+v", rec)
	}
	if code := p.admin(t, http.MethodPost, oces, map[string]string{"id_check": "photo"}, nil); code != http.StatusConflict {
		t.Fatalf("attach again: %d, want 409", code)
	}

	// The next login is accepted, with the PID.
	tok := p.newBrowser(t).login(t, gov, c)
	if claims := tok.IDTokenClaims.Claims; claims["nemid.oces"] != true || claims["nemid.pid"] != out.PID {
		t.Fatalf("after attach: nemid.oces %v, nemid.pid %v; want true, %s", claims["nemid.oces"], claims["nemid.pid"], out.PID)
	}
	// The bank-only SSO session still is not enough; a full login in that browser is.
	l = sso.authorize(t, gov)
	l.requireStep("password")
	l.run(c)
	if tok := l.mustExchange(); tok.IDTokenClaims.Claims["nemid.pid"] != out.PID {
		t.Fatalf("full login after attach in the bank-only SSO browser: pid %v", tok.IDTokenClaims.Claims["nemid.pid"])
	}
}

func copenhagen(t *testing.T) *time.Location {
	t.Helper()
	l, err := time.LoadLocation("Europe/Copenhagen")
	if err != nil {
		t.Fatal(err)
	}
	return l
}
