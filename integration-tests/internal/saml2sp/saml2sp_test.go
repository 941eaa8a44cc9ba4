package saml2sp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"hash"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"

	idpsaml "github.com/nemidp/nemidp/idp/saml"
	"github.com/nemidp/nemidp/idp/store"
)

// OIOSAML 3.0 names (DESIGN.md §4).
const (
	attrSpecVersion  = "https://data.gov.dk/model/core/specVersion"
	attrLoA          = "https://data.gov.dk/concept/core/nsis/loa"
	loaSubstantial   = "https://data.gov.dk/concept/core/nsis/loa/Substantial"
	personUUIDPrefix = "https://data.gov.dk/model/core/eid/person/uuid/"
)

// ---- the stand-in IdP: crewjam's saml.IdentityProvider, configured as idp/saml will be ----

type standIn struct {
	idp  *saml.IdentityProvider
	srv  *httptest.Server
	key  *rsa.PrivateKey
	cert *x509.Certificate
	uuid string

	mu  sync.Mutex
	sps map[string]*saml.EntityDescriptor
	// mutate changes the assertion after it was made and before it is signed and encrypted
	// (an IdP that signs something wrong).
	mutate func(*saml.IdpAuthnRequest)
}

type standInOption func(*saml.IdentityProvider)

func withEncrypter(e xmlenc.Encrypter) standInOption {
	return func(p *saml.IdentityProvider) { p.AssertionEncrypter = e }
}

func unsignedMetadata(p *saml.IdentityProvider) { p.SignMetadata = false }

// ourEncrypter is what idp/saml is to use: AES-256-GCM content, RSA-OAEP key transport
// (the variant TestOAEPVariants finds both libraries decrypt).
func ourEncrypter() xmlenc.Encrypter {
	e := xmlenc.OAEP()
	e.DigestMethod = &xmlenc.SHA1
	e.BlockCipher = xmlenc.AES256GCM
	return e
}

func newStandIn(t *testing.T, opts ...standInOption) *standIn {
	t.Helper()
	key, cert := selfSigned(t, "stand-in IdP")
	s := &standIn{key: key, cert: cert, uuid: "0d2a8c3e-6b1f-4f7a-9b53-2f1e4c6d8a90", sps: map[string]*saml.EntityDescriptor{}}
	mux := http.NewServeMux()
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	base, _ := url.Parse(s.srv.URL)
	p := &saml.IdentityProvider{
		Key: key, Certificate: cert,
		MetadataURL:             *base.JoinPath("/saml/metadata"),
		SSOURL:                  *base.JoinPath("/saml/sso"),
		SignatureMethod:         dsig.RSASHA256SignatureMethod,
		SignMetadata:            true,
		WantAuthnRequestsSigned: true,
		RejectSHA1Signatures:    true,
		NameIDFormats:           []saml.NameIDFormat{saml.PersistentNameIDFormat},
		AssertionEncrypter:      ourEncrypter(),
		ServiceProviderProvider: s,
		SessionProvider:         s,
		AssertionMaker:          s,
	}
	for _, o := range opts {
		o(p)
	}
	s.idp = p
	mux.HandleFunc("/saml/metadata", p.ServeMetadata)
	mux.HandleFunc("/saml/sso", p.ServeSSO)
	return s
}

func (s *standIn) metadataURL() string { return s.srv.URL + "/saml/metadata" }

// register parses the SP's metadata with idp/saml's ParseMetadata and hands crewjam the
// descriptor idp/saml rebuilds from the stored record, as our IdP will. strip edits the record.
func (s *standIn) register(t *testing.T, md []byte, strip ...func(*spRecord)) {
	t.Helper()
	rec, err := idpsaml.ParseMetadata(md)
	if err != nil {
		t.Fatalf("idp/saml ParseMetadata of the gosaml2 SP's metadata: %v\n%s", err, md)
	}
	for _, f := range strip {
		f(rec)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sps[rec.EntityID] = idpsaml.Descriptor(rec)
}

func (s *standIn) GetServiceProvider(_ *http.Request, id string) (*saml.EntityDescriptor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.sps[id]; ok {
		return d, nil
	}
	return nil, os.ErrNotExist
}

func (s *standIn) GetSession(_ http.ResponseWriter, _ *http.Request, _ *saml.IdpAuthnRequest) *saml.Session {
	now := time.Now()
	attr := func(name, v string) saml.Attribute {
		return saml.Attribute{Name: name, NameFormat: AttrNameFormatURI, Values: []saml.AttributeValue{{Type: "xs:string", Value: v}}}
	}
	return &saml.Session{ID: "sess-" + randID(), CreateTime: now, ExpireTime: now.Add(time.Hour), Index: "idx-" + randID(),
		NameID: personUUIDPrefix + s.uuid, NameIDFormat: NameIDFormatPersistent, AuthnContextClassRef: loaSubstantial,
		CustomAttributes: []saml.Attribute{attr(attrSpecVersion, "OIO-SAML-3.0"), attr(attrLoA, "Substantial")}}
}

func (s *standIn) MakeAssertion(req *saml.IdpAuthnRequest, session *saml.Session) error {
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		return err
	}
	s.mu.Lock()
	m := s.mutate
	s.mu.Unlock()
	if m != nil {
		m(req)
	}
	return nil
}

