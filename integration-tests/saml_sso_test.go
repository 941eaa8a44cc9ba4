package integrationtests

import (
	"bytes"
	"compress/flate"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	crewsaml "github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"

	idpsaml "github.com/nemidp/nemidp/idp/saml"
	"github.com/nemidp/nemidp/idp/store"
)

// ---- SSO across protocols (issue 16, point 4) ----

// TestSSOAcrossProtocols: one SSO session for OIDC and SAML. Logged in through an OIDC
// client, a SAML SP is answered from the session (no password page) for the same citizen and
// session (its SessionIndex is the one of the ID token's sid); logged in at a SAML SP, an OIDC
// prompt=none gets a code. ForceAuthn after an OIDC login and prompt=login after a SAML login
// still ask for the password.
func TestSSOAcrossProtocols(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	sp := p.newCrewSP(t, spPolicy{})
	yes := true
	force := func(r *crewsaml.AuthnRequest) { r.ForceAuthn = &yes }

	// sessionIndexOf answers an AuthnRequest from b's session, without a page.
	fromSession := func(t *testing.T, b *Browser, mods ...func(*crewsaml.AuthnRequest)) *crewsaml.Assertion {
		t.Helper()
		req, l := sp.request(t, b, mods...)
		f := formOf(l.Last)
		if f == nil || strings.Contains(strings.Join(l.Steps, ","), "password") {
			t.Fatalf("SAML login not answered from the session: steps %v, last %v", l.Steps, l.Last)
		}
		as, err := sp.parse(f, req.ID)
		if err != nil {
			t.Fatalf("SP refuses the Response: %v", err)
		}
		return as
	}
	fullName := func(as *crewsaml.Assertion) string {
		for _, st := range as.AttributeStatements {
			for _, a := range st.Attributes {
				if a.Name == attrFullName && len(a.Values) > 0 {
					return a.Values[0].Value
				}
			}
		}
		return ""
	}

	t.Run("OIDC first, then SAML from the session", func(t *testing.T) {
		t.Parallel()
		c := p.issueCitizen(t, freshCPR(), "Ida Olsen")
		b := p.newBrowser(t)
		tok := b.login(t, bank, c)
		as := fromSession(t, b)
		if fullName(as) != c.Name {
			t.Errorf("SAML fullName %q, want the OIDC login's citizen %q", fullName(as), c.Name)
		}
		if got, want := as.AuthnStatements[0].SessionIndex, idpsaml.SessionIndex(tok.IDTokenClaims.SessionID, sp.Record.EntityID); got != want || got == "" {
			t.Errorf("SessionIndex %q, want the one of the ID token's sid (%q)", got, want)
		}
		// ForceAuthn still asks.
		_, l := sp.request(t, b, force)
		l.requireStep("password")
	})

	t.Run("SAML first, then OIDC prompt=none gets a code", func(t *testing.T) {
		t.Parallel()
		c := p.issueCitizen(t, freshCPR(), "Jens Lund")
		b := p.newBrowser(t)
		req, l := sp.request(t, b)
		as, err := sp.parse(l.samlRun(c), req.ID)
		if err != nil {
			t.Fatal(err)
		}
		l2 := b.authorize(t, bank, withParam("prompt", "none"))
		tok := l2.mustExchange()
		if len(l2.Steps) != 0 && l2.Steps[0] != "done" {
			t.Errorf("prompt=none showed steps %v", l2.Steps)
		}
		if want := idpsaml.SessionIndex(tok.IDTokenClaims.SessionID, sp.Record.EntityID); as.AuthnStatements[0].SessionIndex != want {
			t.Errorf("ID token sid is not the SAML login's session (SessionIndex %q, want %q)", as.AuthnStatements[0].SessionIndex, want)
		}
		if fullName(as) != c.Name {
			t.Errorf("fullName %q", fullName(as))
		}
		// prompt=login still asks.
		l3 := b.authorize(t, bank, withParam("prompt", "login"))
		l3.requireStep("password")
	})
}

// ---- single logout (issue 16, point 5) ----

