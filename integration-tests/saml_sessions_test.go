package integrationtests

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	crewsaml "github.com/crewjam/saml"

	"github.com/nemidp/nemidp/idp/claims"
	idpsaml "github.com/nemidp/nemidp/idp/saml"
)

// samlRequest runs one SP-built request (mods change it) through the IdP in browser b and
// returns the request and where it ended: a step view (Login.View), or the form page.
func (sp *crewSP) request(t *testing.T, b *Browser, mods ...func(*crewsaml.AuthnRequest)) (*crewsaml.AuthnRequest, *Login) {
	t.Helper()
	req := sp.authnRequest(mods...)
	return req, b.samlLogin(t, sp.redirectURL(req, "rs-"+randHex(4)))
}

// TestSAMLResponseShape: the Response as OIOSAML 3.0 relying parties check it — signed, its
// assertion signed and encrypted (AES-256-GCM under RSA-OAEP); persistent NameID, pairwise
// per SP and the same at every login, one for all SPs registered with subject global;
// AudienceRestriction, bearer SubjectConfirmation (Recipient, InResponseTo, NotOnOrAfter),
// exactly one AuthnStatement (Substantial, SessionIndex) and one AttributeStatement with
// NameFormat uri. The form page is CSP-clean and posts to the ACS; its reload makes no
// second Response.
func TestSAMLResponseShape(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	c := p.issueCitizen(t, freshCPR(), "Ole Hansen")
	a, b2 := p.newCrewSP(t, spPolicy{}), p.newCrewSP(t, spPolicy{})
	g1, g2 := p.newCrewSP(t, spPolicy{Global: true}), p.newCrewSP(t, spPolicy{Global: true})

	b := p.newBrowser(t)
	req, l := a.request(t, b)
	f := l.samlRun(c)
	_, raw := f.response(t)
	for _, want := range []string{"EncryptedAssertion", "http://www.w3.org/2009/xmlenc11#aes256-gcm", "http://www.w3.org/2009/xmlenc11#rsa-oaep"} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("Response lacks %s", want)
		}
	}
	resp, _ := f.response(t)
	if resp.Signature == nil || resp.InResponseTo != req.ID || resp.Destination != f.Action {
		t.Errorf("Response: signed %v, InResponseTo %q (want %q), Destination %q", resp.Signature != nil, resp.InResponseTo, req.ID, resp.Destination)
	}
	csp := f.Page.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "form-action "+strings.TrimSuffix(a.srv.URL, "/")) || !strings.Contains(csp, "script-src 'self'") ||
		bytes.Contains(f.Page.Body, []byte("<script>")) || !bytes.Contains(f.Page.Body, []byte(`<script src="`+idpsaml.ScriptPath+`"`)) {
		t.Errorf("form page CSP %q / body %s", csp, f.Page.Body)
	}
	if js := b.get(t, idpsaml.ScriptPath); js.Status != http.StatusOK || !bytes.Contains(js.Body, []byte("submit()")) {
		t.Errorf("script: %s", js)
	}
	as, err := a.parse(f, req.ID)
	if err != nil {
		t.Fatalf("SP refuses the Response: %v", err)
	}
	if as.Signature == nil {
		t.Error("assertion not signed")
	}
	if len(as.AuthnStatements) != 1 || as.AuthnStatements[0].AuthnContext.AuthnContextClassRef == nil ||
		as.AuthnStatements[0].AuthnContext.AuthnContextClassRef.Value != idpsaml.LoASubstantial || as.AuthnStatements[0].SessionIndex == "" {
		t.Errorf("AuthnStatements %+v", as.AuthnStatements)
	}
	if len(as.AttributeStatements) != 1 {
		t.Fatalf("%d AttributeStatements", len(as.AttributeStatements))
	}
	for _, at := range as.AttributeStatements[0].Attributes {
		if at.NameFormat != claims.SAMLAttrNameFormat {
			t.Errorf("attribute %s NameFormat %q", at.Name, at.NameFormat)
		}
	}
	if as.Conditions == nil || len(as.Conditions.AudienceRestrictions) != 1 || as.Conditions.AudienceRestrictions[0].Audience.Value != a.Record.EntityID {
		t.Errorf("Conditions %+v", as.Conditions)
	}
	sc := as.Subject.SubjectConfirmations
	if len(sc) != 1 || sc[0].Method != "urn:oasis:names:tc:SAML:2.0:cm:bearer" || sc[0].SubjectConfirmationData.Recipient != f.Action ||
		sc[0].SubjectConfirmationData.InResponseTo != req.ID || sc[0].SubjectConfirmationData.NotOnOrAfter.IsZero() {
		t.Errorf("SubjectConfirmation %+v", sc)
	}
	if as.Subject.NameID.Format != string(crewsaml.PersistentNameIDFormat) {
		t.Errorf("NameID format %q", as.Subject.NameID.Format)
	}
	nameA := as.Subject.NameID.Value

	// An SP without an encryption certificate gets the signed assertion in the clear.
	plain := p.newCrewSP(t, spPolicy{NoEncryption: true})
	preq, pl := plain.request(t, b)
	pf := formOf(pl.Last)
	if pf == nil {
		t.Fatalf("SSO at a second SP: %v %v", pl.Steps, pl.Last)
	}
	if _, praw := pf.response(t); bytes.Contains(praw, []byte("EncryptedAssertion")) || !bytes.Contains(praw, []byte("<saml:Assertion")) {
		t.Errorf("an SP without an encryption key: %.400s", praw)
	}
	if pas, err := plain.parse(pf, preq.ID); err != nil || pas.Signature == nil {
		t.Errorf("plain assertion: %v (signed %v)", err, pas != nil && pas.Signature != nil)
	}

	// The reload of the done page answers no second Response.
	again := b.get(t, l.View.RedirectTo)
	if formOf(again) != nil || again.Status != http.StatusConflict || errorCode(again) != "saml_answered" {
		t.Fatalf("reload of /saml/done: %s", again)
	}

	// SSO: the next SPs are answered from the session, each with its own NameID; the same SP
	// again gets the same one; the global SPs share one.
	nameOf := func(sp *crewSP) string {
		t.Helper()
		req, l := sp.request(t, b)
		f := formOf(l.Last)
		if f == nil {
			t.Fatalf("SSO login at %s asked %v (%v)", sp.Record.EntityID, l.Steps, l.Last)
		}
		as, err := sp.parse(f, req.ID)
		if err != nil {
			t.Fatalf("SP refuses the Response: %v", err)
		}
		return as.Subject.NameID.Value
	}
	if again := nameOf(a); again != nameA {
		t.Errorf("NameID at the same SP changed: %s, %s", nameA, again)
	}
	nameB, nameG1, nameG2 := nameOf(b2), nameOf(g1), nameOf(g2)
	if nameB == nameA || nameG1 == nameA || nameG1 == nameB {
		t.Errorf("pairwise NameIDs not distinct: %s %s %s", nameA, nameB, nameG1)
	}
	if nameG1 != nameG2 {
		t.Errorf("global NameIDs differ: %s %s", nameG1, nameG2)
	}
}