// ---- helpers ----

func randID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func selfSigned(t *testing.T, cn string) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

type spRecord = store.ServiceProvider

// newPair starts a stand-in IdP and a gosaml2 SP registered at it.
func newPair(t *testing.T, opts ...standInOption) (*standIn, *SP) {
	t.Helper()
	st := newStandIn(t, opts...)
	sp, err := New(t.Context(), Config{IdPMetadataURL: st.metadataURL()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(sp.Close)
	st.register(t, sp.Metadata())
	return st, sp
}

var responseField = regexp.MustCompile(`name="SAMLResponse" value="([^"]+)"`)

// send delivers r to the IdP as a browser would and returns the SAMLResponse of the
// auto-posting form the IdP answers.
func send(t *testing.T, r *Request) string {
	t.Helper()
	var resp *http.Response
	var err error
	if r.SAMLRequest == "" {
		resp, err = http.Get(r.URL)
	} else {
		resp, err = http.PostForm(r.URL, url.Values{"SAMLRequest": {r.SAMLRequest}, "RelayState": {r.RelayState}})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := responseField.FindSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("IdP answered %d without a SAMLResponse form: %.500s", resp.StatusCode, body)
	}
	return html.UnescapeString(string(m[1]))
}

func redirectLogin(t *testing.T, sp *SP) (string, *Request) {
	t.Helper()
	r, err := sp.RedirectRequest("relay-" + randID())
	if err != nil {
		t.Fatal(err)
	}
	return send(t, r), r
}

func requireRefused(t *testing.T, res *Result, err error, why string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted (%+v), want refused: %s", res, why)
	}
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("error %v does not wrap ErrRefused", err)
	}
	if !strings.Contains(err.Error(), why) {
		t.Fatalf("refused for %q, want a refusal mentioning %q", err, why)
	}
}

func checkOIOSAML(t *testing.T, st *standIn, res *Result) {
	t.Helper()
	if res.NameIDFormat != NameIDFormatPersistent || res.NameID != personUUIDPrefix+st.uuid {
		t.Errorf("NameID %q (%s)", res.NameID, res.NameIDFormat)
	}
	for name, want := range map[string]string{attrSpecVersion: "OIO-SAML-3.0", attrLoA: "Substantial"} {
		a := res.Attributes[name]
		if a.NameFormat != AttrNameFormatURI || len(a.Values) != 1 || a.Values[0] != want {
			t.Errorf("attribute %s = %+v, want %q with NameFormat uri", name, a, want)
		}
	}
	if res.AuthnContextClassRef != loaSubstantial || res.SessionIndex == "" {
		t.Errorf("AuthnContextClassRef %q, SessionIndex %q", res.AuthnContextClassRef, res.SessionIndex)
	}
	if res.Issuer != st.metadataURL() {
		t.Errorf("issuer %q", res.Issuer)
	}
	a := res.Algorithms
	if !a.Encrypted || a.DataEncryption != AlgAES256GCM || a.KeyTransport != AlgRSAOAEPMGF1P || a.SymmetricKeyBits != 256 {
		t.Errorf("encryption %+v, want AES-256-GCM with RSA-OAEP", a)
	}
	if a.AssertionSignature != AlgRSASHA256 || a.AssertionC14N != AlgExclusiveC14N || !a.ResponseSigned {
		t.Errorf("signature %+v, want rsa-sha256, exclusive c14n, Response signed too", a)
	}
}

