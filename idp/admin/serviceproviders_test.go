package admin

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/idp/saml"
	"github.com/nemidp/nemidp/idp/store"
)

// testKeys are made once per test binary: RSA key generation is slow under -race.
var testKeys = sync.OnceValues(func() (map[string]crypto.Signer, error) {
	keys := map[string]crypto.Signer{}
	for name, bits := range map[string]int{"rsa2048": 2048, "rsa1024": 1024} {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, err
		}
		keys[name] = k
	}
	for name, curve := range map[string]elliptic.Curve{"p256": elliptic.P256(), "p224": elliptic.P224()} {
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			return nil, err
		}
		keys[name] = k
	}
	return keys, nil
})

// spOpts shape the metadata of a test SP.
type spOpts struct {
	entityID   string
	key        string // a testKeys name; default rsa2048
	acs        string // default https://<host>/saml/acs
	acsBinding []string
	unsigned   bool // no SignatureMethod: crewjam then publishes no signing key
	noACS      bool
	edit       func(*crewjam.EntityDescriptor)
}

// spMetadata is a crewjam/saml SP's metadata (xml.Marshal of sp.Metadata()) with a
// self-signed certificate of its key, and that certificate.
func spMetadata(t *testing.T, o spOpts) (string, *x509.Certificate) {
	t.Helper()
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	k := keys[o.key]
	if o.key == "" {
		k = keys["rsa2048"]
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "Test SP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if o.entityID == "" {
		o.entityID = "https://sp-" + rand.Text()[:10] + ".example/saml/metadata"
	}
	base, _ := url.Parse(o.entityID)
	acs := o.acs
	if acs == "" {
		acs = base.Scheme + "://" + base.Host + "/saml/acs"
	}
	acsURL, _ := url.Parse(acs)
	slo, _ := url.Parse(base.Scheme + "://" + base.Host + "/saml/slo")
	sp := crewjam.ServiceProvider{EntityID: o.entityID, Key: k, Certificate: cert, AcsURL: *acsURL, SloURL: *slo,
		AssertionConsumerServiceBindings: o.acsBinding, LogoutBindings: []string{crewjam.HTTPRedirectBinding}}
	if !o.unsigned {
		// A SOAP logout binding also makes crewjam publish a signing key.
		sp.LogoutBindings = append(sp.LogoutBindings, crewjam.SOAPBinding)
		sp.SignatureMethod = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
		if _, ok := k.(*ecdsa.PrivateKey); ok {
			sp.SignatureMethod = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
		}
	}
	ed := sp.Metadata()
	if o.noACS {
		ed.SPSSODescriptors[0].AssertionConsumerServices = nil
	}
	if o.edit != nil {
		o.edit(ed)
	}
	raw, err := xml.Marshal(ed)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw), cert
}