// sloSP is a samlsp SP with SingleLogoutService endpoints that records the LogoutRequests it
// is sent (and answers them with its middleware, which checks the IdP's signature).
type sloSP struct {
	*crewSP
	key      *rsa.PrivateKey
	cert     *x509.Certificate
	mu       sync.Mutex
	received []receivedLogout
}

// receivedLogout is a LogoutRequest as the SP received it.
type receivedLogout struct {
	Request crewsaml.LogoutRequest
	Signed  bool // a query signature (Redirect) or an enveloped one (POST)
}

// sloOpts: the SP's SLO bindings (the first is the one it answers with), and whether it is
// registered, and with its SLO endpoints.
type sloOpts struct {
	Bindings                      []string
	Unregistered, NoSLO, Unsigned bool
}

// newSLOSP starts an SP whose metadata lists SLO with bindings (the first is where the IdP
// sends its LogoutRequests and the SP its LogoutResponses) and registers it.
func (p *IdP) newSLOSP(t *testing.T, bindings ...string) *sloSP {
	t.Helper()
	return p.newSLOSPWith(t, sloOpts{Bindings: bindings})
}

func (p *IdP) newSLOSPWith(t *testing.T, o sloOpts) *sloSP {
	t.Helper()
	bindings := o.Bindings
	if len(bindings) == 0 {
		bindings = []string{crewsaml.HTTPRedirectBinding}
	}
	s := &sloSP{crewSP: &crewSP{t: t, idp: p}}
	var handler http.Handler
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/saml/slo" {
			s.record(r)
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	key, cert := spKeyPair(t)
	s.key, s.cert = key, cert
	u, _ := url.Parse(s.srv.URL)
	md := p.idpMetadata(t)
	var err error
	s.mw, err = samlsp.New(samlsp.Options{URL: *u, Key: key, Certificate: cert, IDPMetadata: md,
		SignRequest: true, SignLogout: true, LogoutBindings: bindings, LogoutBinding: bindings[0],
		CookieName: "sp" + randHex(4)})
	if err != nil {
		t.Fatal(err)
	}
	s.mw.ServiceProvider.AuthnNameIDFormat = crewsaml.PersistentNameIDFormat
	s.mw.OnError = spRefused
	mux := http.NewServeMux()
	mux.Handle("/saml/", s.mw)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "sp home") })
	handler = mux
	raw, err := xml.Marshal(s.mw.ServiceProvider.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := idpsaml.ParseMetadata(raw)
	if err != nil {
		t.Fatalf("ParseMetadata: %v", err)
	}
	rec.Name, rec.CreatedAt = "SLO SP "+randHex(3), time.Now().UTC()
	s.Record = rec
	if o.Unregistered {
		return s
	}
	if o.NoSLO {
		stripSLO(t, rec)
	}
	rec.UnsignedRequests = o.Unsigned
	if err := p.Store.SaveServiceProvider(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	return s
}

func (p *IdP) idpMetadata(t *testing.T) *crewsaml.EntityDescriptor {
	t.Helper()
	resp, err := http.Get(p.Issuer + idpsaml.MetadataPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	md, err := samlsp.ParseMetadata(raw)
	if err != nil {
		t.Fatalf("IdP metadata: %v", err)
	}
	return md
}

// record keeps a LogoutRequest the SP receives (before its middleware answers it).
func (s *sloSP) record(r *http.Request) {
	var raw []byte
	signed := false
	if v := r.URL.Query().Get("SAMLRequest"); v != "" {
		z, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return
		}
		raw, _ = io.ReadAll(flate.NewReader(bytes.NewReader(z)))
		signed = r.URL.Query().Get("Signature") != "" && r.URL.Query().Get("SigAlg") != ""
	} else if r.Method == http.MethodPost {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		if form.Get("SAMLRequest") == "" {
			return
		}
		raw, _ = base64.StdEncoding.DecodeString(form.Get("SAMLRequest"))
		signed = bytes.Contains(raw, []byte("SignatureValue"))
	} else {
		return
	}
	var lr crewsaml.LogoutRequest
	if xml.Unmarshal(raw, &lr) != nil {
		return
	}
	s.mu.Lock()
	s.received = append(s.received, receivedLogout{Request: lr, Signed: signed})
	s.mu.Unlock()
}

func (s *sloSP) logouts() []receivedLogout {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]receivedLogout(nil), s.received...)
}

