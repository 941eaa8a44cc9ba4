package integrationtests

import (
	"bytes"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/integration-tests/internal/saml2sp"
)

// OIOSAML 3.0 (DESIGN.md §4).
const (
	samlAttrSpecVersion  = "https://data.gov.dk/model/core/specVersion"
	samlAttrLoA          = "https://data.gov.dk/concept/core/nsis/loa"
	samlAttrCPR          = "https://data.gov.dk/model/core/eid/cprNumber"
	samlLoASubstantial   = "https://data.gov.dk/concept/core/nsis/loa/Substantial"
	samlPersonUUIDPrefix = "https://data.gov.dk/model/core/eid/person/uuid/"
)

// needSAML checks the IdP publishes its SAML metadata.
func needSAML(t *testing.T, p *IdP) {
	t.Helper()
	resp, err := p.http.Get(p.Issuer + "/saml/metadata")
	if err != nil {
		t.Fatalf("GET /saml/metadata: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /saml/metadata: %d, want 200", resp.StatusCode)
	}
}

// newGoSAML2SP starts the gosaml2 service provider for p and registers its metadata through
// POST /admin/v1/service-providers (the metadata XML as the body), as an operator would.
func (p *IdP) newGoSAML2SP(t *testing.T) *saml2sp.SP {
	t.Helper()
	sp, err := saml2sp.New(t.Context(), saml2sp.Config{IdPMetadataURL: p.Issuer + "/saml/metadata",
		HTTPClient: &http.Client{Timeout: 10 * time.Second, Transport: p.transport()}})
	if err != nil {
		t.Fatalf("gosaml2 SP: %v", err)
	}
	t.Cleanup(sp.Close)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, p.URL+"/admin/v1/service-providers", bytes.NewReader(sp.Metadata()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.AdminToken)
	req.Header.Set("Content-Type", "application/samlmetadata+xml")
	resp, err := p.http.Do(req)
	if err != nil {
		t.Fatalf("POST /admin/v1/service-providers: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /admin/v1/service-providers: %d, want 201", resp.StatusCode)
	}
	return sp
}

// interopForm is the auto-posting form the IdP answers to the SP's ACS.
type interopForm struct {
	Action, SAMLResponse, RelayState string
}

var (
	formActionRE     = regexp.MustCompile(`<form[^>]*\baction="([^"]+)"`)
	formSAMLRespRE   = regexp.MustCompile(`name="SAMLResponse"[^>]*\bvalue="([^"]+)"`)
	formRelayStateRE = regexp.MustCompile(`name="RelayState"[^>]*\bvalue="([^"]*)"`)
)

func parseInteropForm(r *Resp) (*interopForm, bool) {
	a, s := formActionRE.FindSubmatch(r.Body), formSAMLRespRE.FindSubmatch(r.Body)
	if r.Status != http.StatusOK || a == nil || s == nil {
		return nil, false
	}
	f := &interopForm{Action: html.UnescapeString(string(a[1])), SAMLResponse: html.UnescapeString(string(s[1]))}
	if m := formRelayStateRE.FindSubmatch(r.Body); m != nil {
		f.RelayState = html.UnescapeString(string(m[1]))
	}
	return f, true
}