func spJSON(t *testing.T, req ServiceProviderRequest) string {
	t.Helper()
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func spView(t *testing.T, raw string) ServiceProviderView {
	t.Helper()
	var v ServiceProviderView
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return v
}

func spPath(entityID string) string {
	return "/admin/v1/service-providers/" + url.PathEscape(entityID)
}

const xmlCT = "application/samlmetadata+xml"

// TestServiceProviderRegistration: the metadata-XML form (three content types) and the JSON
// form register an SP; the answer is the small stored view (POST ACS only, the certificates'
// fingerprints), never the metadata; GET by the URL-escaped entity id, the list and DELETE.
func TestServiceProviderRegistration(t *testing.T) {
	t.Parallel()
	api := newCardsAPI(t)
	for _, ct := range []string{xmlCT, "application/xml", "text/xml; charset=utf-8"} {
		t.Run(ct, func(t *testing.T) {
			t.Parallel()
			md, cert := spMetadata(t, spOpts{})
			code, raw, _ := api.call(t, "POST", "/admin/v1/service-providers", md, "Content-Type", ct)
			if code != 201 {
				t.Fatalf("%d %s", code, raw)
			}
			if len(raw) > 4096 || strings.Contains(raw, "EntityDescriptor") || strings.Contains(raw, `"metadata"`) {
				t.Fatalf("the answer echoes the metadata or is large (%d bytes): %s", len(raw), raw)
			}
			v := spView(t, raw)
			d := sha256.Sum256(cert.Raw)
			if len(v.ACS) != 1 || v.ACS[0].Binding != crewjam.HTTPPostBinding || !strings.HasSuffix(v.ACS[0].Location, "/saml/acs") {
				t.Fatalf("acs %+v, want the HTTP-POST one only", v.ACS)
			}
			if len(v.SLO) != 1 || v.SLO[0].Binding != crewjam.HTTPRedirectBinding {
				t.Fatalf("slo %+v, want the Redirect one only (SOAP left out)", v.SLO)
			}
			if len(v.Certificates) != 1 || v.Certificates[0].SHA256 != hex.EncodeToString(d[:]) ||
				strings.Join(v.Certificates[0].Use, ",") != "signing,encryption" || v.Certificates[0].Key != "RSA 2048" ||
				v.Certificates[0].NotAfter != cert.NotAfter.UTC().Format(time.RFC3339) {
				t.Fatalf("certificates %+v, want the one cert %x for both uses", v.Certificates, d)
			}
			if v.Policy.Subject != "pairwise" || v.Policy.Dialect != "default" || v.Policy.UnsignedRequests || v.Policy.CPR || v.Replaced {
				t.Fatalf("policy %+v replaced %v, want the defaults", v.Policy, v.Replaced)
			}
			if v.Name != v.EntityID || !v.AuthnRequestsSigned {
				t.Fatalf("name %q, authn_requests_signed %v", v.Name, v.AuthnRequestsSigned)
			}
			if !strings.Contains(strings.Join(v.Notes, "\n"), "HTTP-Artifact") || !strings.Contains(strings.Join(v.Notes, "\n"), "SOAP") {
				t.Fatalf("notes %q do not say the Artifact ACS and SOAP SLO were left out", v.Notes)
			}
			// What the IdP reads: the record, parsed once.
			sp, err := api.st.ServiceProvider(t.Context(), v.EntityID)
			if err != nil {
				t.Fatal(err)
			}
			if x, _ := api.st.ServiceProviderMetadata(t.Context(), sp.EntityID); x != md || len(sp.SigningCerts) != 1 || len(sp.EncryptionCerts) != 1 || len(sp.ACS) != 1 || sp.Subject != store.SubjectPairwise {
				t.Fatalf("stored %+v", sp)
			}
			if ed := saml.Descriptor(sp); ed.EntityID != v.EntityID || len(ed.SPSSODescriptors[0].AssertionConsumerServices) != 1 {
				t.Fatalf("Descriptor %+v", ed)
			}

			code, got, _ := api.call(t, "GET", spPath(v.EntityID), "")
			if code != 200 || spView(t, got).EntityID != v.EntityID || spView(t, got).Certificates[0].SHA256 != v.Certificates[0].SHA256 {
				t.Fatalf("GET: %d %s", code, got)
			}
			code, list, _ := api.call(t, "GET", "/admin/v1/service-providers", "")
			if code != 200 || !strings.Contains(list, fmt.Sprintf("%q", v.EntityID)) {
				t.Fatalf("list: %d %s", code, list)
			}
			code, del, _ := api.call(t, "DELETE", spPath(v.EntityID), "")
			if code != 200 || !strings.Contains(del, `"deleted":true`) {
				t.Fatalf("DELETE: %d %s", code, del)
			}
			for _, m := range []string{"GET", "DELETE"} {
				if code, raw, _ := api.call(t, m, spPath(v.EntityID), ""); code != 404 {
					t.Fatalf("%s after DELETE: %d %s", m, code, raw)
				}
			}
			a := api.audit.String()
			for _, what := range []string{"service_provider.registered", "service_provider.deleted"} {
				if !strings.Contains(a, `"what":"`+what+`"`) || !strings.Contains(a, `"entity_id":"`+v.EntityID+`"`) {
					t.Fatalf("audit trail lacks %s of %s:\n%s", what, v.EntityID, a)
				}
			}
		})
	}

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		md, _ := spMetadata(t, spOpts{key: "p256"})
		body := spJSON(t, ServiceProviderRequest{Metadata: md, Name: "Borger.dk", RequiresOCES: true, AllowOnBehalfOf: true,
			CPR: true, Dialect: "default", Subject: "global"})
		code, raw, _ := api.call(t, "POST", "/admin/v1/service-providers", body)
		if code != 201 {
			t.Fatalf("%d %s", code, raw)
		}
		v := spView(t, raw)
		want := ServiceProviderPolicy{RequiresOCES: true, AllowOnBehalfOf: true, CPR: true, Dialect: "default", Subject: "global"}
		if v.Policy != want || v.Name != "Borger.dk" {
			t.Fatalf("policy %+v name %q, want %+v", v.Policy, v.Name, want)
		}
		// An EC key signs; crewjam offers it for nothing else (RSA-OAEP needs RSA).
		if len(v.Certificates) != 1 || v.Certificates[0].Key != "EC P-256" || strings.Join(v.Certificates[0].Use, ",") != "signing" {
			t.Fatalf("certificates %+v", v.Certificates)
		}
		sp, err := api.st.ServiceProvider(t.Context(), v.EntityID)
		if err != nil {
			t.Fatal(err)
		}
		if !sp.RequiresOCES || !sp.AllowOnBehalfOf || !sp.CPR || sp.Dialect != "default" || sp.Subject != store.SubjectGlobal || sp.UnsignedRequests {
			t.Fatalf("stored policy %+v", sp)
		}
	})

	t.Run("unsigned requests", func(t *testing.T) {
		t.Parallel()
		// No signing key in the metadata: accepted only when the SP is registered not to sign.
		md, _ := spMetadata(t, spOpts{unsigned: true})
		code, raw, _ := api.call(t, "POST", "/admin/v1/service-providers", spJSON(t, ServiceProviderRequest{Metadata: md, UnsignedRequests: true}))
		if code != 201 || !spView(t, raw).Policy.UnsignedRequests {
			t.Fatalf("%d %s", code, raw)
		}
	})

	t.Run("AuthnRequestsSigned false", func(t *testing.T) {
		t.Parallel()
		md, _ := spMetadata(t, spOpts{edit: func(ed *crewjam.EntityDescriptor) {
			f := false
			ed.SPSSODescriptors[0].AuthnRequestsSigned = &f
		}})
		code, raw, _ := api.call(t, "POST", "/admin/v1/service-providers", md, "Content-Type", xmlCT)
		v := spView(t, raw)
		if code != 201 || v.AuthnRequestsSigned || v.Policy.UnsignedRequests || !strings.Contains(strings.Join(v.Notes, "\n"), "must be signed all the same") {
			t.Fatalf("%d %s", code, raw)
		}
	})

	t.Run("loopback http ACS", func(t *testing.T) {
		t.Parallel()
		for _, acs := range []string{"http://127.0.0.1:9000/acs", "http://localhost/acs", "http://[::1]:8443/acs"} {
			md, _ := spMetadata(t, spOpts{acs: acs})
			if code, raw, _ := api.call(t, "POST", "/admin/v1/service-providers", md, "Content-Type", xmlCT); code != 201 {
				t.Fatalf("%s: %d %s", acs, code, raw)
			}
		}
	})

	t.Run("empty list", func(t *testing.T) {
		t.Parallel()
		other := newCardsAPI(t)
		if code, raw, _ := other.call(t, "GET", "/admin/v1/service-providers", ""); code != 200 || strings.TrimSpace(raw) != `{"entity_ids":[]}` {
			t.Fatalf("%d %s", code, raw)
		}
	})
}

