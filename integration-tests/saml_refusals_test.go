package integrationtests

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewsaml "github.com/crewjam/saml"

	idpsaml "github.com/nemidp/nemidp/idp/saml"
)

// rawRedirect is an unsigned HTTP-Redirect binding URL carrying doc as it is.
func rawRedirect(issuer string, doc []byte) string {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = fw.Write(doc)
	_ = fw.Close()
	return issuer + idpsaml.SSOPath + "?SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
}

// ssoOutcome is how /saml/sso answered: a redirect into a login, a form page with a SAML
// Response to the ACS, or an error page.
type ssoOutcome struct {
	login       bool
	form        *samlForm
	status      int
	code        string
	top, second string
}

func outcomeOf(t *testing.T, r *Resp) ssoOutcome {
	t.Helper()
	o := ssoOutcome{status: r.Status}
	if r.Status == http.StatusSeeOther && strings.HasPrefix(r.Header.Get("Location"), "/login/") {
		o.login = true
		return o
	}
	if f := formOf(r); f != nil {
		o.form = f
		o.top, o.second = f.status(t)
		return o
	}
	o.code = errorCode(r)
	return o
}

// TestSAMLRefusals: every request the IdP must refuse is refused, quickly, with no
// assertion: before the SP and its ACS are trusted with an error page (400), after with a
// signed error Response to the registered ACS. What must pass passes (the same request
// shape, made right).
func TestSAMLRefusals(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	sp := p.newCrewSP(t, spPolicy{})
	open := p.newCrewSP(t, spPolicy{Unsigned: true})
	other := p.newCrewSP(t, spPolicy{})
	unsignedOf := func(s *crewSP) *crewsaml.ServiceProvider {
		c := s.mw.ServiceProvider
		c.SignatureMethod = ""
		return &c
	}
	redirect := func(s *crewSP, mods ...func(*crewsaml.AuthnRequest)) string {
		return s.redirectURL(s.authnRequest(mods...), "rs-"+randHex(4))
	}
	bomb := func() string {
		var buf bytes.Buffer
		fw, _ := flate.NewWriter(&buf, flate.BestCompression)
		_, _ = fw.Write([]byte(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x">`))
		_, _ = fw.Write(make([]byte, 8<<20)) // 8 MiB of zeros: ~8 KiB deflated
		_ = fw.Close()
		return p.Issuer + idpsaml.SSOPath + "?SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
	}
	dtd := func(s *crewSP) string {
		req := s.authnRequest()
		var b bytes.Buffer
		b.WriteString(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>`)
		raw := xmlOf(t, req)
		b.Write(bytes.Replace(raw, []byte(`ID="`), []byte(`ProviderName="&b;" ID="`), 1))
		return rawRedirect(p.Issuer, b.Bytes())
	}
	huge := make([]byte, 70<<10)
	_, _ = rand.Read(huge)

	type tc struct {
		name string
		url  string     // a GET, or
		post url.Values // a POST to /saml/sso
		// want: login, or an error page's code, or a Response's status codes
		login       bool
		code        string
		status      int
		top, second string
	}
	past, future := time.Now().Add(-10*time.Minute), time.Now().Add(10*time.Minute)
	replayed := redirect(sp)
	if o := outcomeOf(t, p.newBrowser(t).get(t, replayed)); !o.login {
		t.Fatalf("first use of a request: %+v", o)
	}
	signedBad := redirect(sp)
	signedBad = strings.Replace(signedBad, "RelayState=rs-", "RelayState=xx-", 1) // covered by the signature
	tests := []tc{
		{name: "signed redirect", url: redirect(sp), login: true},
		{name: "signed post", post: sp.postBody(sp.authnRequest(), "rs"), login: true},
		{name: "unsigned from an SP registered for it", url: open.redirectURL(open.authnRequest(), "rs"), login: true},
		{name: "exact Substantial", url: redirect(sp, withRAC("exact", idpsaml.LoASubstantial)), login: true},
		{name: "minimum Low", url: redirect(sp, withRAC("minimum", idpsaml.LoALow)), login: true},
		{name: "unknown SP", url: redirect(sp, func(r *crewsaml.AuthnRequest) { r.Issuer.Value = "https://unknown.example/sp" }),
			code: "unknown_service_provider", status: 400},
		{name: "unsigned redirect from an SP that must sign", url: mustRedirect(t, sp.authnRequest(), unsignedOf(sp)),
			code: "saml_invalid_signature", status: 400},
		{name: "unsigned post from an SP that must sign", post: open.postBody(sp.authnRequest(), "rs"),
			code: "saml_invalid_signature", status: 400},
		{name: "signature over another query", url: signedBad, code: "saml_invalid_signature", status: 400},
		{name: "signed by another SP's key", url: other.redirectURL(sp.authnRequest(), "rs"), code: "saml_invalid_signature", status: 400},
		{name: "a present signature is checked for an SP registered unsigned", url: strings.Replace(open.redirectURL(
			open.authnRequest(), "rs"), "SAMLRequest=", "SigAlg="+url.QueryEscape("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")+"&Signature=AAAA&SAMLRequest=", 1),
			code: "saml_invalid_signature", status: 400},
		{name: "ACS not in the metadata", url: redirect(sp, func(r *crewsaml.AuthnRequest) { r.AssertionConsumerServiceURL = "https://evil.example/acs" }),
			code: "unknown_acs", status: 400},
		{name: "ACS index not in the metadata", url: redirect(sp, func(r *crewsaml.AuthnRequest) {
			r.AssertionConsumerServiceURL, r.AssertionConsumerServiceIndex = "", "7"
		}), code: "unknown_acs", status: 400},
		{name: "wrong Destination", url: strings.Replace(redirect(sp, func(r *crewsaml.AuthnRequest) { r.Destination = "https://other.example/sso" }),
			"https://other.example/sso", p.Issuer+idpsaml.SSOPath, 1),
			code: "saml_invalid_request", status: 400},
		{name: "IssueInstant in the future", url: redirect(sp, func(r *crewsaml.AuthnRequest) { r.IssueInstant = future }),
			code: "saml_request_expired", status: 400},
		{name: "DTD with entities", url: dtd(open), code: "saml_invalid_request", status: 400},
		{name: "deflate bomb", url: bomb(), code: "saml_invalid_request", status: 400},
		{name: "DTD in a post", post: url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(append(
			[]byte(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>`), xmlOf(t, open.authnRequest())...))}},
			code: "saml_invalid_request", status: 400},
		{name: "oversized", url: p.Issuer + idpsaml.SSOPath + "?SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(huge)),
			code: "saml_invalid_request", status: 400},
		{name: "oversized post", post: url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(huge)}},
			code: "saml_invalid_request", status: 413},
		{name: "not base64", url: p.Issuer + idpsaml.SSOPath + "?SAMLRequest=%%%", code: "saml_invalid_request", status: 400},
		{name: "no request", url: p.Issuer + idpsaml.SSOPath, code: "saml_invalid_request", status: 400},
		// Trusted SP and ACS: a signed error Response, no assertion.
		{name: "expired IssueInstant", url: redirect(sp, func(r *crewsaml.AuthnRequest) { r.IssueInstant = past }),
			top: crewsaml.StatusRequester},
		{name: "replayed request ID", url: replayed, top: crewsaml.StatusRequester, second: crewsaml.StatusRequestDenied},
		{name: "unknown class", url: redirect(sp, withRAC("exact", "urn:example:unknown")),
			top: crewsaml.StatusResponder, second: crewsaml.StatusNoAuthnContext},
		{name: "exact Low", url: redirect(sp, withRAC("exact", idpsaml.LoALow)),
			top: crewsaml.StatusResponder, second: crewsaml.StatusNoAuthnContext},
		{name: "minimum High", url: redirect(sp, withRAC("minimum", idpsaml.LoAHigh)),
			top: crewsaml.StatusResponder, second: crewsaml.StatusNoAuthnContext},
		{name: "transient NameIDPolicy", url: redirect(sp, func(r *crewsaml.AuthnRequest) {
			f := string(crewsaml.TransientNameIDFormat)
			r.NameIDPolicy = &crewsaml.NameIDPolicy{Format: &f}
		}), top: crewsaml.StatusRequester, second: crewsaml.StatusInvalidNameIDPolicy},
		{name: "persistent NameIDPolicy", url: redirect(sp, func(r *crewsaml.AuthnRequest) {
			f := string(crewsaml.PersistentNameIDFormat)
			r.NameIDPolicy = &crewsaml.NameIDPolicy{Format: &f}
		}), login: true},
		{name: "Subject not a person UUID", url: redirect(sp, func(r *crewsaml.AuthnRequest) {
			r.Subject = &crewsaml.Subject{NameID: &crewsaml.NameID{Value: "someone@example.com"}}
		}), top: crewsaml.StatusResponder, second: crewsaml.StatusUnknownPrincipal},
		{name: "Subject a person UUID", url: redirect(sp, func(r *crewsaml.AuthnRequest) {
			r.Subject = &crewsaml.Subject{NameID: &crewsaml.NameID{Format: string(crewsaml.PersistentNameIDFormat),
				Value: idpsaml.NameIDPrefix + "6f0b5c1e-8a1d-4f1e-9c3b-0a6b1d2e3f40"}}
		}), login: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := p.newBrowser(t)
			b.Accept = "text/html"
			start := time.Now()
			var r *Resp
			if tc.post != nil {
				r = b.do(t, http.MethodPost, idpsaml.SSOPath, strings.NewReader(tc.post.Encode()),
					map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
			} else {
				r = b.get(t, tc.url)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s", d)
			}
			o := outcomeOf(t, r)
			switch {
			case tc.login:
				if !o.login {
					t.Fatalf("want a login, got %+v: %s", o, r)
				}
			case tc.code != "":
				if o.code != tc.code || o.status != tc.status || o.form != nil {
					t.Fatalf("want error page %d %s, got %+v: %s", tc.status, tc.code, o, r)
				}
			default:
				if o.form == nil || o.top != tc.top || o.second != tc.second {
					t.Fatalf("want a Response %s/%s, got %+v: %s", tc.top, tc.second, o, r)
				}
				if o.form.Action != sp.Record.ACS[0].Location {
					t.Fatalf("Response posted to %s, not the registered ACS", o.form.Action)
				}
				resp, _ := o.form.response(t)
				if resp.Signature == nil {
					t.Fatalf("error Response not signed")
				}
			}
		})
	}
}