// ---- tests ----

// TestMetadata: the SP's metadata is what issue 16 asks an SP to publish, and idp/saml's own
// parser reads it; the IdP's signed metadata is verified, and a changed one refused.
func TestMetadata(t *testing.T) {
	t.Parallel()
	st, sp := newPair(t)
	md := string(sp.Metadata())
	for _, want := range []string{`AuthnRequestsSigned="true"`, `WantAssertionsSigned="true"`, `use="signing"`, `use="encryption"`,
		"<NameIDFormat>" + NameIDFormatPersistent + "</NameIDFormat>", `Binding="` + BindingPOST + `" Location="` + sp.ACSURL + `"`} {
		if !strings.Contains(md, want) {
			t.Errorf("SP metadata lacks %s:\n%s", want, md)
		}
	}
	rec, err := idpsaml.ParseMetadata(sp.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	der := base64.StdEncoding.EncodeToString(sp.Cert.Raw)
	if rec.EntityID != sp.EntityID || !rec.AuthnRequestsSigned || !rec.WantAssertionsSigned || len(rec.ACS) != 1 ||
		rec.ACS[0].Location != sp.ACSURL || len(rec.SigningCerts) != 1 || rec.SigningCerts[0] != der ||
		len(rec.EncryptionCerts) != 1 || rec.EncryptionCerts[0] != der {
		t.Errorf("idp/saml read %+v", rec)
	}
	resp, err := http.Get(sp.MetadataURL)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET SP metadata: %v %v", resp, err)
	}
	resp.Body.Close()

	if !sp.IdP.MetadataSigned || sp.IdP.EntityID != st.metadataURL() || sp.IdP.SSORedirect != st.srv.URL+"/saml/sso" ||
		sp.IdP.SSOPOST != st.srv.URL+"/saml/sso" || len(sp.IdP.SigningCerts) != 1 || !sp.IdP.SigningCerts[0].Equal(st.cert) {
		t.Errorf("IdP as read: %+v", sp.IdP)
	}
	raw := fetch(t, st.metadataURL())
	changed := strings.Replace(raw, st.srv.URL+"/saml/sso", "https://evil.example/sso", 1)
	if changed == raw {
		t.Fatal("the SSO URL is not in the metadata")
	}
	if _, err := ParseIdPMetadata([]byte(changed), false); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("changed signed metadata: %v, want a signature error", err)
	}

	unsigned := newStandIn(t, unsignedMetadata)
	if _, err := New(t.Context(), Config{IdPMetadataURL: unsigned.metadataURL()}); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("unsigned IdP metadata: %v, want refused", err)
	}
	sp2, err := New(t.Context(), Config{IdPMetadataURL: unsigned.metadataURL(), AllowUnsignedMetadata: true})
	if err != nil {
		t.Fatalf("unsigned IdP metadata, allowed: %v", err)
	}
	sp2.Close()
}