// TestServiceProviderReplace: the same entity id again is refused (409) and changes nothing,
// unless ?replace=true, which answers 200 and says it replaced; ?replace on a new one is 201.
func TestServiceProviderReplace(t *testing.T) {
	t.Parallel()
	api := newCardsAPI(t)
	id := "https://replace-" + rand.Text()[:8] + ".example/md"
	md1, _ := spMetadata(t, spOpts{entityID: id})
	md2, cert2 := spMetadata(t, spOpts{entityID: id, key: "p256"})
	post := func(query, md, name string) (int, string) {
		code, raw, _ := api.call(t, "POST", "/admin/v1/service-providers"+query, spJSON(t, ServiceProviderRequest{Metadata: md, Name: name}))
		return code, raw
	}
	if code, raw := post("?replace=true", md1, "first"); code != 201 || spView(t, raw).Replaced {
		t.Fatalf("new with replace=true: %d %s", code, raw)
	}
	code, raw := post("", md2, "second")
	if c, msg := errorOf(raw); code != 409 || c != "conflict" || !strings.Contains(msg, "replace=true") {
		t.Fatalf("again without replace: %d %s", code, raw)
	}
	if sp, _ := api.st.ServiceProvider(t.Context(), id); sp.Name != "first" {
		t.Fatalf("a refused registration changed the record: %+v", sp)
	}
	if code, raw := post("?replace=maybe", md2, "second"); code != 400 {
		t.Fatalf("replace=maybe: %d %s", code, raw)
	}
	code, raw = post("?replace=true", md2, "second")
	v := spView(t, raw)
	d := sha256.Sum256(cert2.Raw)
	if code != 200 || !v.Replaced || v.Name != "second" || v.Certificates[0].SHA256 != hex.EncodeToString(d[:]) {
		t.Fatalf("replace: %d %s", code, raw)
	}
	sp, _ := api.st.ServiceProvider(t.Context(), id)
	if x, _ := api.st.ServiceProviderMetadata(t.Context(), id); sp.Name != "second" || x != md2 {
		t.Fatalf("not replaced: %+v", sp)
	}
	if a := api.audit.String(); !strings.Contains(a, `"replaced":true`) {
		t.Fatalf("the audit line does not say it replaced:\n%s", a)
	}
}