// samlLogin logs c in at the SP (a password login, or from b's session) and returns the
// assertion's NameID and SessionIndex.
func (s *sloSP) login(t *testing.T, b *Browser, c *Citizen) (nameID, sessionIndex string) {
	t.Helper()
	req, l := s.request(t, b)
	f := formOf(l.Last)
	if f == nil {
		f = l.samlRun(c)
	}
	as, err := s.parse(f, req.ID)
	if err != nil {
		t.Fatalf("SP refuses the Response: %v", err)
	}
	if len(as.AuthnStatements) != 1 {
		t.Fatalf("AuthnStatements %+v", as.AuthnStatements)
	}
	return NameIDPrefix(as), as.AuthnStatements[0].SessionIndex
}

// logoutURL is the SP's signed (unless unsigned) HTTP-Redirect LogoutRequest for nameID and
// sessionIndex, with its ID.
func (s *sloSP) logoutURL(t *testing.T, nameID, sessionIndex string, unsigned bool, mods ...func(*crewsaml.LogoutRequest)) (string, string) {
	t.Helper()
	return logoutURLBy(t, &s.mw.ServiceProvider, s.idp, nameID, sessionIndex, unsigned, mods...)
}

// logoutURLBy is logoutURL made by sp.
func logoutURLBy(t *testing.T, sp *crewsaml.ServiceProvider, p *IdP, nameID, sessionIndex string, unsigned bool, mods ...func(*crewsaml.LogoutRequest)) (string, string) {
	t.Helper()
	lr, err := sp.MakeLogoutRequest(p.Issuer+idpsaml.SLOPath, nameID, crewsaml.WithSessionIndex(sessionIndex))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		m(lr)
	}
	if unsigned {
		return lr.Redirect("rs-" + randHex(3)).String(), lr.ID
	}
	u, err := sp.RedirectLogoutRequestURL(lr, "rs-"+randHex(3))
	if err != nil {
		t.Fatal(err)
	}
	return u.String(), lr.ID
}

var (
	anyFormRe  = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	anyInputRe = regexp.MustCompile(`<input type="hidden" name="([A-Za-z]+)" value="([^"]*)"`)
)