func fetch(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestRoundTrip: a signed AuthnRequest (Redirect: query signature; POST: enveloped) that
// crewjam's IdP (WantAuthnRequestsSigned) accepts, and its answer accepted by gosaml2, through
// the ACS too; the replay of the same SAMLResponse is refused.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, binding := range []string{BindingRedirect, BindingPOST} {
		t.Run(binding[strings.LastIndex(binding, ":")+1:], func(t *testing.T) {
			t.Parallel()
			st, sp := newPair(t)
			var r *Request
			var err error
			if binding == BindingRedirect {
				r, err = sp.RedirectRequest("relay-1")
				if err == nil {
					q, _ := url.Parse(r.URL)
					if q.Query().Get("SigAlg") != AlgRSASHA256 || q.Query().Get("Signature") == "" {
						t.Errorf("Redirect request is not signed over the query: %s", r.URL)
					}
				}
			} else {
				r, err = sp.PostRequest("relay-1")
				if err == nil {
					xmlReq, _ := base64.StdEncoding.DecodeString(r.SAMLRequest)
					if !strings.Contains(string(xmlReq), AlgRSASHA256) || !strings.Contains(string(r.Form), `name="SAMLRequest"`) {
						t.Errorf("POST request is not signed: %s", xmlReq)
					}
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			samlResponse := send(t, r)
			post := func() (int, string) {
				resp, err := http.PostForm(sp.ACSURL, url.Values{"SAMLResponse": {samlResponse}, "RelayState": {"relay-1"}})
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			code, body := post()
			if code != http.StatusOK || !strings.Contains(body, `"relay_state":"relay-1"`) {
				t.Fatalf("ACS: %d %s", code, body)
			}
			if code, body := post(); code != http.StatusForbidden || !strings.Contains(body, "no pending request") {
				t.Errorf("replay at the ACS: %d %s, want 403", code, body)
			}
			// The same checks through Validate, on a fresh request.
			samlResponse, r2 := redirectLogin(t, sp)
			res, err := sp.ValidateFor(samlResponse, r2.ID)
			if err != nil {
				t.Fatal(err)
			}
			checkOIOSAML(t, st, res)
			if res.InResponseTo != r2.ID || res.Warnings == nil || res.Warnings.InvalidTime || res.Warnings.NotInAudience {
				t.Errorf("result %+v", res)
			}
			res, err = sp.Validate(samlResponse)
			requireRefused(t, res, err, "no pending request")
		})
	}
}

// TestRefusals: what a strict SP must refuse, each with the reason it is refused for.
func TestRefusals(t *testing.T) {
	t.Parallel()
	t.Run("wrong audience", func(t *testing.T) {
		t.Parallel()
		st, sp := newPair(t)
		st.mutate = func(req *saml.IdpAuthnRequest) {
			req.Assertion.Conditions.AudienceRestrictions = []saml.AudienceRestriction{{Audience: saml.Audience{Value: "https://other.example/sp"}}}
		}
		res, err := sp.Validate(first(redirectLogin(t, sp)))
		requireRefused(t, res, err, "audience is not")
	})
	t.Run("no audience restriction", func(t *testing.T) {
		t.Parallel()
		st, sp := newPair(t)
		st.mutate = func(req *saml.IdpAuthnRequest) { req.Assertion.Conditions.AudienceRestrictions = nil }
		res, err := sp.Validate(first(redirectLogin(t, sp)))
		requireRefused(t, res, err, "no AudienceRestriction")
	})
	t.Run("two AuthnStatements", func(t *testing.T) {
		t.Parallel()
		st, sp := newPair(t)
		st.mutate = func(req *saml.IdpAuthnRequest) {
			req.Assertion.AuthnStatements = append(req.Assertion.AuthnStatements, req.Assertion.AuthnStatements...)
		}
		res, err := sp.Validate(first(redirectLogin(t, sp)))
		requireRefused(t, res, err, "2 AuthnStatements")
	})
	t.Run("two AttributeStatements", func(t *testing.T) {
		t.Parallel()
		st, sp := newPair(t)
		st.mutate = func(req *saml.IdpAuthnRequest) {
			req.Assertion.AttributeStatements = append(req.Assertion.AttributeStatements, req.Assertion.AttributeStatements...)
		}
		res, err := sp.Validate(first(redirectLogin(t, sp)))
		requireRefused(t, res, err, "2 AttributeStatements")
	})
	t.Run("wrong recipient", func(t *testing.T) {
		t.Parallel()
		st, sp := newPair(t)
		st.mutate = func(req *saml.IdpAuthnRequest) {
			for i := range req.Assertion.Subject.SubjectConfirmations {
				req.Assertion.Subject.SubjectConfirmations[i].SubjectConfirmationData.Recipient = "https://other.example/acs"
			}
		}
		res, err := sp.Validate(first(redirectLogin(t, sp)))
		requireRefused(t, res, err, "Recipient")
	})
	t.Run("SubjectConfirmationData for another request", func(t *testing.T) {
		t.Parallel()
		st, sp := newPair(t)
		st.mutate = func(req *saml.IdpAuthnRequest) {
			for i := range req.Assertion.Subject.SubjectConfirmations {
				req.Assertion.Subject.SubjectConfirmations[i].SubjectConfirmationData.InResponseTo = "_other"
			}
		}
		res, err := sp.Validate(first(redirectLogin(t, sp)))
		requireRefused(t, res, err, "SubjectConfirmationData \"_other\"")
	})
	t.Run("another request", func(t *testing.T) {
		t.Parallel()
		_, sp := newPair(t)
		a, err := sp.RedirectRequest("a")
		if err != nil {
			t.Fatal(err)
		}
		samlResponse, b := redirectLogin(t, sp)
		res, err := sp.ValidateFor(samlResponse, a.ID)
		requireRefused(t, res, err, "not "+`"`+a.ID+`"`)
		// The refusal used nothing up: the response is good for the request it answers.
		if _, err := sp.ValidateFor(samlResponse, b.ID); err != nil {
			t.Fatalf("the response for its own request: %v", err)
		}
	})
	t.Run("request never sent", func(t *testing.T) {
		t.Parallel()
		_, sp := newPair(t)
		r, err := sp.redirectRequest("x", false) // signed by the SP, but not remembered
		if err != nil {
			t.Fatal(err)
		}
		res, err := sp.Validate(send(t, r))
		requireRefused(t, res, err, "no pending request")
	})
	t.Run("assertion replayed to a request pending again", func(t *testing.T) {
		t.Parallel()
		_, sp := newPair(t)
		samlResponse, r := redirectLogin(t, sp)
		if _, err := sp.Validate(samlResponse); err != nil {
			t.Fatal(err)
		}
		sp.remember(r.ID) // as if the SP had sent that request ID again
		res, err := sp.Validate(samlResponse)
		requireRefused(t, res, err, "replay")
	})
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		_, sp := newPair(t)
		samlResponse, _ := redirectLogin(t, sp)
		sp.sp.Clock = dsig.NewFakeClockAt(time.Now().Add(time.Hour))
		res, err := sp.Validate(samlResponse)
		requireRefused(t, res, err, "NotOnOrAfter")
	})
	t.Run("not yet valid", func(t *testing.T) {
		t.Parallel()
		_, sp := newPair(t)
		samlResponse, _ := redirectLogin(t, sp)
		sp.sp.Clock = dsig.NewFakeClockAt(time.Now().Add(-time.Hour / 2))
		res, err := sp.Validate(samlResponse)
		requireRefused(t, res, err, "Conditions")
	})
	t.Run("not encrypted", func(t *testing.T) {
		t.Parallel()
		st, sp := newPair(t)
		st.register(t, sp.Metadata(), func(r *spRecord) { r.EncryptionCerts = nil })
		res, err := sp.Validate(first(redirectLogin(t, sp)))
		requireRefused(t, res, err, "not encrypted")
	})
	t.Run("another IdP's key", func(t *testing.T) {
		t.Parallel()
		_, sp := newPair(t)
		samlResponse, _ := redirectLogin(t, sp)
		otherKey, otherCert := selfSigned(t, "another IdP")
		forged := rewrite(t, sp, samlResponse, nil, &signer{otherKey, otherCert})
		res, err := sp.Validate(forged)
		requireRefused(t, res, err, "gosaml2")
	})
}