const billionLaughs = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://lol.example/">&lol9;</EntityDescriptor>`

// TestServiceProviderRefusals: every refusal is a 4xx naming what is wrong, quickly, and
// leaves nothing stored.
func TestServiceProviderRefusals(t *testing.T) {
	t.Parallel()
	api := newCardsAPI(t)
	good, _ := spMetadata(t, spOpts{})
	idpOnly := `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example/">` +
		`<IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` +
		`<SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example/sso"/>` +
		`</IDPSSODescriptor></EntityDescriptor>`
	md := func(o spOpts) string { m, _ := spMetadata(t, o); return m }
	withExternalEntity := `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + good[strings.Index(good, "<EntityDescriptor"):]
	ecEncryptionOnly := md(spOpts{key: "p256", edit: func(ed *crewjam.EntityDescriptor) {
		kd := &ed.SPSSODescriptors[0].KeyDescriptors
		for i := range *kd {
			(*kd)[i].Use = "encryption"
		}
	}})
	dupIndex := md(spOpts{acsBinding: []string{crewjam.HTTPPostBinding, crewjam.HTTPPostBinding}, edit: func(ed *crewjam.EntityDescriptor) {
		ed.SPSSODescriptors[0].AssertionConsumerServices[1].Index = 1
	}})

	for _, tc := range []struct {
		name       string
		ct, body   string
		status     int
		code, want string // error code and a part of its message
	}{
		{"not XML", xmlCT, "hello, this is not metadata", 400, "invalid_metadata", "not XML"},
		{"broken XML", xmlCT, `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"><SPSSODescriptor></EntityDescriptor>`, 400, "invalid_metadata", "not well-formed XML"},
		{"empty", xmlCT, " ", 400, "invalid_metadata", "empty"},
		{"billion laughs", xmlCT, billionLaughs, 400, "invalid_metadata", "DTD or entity declaration"},
		{"external entity", xmlCT, withExternalEntity, 400, "invalid_metadata", "DTD or entity declaration"},
		{"undeclared entity", xmlCT, strings.Replace(good, `entityID="`, `entityID="&x;`, 1), 400, "invalid_metadata", "not well-formed XML"},
		{"two roots", xmlCT, good + good, 400, "invalid_metadata", "second root element"},
		{"aggregate", xmlCT, `<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` + good + `</EntitiesDescriptor>`, 400, "invalid_metadata", "EntitiesDescriptor"},
		{"other root", xmlCT, `<html><body>metadata</body></html>`, 400, "invalid_metadata", "root element <html>"},
		{"EntityDescriptor of another namespace", xmlCT, `<EntityDescriptor entityID="https://x.example/"/>`, 400, "invalid_metadata", "root element <EntityDescriptor>"},
		{"no SPSSODescriptor", xmlCT, idpOnly, 400, "invalid_metadata", "SPSSODescriptor"},
		{"no ACS", xmlCT, md(spOpts{noACS: true}), 400, "invalid_metadata", "no AssertionConsumerService"},
		{"http ACS, not loopback", xmlCT, md(spOpts{acs: "http://sp.example/acs"}), 400, "invalid_metadata", "http is only allowed on a loopback host"},
		{"javascript ACS", xmlCT, md(spOpts{acs: "javascript:alert(1)"}), 400, "invalid_metadata", "invalid url scheme"},
		{"relative ACS", xmlCT, md(spOpts{acs: "/acs"}), 400, "invalid_metadata", "invalid url scheme"},
		{"ftp ACS", xmlCT, md(spOpts{acs: "ftp://sp.example/acs"}), 400, "invalid_metadata", "invalid url scheme"},
		{"Redirect ACS only", xmlCT, md(spOpts{acsBinding: []string{crewjam.HTTPRedirectBinding, crewjam.HTTPArtifactBinding}}), 400, "invalid_metadata", "HTTP-POST"},
		{"http SLO, not loopback", xmlCT, md(spOpts{edit: func(ed *crewjam.EntityDescriptor) {
			ed.SPSSODescriptors[0].SingleLogoutServices[0].ResponseLocation = "http://sp.example/slo"
		}}), 400, "invalid_metadata", "SingleLogoutService \"http://sp.example/slo\": http is only allowed"},
		{"duplicate ACS index", xmlCT, dupIndex, 400, "invalid_metadata", "two AssertionConsumerServices with index 1"},
		{"no signing certificate", xmlCT, md(spOpts{unsigned: true}), 400, "invalid_metadata", "no signing certificate"},
		{"RSA 1024", xmlCT, md(spOpts{key: "rsa1024"}), 400, "invalid_metadata", "RSA key of 1024 bits: want at least 2048"},
		{"EC P-224", xmlCT, md(spOpts{key: "p224"}), 400, "invalid_metadata", "want P-256"},
		{"EC for encryption", xmlCT, ecEncryptionOnly, 400, "invalid_metadata", "not RSA"},
		{"certificate not X.509", xmlCT, strings.Replace(good, `#">MII`, `#">AAAAMII`, 1), 400, "invalid_metadata", "not X.509"},
		{"oversized XML", xmlCT, good + strings.Repeat(" ", saml.MaxMetadataSize), 400, "invalid_metadata", "larger than"},
		{"oversized metadata in JSON", "application/json", spJSON(t, ServiceProviderRequest{Metadata: good + strings.Repeat(" ", saml.MaxMetadataSize)}), 400, "invalid_metadata", "larger than"},
		{"oversized JSON", "application/json", `{"metadata":"` + strings.Repeat("a", maxSPBody) + `"}`, 413, "invalid_request", "too large"},
		{"bad subject", "application/json", spJSON(t, ServiceProviderRequest{Metadata: good, Subject: "transient"}), 400, "invalid_request", "subject:"},
		{"bad dialect", "application/json", spJSON(t, ServiceProviderRequest{Metadata: good, Dialect: "klingon"}), 400, "invalid_request", "dialect:"},
		{"an OIDC dialect", "application/json", spJSON(t, ServiceProviderRequest{Metadata: good, Dialect: "broker"}), 400, "invalid_request", "dialect:"},
		{"ACS host *", xmlCT, md(spOpts{acs: "https://*/acs"}), 400, "invalid_metadata", "DNS name or an IP"},
		{"ACS host with a CSP directive", xmlCT, md(spOpts{acs: "https://a;script-src/acs"}), 400, "invalid_metadata", "DNS name or an IP"},
		{"bad name", "application/json", spJSON(t, ServiceProviderRequest{Metadata: good, Name: "a\x00b"}), 400, "invalid_request", "name:"},
		{"unknown field", "application/json", `{"metadata":"x","subjekt":"global"}`, 400, "invalid_request", "subjekt"},
		{"no metadata in JSON", "application/json", `{"name":"x"}`, 400, "invalid_metadata", "empty"},
		{"form", "application/x-www-form-urlencoded", "metadata=x", 415, "invalid_request", "samlmetadata+xml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			code, raw, _ := api.call(t, "POST", "/admin/v1/service-providers", tc.body, "Content-Type", tc.ct)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("refusal took %v", took)
			}
			c, msg := errorOf(raw)
			if code != tc.status || c != tc.code || !strings.Contains(msg, tc.want) {
				t.Fatalf("%d %s %q, want %d %s containing %q", code, c, msg, tc.status, tc.code, tc.want)
			}
		})
	}
	t.Cleanup(func() {
		// Nothing was stored by a refusal (the good metadata was never sent alone).
		if ids, err := api.st.ServiceProviders(context.Background()); err != nil || len(ids) != 0 {
			t.Errorf("after refusals the store lists %q (%v)", ids, err)
		}
	})
}