// sloChain follows a logout from u through redirects and auto-posting forms (the IdP's and
// the SPs') until the browser is sent to stop (the initiating SP's SLO endpoint with its
// LogoutResponse: that request is not sent, its URL or form is returned), or an answer that
// is neither (an error page: returned as last).
func (b *Browser) sloChain(t *testing.T, u, stop string) (at string, form url.Values, last *Resp) {
	t.Helper()
	method, body := http.MethodGet, url.Values(nil)
	for range 20 {
		if strings.HasPrefix(u, stop) {
			return u, body, nil
		}
		var r *Resp
		if method == http.MethodGet {
			r = b.do(t, method, u, nil, map[string]string{"Accept": "text/html"})
		} else {
			r = b.do(t, method, u, strings.NewReader(body.Encode()), map[string]string{
				"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
		}
		if r.Status/100 == 3 {
			u, method, body = r.Location(u), http.MethodGet, nil
			continue
		}
		m := anyFormRe.FindSubmatch(r.Body)
		if r.Status != http.StatusOK || m == nil {
			return u, nil, r
		}
		if csp := r.Header.Get("Content-Security-Policy"); strings.HasPrefix(u, b.idp.Issuer) && (bytes.Contains(r.Body, []byte("<script>")) || !strings.Contains(csp, "script-src 'self'")) {
			t.Errorf("form page at %s has an inline script or no strict CSP (%q)", u, csp)
		}
		next := html.UnescapeString(string(m[1]))
		body = url.Values{}
		for _, in := range anyInputRe.FindAllSubmatch(r.Body, -1) {
			body.Set(string(in[1]), html.UnescapeString(string(in[2])))
		}
		base, _ := url.Parse(u)
		nu, err := base.Parse(next)
		if err != nil {
			t.Fatalf("form action %q: %v", next, err)
		}
		u, method = nu.String(), http.MethodPost
	}
	t.Fatalf("logout chain does not end")
	return "", nil, nil
}

// logoutResponse parses and checks (signature by the IdP, InResponseTo requestID) the
// LogoutResponse the chain ended with at the SP.
func (s *sloSP) logoutResponse(t *testing.T, at string, form url.Values, requestID string) *crewsaml.LogoutResponse {
	t.Helper()
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(http.MethodPost, at, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(http.MethodGet, at, nil)
	}
	resp, err := s.mw.ServiceProvider.ParseLogoutResponse(r, []string{requestID})
	if err != nil {
		var ire *crewsaml.InvalidResponseError
		if errors.As(err, &ire) {
			err = errors.Join(err, ire.PrivateErr)
		}
		t.Fatalf("SP refuses the LogoutResponse: %v", err)
	}
	return resp
}

func statusOf(resp *crewsaml.LogoutResponse) (string, string) {
	second := ""
	if resp.Status.StatusCode.StatusCode != nil {
		second = resp.Status.StatusCode.StatusCode.Value
	}
	return resp.Status.StatusCode.Value, second
}

// TestSAMLSingleLogout: a citizen logs in at SP1 and by SSO at SP2 (its SLO endpoint takes
// HTTP-POST only) and at an OIDC client. SP1's signed LogoutRequest ends the shared session:
// SP2 is sent a LogoutRequest signed by the IdP for its own NameID and SessionIndex and
// answers it; SP1 gets a signed Success LogoutResponse in response to its request. Then the
// OIDC client asks for the password again and an IsPassive AuthnRequest gets NoPassive.
func TestSAMLSingleLogout(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	sp1 := p.newSLOSP(t, crewsaml.HTTPRedirectBinding, crewsaml.HTTPPostBinding)
	sp2 := p.newSLOSP(t, crewsaml.HTTPPostBinding)
	c := p.issueCitizen(t, freshCPR(), "Signe Bak")
	b := p.newBrowser(t)

	name1, idx1 := sp1.login(t, b, c)
	name2, idx2 := sp2.login(t, b, c)
	if name1 == name2 || idx1 == idx2 || idx2 == "" {
		t.Fatalf("NameIDs %s %s, SessionIndexes %s %s", name1, name2, idx1, idx2)
	}
	tok := b.login(t, bank, c) // from the session
	if got := idpsaml.SessionIndex(tok.IDTokenClaims.SessionID, sp1.Record.EntityID); got != idx1 {
		t.Fatalf("the OIDC login is not in the SAML session")
	}
	parts, err := p.Store.SessionParticipants(t.Context(), tok.IDTokenClaims.SessionID)
	kinds := map[string]bool{}
	for _, pt := range parts {
		kinds[pt.Kind+" "+pt.ID] = true
	}
	if err != nil || !kinds["client saml/"+sp1.Record.EntityID] || !kinds["client saml/"+sp2.Record.EntityID] || !kinds["client "+bank.Client.ID] {
		t.Fatalf("participants %+v, %v", parts, err)
	}

	u, reqID := sp1.logoutURL(t, name1, idx1, false)
	at, form, last := b.sloChain(t, u, sp1.srv.URL+"/saml/slo")
	if last != nil {
		t.Fatalf("logout chain ended at %s: %s", at, last)
	}
	if q := mustURL(t, at).Query(); q.Get("Signature") == "" || q.Get("SigAlg") != "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" {
		t.Errorf("LogoutResponse to SP1 not signed with rsa-sha256: %s", at)
	}
	resp := sp1.logoutResponse(t, at, form, reqID)
	if top, second := statusOf(resp); top != crewsaml.StatusSuccess || second != "" {
		t.Errorf("LogoutResponse status %s/%s, want Success", top, second)
	}
	if resp.InResponseTo != reqID || resp.Issuer == nil || resp.Issuer.Value != p.Issuer+idpsaml.MetadataPath {
		t.Errorf("LogoutResponse InResponseTo %q issuer %+v", resp.InResponseTo, resp.Issuer)
	}
	got := sp2.logouts()
	if len(got) != 1 {
		t.Fatalf("SP2 received %d LogoutRequests", len(got))
	}
	lr := got[0].Request
	if !got[0].Signed || lr.NameID == nil || lr.NameID.Value != name2 || lr.SessionIndex == nil || lr.SessionIndex.Value != idx2 ||
		lr.Issuer == nil || lr.Issuer.Value != p.Issuer+idpsaml.MetadataPath {
		t.Errorf("SP2's LogoutRequest: signed %v, %+v", got[0].Signed, lr)
	}
	if n := len(sp1.logouts()); n != 0 {
		t.Errorf("the initiating SP was sent %d LogoutRequests", n)
	}
	if parts, _ := p.Store.SessionParticipants(t.Context(), tok.IDTokenClaims.SessionID); len(parts) != 0 {
		t.Errorf("participants left: %+v", parts)
	}

	// The session is over, for both protocols.
	l := b.authorize(t, bank)
	l.requireStep("password")
	yes := true
	_, sl := sp2.request(t, b, func(r *crewsaml.AuthnRequest) { r.IsPassive = &yes })
	if f := formOf(sl.Last); f == nil {
		t.Fatalf("IsPassive after logout: %v", sl.Last)
	} else if _, second := f.status(t); second != crewsaml.StatusNoPassive {
		t.Errorf("IsPassive after logout: %s, want NoPassive", second)
	}
}

// TestSAMLSingleLogoutPartial: an SP of the session without an SLO endpoint cannot be logged
// out, so the initiator's answer is Success/PartialLogout; the session is ended all the same.
func TestSAMLSingleLogoutPartial(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	sp1 := p.newSLOSP(t, crewsaml.HTTPRedirectBinding)
	sp2 := p.newSLOSPWith(t, sloOpts{NoSLO: true})
	c := p.issueCitizen(t, freshCPR(), "Per Dam")
	b := p.newBrowser(t)
	name1, idx1 := sp1.login(t, b, c)
	sp2.login(t, b, c)
	u, reqID := sp1.logoutURL(t, name1, idx1, false)
	at, form, last := b.sloChain(t, u, sp1.srv.URL+"/saml/slo")
	if last != nil {
		t.Fatalf("logout chain ended at %s: %s", at, last)
	}
	if top, second := statusOf(sp1.logoutResponse(t, at, form, reqID)); top != crewsaml.StatusSuccess || second != crewsaml.StatusPartialLogout {
		t.Errorf("status %s/%s, want Success/PartialLogout", top, second)
	}
	_, l := sp1.request(t, b)
	l.requireStep("password")
}

// stripSLO registers an SP without its SingleLogoutService endpoints.
func stripSLO(_ *testing.T, rec *store.ServiceProvider) { rec.SLO = nil }

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSAMLSingleLogoutRefusals: a bad LogoutRequest never ends the session — unsigned from an
// SP that signs, signed with another SP's key, from an unknown SP, to another Destination,
// its ID replayed (error pages), another citizen's NameID, a SessionIndex of another session,
// an SP the session never answered (a Requester LogoutResponse).
func TestSAMLSingleLogoutRefusals(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	sp1 := p.newSLOSP(t, crewsaml.HTTPRedirectBinding)
	other := p.newSLOSP(t, crewsaml.HTTPRedirectBinding)
	unknown := p.newSLOSPWith(t, sloOpts{Unregistered: true})
	anna := p.issueCitizen(t, freshCPR(), "Anna Berg")
	annaB := p.newBrowser(t)
	annaName, annaIdx := sp1.login(t, annaB, anna)

	// alive reports whether b's SSO session still answers an OIDC prompt=none.
	alive := func(t *testing.T, b *Browser) bool {
		t.Helper()
		l := b.authorize(t, bank, withParam("prompt", "none"))
		return l.Back != nil && l.Back.Query().Get("code") != ""
	}

	for _, tc := range []struct {
		name string
		// send makes the request (in b, whose citizen is logged in at sp1 as name/idx).
		send      func(t *testing.T, b *Browser, name, idx string) string
		errorCode string // an error page; "" = a LogoutResponse with Requester to by (sp1 if nil)
		by        *sloSP
	}{
		{"unsigned from a signing SP", func(t *testing.T, _ *Browser, name, idx string) string {
			u, _ := sp1.logoutURL(t, name, idx, true)
			return u
		}, "saml_invalid_signature", nil},
		{"signed with another SP's key", func(t *testing.T, _ *Browser, name, idx string) string {
			forged := samlsp.DefaultServiceProvider(samlsp.Options{URL: *mustURL(t, sp1.srv.URL), Key: other.key, Certificate: other.cert,
				IDPMetadata: p.idpMetadata(t), SignRequest: true, SignLogout: true})
			u, _ := logoutURLBy(t, &forged, p, name, idx, false)
			return u
		}, "saml_invalid_signature", nil},
		{"from an unknown SP", func(t *testing.T, _ *Browser, name, idx string) string {
			u, _ := unknown.logoutURL(t, name, idx, false)
			return u
		}, "unknown_service_provider", nil},
		{"to another Destination", func(t *testing.T, _ *Browser, name, idx string) string {
			u, _ := sp1.logoutURL(t, name, idx, false, func(lr *crewsaml.LogoutRequest) { lr.Destination = "https://elsewhere.example/slo" })
			// Sent here all the same.
			pu, _ := url.Parse(u)
			return p.Issuer + idpsaml.SLOPath + "?" + pu.RawQuery
		}, "saml_wrong_destination", nil},
		{"expired", func(t *testing.T, _ *Browser, name, idx string) string {
			u, _ := sp1.logoutURL(t, name, idx, false, func(lr *crewsaml.LogoutRequest) { lr.IssueInstant = time.Now().Add(-time.Hour) })
			return u
		}, "saml_request_expired", nil},
		{"another citizen's NameID", func(t *testing.T, _ *Browser, _, _ string) string {
			u, _ := sp1.logoutURL(t, annaName, annaIdx, false)
			return u
		}, "", nil},
		{"a SessionIndex of another session", func(t *testing.T, _ *Browser, name, _ string) string {
			u, _ := sp1.logoutURL(t, name, annaIdx, false)
			return u
		}, "", nil},
		{"an SP the session never answered", func(t *testing.T, _ *Browser, name, idx string) string {
			u, _ := other.logoutURL(t, name, idx, false)
			return u
		}, "", other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := p.issueCitizen(t, freshCPR(), "Ole Refused")
			b := p.newBrowser(t)
			name, idx := sp1.login(t, b, c)
			b.login(t, bank, c)
			u := tc.send(t, b, name, idx)
			stop := sp1.srv.URL + "/saml/slo"
			if tc.by != nil {
				stop = tc.by.srv.URL + "/saml/slo"
			}
			at, form, last := b.sloChain(t, u, stop)
			if tc.errorCode != "" {
				if last == nil || last.Status != http.StatusBadRequest || errorCode(last) != tc.errorCode {
					t.Fatalf("want error page %s, got at %s: %v", tc.errorCode, at, last)
				}
			} else {
				if last != nil {
					t.Fatalf("want a LogoutResponse, got %s", last)
				}
				q, _ := url.Parse(at)
				var raw []byte
				if v := q.Query().Get("SAMLResponse"); v != "" {
					z, _ := base64.StdEncoding.DecodeString(v)
					raw, _ = io.ReadAll(flate.NewReader(bytes.NewReader(z)))
				} else {
					raw, _ = base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
				}
				var resp crewsaml.LogoutResponse
				if err := xml.Unmarshal(raw, &resp); err != nil {
					t.Fatalf("LogoutResponse: %v", err)
				}
				if top, _ := statusOf(&resp); top != crewsaml.StatusRequester {
					t.Errorf("status %s, want Requester", top)
				}
			}
			if !alive(t, b) {
				t.Error("the refused LogoutRequest ended the session")
			}
			if !alive(t, annaB) {
				t.Error("the refused LogoutRequest ended another citizen's session")
			}
		})
	}

	// unsigned_requests is about AuthnRequests: a LogoutRequest is signed whatever the SP's
	// registration (SAML profiles §4.4.4.1), or any page could log a citizen out.
	t.Run("unsigned from an SP registered with unsigned_requests", func(t *testing.T) {
		t.Parallel()
		lax := p.newSLOSPWith(t, sloOpts{Unsigned: true})
		c := p.issueCitizen(t, freshCPR(), "Ole Unsigned")
		b := p.newBrowser(t)
		name, idx := lax.login(t, b, c)
		u, _ := lax.logoutURL(t, name, idx, true)
		if _, _, last := b.sloChain(t, u, lax.srv.URL+"/saml/slo"); last == nil || errorCode(last) != "saml_invalid_signature" ||
			!strings.HasPrefix(last.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("unsigned LogoutRequest: %v", last)
		}
		if !alive(t, b) {
			t.Error("the unsigned LogoutRequest ended the session")
		}
	})

	t.Run("replayed ID", func(t *testing.T) {
		t.Parallel()
		c := p.issueCitizen(t, freshCPR(), "Ole Replay")
		b := p.newBrowser(t)
		name, idx := sp1.login(t, b, c)
		u, reqID := sp1.logoutURL(t, name, idx, false)
		at, form, last := b.sloChain(t, u, sp1.srv.URL+"/saml/slo")
		if last != nil {
			t.Fatalf("first logout: %s", last)
		}
		if top, _ := statusOf(sp1.logoutResponse(t, at, form, reqID)); top != crewsaml.StatusSuccess {
			t.Fatalf("first logout: %s", top)
		}
		sp1.login(t, b, c) // a new session
		if _, _, last := b.sloChain(t, u, sp1.srv.URL+"/saml/slo"); last == nil || errorCode(last) != "saml_replayed" {
			t.Fatalf("replay: %v", last)
		}
		if !alive(t, b) {
			t.Error("the replayed LogoutRequest ended the new session")
		}
	})
}

// TestEndSessionReachesSAMLSPs: OIDC end_session (with the session's own id_token_hint) ends
// the shared session and sends the browser to the SAML SP of the session with a signed
// LogoutRequest for its NameID; after its LogoutResponse the browser lands on the logged-out
// page. Without a SAML participant end_session answers as before.
func TestEndSessionReachesSAMLSPs(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	sp := p.newSLOSP(t, crewsaml.HTTPRedirectBinding)
	c := p.issueCitizen(t, freshCPR(), "Karl Holm")
	b := p.newBrowser(t)
	tok := b.login(t, bank, c)
	name, idx := sp.login(t, b, c) // from the session
	at, _, last := b.sloChain(t, "/end_session?"+url.Values{"id_token_hint": {tok.IDToken}}.Encode(), "http://127.0.0.1:9/never")
	if last == nil || last.Status != http.StatusOK || !strings.Contains(string(last.Body), "logget af") {
		t.Fatalf("end_session chain ended at %s: %v", at, last)
	}
	got := sp.logouts()
	if len(got) != 1 || !got[0].Signed || got[0].Request.NameID == nil || got[0].Request.NameID.Value != name ||
		got[0].Request.SessionIndex == nil || got[0].Request.SessionIndex.Value != idx {
		t.Fatalf("SP's LogoutRequests: %+v", got)
	}
	l := b.authorize(t, bank)
	l.requireStep("password")

	// Without SAML participants: straight to the logged-out page, as before.
	b2 := p.newBrowser(t)
	tok2 := b2.login(t, bank, c)
	if ended, _ := b2.endSession(t, tok2.IDToken); !ended {
		t.Fatal("end_session did not end the session")
	}
	if n := len(sp.logouts()); n != 1 {
		t.Errorf("SP sent %d LogoutRequests, want still 1", n)
	}
}

// TestSAMLLogoutReplayRace: one signed LogoutRequest sent at once from many browsers (a
// barrier makes the race certain) is accepted exactly once; the others get the replay page.
func TestSAMLLogoutReplayRace(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	sp := p.newSLOSP(t, crewsaml.HTTPRedirectBinding)
	c := p.issueCitizen(t, freshCPR(), "Eva Kjær")
	b := p.newBrowser(t)
	name, idx := sp.login(t, b, c)
	u, _ := sp.logoutURL(t, name, idx, false)
	const n = 8
	browsers := []*Browser{b}
	for len(browsers) < n {
		browsers = append(browsers, p.newBrowser(t))
	}
	var (
		start    = make(chan struct{})
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
		replayed int
	)
	for _, br := range browsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := br.try(t.Context(), http.MethodGet, u, nil, map[string]string{"Accept": "text/html"})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.Status == http.StatusFound && strings.HasPrefix(r.Header.Get("Location"), sp.srv.URL+"/saml/slo?SAMLResponse="):
				accepted++
			case r.Status == http.StatusBadRequest && errorCode(r) == "saml_replayed":
				replayed++
			default:
				t.Errorf("unexpected answer %s", r)
			}
		}()
	}
	close(start)
	wg.Wait()
	if accepted != 1 || replayed != n-1 {
		t.Fatalf("accepted %d, replayed %d; want 1 and %d", accepted, replayed, n-1)
	}
}