// interopLogin sends the SP's AuthnRequest through the browser (Redirect: GET its URL; POST:
// the form), answers the login steps (password, card key, new password) and returns the
// auto-post form of the done page. steps lists the step views shown.
func (b *Browser) interopLogin(t *testing.T, r *saml2sp.Request, c *Citizen) (form *interopForm, steps []string) {
	t.Helper()
	l := &Login{t: t, b: b}
	if r.SAMLRequest == "" {
		l.follow(r.URL)
	} else {
		body := url.Values{"SAMLRequest": {r.SAMLRequest}, "RelayState": {r.RelayState}}.Encode()
		resp := b.do(t, http.MethodPost, r.URL, strings.NewReader(body), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if resp.Status/100 != 3 {
			if f, ok := parseInteropForm(resp); ok {
				return f, nil // answered from the SSO session
			}
			t.Fatalf("POST %s: %s", r.URL, resp)
		}
		l.follow(resp.Location(r.URL))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; ; i++ {
		if l.Last != nil {
			if f, ok := parseInteropForm(l.Last); ok {
				return f, l.Steps
			}
			t.Fatalf("after steps %v: not the auto-post form: %s", l.Steps, l.Last)
		}
		if i > 6 {
			t.Fatalf("SAML login does not end; steps %v", l.Steps)
		}
		switch l.View.Step {
		case "password":
			if code, v := l.password(c, c.Password); code != http.StatusOK {
				t.Fatalf("password: %d %s", code, v.Error)
			}
		case "codecard":
			l.key(c)
		case "new_password":
			pw := goodPassword()
			l.mustPost("new-password", map[string]string{"password": pw})
			c.Password = pw
		case "done":
			if l.View.RedirectTo == "" {
				t.Fatal("done view has no redirect_to")
			}
			l.follow(l.View.RedirectTo)
			if l.Last == nil {
				t.Fatalf("done, but no auto-post form (view %+v)", l.View)
			}
		default:
			t.Fatalf("unexpected step %q (last %v)", l.View.Step, l.Last)
		}
	}
}

// postToSP is the browser's auto-post of the form to the SP's ACS.
func (b *Browser) postToSP(t *testing.T, f *interopForm) (int, *saml2sp.Result, string) {
	t.Helper()
	body := url.Values{"SAMLResponse": {f.SAMLResponse}, "RelayState": {f.RelayState}}.Encode()
	r := b.do(t, http.MethodPost, f.Action, strings.NewReader(body), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if r.Status != http.StatusOK {
		return r.Status, nil, string(r.Body)
	}
	var res saml2sp.Result
	if err := json.Unmarshal(r.Body, &res); err != nil {
		t.Fatalf("ACS answer: %v: %s", err, r.Body)
	}
	return r.Status, &res, string(r.Body)
}

// TestSAMLInteropGoSAML2 (issue 16 point 8): a Response of our IdP is accepted by a service
// provider built on russellhaering/gosaml2, a SAML library other than crewjam's: signature of
// the assertion by the IdP's metadata certificate, decryption (AES-256-GCM, RSA-OAEP),
// audience, recipient, InResponseTo, times; the OIOSAML 3.0 subject and attributes; a replay
// refused; the next request of the same browser answered from the SSO session.
func TestSAMLInteropGoSAML2(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	needSAML(t, p)
	sp := p.newGoSAML2SP(t)
	c := p.issueCitizen(t, freshCPR(), "Karen Interop")

	for _, binding := range []string{saml2sp.BindingRedirect, saml2sp.BindingPOST} {
		name := binding[strings.LastIndex(binding, ":")+1:]
		t.Run(name, func(t *testing.T) { // sequential: one citizen, one card
			b := p.newBrowser(t)
			var r *saml2sp.Request
			var err error
			if binding == saml2sp.BindingRedirect {
				r, err = sp.RedirectRequest("relay-" + name)
			} else {
				r, err = sp.PostRequest("relay-" + name)
			}
			if err != nil {
				t.Fatal(err)
			}
			form, steps := b.interopLogin(t, r, c)
			if len(steps) == 0 || steps[0] != "password" {
				t.Errorf("steps %v, want a login from the password step", steps)
			}
			if form.Action != sp.ACSURL || form.RelayState != r.RelayState {
				t.Fatalf("form to %q with RelayState %q, want %q and %q", form.Action, form.RelayState, sp.ACSURL, r.RelayState)
			}
			code, res, body := b.postToSP(t, form)
			if code != http.StatusOK {
				t.Fatalf("the gosaml2 SP refused the Response: %d %s", code, body)
			}
			checkGoSAML2Result(t, res, r.ID)

			// The same SAMLResponse again: refused by the SP.
			if code, _, body := b.postToSP(t, form); code != http.StatusForbidden {
				t.Errorf("replayed SAMLResponse: %d %s, want 403", code, body)
			}

			// The SSO session answers the next request without a login, with the same subject.
			r2, err := sp.RedirectRequest("again")
			if err != nil {
				t.Fatal(err)
			}
			form2, steps2 := b.interopLogin(t, r2, c)
			if len(steps2) > 0 && steps2[0] != "done" {
				t.Errorf("second request showed steps %v, want none (SSO)", steps2)
			}
			code, res2, body := b.postToSP(t, form2)
			if code != http.StatusOK {
				t.Fatalf("second Response refused: %d %s", code, body)
			}
			checkGoSAML2Result(t, res2, r2.ID)
			if res2.NameID != res.NameID || res2.AssertionID == res.AssertionID {
				t.Errorf("second NameID %q (first %q), assertion %s (first %s)", res2.NameID, res.NameID, res2.AssertionID, res.AssertionID)
			}
		})
	}
}

func checkGoSAML2Result(t *testing.T, res *saml2sp.Result, requestID string) {
	t.Helper()
	if res.InResponseTo != requestID {
		t.Errorf("InResponseTo %q, want %q", res.InResponseTo, requestID)
	}
	if res.NameIDFormat != saml2sp.NameIDFormatPersistent || !strings.HasPrefix(res.NameID, samlPersonUUIDPrefix) ||
		!uuidRE.MatchString(strings.TrimPrefix(res.NameID, samlPersonUUIDPrefix)) {
		t.Errorf("NameID %q (%s), want persistent %s<uuid>", res.NameID, res.NameIDFormat, samlPersonUUIDPrefix)
	}
	for name, want := range map[string]string{samlAttrSpecVersion: "OIO-SAML-3.0", samlAttrLoA: "Substantial"} {
		a := res.Attributes[name]
		if a.NameFormat != saml2sp.AttrNameFormatURI || len(a.Values) != 1 || a.Values[0] != want {
			t.Errorf("attribute %s = %+v, want %q with NameFormat uri", name, a, want)
		}
	}
	if _, ok := res.Attributes[samlAttrCPR]; ok {
		t.Errorf("CPR attribute released to an SP not registered with cpr")
	}
	for name, a := range res.Attributes {
		if a.NameFormat != saml2sp.AttrNameFormatURI {
			t.Errorf("attribute %s has NameFormat %q, want uri", name, a.NameFormat)
		}
	}
	if res.AuthnContextClassRef != samlLoASubstantial || res.SessionIndex == "" {
		t.Errorf("AuthnContextClassRef %q, SessionIndex %q", res.AuthnContextClassRef, res.SessionIndex)
	}
	a := res.Algorithms
	if !a.Encrypted || a.DataEncryption != saml2sp.AlgAES256GCM || a.SymmetricKeyBits != 256 ||
		(a.KeyTransport != saml2sp.AlgRSAOAEPMGF1P && a.KeyTransport != saml2sp.AlgRSAOAEP11) {
		t.Errorf("encryption %+v, want AES-256-GCM with RSA-OAEP", a)
	}
	if a.AssertionSignature != saml2sp.AlgRSASHA256 || a.AssertionC14N != saml2sp.AlgExclusiveC14N {
		t.Errorf("assertion signature %+v, want rsa-sha256 with exclusive c14n", a)
	}
	t.Logf("gosaml2 accepted: NameID %s, algorithms %+v", res.NameID, a)
}