// TestServiceProviderAuth: every route needs an operator token; a refused call is audited
// and stores nothing.
func TestServiceProviderAuth(t *testing.T) {
	t.Parallel()
	api := newCardsAPI(t)
	good, _ := spMetadata(t, spOpts{})
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/admin/v1/service-providers", good},
		{"GET", "/admin/v1/service-providers", ""},
		{"GET", spPath("https://x.example/"), ""},
		{"DELETE", spPath("https://x.example/"), ""},
	} {
		for _, auth := range []string{"", "Bearer wrong-token", "Basic " + cardsToken} {
			code, raw, hdr := api.call(t, tc.method, tc.path, tc.body, "Authorization", auth, "Content-Type", xmlCT)
			if c, _ := errorOf(raw); code != 401 || c != "unauthorized" || hdr.Get("WWW-Authenticate") == "" {
				t.Fatalf("%s %s with %q: %d %s", tc.method, tc.path, auth, code, raw)
			}
		}
	}
	if ids, _ := api.st.ServiceProviders(t.Context()); len(ids) != 0 {
		t.Fatalf("an unauthenticated POST stored %q", ids)
	}
	if a := api.audit.String(); strings.Contains(a, "service_provider.registered") || !strings.Contains(a, `"route":"POST /admin/v1/service-providers"`) {
		t.Fatalf("audit trail:\n%s", a)
	}
}

