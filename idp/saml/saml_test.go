package saml_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"html"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	crewsaml "github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/idptest"
	idpsaml "github.com/nemidp/nemidp/idp/saml"
	"github.com/nemidp/nemidp/keys/signing"
)

// testSP is a crewjam/saml service provider registered with an in-process IdP.
type testSP struct {
	sp  *crewsaml.ServiceProvider
	srv *idptest.Server
}

var (
	spKeyOnce sync.Once
	spKey     *rsa.PrivateKey
	spCert    *x509.Certificate
)

func spKeys(t testing.TB) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	spKeyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "sp"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			panic(err)
		}
		spKey, spCert = k, must(x509.ParseCertificate(der))
	})
	return spKey, spCert
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// newTestSP serves an IdP and registers an SP with it (entity id https://sp.example/…).
func newTestSP(t testing.TB, unsigned bool) *testSP {
	t.Helper()
	srv := idptest.Start(t)
	md := get(t, srv.IdP.Handler, idpsaml.MetadataPath)
	if md.Code != http.StatusOK {
		t.Fatalf("metadata: %d", md.Code)
	}
	idpMeta, err := samlsp.ParseMetadata(md.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	key, cert := spKeys(t)
	sp := &crewsaml.ServiceProvider{
		EntityID: "https://sp.example/" + randHex(4), Key: key, Certificate: cert, IDPMetadata: idpMeta,
		AcsURL: *must(url.Parse("https://sp.example/acs")), MetadataURL: *must(url.Parse("https://sp.example/metadata")),
		AuthnNameIDFormat: crewsaml.PersistentNameIDFormat,
	}
	if !unsigned {
		sp.SignatureMethod = dsig.RSASHA256SignatureMethod
	}
	raw := must(xml.Marshal(sp.Metadata()))
	rec, err := idpsaml.ParseMetadata(raw)
	if err != nil {
		t.Fatal(err)
	}
	rec.UnsignedRequests = unsigned
	if err := srv.IdP.Store.SaveServiceProvider(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	return &testSP{sp: sp, srv: srv}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return strings.ToLower(base64.RawURLEncoding.EncodeToString(b))
}

func get(t testing.TB, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

// redirectQuery is a fresh request's HTTP-Redirect query (signed unless the SP does not sign).
func (s *testSP) redirectQuery(t testing.TB) string {
	t.Helper()
	req, err := s.sp.MakeAuthenticationRequest(s.srv.URL+idpsaml.SSOPath, crewsaml.HTTPRedirectBinding, crewsaml.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	u, err := req.Redirect("relay", s.sp)
	if err != nil {
		t.Fatal(err)
	}
	return u.RawQuery
}

// TestMetadata: /saml/metadata is the IdP's EntityDescriptor (entityID its own URL), signed
// with the certificate it publishes (enveloped, rsa-sha256, exclusive c14n), with SSO for
// both bindings, SLO, persistent NameIDs, signing keys only; a change breaks the signature.
func TestMetadata(t *testing.T) {
	t.Parallel()
	srv := idptest.Start(t)
	rec := get(t, srv.IdP.Handler, idpsaml.MetadataPath)
	body := rec.Body.Bytes()
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/samlmetadata+xml" {
		t.Fatalf("%d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	var ed crewsaml.EntityDescriptor
	if err := xml.Unmarshal(body, &ed); err != nil {
		t.Fatal(err)
	}
	if ed.EntityID != srv.URL+idpsaml.MetadataPath {
		t.Errorf("entityID %q", ed.EntityID)
	}
	d := ed.IDPSSODescriptors[0]
	if len(d.KeyDescriptors) != 1 || d.KeyDescriptors[0].Use != "signing" {
		t.Fatalf("KeyDescriptors %+v", d.KeyDescriptors)
	}
	cert := must(x509.ParseCertificate(must(base64.StdEncoding.DecodeString(d.KeyDescriptors[0].KeyInfo.X509Data.X509Certificates[0].Data))))
	if _, err := crewsaml.VerifyMetadataSignature(body, []*x509.Certificate{cert}); err != nil {
		t.Fatalf("signature: %v", err)
	}
	for _, want := range []string{dsig.RSASHA256SignatureMethod, "http://www.w3.org/2001/10/xml-exc-c14n#"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("metadata lacks %s", want)
		}
	}
	tampered := bytes.Replace(body, []byte(idpsaml.SSOPath), []byte("/saml/ssX"), 1)
	if _, err := crewsaml.VerifyMetadataSignature(tampered, []*x509.Certificate{cert}); err == nil {
		t.Error("a changed metadata still verifies")
	}
	bindings := map[string]string{}
	for _, s := range d.SingleSignOnServices {
		bindings[s.Binding] = s.Location
	}
	if bindings[crewsaml.HTTPRedirectBinding] != srv.URL+idpsaml.SSOPath || bindings[crewsaml.HTTPPostBinding] != srv.URL+idpsaml.SSOPath {
		t.Errorf("SSO %v", bindings)
	}
	if len(d.SingleLogoutServices) == 0 || d.SingleLogoutServices[0].Location != srv.URL+idpsaml.SLOPath {
		t.Errorf("SLO %+v", d.SingleLogoutServices)
	}
	if len(d.NameIDFormats) != 1 || d.NameIDFormats[0] != crewsaml.PersistentNameIDFormat {
		t.Errorf("NameIDFormats %v", d.NameIDFormats)
	}
	if d.WantAuthnRequestsSigned == nil || !*d.WantAuthnRequestsSigned {
		t.Error("WantAuthnRequestsSigned not set")
	}
	if again := get(t, srv.IdP.Handler, idpsaml.MetadataPath).Body.Bytes(); !bytes.Equal(again, body) {
		t.Error("metadata not cached: another answer the same day")
	}
	if r := get(t, srv.IdP.Handler, idpsaml.SLOPath); r.Code != http.StatusBadRequest { // SLO is served (logout.go): no SAMLRequest
		t.Errorf("SLO answers %d", r.Code)
	}
}

// TestKeysDeterministic: every instance derives the same certificate from the shared key,
// and a second RS256 key (a rollover's next one) is published beside the current one.
func TestKeysDeterministic(t *testing.T) {
	t.Parallel()
	cur, err := signing.GenerateRSA()
	if err != nil {
		t.Fatal(err)
	}
	next, err := signing.GenerateRSA()
	if err != nil {
		t.Fatal(err)
	}
	ec, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	set := &signing.Set{Keys: []*signing.Key{ec, cur, next}}
	a, err := idpsaml.KeysFrom(set, "test")
	if err != nil {
		t.Fatal(err)
	}
	b, err := idpsaml.KeysFrom(set, "test")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Current.Cert.Raw, b.Current.Cert.Raw) || len(a.Next) != 1 || !bytes.Equal(a.Next[0].Raw, b.Next[0].Raw) {
		t.Fatal("certificates differ between derivations")
	}
	if a.Current.Cert.PublicKey.(*rsa.PublicKey).N.Cmp(cur.Priv.Public().(*rsa.PublicKey).N) != 0 {
		t.Fatal("the current certificate is not the first RS256 key's")
	}
	if _, err := idpsaml.KeysFrom(&signing.Set{Keys: []*signing.Key{ec}}, "x"); err == nil {
		t.Fatal("a set without an RSA key gives SAML keys")
	}
	h1 := must(idpsaml.New(&idpsaml.Handler{Keys: a, Issuer: "https://idp.example"}))
	h2 := must(idpsaml.New(&idpsaml.Handler{Keys: b, Issuer: "https://idp.example"}))
	m1, m2 := metadataOf(t, h1), metadataOf(t, h2)
	if !bytes.Equal(m1, m2) {
		t.Fatal("two instances publish different metadata the same day")
	}
	var ed crewsaml.EntityDescriptor
	if err := xml.Unmarshal(m1, &ed); err != nil {
		t.Fatal(err)
	}
	if n := len(ed.IDPSSODescriptors[0].KeyDescriptors); n != 2 {
		t.Fatalf("%d signing keys published during a rollover, want 2", n)
	}
}

func metadataOf(t *testing.T, h *idpsaml.Handler) []byte {
	t.Helper()
	mux := http.NewServeMux()
	h.Register(mux)
	r := get(t, mux, idpsaml.MetadataPath)
	if r.Code != http.StatusOK {
		t.Fatalf("metadata: %d", r.Code)
	}
	return r.Body.Bytes()
}

// TestPrivilegeList: the OIO-BPP document names the ward by CPR number with the
// guardianship's kind; anything else is refused.
func TestPrivilegeList(t *testing.T) {
	t.Parallel()
	b64, err := idpsaml.PrivilegeList("0101901234", "partial")
	if err != nil {
		t.Fatal(err)
	}
	raw := must(base64.StdEncoding.DecodeString(b64))
	var doc struct {
		XMLName xml.Name
		Groups  []struct {
			Scope      string   `xml:"Scope,attr"`
			Privileges []string `xml:"Privilege"`
		} `xml:"PrivilegeGroup"`
	}
	if err := xml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.XMLName.Space != idpsaml.BPPNamespace || doc.XMLName.Local != "PrivilegeList" || len(doc.Groups) != 1 ||
		doc.Groups[0].Scope != "urn:dk:gov:saml:cprNumberIdentifier:0101901234" ||
		len(doc.Groups[0].Privileges) != 1 || doc.Groups[0].Privileges[0] != "urn:dk:gov:nemid:guardian:partial" {
		t.Fatalf("%s", raw)
	}
	for _, bad := range [][2]string{{"", "full"}, {"0101901234", "admin"}} {
		if _, err := idpsaml.PrivilegeList(bad[0], bad[1]); err == nil {
			t.Errorf("PrivilegeList(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

// TestSSORedirectsIntoLogin: a signed request becomes a login flow bound to the browser; the
// same request again is a replay (a Response with RequestDenied), also when the copies race.
func TestSSOReplayRace(t *testing.T) {
	t.Parallel()
	s := newTestSP(t, false)
	q := s.redirectQuery(t)
	const n = 8
	var wg sync.WaitGroup
	start := make(chan struct{})
	codes := make([]int, n)
	bodies := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start // a barrier: all copies are sent at once
			rec := httptest.NewRecorder()
			s.srv.IdP.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, idpsaml.SSOPath+"?"+q, nil))
			codes[i], bodies[i] = rec.Code, rec.Body.String()
		}()
	}
	close(start)
	wg.Wait()
	logins, denied := 0, 0
	for i := range n {
		switch {
		case codes[i] == http.StatusSeeOther:
			logins++
		case codes[i] == http.StatusOK && strings.Contains(bodies[i], `name="SAMLResponse"`):
			raw := must(base64.StdEncoding.DecodeString(html.UnescapeString(between(bodies[i], `name="SAMLResponse" value="`, `"`))))
			if !bytes.Contains(raw, []byte(crewsaml.StatusRequestDenied)) || bytes.Contains(raw, []byte("Assertion")) {
				t.Errorf("replay answered %s", raw)
			}
			denied++
		default:
			t.Errorf("copy %d: %d %.200s", i, codes[i], bodies[i])
		}
	}
	if logins != 1 || denied != n-1 {
		t.Fatalf("%d logins and %d refusals of %d copies of one request", logins, denied, n)
	}
}

func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}

// TestDoneRefusesOtherFlows: /saml/done answers only a SAML flow of this browser: an unknown
// flow is gone, and so is another front end's.
func TestDoneRefusesOtherFlows(t *testing.T) {
	t.Parallel()
	s := newTestSP(t, true)
	r := get(t, s.srv.IdP.Handler, idpsaml.DonePath+"?id=AAAAAAAAAAAAAAAAAAAAAA")
	if r.Code != http.StatusGone {
		t.Errorf("unknown flow: %d", r.Code)
	}
	rec := httptest.NewRecorder()
	s.srv.IdP.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, idpsaml.SSOPath+"?"+s.redirectQuery(t), nil))
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("sso: %d %s", rec.Code, rec.Body)
	}
	flow := strings.TrimPrefix(rec.Header().Get("Location"), "/login/")
	// Without the browser's cookie the flow is not this request's.
	if r := get(t, s.srv.IdP.Handler, idpsaml.DonePath+"?id="+flow); r.Code != http.StatusForbidden {
		t.Errorf("another browser: %d", r.Code)
	}
	// Another front end's flow, bound to this browser, is not answered here.
	cookie := "browser-" + randHex(16)
	sum := sha256.Sum256([]byte(cookie))
	ctx := flows.WithBrowser(t.Context(), base64.RawURLEncoding.EncodeToString(sum[:]))
	f, err := s.srv.IdP.Flows.Begin(ctx, flows.Start{ClientID: "#selvbetjening", ReturnURL: func(string) string { return "/" },
		Protocol: []byte(`{"selfservice":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, idpsaml.DonePath+"?id="+f.ID, nil)
	req.AddCookie(&http.Cookie{Name: "nemidp_browser", Value: cookie})
	rec = httptest.NewRecorder()
	s.srv.IdP.Handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "wrong_front_end_saml") {
		t.Errorf("another front end's flow: %d %.300s", rec.Code, rec.Body)
	}
}
