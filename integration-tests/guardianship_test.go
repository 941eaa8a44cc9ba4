package integrationtests

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// guardianship registers a guardianship through the operator API and returns its id.
func (p *IdP) guardianship(t *testing.T, guardian, ward *Citizen, kind string) string {
	t.Helper()
	var out struct {
		ID   string `json:"id"`
		Kind string `json:"kind"`
	}
	body := map[string]any{"guardian": guardian.UserID, "ward": ward.UserID, "kind": kind}
	if code := p.admin(t, http.MethodPost, "/admin/v1/guardianships", body, &out); code != http.StatusCreated || out.ID == "" || out.Kind != kind {
		t.Fatalf("POST /admin/v1/guardianships: %d %+v", code, out)
	}
	return out.ID
}

// loginActingAs logs c in at r, answering the act_as step with the ward named wardName (or
// "self" when wardName is empty), and returns the tokens.
func (b *Browser) loginActingAs(t *testing.T, r *RP, c *Citizen, wardName string) *Tokens {
	t.Helper()
	l := b.authorize(t, r)
	if code, v := l.password(c, c.Password); code != http.StatusOK {
		t.Fatalf("password: %d %s", code, v.Error)
	}
	l.key(c)
	l.requireStep("act_as")
	principal := "self"
	for _, w := range l.View.Wards {
		if strings.Trim(w.Ref, "0123456789-") == "" {
			t.Fatalf("ward ref %q has the shape of a user id or CPR number", w.Ref)
		}
		if w.Name == wardName {
			principal = w.Ref
		}
	}
	if wardName != "" && principal == "self" {
		t.Fatalf("ward %q not offered: %+v", wardName, l.View.Wards)
	}
	l.mustPost("act-as", map[string]string{"principal": principal})
	l.finish()
	return l.mustExchange()
}

// TestGuardianActsForSelfOrWard: at a client with allow_on_behalf_of a guardian chooses.
// As self the tokens are the guardian's own (no act). For the ward, sub is the ward's
// pairwise sub, the names and birth date are the ward's, act names the guardian by their own
// pairwise sub and name, and dk.guardianship the kind — in the ID token and at userinfo. The
// SSO session stays the guardian's: a later login at another client is the guardian's own.
// The operator API refuses a guardianship of oneself, of an unknown NemID, of another kind.
func TestGuardianActsForSelfOrWard(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	kommune := p.relyingParty(t, p.registerOnBehalfClient(t, "openid", "profile"), "openid", "profile")
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	guardian := p.issueCitizen(t, freshCPR(), "Grete Værge")
	ward := p.issueCitizen(t, karenCPR, "Karen Jensen")
	p.activate(t, bank, guardian)
	p.activate(t, bank, ward)
	for name, body := range map[string]map[string]any{
		"self":         {"guardian": guardian.UserID, "ward": guardian.UserID, "kind": "full"},
		"unknown ward": {"guardian": guardian.UserID, "ward": "999999999", "kind": "full"},
		"kind":         {"guardian": guardian.UserID, "ward": ward.UserID, "kind": "total"},
		"date":         {"guardian": guardian.UserID, "ward": ward.UserID, "kind": "full", "valid_from": "1.1.2026"},
		"range":        {"guardian": guardian.UserID, "ward": ward.UserID, "kind": "full", "valid_from": "2026-02-01", "valid_to": "2026-01-01"},
	} {
		if code := p.admin(t, http.MethodPost, "/admin/v1/guardianships", body, nil); code != http.StatusBadRequest {
			t.Errorf("guardianship (%s): %d, want 400", name, code)
		}
	}
	p.guardianship(t, guardian, ward, "full")
	if code := p.admin(t, http.MethodPost, "/admin/v1/guardianships",
		map[string]any{"guardian": guardian.UserID, "ward": ward.UserID, "kind": "partial"}, nil); code != http.StatusConflict {
		t.Errorf("a second current guardianship of the same pair: %d, want 409", code)
	}
	wardSelf := p.newBrowser(t).login(t, kommune, ward) // the ward's own sub at the kommune (no wards: no step)

	self := p.newBrowser(t).loginActingAs(t, kommune, guardian, "")
	if self.IDTokenClaims.Actor != nil || self.IDTokenClaims.Claims["dk.guardianship"] != nil || self.IDTokenClaims.Name != "Grete Værge" {
		t.Fatalf("self: name %q act %+v guardianship %v; want the guardian's own token", self.IDTokenClaims.Name,
			self.IDTokenClaims.Actor, self.IDTokenClaims.Claims["dk.guardianship"])
	}

	b := p.newBrowser(t)
	tok := b.loginActingAs(t, kommune, guardian, "Karen Jensen")
	idt := tok.IDTokenClaims
	if idt.Subject != wardSelf.IDTokenClaims.Subject || idt.Subject == self.IDTokenClaims.Subject {
		t.Errorf("sub = %q, want the ward's pairwise sub %q", idt.Subject, wardSelf.IDTokenClaims.Subject)
	}
	if idt.Name != "Karen Jensen" || idt.Birthdate != "1990-06-15" {
		t.Errorf("name %q birthdate %q, want the ward's", idt.Name, idt.Birthdate)
	}
	if idt.Actor == nil || idt.Actor.Subject != self.IDTokenClaims.Subject || idt.Actor.Claims["name"] != "Grete Værge" {
		t.Errorf("act = %+v, want the guardian's pairwise sub %q and name", idt.Actor, self.IDTokenClaims.Subject)
	}
	if idt.Claims["dk.guardianship"] != "full" {
		t.Errorf("dk.guardianship = %v, want full", idt.Claims["dk.guardianship"])
	}
	ui, err := rp.Userinfo[*oidc.UserInfo](t.Context(), tok.AccessToken, "Bearer", idt.Subject, kommune)
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	act, _ := ui.Claims["act"].(map[string]any)
	if ui.Subject != idt.Subject || ui.Name != "Karen Jensen" || act["sub"] != self.IDTokenClaims.Subject || ui.Claims["dk.guardianship"] != "full" {
		t.Errorf("userinfo: sub %q name %q act %v guardianship %v", ui.Subject, ui.Name, act, ui.Claims["dk.guardianship"])
	}

	// The browser's SSO session is the guardian's: at the bank no step, the guardian's own token.
	l := b.authorize(t, bank) // straight back: no step
	own := l.mustExchange()
	if own.IDTokenClaims.Name != "Grete Værge" || own.IDTokenClaims.Actor != nil {
		t.Errorf("SSO login at another client: name %q act %+v, want the guardian's own", own.IDTokenClaims.Name, own.IDTokenClaims.Actor)
	}
}