func xmlOf(t *testing.T, req *crewsaml.AuthnRequest) []byte {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(req.Element())
	raw, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func withRAC(comparison string, refs ...string) func(*crewsaml.AuthnRequest) {
	return func(r *crewsaml.AuthnRequest) {
		r.RequestedAuthnContext = &crewsaml.RequestedAuthnContext{Comparison: comparison, AuthnContextClassRefs: refs}
	}
}

func mustRedirect(t *testing.T, req *crewsaml.AuthnRequest, sp *crewsaml.ServiceProvider) string {
	t.Helper()
	u, err := req.Redirect("rs", sp)
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}

// TestSAMLSubjectMustMatch: an AuthnRequest naming a person (its Subject) gets an assertion
// only about that person: another citizen logging in gets UnknownPrincipal and no assertion;
// the named one logs in (saml-core §3.4.1.4).
func TestSAMLSubjectMustMatch(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	sp := p.newCrewSP(t, spPolicy{})
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	ole := p.issueCitizen(t, freshCPR(), "Ole Hansen")
	who := sp.signIn(t, p.newBrowser(t), karen).Subject // Karen's NameID at this SP
	named := func(r *crewsaml.AuthnRequest) {
		r.Subject = &crewsaml.Subject{NameID: &crewsaml.NameID{Format: string(crewsaml.PersistentNameIDFormat), Value: who}}
	}
	f := p.newBrowser(t).samlLogin(t, sp.redirectURL(sp.authnRequest(named), "rs")).samlRun(ole)
	if top, second := f.status(t); top != crewsaml.StatusResponder || second != crewsaml.StatusUnknownPrincipal {
		t.Fatalf("Ole logging in for a request naming Karen: %s/%s, want Responder/UnknownPrincipal", top, second)
	}
	if resp, _ := f.response(t); resp.Assertion != nil || resp.EncryptedAssertion != nil {
		t.Fatal("an assertion for the wrong person")
	}
	f = p.newBrowser(t).samlLogin(t, sp.redirectURL(sp.authnRequest(named), "rs")).samlRun(karen)
	if top, _ := f.status(t); top != crewsaml.StatusSuccess {
		t.Fatalf("Karen logging in for a request naming her: %s", top)
	}
}
