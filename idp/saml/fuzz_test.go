package saml_test

import (
	"bytes"
	"compress/flate"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewsaml "github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/nemidp/nemidp/flows"
	idpsaml "github.com/nemidp/nemidp/idp/saml"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/idp/web"
	"github.com/nemidp/nemidp/keys/signing"
)

// checkSSOAnswer holds /saml/sso to its contract for any input: no panic, no server error, and
// never an assertion — a login redirect, an error page, or a signed error Response.
func checkSSOAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	body := rec.Body.String()
	switch rec.Code {
	case http.StatusSeeOther:
		if !strings.HasPrefix(rec.Header().Get("Location"), "/login/") {
			t.Fatalf("redirect to %q", rec.Header().Get("Location"))
		}
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusMethodNotAllowed:
	case http.StatusOK:
		v := between(body, `name="SAMLResponse" value="`, `"`)
		if v == "" {
			t.Fatalf("200 without a Response: %.300s", body)
		}
		raw, err := base64.StdEncoding.DecodeString(html.UnescapeString(v))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("Assertion")) || bytes.Contains(raw, []byte(crewsaml.StatusSuccess)) {
			t.Fatalf("/saml/sso answered a successful Response: %s", raw)
		}
	default:
		t.Fatalf("status %d: %.300s", rec.Code, body)
	}
}

func deflateB64(doc []byte) string {
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = fw.Write(doc)
	_ = fw.Close()
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// fuzzIdP is the SAML handler alone on the test Redis, with fixed keys (testdata/keys), and
// an SP registered with it that signs its requests.
func fuzzIdP(f *testing.F) (http.Handler, *crewsaml.ServiceProvider) {
	f.Helper()
	st := storetest.NewStore(f, storetest.Real().Client(f)) // skips without Redis (fails on CI)
	set, err := signing.LoadDir("testdata/keys/idp")
	if err != nil {
		f.Fatal(err)
	}
	keys := must(idpsaml.KeysFrom(set, "fuzz"))
	eng := &flows.Engine{Store: st, FlowTTL: 10 * time.Minute, SessionTTL: time.Hour, Grace: time.Hour, MaxFailures: 5,
		Policy: idpsaml.Policy(nil, st)}
	w := &web.Handler{Flows: eng, Clients: idpsaml.ClientNames(st, st), CSRFKey: []byte("fuzz-csrf-key")}
	const issuer = "http://idp.example"
	h := must(idpsaml.New(&idpsaml.Handler{Store: st, Flows: eng, Web: w, Keys: keys, Issuer: issuer}))
	mux := http.NewServeMux()
	h.Register(mux)
	idpMeta := must(samlsp.ParseMetadata(get(f, mux, idpsaml.MetadataPath).Body.Bytes()))
	block, _ := pem.Decode(must(os.ReadFile("testdata/keys/sp.pem")))
	spk := must(x509.ParsePKCS1PrivateKey(block.Bytes))
	sp := &crewsaml.ServiceProvider{
		EntityID: "https://sp.example/fuzz", Key: spk, Certificate: must(idpsaml.Certificate(spk, "sp")), IDPMetadata: idpMeta,
		AcsURL: *must(url.Parse("https://sp.example/acs")), MetadataURL: *must(url.Parse("https://sp.example/fuzz")),
		SignatureMethod: dsig.RSASHA256SignatureMethod,
	}
	rec := must(idpsaml.ParseMetadata(must(xml.Marshal(sp.Metadata()))))
	if err := st.SaveServiceProvider(f.Context(), rec); err != nil {
		f.Fatal(err)
	}
	return mux, sp
}

func fuzzQuery(f *testing.F, sp *crewsaml.ServiceProvider, binding string) *crewsaml.AuthnRequest {
	f.Helper()
	req, err := sp.MakeAuthenticationRequest("http://idp.example"+idpsaml.SSOPath, binding, crewsaml.HTTPPostBinding)
	if err != nil {
		f.Fatal(err)
	}
	return req
}

// FuzzRedirectRequest feeds the HTTP-Redirect binding's query to /saml/sso (seed corpus in
// testdata/fuzz/FuzzRedirectRequest, plus fresh signed and unsigned requests).
func FuzzRedirectRequest(f *testing.F) {
	h, sp := fuzzIdP(f)
	u := must(fuzzQuery(f, sp, crewsaml.HTTPRedirectBinding).Redirect("relay", sp))
	f.Add(u.RawQuery)
	unsigned := *sp
	unsigned.SignatureMethod = ""
	u = must(fuzzQuery(f, sp, crewsaml.HTTPRedirectBinding).Redirect("", &unsigned))
	f.Add(u.RawQuery)
	f.Add("SAMLRequest=" + url.QueryEscape(deflateB64([]byte(`<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>`))))
	f.Add("SAMLRequest=" + url.QueryEscape(deflateB64(make([]byte, 1<<20))))
	f.Add("SAMLRequest=%zz&RelayState=&SigAlg=x&Signature=")
	f.Fuzz(func(t *testing.T, query string) {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, idpsaml.SSOPath, nil)
		r.URL.RawQuery = query
		h.ServeHTTP(rec, r)
		checkSSOAnswer(t, rec)
	})
}

// FuzzPostRequest feeds the HTTP-POST binding's SAMLRequest (the XML, base64-encoded here)
// and RelayState to /saml/sso (seed corpus in testdata/fuzz/FuzzPostRequest).
func FuzzPostRequest(f *testing.F) {
	h, sp := fuzzIdP(f)
	req := fuzzQuery(f, sp, crewsaml.HTTPPostBinding) // signed (enveloped)
	f.Add(xmlBytes(f, req), "relay")
	f.Add([]byte(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="&b;"/>`), "")
	f.Add([]byte(`<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="x" Version="2.0" IssueInstant="2020-01-01T00:00:00Z"><saml:Issuer>`+sp.EntityID+`</saml:Issuer></samlp:AuthnRequest>`), "")
	f.Fuzz(func(t *testing.T, doc []byte, relay string) {
		form := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(doc)}, "RelayState": {relay}}
		r := httptest.NewRequest(http.MethodPost, idpsaml.SSOPath, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		checkSSOAnswer(t, rec)
	})
}

func xmlBytes(t testing.TB, req *crewsaml.AuthnRequest) []byte {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(req.Element())
	return must(doc.WriteToBytes())
}