// TestBuildServiceProviderCertNotes: an expired certificate is registered with a note (an
// SP's self-signed metadata key often is), and the view marks it.
func TestBuildServiceProviderCertNotes(t *testing.T) {
	t.Parallel()
	md, cert := spMetadata(t, spOpts{})
	later := cert.NotAfter.Add(time.Hour)
	sp, notes, err := BuildServiceProvider(ServiceProviderRequest{Metadata: md}, later)
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) == 0 || !strings.Contains(strings.Join(notes, "\n"), "expired") {
		t.Fatalf("notes %q", notes)
	}
	if v := ServiceProviderViewOf(sp, later); !v.Certificates[0].Expired {
		t.Fatalf("view %+v", v.Certificates)
	}
}

// TestRegisterServiceProvidersFromConfig: the configuration's SPs are registered with their
// policy; registering again (a restart, instances starting at once) ends in the same records;
// a wrong entry names its field and registers none of them.
func TestRegisterServiceProvidersFromConfig(t *testing.T) {
	t.Parallel()
	api := newCardsAPI(t)
	ctx := t.Context()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	md1, _ := spMetadata(t, spOpts{})
	md2, _ := spMetadata(t, spOpts{unsigned: true})
	f1, f2 := write("one.xml", md1), write("two.xml", md2)
	sps := []config.ServiceProvider{
		{MetadataFile: f1, Name: "Kommunen", CPR: true, Subject: "global"},
		{MetadataFile: f2, UnsignedRequests: true, AllowOnBehalfOf: true},
	}
	log := slog.New(slog.DiscardHandler)
	errs := make(chan error, 8)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { errs <- RegisterServiceProviders(ctx, api.st, sps, log) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ids, err := api.st.ServiceProviders(ctx)
	if err != nil || len(ids) != 2 {
		t.Fatalf("registered %q (%v), want 2", ids, err)
	}
	for _, id := range ids {
		sp, err := api.st.ServiceProvider(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		x, err := api.st.ServiceProviderMetadata(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		switch x {
		case md1:
			if sp.Name != "Kommunen" || !sp.CPR || sp.Dialect != "" || sp.Subject != store.SubjectGlobal || sp.UnsignedRequests {
				t.Fatalf("first: %+v", sp)
			}
		case md2:
			if !sp.UnsignedRequests || !sp.AllowOnBehalfOf || sp.Subject != store.SubjectPairwise || sp.Name != sp.EntityID {
				t.Fatalf("second: %+v", sp)
			}
		default:
			t.Fatalf("unexpected record %+v", sp)
		}
	}

	for _, tc := range []struct {
		name  string
		sps   []config.ServiceProvider
		field string // the FieldError's field starts with it
		want  string
	}{
		{"missing file", []config.ServiceProvider{{MetadataFile: f1}, {MetadataFile: filepath.Join(dir, "nope.xml")}},
			"saml.service_providers[1].metadata_file", "no such file"},
		{"bad dialect", []config.ServiceProvider{{MetadataFile: f1, Dialect: "klingon"}}, "saml.service_providers[0]", "dialect:"},
		{"must sign", []config.ServiceProvider{{MetadataFile: f2}}, "saml.service_providers[0]", "no signing certificate"},
		{"not metadata", []config.ServiceProvider{{MetadataFile: write("bad.xml", billionLaughs)}}, "saml.service_providers[0]", "DTD"},
		{"one entity twice", []config.ServiceProvider{{MetadataFile: f1}, {MetadataFile: write("copy.xml", md1)}},
			"saml.service_providers[1]", "also saml.service_providers[0]'s"},
		{"oversized", []config.ServiceProvider{{MetadataFile: write("big.xml", md1+strings.Repeat(" ", saml.MaxMetadataSize))}},
			"saml.service_providers[0].metadata_file", "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other := newCardsAPI(t)
			err := RegisterServiceProviders(ctx, other.st, tc.sps, log)
			var fe *config.FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, tc.field) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a FieldError on %s saying %q", err, tc.field, tc.want)
			}
			if ids, _ := other.st.ServiceProviders(ctx); len(ids) != 0 {
				t.Fatalf("a wrong configuration registered %q", ids)
			}
		})
	}
}
