package integrationtests

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewsaml "github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"

	idpsaml "github.com/nemidp/nemidp/idp/saml"
	"github.com/nemidp/nemidp/idp/store"
)

// crewSP is a service provider built with crewjam/saml's samlsp, with its own key pair,
// served over real HTTP and registered with the IdP (store.SaveServiceProvider after
// saml.ParseMetadata, as registration does).
type crewSP struct {
	t      *testing.T
	idp    *IdP
	srv    *httptest.Server
	mw     *samlsp.Middleware
	Record *store.ServiceProvider
}

// spPolicy is what an SP is registered with besides its metadata.
type spPolicy struct {
	CPR, RequiresOCES, OnBehalf, Unsigned, Global, NoEncryption bool
}

// newCrewSP starts an SP and registers it; its /app page needs a login and answers the
// session's NameID and attributes as JSON.
func (p *IdP) newCrewSP(t *testing.T, pol spPolicy) *crewSP {
	t.Helper()
	sp := &crewSP{t: t, idp: p}
	var handler http.Handler
	sp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(sp.srv.Close)
	key, cert := spKeyPair(t)
	u, _ := url.Parse(sp.srv.URL)
	mdResp, err := http.Get(p.Issuer + idpsaml.MetadataPath)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := io.ReadAll(mdResp.Body)
	mdResp.Body.Close()
	idpMeta, err := samlsp.ParseMetadata(md)
	if err != nil {
		t.Fatalf("IdP metadata: %v", err)
	}
	sp.mw, err = samlsp.New(samlsp.Options{URL: *u, Key: key, Certificate: cert, IDPMetadata: idpMeta,
		SignRequest: !pol.Unsigned, KeyAttributesByName: true})
	if err != nil {
		t.Fatal(err)
	}
	sp.mw.ServiceProvider.AuthnNameIDFormat = crewsaml.PersistentNameIDFormat
	sp.mw.OnError = spRefused
	mux := http.NewServeMux()
	mux.Handle("/saml/", sp.mw)
	mux.Handle("/app", sp.mw.RequireAccount(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := samlsp.SessionFromContext(r.Context())
		out := map[string]any{}
		if sa, ok := s.(samlsp.SessionWithAttributes); ok {
			out["attributes"] = sa.GetAttributes()
		}
		if jc, ok := s.(samlsp.JWTSessionClaims); ok {
			out["subject"] = jc.Subject
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})))
	handler = mux
	raw, err := xml.Marshal(sp.mw.ServiceProvider.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := idpsaml.ParseMetadata(raw)
	if err != nil {
		t.Fatalf("ParseMetadata: %v", err)
	}
	rec.Name = "Test SP " + randHex(3)
	rec.CPR, rec.RequiresOCES, rec.AllowOnBehalfOf, rec.UnsignedRequests = pol.CPR, pol.RequiresOCES, pol.OnBehalf, pol.Unsigned
	if pol.Global {
		rec.Subject = store.SubjectGlobal
	}
	if pol.NoEncryption {
		rec.EncryptionCerts = nil
	}
	rec.CreatedAt = time.Now().UTC()
	if err := p.Store.SaveServiceProvider(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	sp.Record = rec
	return sp
}

func spKeyPair(t *testing.T) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test sp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

// authnRequest makes an AuthnRequest of this SP to the IdP's SSO URL, changed by mods.
func (sp *crewSP) authnRequest(mods ...func(*crewsaml.AuthnRequest)) *crewsaml.AuthnRequest {
	sp.t.Helper()
	req, err := sp.mw.ServiceProvider.MakeAuthenticationRequest(sp.idp.Issuer+idpsaml.SSOPath, crewsaml.HTTPRedirectBinding, crewsaml.HTTPPostBinding)
	if err != nil {
		sp.t.Fatal(err)
	}
	for _, m := range mods {
		m(req)
	}
	return req
}

// redirectURL is the HTTP-Redirect binding URL of req, signed unless the SP does not sign.
func (sp *crewSP) redirectURL(req *crewsaml.AuthnRequest, relayState string) string {
	sp.t.Helper()
	u, err := req.Redirect(relayState, &sp.mw.ServiceProvider)
	if err != nil {
		sp.t.Fatal(err)
	}
	return u.String()
}

// postBody is the HTTP-POST binding form of req: enveloped signature unless the SP does not
// sign.
func (sp *crewSP) postBody(req *crewsaml.AuthnRequest, relayState string) url.Values {
	sp.t.Helper()
	req.Signature = nil
	if sp.mw.ServiceProvider.SignatureMethod != "" {
		if err := sp.mw.ServiceProvider.SignAuthnRequest(req); err != nil {
			sp.t.Fatal(err)
		}
	}
	doc := etree.NewDocument()
	doc.SetRoot(req.Element())
	raw, err := doc.WriteToBytes()
	if err != nil {
		sp.t.Fatal(err)
	}
	return url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(raw)}, "RelayState": {relayState}}
}

// samlForm is the auto-posting form of /saml/done.
type samlForm struct {
	Action, SAMLResponse, RelayState string
	Page                             *Resp
}

var (
	formActionRe = regexp.MustCompile(`<form method="post" action="([^"]+)" id="saml-post">`)
	inputRe      = regexp.MustCompile(`<input type="hidden" name="(SAMLResponse|RelayState)" value="([^"]*)">`)
)

// formOf reads the form page; nil when r is not one.
func formOf(r *Resp) *samlForm {
	if r == nil {
		return nil
	}
	m := formActionRe.FindSubmatch(r.Body)
	if m == nil {
		return nil
	}
	f := &samlForm{Action: html.UnescapeString(string(m[1])), Page: r}
	for _, in := range inputRe.FindAllSubmatch(r.Body, -1) {
		v := html.UnescapeString(string(in[2]))
		if string(in[1]) == "SAMLResponse" {
			f.SAMLResponse = v
		} else {
			f.RelayState = v
		}
	}
	return f
}