// TestSAMLPassiveAndForce: IsPassive never shows a page — NoPassive without a session, the
// citizen's Response with one; ForceAuthn asks for the password again despite the session;
// ForceAuthn with IsPassive is NoPassive.
func TestSAMLPassiveAndForce(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	c := p.issueCitizen(t, freshCPR(), "Lise Holm")
	sp := p.newCrewSP(t, spPolicy{})
	yes := true
	passive := func(r *crewsaml.AuthnRequest) { r.IsPassive = &yes }
	force := func(r *crewsaml.AuthnRequest) { r.ForceAuthn = &yes }

	b := p.newBrowser(t)
	_, l := sp.request(t, b, passive)
	f := formOf(l.Last)
	if f == nil || len(l.Steps) != 1 || l.Steps[0] != "failed" {
		t.Fatalf("IsPassive without a session: steps %v, last %v", l.Steps, l.Last)
	}
	if top, second := f.status(t); top != crewsaml.StatusResponder || second != crewsaml.StatusNoPassive {
		t.Fatalf("IsPassive without a session: %s/%s", top, second)
	}

	first := sp.signIn(t, b, c) // now the browser has an SSO session
	req, l := sp.request(t, b, passive)
	if f := formOf(l.Last); f == nil {
		t.Fatalf("IsPassive with a session: %v %v", l.Steps, l.Last)
	} else if as, err := sp.parse(f, req.ID); err != nil || NameIDPrefix(as) != first.Subject {
		t.Fatalf("IsPassive with a session: %v", err)
	}

	_, l = sp.request(t, b, force)
	l.requireStep("password")
	if f := l.samlRun(c); f == nil {
		t.Fatal("no Response after the forced login")
	}

	_, l = sp.request(t, b, force, passive)
	if f := formOf(l.Last); f == nil {
		t.Fatalf("ForceAuthn with IsPassive showed %v", l.Steps)
	} else if _, second := f.status(t); second != crewsaml.StatusNoPassive {
		t.Fatalf("ForceAuthn with IsPassive: %s", second)
	}
}

// NameIDPrefix is the assertion's NameID value.
func NameIDPrefix(as *crewsaml.Assertion) string {
	if as == nil || as.Subject == nil || as.Subject.NameID == nil {
		return ""
	}
	return as.Subject.NameID.Value
}