func first(s string, _ *Request) string { return s }

// TestTampered: the assertion changed after the IdP signed it is refused, whether or not the
// Response around it is signed again; an assertion without a signature inside a signed
// Response is refused here although gosaml2 alone accepts it. The unchanged assertion,
// decrypted, encrypted and signed again the same way, is accepted: the refusals are the
// changes'.
func TestTampered(t *testing.T) {
	t.Parallel()
	setLoA := func(v string) func(*etree.Element) {
		return func(a *etree.Element) {
			for _, at := range a.FindElements(".//Attribute") {
				if at.SelectAttrValue("Name", "") == attrLoA {
					at.FindElement("./AttributeValue").SetText(v)
				}
			}
		}
	}
	unsign := func(a *etree.Element) { a.RemoveChild(a.FindElement("./Signature")) }
	noDestination := func(r *etree.Element) { r.RemoveAttr("Destination") }
	otherIssuer := func(r *etree.Element) { r.FindElement("./Issuer").SetText("https://evil.example/idp") }
	tests := []struct {
		name    string
		mutate  func(*etree.Element)
		mutResp func(*etree.Element)
		resign  bool
		why     string // "" = accepted
		gosaml2 bool   // what gosaml2's RetrieveAssertionInfo alone says: accepted
	}{
		{"unchanged, re-encrypted and re-signed", nil, nil, true, "", true},
		{"attribute changed", setLoA("High"), nil, false, "gosaml2", false},
		{"attribute changed, Response re-signed", setLoA("High"), nil, true, "assertion signature verification failed", false},
		{"assertion signature removed, Response re-signed", unsign, nil, true, "not signed (WantAssertionsSigned)", true},
		{"Response without Destination, re-signed", nil, noDestination, true, "Destination", true},
		{"Response from another Issuer, re-signed", nil, otherIssuer, true, "Issuer", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, sp := newPair(t)
			samlResponse, _ := redirectLogin(t, sp)
			var sg *signer
			if tc.resign {
				sg = &signer{st.key, st.cert}
			}
			changed := rewriteResponse(t, sp, samlResponse, tc.mutate, tc.mutResp, sg)
			if _, err := sp.sp.RetrieveAssertionInfo(changed); (err == nil) != tc.gosaml2 {
				t.Errorf("gosaml2 alone: %v, want accepted=%v", err, tc.gosaml2)
			}
			res, err := sp.Validate(changed)
			if tc.why == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				checkOIOSAML(t, st, res)
				return
			}
			requireRefused(t, res, err, tc.why)
		})
	}
}