// TestEndedGuardianship: once the operator ends a guardianship, a refresh of the ward's grant
// fails (invalid_grant) and revokes it, userinfo refuses its access token, and the next login
// no longer offers the ward (no act_as step).
func TestEndedGuardianship(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	kommune := p.relyingParty(t, p.registerOnBehalfClient(t, "openid", "profile", "offline_access"), "openid", "profile", "offline_access")
	guardian := p.issueCitizen(t, freshCPR(), "Grete Værge")
	ward := p.issueCitizen(t, freshCPR(), "Mads Myndling")
	p.activate(t, kommune, guardian)
	id := p.guardianship(t, guardian, ward, "partial")

	tok := p.newBrowser(t).loginActingAs(t, kommune, guardian, "Mads Myndling")
	if tok.IDTokenClaims.Claims["dk.guardianship"] != "partial" || tok.RefreshToken == "" {
		t.Fatalf("dk.guardianship %v, refresh token %q", tok.IDTokenClaims.Claims["dk.guardianship"], tok.RefreshToken)
	}
	ref, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), kommune, tok.RefreshToken, "", "")
	if err != nil {
		t.Fatalf("refresh while the guardianship holds: %v", err)
	}

	var ended struct {
		EndedAt string `json:"ended_at"`
	}
	if code := p.admin(t, http.MethodDelete, "/admin/v1/guardianships/"+id, nil, &ended); code != http.StatusOK || ended.EndedAt == "" {
		t.Fatalf("DELETE /admin/v1/guardianships/%s: %d %+v", id, code, ended)
	}
	if _, err := rp.Userinfo[*oidc.UserInfo](t.Context(), ref.AccessToken, "Bearer", tok.IDTokenClaims.Subject, kommune); err == nil {
		t.Error("userinfo answers for an ended guardianship")
	}
	if _, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), kommune, ref.RefreshToken, "", ""); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("refresh after the guardianship ended: %v, want invalid_grant", err)
	}

	l := p.newBrowser(t).authorize(t, kommune)
	l.run(guardian)
	if slices.Contains(l.Steps, "act_as") {
		t.Fatalf("steps %v: an ended guardianship is still offered", l.Steps)
	}
	if again := l.mustExchange(); again.IDTokenClaims.Actor != nil {
		t.Errorf("login after the end acts for someone: %+v", again.IDTokenClaims.Actor)
	}
}