// response decodes the form's Response (not verified: for its status and shape).
func (f *samlForm) response(t *testing.T) (*crewsaml.Response, []byte) {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(f.SAMLResponse)
	if err != nil {
		t.Fatal(err)
	}
	var resp crewsaml.Response
	if err := xml.Unmarshal(raw, &resp); err != nil {
		t.Fatalf("response: %v", err)
	}
	return &resp, raw
}

// status is the Response's top and second-level status codes.
func (f *samlForm) status(t *testing.T) (string, string) {
	t.Helper()
	resp, raw := f.response(t)
	second := ""
	if resp.Status.StatusCode.StatusCode != nil {
		second = resp.Status.StatusCode.StatusCode.Value
	}
	if resp.Status.StatusCode.Value != crewsaml.StatusSuccess && (bytes.Contains(raw, []byte("Assertion>")) || bytes.Contains(raw, []byte("EncryptedAssertion"))) {
		t.Fatalf("an error Response carries an assertion: %s", raw)
	}
	return resp.Status.StatusCode.Value, second
}

// parse verifies and decrypts the form's Response as the SP does for a request it sent
// (requestID), without the middleware's request tracking and replay cache.
func (sp *crewSP) parse(f *samlForm, requestID string) (*crewsaml.Assertion, error) {
	s := sp.mw.ServiceProvider
	s.ReplayCache = nil
	form := url.Values{"SAMLResponse": {f.SAMLResponse}}
	if f.RelayState != "" {
		form.Set("RelayState", f.RelayState)
	}
	r := httptest.NewRequest(http.MethodPost, f.Action, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	as, err := s.ParseResponse(r, []string{requestID})
	var ire *crewsaml.InvalidResponseError
	if errors.As(err, &ire) {
		err = fmt.Errorf("%w: %v", err, ire.PrivateErr)
	}
	return as, err
}

// postForm posts the form to the SP's ACS, as the page's script does.
func (b *Browser) postForm(t *testing.T, f *samlForm) *Resp {
	t.Helper()
	form := url.Values{"SAMLResponse": {f.SAMLResponse}}
	if f.RelayState != "" {
		form.Set("RelayState", f.RelayState)
	}
	return b.do(t, http.MethodPost, f.Action, strings.NewReader(form.Encode()), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
}

// samlLogin follows u (an SP page or an SSO URL) through the IdP to its first step view, or
// to the form page or error page that ends it without one.
func (b *Browser) samlLogin(t *testing.T, u string) *Login {
	t.Helper()
	l := &Login{t: t, b: b}
	l.follow(u)
	return l
}

// samlRun answers every step (password, key, new password, self at act_as) and follows the
// done view to /saml/done: the form page it ends with.
func (l *Login) samlRun(c *Citizen) *samlForm {
	l.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; ; i++ {
		if f := formOf(l.Last); f != nil {
			return f
		}
		if i > 8 {
			l.t.Fatalf("login does not end; steps %v, last %v", l.Steps, l.Last)
		}
		switch l.View.Step {
		case "password":
			if code, v := l.password(c, c.Password); code != http.StatusOK {
				l.t.Fatalf("password: %d %s", code, v.Error)
			}
		case "codecard":
			l.key(c)
		case "new_password":
			pw := goodPassword()
			l.mustPost("new-password", map[string]string{"password": pw})
			c.Password = pw
		case "act_as":
			l.mustPost("act-as", map[string]string{"principal": "self"})
		case "done", "failed":
			if l.View.RedirectTo == "" {
				l.t.Fatalf("%s view without redirect_to", l.View.Step)
			}
			l.Last = nil
			l.follow(l.View.RedirectTo)
			if formOf(l.Last) == nil {
				l.t.Fatalf("%s, but no form page: %v", l.View.Step, l.Last)
			}
		default:
			l.t.Fatalf("unexpected step %q (last %v)", l.View.Step, l.Last)
		}
	}
}

// appSession is what the SP's /app page says of its session.
type appSession struct {
	Subject    string              `json:"subject"`
	Attributes map[string][]string `json:"attributes"`
}

// signIn runs a whole SP-initiated login of c at sp through samlsp's middleware and returns
// the SP's session.
func (sp *crewSP) signIn(t *testing.T, b *Browser, c *Citizen) appSession {
	t.Helper()
	l := b.samlLogin(t, sp.srv.URL+"/app")
	f := l.samlRun(c)
	return sp.land(t, b, f)
}

// land posts the form to the ACS and reads the SP's session at /app.
func (sp *crewSP) land(t *testing.T, b *Browser, f *samlForm) appSession {
	t.Helper()
	r := b.postForm(t, f)
	if r.Status != http.StatusFound && r.Status != http.StatusSeeOther {
		t.Fatalf("ACS: %s", r)
	}
	app := b.get(t, r.Location(f.Action))
	if app.Status != http.StatusOK {
		t.Fatalf("SP /app after the ACS: %s", app)
	}
	var s appSession
	if err := json.Unmarshal(app.Body, &s); err != nil {
		t.Fatalf("SP /app: %v: %s", err, app)
	}
	return s
}

// spRefused is a samlsp SP's answer to a Response it refuses: 403 with the reason, the
// private one included (tests read it).
func spRefused(w http.ResponseWriter, _ *http.Request, err error) {
	msg := err.Error()
	var ire *crewsaml.InvalidResponseError
	if errors.As(err, &ire) {
		msg += ": " + ire.PrivateErr.Error()
	}
	http.Error(w, "sp refused: "+msg, http.StatusForbidden)
}