// TestSAMLLogoutPOSTWithoutCookie: a POST binding LogoutRequest that arrives without the SSO
// cookie (a browser leaves the SameSite=Lax cookie out of an SP's cross-site POST) is posted
// again from the IdP's own page, unjudged; the browser's resubmission, with its cookie, ends
// the session and gets the signed LogoutResponse.
func TestSAMLLogoutPOSTWithoutCookie(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	sp := p.newSLOSP(t, crewsaml.HTTPPostBinding)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c := p.issueCitizen(t, freshCPR(), "Bo Post")
	b := p.newBrowser(t)
	name, idx := sp.login(t, b, c)
	page, err := sp.mw.ServiceProvider.MakePostLogoutRequest(name, "rs-post", crewsaml.WithSessionIndex(idx))
	if err != nil {
		t.Fatal(err)
	}
	fields := url.Values{}
	for _, in := range anyInputRe.FindAllSubmatch(page, -1) {
		fields.Set(string(in[1]), html.UnescapeString(string(in[2])))
	}
	raw, _ := base64.StdEncoding.DecodeString(fields.Get("SAMLRequest"))
	var lr crewsaml.LogoutRequest
	if err := xml.Unmarshal(raw, &lr); err != nil || lr.ID == "" {
		t.Fatalf("SP's POST LogoutRequest: %v", err)
	}

	// Without the cookie (a fresh cookie jar stands for the cross-site POST).
	cookieless := p.newBrowser(t)
	r := cookieless.do(t, http.MethodPost, p.Issuer+idpsaml.SLOPath, strings.NewReader(fields.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
	m := anyFormRe.FindSubmatch(r.Body)
	if r.Status != http.StatusOK || m == nil || html.UnescapeString(string(m[1])) != idpsaml.SLOPath || bytes.Contains(r.Body, []byte("<script>")) {
		t.Fatalf("no resubmit page: %s", r)
	}
	again := url.Values{}
	for _, in := range anyInputRe.FindAllSubmatch(r.Body, -1) {
		again.Set(string(in[1]), html.UnescapeString(string(in[2])))
	}
	if again.Get("SAMLRequest") != fields.Get("SAMLRequest") || again.Get("RelayState") != "rs-post" {
		t.Fatalf("resubmit page fields %v", again)
	}
	if l := b.authorize(t, bank, withParam("prompt", "none")); l.Back == nil || l.Back.Query().Get("code") == "" {
		t.Fatal("the cookie-less POST ended the session")
	}

	// The browser's resubmission, with its cookie.
	r = b.do(t, http.MethodPost, p.Issuer+idpsaml.SLOPath, strings.NewReader(again.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
	m = anyFormRe.FindSubmatch(r.Body)
	if r.Status != http.StatusOK || m == nil || !strings.HasPrefix(html.UnescapeString(string(m[1])), sp.srv.URL+"/saml/slo") {
		t.Fatalf("no LogoutResponse form: %s", r)
	}
	resp := url.Values{}
	for _, in := range anyInputRe.FindAllSubmatch(r.Body, -1) {
		resp.Set(string(in[1]), html.UnescapeString(string(in[2])))
	}
	if top, _ := statusOf(sp.logoutResponse(t, html.UnescapeString(string(m[1])), resp, lr.ID)); top != crewsaml.StatusSuccess {
		t.Fatalf("LogoutResponse %s", top)
	}
	if resp.Get("RelayState") != "rs-post" {
		t.Errorf("RelayState %q", resp.Get("RelayState"))
	}
	b.authorize(t, bank).requireStep("password")
}