// TestNoActAsWithoutAllowOnBehalfOf: at a client registered without allow_on_behalf_of a
// guardian with a current ward gets no act_as step and their own token.
func TestNoActAsWithoutAllowOnBehalfOf(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	guardian := p.issueCitizen(t, freshCPR(), "Grete Værge")
	ward := p.issueCitizen(t, freshCPR(), "Mads Myndling")
	p.activate(t, bank, guardian)
	p.guardianship(t, guardian, ward, "full")
	l := p.newBrowser(t).authorize(t, bank)
	l.run(guardian)
	if slices.Contains(l.Steps, "act_as") || len(l.View.Wards) > 0 {
		t.Fatalf("steps %v wards %v: act_as at a client without allow_on_behalf_of", l.Steps, l.View.Wards)
	}
	tok := l.mustExchange()
	if tok.IDTokenClaims.Actor != nil || tok.IDTokenClaims.Name != "Grete Værge" {
		t.Errorf("name %q act %+v, want the guardian's own token", tok.IDTokenClaims.Name, tok.IDTokenClaims.Actor)
	}
}

// TestWardGrantNamesNoOneWithoutProfile and stands on the guardian's NemID: at a client
// registered for an age check only (openid age), a guardian acting for a ward gets the ward's
// age claims and act.sub, but not the guardian's name; and a ward whose own NemID has lapsed
// (expired) can still be acted for.
func TestWardGrantNamesNoOneWithoutProfile(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	shop := p.relyingParty(t, p.registerOnBehalfClient(t, "openid", "age"), "openid", "age")
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	guardian := p.issueCitizen(t, freshCPR(), "Grete Værge")
	ward := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	p.activate(t, bank, guardian)
	p.guardianship(t, guardian, ward, "full")
	if err := p.Store.Redis().HSet(t.Context(), p.Prefix+"{c:"+ward.UserID+"}", "status", "expired").Err(); err != nil {
		t.Fatal(err)
	}
	tok := p.newBrowser(t).loginActingAs(t, shop, guardian, "Karen Jensen")
	raw := tok.IDTokenClaims.Claims
	act, _ := raw["act"].(map[string]any)
	if act == nil || act["sub"] == nil || act["sub"] == tok.IDTokenClaims.Subject {
		t.Fatalf("act = %v (sub %s), want the guardian's own sub", raw["act"], tok.IDTokenClaims.Subject)
	}
	if _, named := act["name"]; named {
		t.Fatalf("act names the guardian without scope profile: %v", act)
	}
	for _, k := range []string{"name", "given_name", "family_name", "birthdate", "dk.cpr"} {
		if _, ok := raw[k]; ok {
			t.Errorf("claim %s released with scopes openid age", k)
		}
	}
	if _, ok := raw["age"]; !ok || raw["dk.guardianship"] != "full" {
		t.Fatalf("the ward's age check: age %v, dk.guardianship %v", raw["age"], raw["dk.guardianship"])
	}
}

// TestWardCertificateIsASnapshot: a ward's certificate claims are what they were when the
// guardian chose the ward, kept by the grant's refreshes (as a login keeps its own); OCES
// attached to the ward meanwhile shows at the next login for the ward.
func TestWardCertificateIsASnapshot(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	kommune := p.relyingParty(t, p.registerOnBehalfClient(t, "openid", "profile", "offline_access"), "openid", "profile", "offline_access")
	guardian := p.issueCitizen(t, freshCPR(), "Grete Værge")
	ward := p.issueNemID(t, freshCPR(), "Mads Myndling", map[string]any{"kind": "bank"})
	p.activate(t, kommune, guardian)
	p.guardianship(t, guardian, ward, "full")

	tok := p.newBrowser(t).loginActingAs(t, kommune, guardian, "Mads Myndling")
	if tok.IDTokenClaims.Claims["nemid.oces"] != false {
		t.Fatalf("a bank-only ward: nemid.oces %v", tok.IDTokenClaims.Claims["nemid.oces"])
	}
	if code := p.admin(t, http.MethodPost, "/admin/v1/citizens/"+ward.UserID+"/oces", map[string]any{"id_check": "photo"}, nil); code != http.StatusOK {
		t.Fatalf("attach OCES to the ward: %d", code)
	}
	ref, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), kommune, tok.RefreshToken, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if ref.IDTokenClaims.Claims["nemid.oces"] != false || ref.IDTokenClaims.Claims["nemid.pid"] != nil {
		t.Fatalf("a refresh after OCES was attached: nemid.oces %v, pid %v; want the snapshot (false, none)",
			ref.IDTokenClaims.Claims["nemid.oces"], ref.IDTokenClaims.Claims["nemid.pid"])
	}
	fresh := p.newBrowser(t).loginActingAs(t, kommune, guardian, "Mads Myndling")
	if fresh.IDTokenClaims.Claims["nemid.oces"] != true || fresh.IDTokenClaims.Claims["nemid.pid"] == nil {
		t.Fatalf("the next login for the ward: nemid.oces %v, pid %v", fresh.IDTokenClaims.Claims["nemid.oces"], fresh.IDTokenClaims.Claims["nemid.pid"])
	}
}