type signer struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

// rewrite decrypts the assertion of samlResponse with the SP's key (crewjam's xmlenc), applies
// mutate (nil: none), encrypts it again to the SP (AES-256-GCM, RSA-OAEP) and, when sg is set,
// signs the Response again with sg (rsa-sha256, exclusive c14n); without sg the Response keeps
// its old signature.
func rewrite(t *testing.T, sp *SP, samlResponse string, mutate func(*etree.Element), sg *signer) string {
	t.Helper()
	return rewriteResponse(t, sp, samlResponse, mutate, nil, sg)
}

// rewriteResponse is rewrite that also applies mutateResponse (nil: none) to the Response
// element before it is signed again.
func rewriteResponse(t *testing.T, sp *SP, samlResponse string, mutate, mutateResponse func(*etree.Element), sg *signer) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(samlResponse)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	root := doc.Root()
	ea := root.FindElement("./EncryptedAssertion")
	plain, err := xmlenc.Decrypt(sp.Key, ea.FindElement("./EncryptedData"))
	if err != nil {
		t.Fatalf("crewjam decrypt: %v", err)
	}
	adoc := etree.NewDocument()
	if err := adoc.ReadFromBytes(plain); err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(adoc.Root())
	}
	plain, err = adoc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	ed, err := ourEncrypter().Encrypt(sp.Cert, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	ed.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	nea := etree.NewElement("saml:EncryptedAssertion")
	nea.CreateAttr("xmlns:saml", "urn:oasis:names:tc:SAML:2.0:assertion")
	nea.AddChild(ed)
	root.InsertChildAt(ea.Index(), nea)
	root.RemoveChild(ea)
	if mutateResponse != nil {
		mutateResponse(root)
	}
	if sg != nil {
		root.RemoveChild(root.FindElement("./Signature"))
		ctx, err := dsig.NewSigningContext(sg.key, [][]byte{sg.cert.Raw})
		if err != nil {
			t.Fatal(err)
		}
		if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
			t.Fatal(err)
		}
		ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
		signed, err := ctx.SignEnveloped(root)
		if err != nil {
			t.Fatal(err)
		}
		doc.SetRoot(signed)
	}
	out, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(out)
}

// legacyDigest is a DigestMethod under another URI (crewjam's xmlenc exports only the
// RFC 4051 ones; gosaml2 knows SHA-256 only as xmldsig#sha256).
type legacyDigest struct {
	uri string
	h   func() hash.Hash
}

func (d legacyDigest) Algorithm() string { return d.uri }
func (d legacyDigest) Hash() hash.Hash   { return d.h() }