// TestSAMLRequiresOCES: a bank-only NemID at an SP registered with requires_oces fails as at
// an OIDC client (oces_required), and the SP gets a Responder/RequestDenied Response without
// an assertion.
func TestSAMLRequiresOCES(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.issueNemID(t, freshCPR(), "Bo Bank", map[string]any{"kind": "bank"})
	sp := p.newCrewSP(t, spPolicy{RequiresOCES: true})
	b := p.newBrowser(t)
	_, l := sp.request(t, b)
	l.requireStep("password")
	bank.mu.Lock()
	if code, v := l.password(bank, bank.Password); code != http.StatusOK {
		t.Fatalf("password: %d %s", code, v.Error)
	}
	l.requireStep("codecard")
	code, v := l.post("codecard", map[string]string{"key": bank.Keys[l.View.KeyNumber]})
	if code == http.StatusOK && v.Step == "new_password" { // the first login: the OCES gate follows
		code, v = l.post("new-password", map[string]string{"password": goodPassword()})
	}
	bank.mu.Unlock()
	if code != http.StatusForbidden || v.Error == nil || v.Error.Code != "oces_required" || v.Step != "failed" || v.RedirectTo == "" {
		t.Fatalf("bank-only NemID at requires_oces: %d %+v", code, v)
	}
	l.follow(v.RedirectTo)
	f := formOf(l.Last)
	if f == nil {
		t.Fatalf("no Response: %v", l.Last)
	}
	if top, second := f.status(t); top != crewsaml.StatusResponder || second != crewsaml.StatusRequestDenied {
		t.Fatalf("status %s/%s", top, second)
	}
}

// TestSAMLGuardian: at an SP with allow_on_behalf_of the guardian chooses the ward; the
// guardian stays the subject (the NameID of their own login there, their names) and the
// ward is named in privilegesIntermediate: base64 OIO-BPP with the ward's CPR number as the
// PrivilegeGroup's scope. At an SP without allow_on_behalf_of nothing is offered.
func TestSAMLGuardian(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	guardian := p.issueCitizen(t, freshCPR(), "Mette Værge")
	ward := p.issueCitizen(t, freshCPR(), "Emil Barn")
	p.guardianship(t, guardian, ward, "full")
	sp := p.newCrewSP(t, spPolicy{OnBehalf: true})

	own := sp.signIn(t, p.newBrowser(t), guardian) // acts for self at act_as
	if len(own.Attributes[claims.SAMLPrivileges]) != 0 {
		t.Fatalf("privileges when acting for self: %v", own.Attributes)
	}

	b := p.newBrowser(t)
	req, l := sp.request(t, b)
	guardian.mu.Lock()
	l.password(guardian, guardian.Password)
	l.key(guardian)
	guardian.mu.Unlock()
	l.requireStep("act_as")
	ref := ""
	for _, w := range l.View.Wards {
		if w.Name == ward.Name {
			ref = w.Ref
		}
	}
	if ref == "" {
		t.Fatalf("ward not offered: %+v", l.View.Wards)
	}
	v := l.mustPost("act-as", map[string]string{"principal": ref})
	// The OIDC callback refuses a SAML flow (and leaves it to /saml/done).
	if r := b.get(t, "/authorize/callback?id="+v.Flow); r.Status != http.StatusBadRequest || errorCode(r) != "wrong_front_end" {
		t.Fatalf("OIDC callback of a SAML flow: %s", r)
	}
	l.follow(v.RedirectTo)
	f := formOf(l.Last)
	if f == nil {
		t.Fatalf("no form: %v", l.Last)
	}
	as, err := sp.parse(f, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	if NameIDPrefix(as) != own.Subject {
		t.Errorf("NameID acting for the ward %s, the guardian's own %s", NameIDPrefix(as), own.Subject)
	}
	attrs := map[string]string{}
	for _, at := range as.AttributeStatements[0].Attributes {
		attrs[at.Name] = at.Values[0].Value
	}
	if attrs[attrFullName] != guardian.Name {
		t.Errorf("fullName %q, want the guardian's", attrs[attrFullName])
	}
	bpp, err := base64.StdEncoding.DecodeString(attrs[claims.SAMLPrivileges])
	if err != nil {
		t.Fatalf("privilegesIntermediate %q: %v", attrs[claims.SAMLPrivileges], err)
	}
	for _, want := range []string{`xmlns:bpp="http://digst.dk/oiosaml/basic_privilege_profile"`, `<bpp:PrivilegeList`,
		`<PrivilegeGroup Scope="urn:dk:gov:saml:cprNumberIdentifier:` + ward.CPR + `">`, `<Privilege>urn:dk:gov:nemid:guardian:full</Privilege>`} {
		if !bytes.Contains(bpp, []byte(want)) {
			t.Errorf("BPP lacks %s: %s", want, bpp)
		}
	}
	if bytes.Contains(bpp, []byte(guardian.CPR)) {
		t.Errorf("BPP names the guardian's CPR number")
	}

	plain := p.newCrewSP(t, spPolicy{})
	_, l = plain.request(t, p.newBrowser(t))
	if f := l.samlRun(guardian); f == nil || strings.Contains(strings.Join(l.Steps, ","), "act_as") {
		t.Fatalf("act_as at an SP without allow_on_behalf_of: %v", l.Steps)
	}
}