// TestOAEPVariants records which RSA-OAEP key transports gosaml2 v0.12.0 decrypts and which
// crewjam's xmlenc (the IdP's and the crewjam SP's library) decrypts, with AES-256-GCM content,
// so that idp/saml picks one both read. A change of either library's behaviour fails here.
func TestOAEPVariants(t *testing.T) {
	t.Parallel()
	dsigSHA256 := legacyDigest{"http://www.w3.org/2000/09/xmldsig#sha256", sha256.New}
	mk := func(base func() xmlenc.RSA, d xmlenc.DigestMethod) xmlenc.Encrypter {
		e := base()
		e.DigestMethod = d
		e.BlockCipher = xmlenc.AES256GCM
		return e
	}
	tests := []struct {
		name                string
		enc                 xmlenc.Encrypter
		transport, digest   string
		gosaml2, crewjamDec bool
		why                 string
	}{
		{"rsa-oaep-mgf1p, SHA-1 digest", mk(xmlenc.OAEP, &xmlenc.SHA1), AlgRSAOAEPMGF1P, "http://www.w3.org/2000/09/xmldsig#sha1", true, true, ""},
		{"rsa-oaep-mgf1p, SHA-256 digest (xmlenc#sha256)", mk(xmlenc.OAEP, &xmlenc.SHA256), AlgRSAOAEPMGF1P, "http://www.w3.org/2001/04/xmlenc#sha256", false, true, "unsupported digest algorithm"},
		{"rsa-oaep-mgf1p, SHA-256 digest (xmldsig#sha256)", mk(xmlenc.OAEP, dsigSHA256), AlgRSAOAEPMGF1P, dsigSHA256.uri, false, true, "rsa internal error"},
		{"xmlenc11#rsa-oaep, MGF1-SHA256, SHA-256 digest (xmlenc#sha256)", mk(xmlenc.OAEP_SHA256, &xmlenc.SHA256), AlgRSAOAEP11, "http://www.w3.org/2001/04/xmlenc#sha256", false, true, "unsupported digest algorithm"},
		{"xmlenc11#rsa-oaep, MGF1-SHA256, SHA-256 digest (xmldsig#sha256)", mk(xmlenc.OAEP_SHA256, dsigSHA256), AlgRSAOAEP11, dsigSHA256.uri, true, true, ""},
		{"xmlenc11#rsa-oaep, MGF1-SHA1, SHA-1 digest", mk(xmlenc.OAEP_SHA256, &xmlenc.SHA1), AlgRSAOAEP11, "http://www.w3.org/2000/09/xmldsig#sha1", true, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, sp := newPair(t, withEncrypter(tc.enc))
			samlResponse, _ := redirectLogin(t, sp)
			// crewjam's own decryption of the same EncryptedData.
			raw, _ := base64.StdEncoding.DecodeString(samlResponse)
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(raw); err != nil {
				t.Fatal(err)
			}
			ed := doc.Root().FindElement("./EncryptedAssertion/EncryptedData")
			em := ed.FindElement("./KeyInfo/EncryptedKey/EncryptionMethod")
			if em.SelectAttrValue("Algorithm", "") != tc.transport || em.FindElement("./DigestMethod").SelectAttrValue("Algorithm", "") != tc.digest {
				t.Fatalf("the IdP wrote %s", xmlOf(em))
			}
			if _, err := xmlenc.Decrypt(sp.Key, ed); (err == nil) != tc.crewjamDec {
				t.Errorf("crewjam xmlenc decrypt: %v, want ok=%v", err, tc.crewjamDec)
			}
			res, err := sp.Validate(samlResponse)
			if tc.gosaml2 {
				if err != nil {
					t.Fatalf("gosaml2 SP refused: %v", err)
				}
				a := res.Algorithms
				if a.DataEncryption != AlgAES256GCM || a.KeyTransport != tc.transport || a.KeyTransportDigest != tc.digest || a.SymmetricKeyBits != 256 {
					t.Errorf("algorithms seen %+v", a)
				}
				t.Logf("gosaml2 decrypts: %+v", a)
				return
			}
			requireRefused(t, res, err, tc.why)
		})
	}
}

func xmlOf(el *etree.Element) string {
	d := etree.NewDocument()
	d.SetRoot(el.Copy())
	s, _ := d.WriteToString()
	return s
}

// TestAES128CBC: crewjam's default content encryption (AES-128-CBC, RSA-OAEP-MGF1P with SHA-1)
// decrypts too, and the SP says so, so a test can tell it from AES-256-GCM.
func TestAES128CBC(t *testing.T) {
	t.Parallel()
	e := xmlenc.OAEP()
	e.DigestMethod = &xmlenc.SHA1
	e.BlockCipher = xmlenc.AES128CBC
	_, sp := newPair(t, withEncrypter(e))
	res, err := sp.Validate(first(redirectLogin(t, sp)))
	if err != nil {
		t.Fatal(err)
	}
	if a := res.Algorithms; a.DataEncryption != AlgAES128CBC || a.KeyTransport != AlgRSAOAEPMGF1P || a.SymmetricKeyBits != 128 {
		t.Errorf("algorithms seen %+v, want AES-128-CBC", a)
	}
}
