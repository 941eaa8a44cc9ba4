// Package saml2sp is a SAML 2.0 service provider for the tests, built on
// github.com/russellhaering/gosaml2 (and goxmldsig): a SAML library other than crewjam/saml,
// which the IdP is built on, so that a Response is checked by code that shares nothing with the
// code that made it (issue 16, point 8).
//
// It lives in a non-test package under integration-tests/internal so that the integration tests
// and its own tests (against a stand-in IdP, without Redis) can import it; nothing outside
// integration-tests may.
//
// The SP is strict: every check gosaml2 makes stays on, and what gosaml2 only reports as a
// warning (audience, Conditions times) or leaves to the caller (InResponseTo, replay, signed
// assertion inside a signed Response, encryption, algorithms) is refused here.
package saml2sp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	saml2 "github.com/russellhaering/gosaml2"
	"github.com/russellhaering/gosaml2/types"
	dsig "github.com/russellhaering/goxmldsig"
)

// SAML constants the SP uses.
const (
	NameIDFormatPersistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	AttrNameFormatURI      = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
	BindingRedirect        = saml2.BindingHttpRedirect
	BindingPOST            = saml2.BindingHttpPost

	// Algorithms, as they appear in the XML.
	AlgAES256GCM     = types.MethodAES256GCM
	AlgAES128GCM     = types.MethodAES128GCM
	AlgAES128CBC     = types.MethodAES128CBC
	AlgAES256CBC     = types.MethodAES256CBC
	AlgRSAOAEPMGF1P  = types.MethodRSAOAEP  // xmlenc#rsa-oaep-mgf1p
	AlgRSAOAEP11     = types.MethodRSAOAEP2 // xmlenc11#rsa-oaep
	AlgRSASHA256     = dsig.RSASHA256SignatureMethod
	AlgExclusiveC14N = string(dsig.CanonicalXML10ExclusiveAlgorithmId)
)

// ErrRefused wraps every refusal of a Response, whichever check made it.
var ErrRefused = errors.New("saml2sp: response refused")

// MaxResponseSize bounds a SAMLResponse form field (base64) the ACS reads.
const MaxResponseSize = 1 << 20

// Config configures New.
type Config struct {
	// IdPMetadataURL is fetched once by New: the IdP's entity id, signing certificates and SSO
	// endpoints come from there.
	IdPMetadataURL string
	// HTTPClient fetches the metadata; default: 10 s timeout.
	HTTPClient *http.Client
	// AllowUnsignedMetadata accepts IdP metadata without an enveloped signature. Signed
	// metadata is always verified (with the signing certificates it carries: the SP has no
	// other trust anchor, so this proves the signature is well made, not who made it).
	AllowUnsignedMetadata bool
	// AllowPlainAssertion accepts an unencrypted assertion. By default the assertion must be
	// encrypted, since the SP's metadata has an encryption key.
	AllowPlainAssertion bool
	// RequestedAuthnContext goes into every AuthnRequest when set.
	RequestedAuthnContext *saml2.RequestedAuthnContext
	// Clock is gosaml2's clock (nil: the real one).
	Clock *dsig.Clock
}

// IdP is what the SP learned from the IdP's metadata.
type IdP struct {
	EntityID      string
	SSORedirect   string
	SSOPOST       string
	SigningCerts  []*x509.Certificate
	NameIDFormats []string
	// MetadataSigned is true when the metadata carried a signature (which was verified).
	MetadataSigned bool
}

// SP is one running service provider: an httptest server with its metadata and ACS.
type SP struct {
	EntityID    string
	MetadataURL string
	ACSURL      string
	Key         *rsa.PrivateKey
	Cert        *x509.Certificate
	IdP         IdP

	cfg      Config
	srv      *httptest.Server
	sp       *saml2.SAMLServiceProvider
	metadata []byte
	tlsCert  tls.Certificate

	mu sync.Mutex
	// pending are the IDs of the AuthnRequests this SP sent and has not seen answered.
	pending map[string]time.Time
	// seen are the IDs of the assertions (and responses) already accepted: a replay is refused.
	seen map[string]bool
}

// New starts an SP for the IdP whose metadata is at cfg.IdPMetadataURL, with a fresh RSA-2048
// key and self-signed certificate (for signing its AuthnRequests and decrypting assertions).
// Close stops it.
func New(ctx context.Context, cfg Config) (*SP, error) {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	idp, err := fetchIdPMetadata(ctx, cfg.HTTPClient, cfg.IdPMetadataURL, cfg.AllowUnsignedMetadata)
	if err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("saml2sp: key: %w", err)
	}
	s := &SP{Key: key, IdP: *idp, cfg: cfg, pending: map[string]time.Time{}, seen: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /saml/metadata", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/samlmetadata+xml")
		_, _ = w.Write(s.metadata)
	})
	mux.HandleFunc("POST /saml/acs", s.serveACS)
	s.srv = httptest.NewServer(mux)
	s.MetadataURL = s.srv.URL + "/saml/metadata"
	s.EntityID = s.MetadataURL
	s.ACSURL = s.srv.URL + "/saml/acs"

	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "saml2sp " + s.EntityID},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		s.srv.Close()
		return nil, fmt.Errorf("saml2sp: certificate: %w", err)
	}
	if s.Cert, err = x509.ParseCertificate(der); err != nil {
		s.srv.Close()
		return nil, fmt.Errorf("saml2sp: certificate: %w", err)
	}
	s.tlsCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: s.Cert}

	s.sp = &saml2.SAMLServiceProvider{
		IdentityProviderSSOURL:      idp.SSORedirect,
		IdentityProviderSSOBinding:  BindingRedirect,
		IdentityProviderIssuer:      idp.EntityID,
		AssertionConsumerServiceURL: s.ACSURL,
		ServiceProviderIssuer:       s.EntityID,
		AudienceURI:                 s.EntityID,
		SignAuthnRequests:           true,
		SignAuthnRequestsAlgorithm:  dsig.RSASHA256SignatureMethod,
		// Exclusive c14n without prefixes, as OIOSAML 3.0 asks.
		SignAuthnRequestsCanonicalizer: dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList(""),
		RequestedAuthnContext:          cfg.RequestedAuthnContext,
		IDPCertificateStore:            &dsig.MemoryX509CertificateStore{Roots: idp.SigningCerts},
		NameIdFormat:                   NameIDFormatPersistent,
		// Every check stays on: the encryption certificate's validity too.
		ValidateEncryptionCert: true,
		Clock:                  cfg.Clock,
		// SPKeyStore (not SetSPKeyStore) because gosaml2 v0.12.0 decrypts only with it.
		SPKeyStore: dsig.TLSCertKeyStore(s.tlsCert),
	}
	md, err := s.sp.Metadata()
	if err != nil {
		s.srv.Close()
		return nil, fmt.Errorf("saml2sp: metadata: %w", err)
	}
	md.SPSSODescriptor.NameIDFormats = []string{NameIDFormatPersistent}
	raw, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		s.srv.Close()
		return nil, fmt.Errorf("saml2sp: metadata: %w", err)
	}
	s.metadata = append([]byte(xml.Header), raw...)
	return s, nil
}

// Close stops the SP's server.
func (s *SP) Close() { s.srv.Close() }

// Metadata is the SP's metadata XML, as an operator registers it at the IdP.
func (s *SP) Metadata() []byte { return bytes.Clone(s.metadata) }

// fetchIdPMetadata reads the IdP's EntityDescriptor, verifying its signature when it has one.
func fetchIdPMetadata(ctx context.Context, c *http.Client, u string, allowUnsigned bool) (*IdP, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("saml2sp: IdP metadata %s: %w", u, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("saml2sp: IdP metadata %s: %w", u, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("saml2sp: IdP metadata %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("saml2sp: IdP metadata %s: HTTP %d", u, resp.StatusCode)
	}
	return ParseIdPMetadata(raw, allowUnsigned)
}

// ParseIdPMetadata parses an IdP's EntityDescriptor. A signed one is verified with goxmldsig
// against the signing certificates it carries, and only what the signature covers is read.
func ParseIdPMetadata(raw []byte, allowUnsigned bool) (*IdP, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, fmt.Errorf("saml2sp: IdP metadata: %w", err)
	}
	root := doc.Root()
	if root == nil {
		return nil, errors.New("saml2sp: IdP metadata: empty")
	}
	var md types.EntityDescriptor
	if err := xml.Unmarshal(raw, &md); err != nil {
		return nil, fmt.Errorf("saml2sp: IdP metadata: %w", err)
	}
	if md.IDPSSODescriptor == nil {
		return nil, errors.New("saml2sp: IdP metadata: no IDPSSODescriptor")
	}
	certs, err := signingCerts(md.IDPSSODescriptor.KeyDescriptors)
	if err != nil {
		return nil, err
	}
	signed := root.FindElement("./Signature") != nil
	if signed {
		vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: certs})
		verified, err := vc.Validate(root)
		if err != nil {
			return nil, fmt.Errorf("saml2sp: IdP metadata signature: %w", err)
		}
		// Read again from what the signature covers.
		vdoc := etree.NewDocument()
		vdoc.SetRoot(verified)
		vraw, err := vdoc.WriteToBytes()
		if err != nil {
			return nil, fmt.Errorf("saml2sp: IdP metadata: %w", err)
		}
		md = types.EntityDescriptor{}
		if err := xml.Unmarshal(vraw, &md); err != nil || md.IDPSSODescriptor == nil {
			return nil, fmt.Errorf("saml2sp: IdP metadata (signed part): %v", err)
		}
		if certs, err = signingCerts(md.IDPSSODescriptor.KeyDescriptors); err != nil {
			return nil, err
		}
	} else if !allowUnsigned {
		return nil, errors.New("saml2sp: IdP metadata is not signed")
	}
	idp := &IdP{EntityID: md.EntityID, SigningCerts: certs, MetadataSigned: signed}
	for _, s := range md.IDPSSODescriptor.SingleSignOnServices {
		switch s.Binding {
		case BindingRedirect:
			idp.SSORedirect = s.Location
		case BindingPOST:
			idp.SSOPOST = s.Location
		}
	}
	for _, f := range md.IDPSSODescriptor.NameIDFormats {
		idp.NameIDFormats = append(idp.NameIDFormats, strings.TrimSpace(f.Value))
	}
	if idp.EntityID == "" || idp.SSORedirect == "" {
		return nil, fmt.Errorf("saml2sp: IdP metadata: entity id %q, SSO Redirect %q", idp.EntityID, idp.SSORedirect)
	}
	return idp, nil
}

func signingCerts(kds []types.KeyDescriptor) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, kd := range kds {
		if kd.Use != "" && kd.Use != "signing" {
			continue
		}
		for _, c := range kd.KeyInfo.X509Data.X509Certificates {
			der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.Data), ""))
			if err != nil {
				return nil, fmt.Errorf("saml2sp: IdP metadata: certificate: %w", err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, fmt.Errorf("saml2sp: IdP metadata: certificate: %w", err)
			}
			certs = append(certs, cert)
		}
	}
	if len(certs) == 0 {
		return nil, errors.New("saml2sp: IdP metadata: no signing certificate")
	}
	return certs, nil
}

// ---- AuthnRequests ----

// Request is one AuthnRequest the SP sent (and remembers until it is answered).
type Request struct {
	ID         string
	RelayState string
	// URL is the whole Redirect-binding URL (SAMLRequest, RelayState, SigAlg, Signature) for a
	// Redirect request; the IdP's POST SSO URL for a POST request.
	URL string
	// SAMLRequest is the POST form's value (base64 of the signed XML); empty for Redirect.
	SAMLRequest string
	// Form is gosaml2's auto-submitting HTML form for a POST request.
	Form []byte
}

// RedirectRequest builds an AuthnRequest for the HTTP-Redirect binding, signed over the query
// (SigAlg rsa-sha256, Signature), as saml-bindings §3.4.4.1 asks.
func (s *SP) RedirectRequest(relayState string) (*Request, error) {
	return s.redirectRequest(relayState, true)
}

func (s *SP) redirectRequest(relayState string, remember bool) (*Request, error) {
	doc, err := s.sp.BuildAuthRequestDocumentNoSig()
	if err != nil {
		return nil, fmt.Errorf("saml2sp: AuthnRequest: %w", err)
	}
	u, err := s.sp.BuildAuthURLRedirect(relayState, doc)
	if err != nil {
		return nil, fmt.Errorf("saml2sp: AuthnRequest: %w", err)
	}
	r := &Request{ID: doc.Root().SelectAttrValue("ID", ""), RelayState: relayState, URL: u}
	if remember {
		s.remember(r.ID)
	}
	return r, nil
}

// PostRequest builds an AuthnRequest for the HTTP-POST binding, with an enveloped XML
// signature (rsa-sha256, exclusive c14n). Its Destination is the IdP's POST SSO URL.
func (s *SP) PostRequest(relayState string) (*Request, error) {
	if s.IdP.SSOPOST == "" {
		return nil, errors.New("saml2sp: the IdP's metadata has no HTTP-POST SSO endpoint")
	}
	// A copy with the POST endpoint as Destination; the signing context is per copy.
	p := s.postProvider()
	doc, err := p.BuildAuthRequestDocument()
	if err != nil {
		return nil, fmt.Errorf("saml2sp: AuthnRequest: %w", err)
	}
	raw, err := doc.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("saml2sp: AuthnRequest: %w", err)
	}
	form, err := p.BuildAuthBodyPostFromDocument(relayState, doc)
	if err != nil {
		return nil, fmt.Errorf("saml2sp: AuthnRequest: %w", err)
	}
	r := &Request{ID: doc.Root().SelectAttrValue("ID", ""), RelayState: relayState, URL: s.IdP.SSOPOST,
		SAMLRequest: base64.StdEncoding.EncodeToString(raw), Form: form}
	s.remember(r.ID)
	return r, nil
}

func (s *SP) postProvider() *saml2.SAMLServiceProvider {
	return &saml2.SAMLServiceProvider{
		IdentityProviderSSOURL:         s.IdP.SSOPOST,
		IdentityProviderSSOBinding:     BindingPOST,
		IdentityProviderIssuer:         s.sp.IdentityProviderIssuer,
		AssertionConsumerServiceURL:    s.sp.AssertionConsumerServiceURL,
		ServiceProviderIssuer:          s.sp.ServiceProviderIssuer,
		SignAuthnRequests:              true,
		SignAuthnRequestsAlgorithm:     s.sp.SignAuthnRequestsAlgorithm,
		SignAuthnRequestsCanonicalizer: s.sp.SignAuthnRequestsCanonicalizer,
		RequestedAuthnContext:          s.sp.RequestedAuthnContext,
		NameIdFormat:                   s.sp.NameIdFormat,
		Clock:                          s.sp.Clock,
		SPKeyStore:                     s.sp.SPKeyStore,
	}
}

func (s *SP) remember(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending[id] = time.Now()
}

// ---- Responses ----

// Attribute is one attribute of the assertion.
type Attribute struct {
	NameFormat string   `json:"name_format"`
	Values     []string `json:"values"`
}

// Algorithms are those the accepted Response used, as its XML names them.
type Algorithms struct {
	// Encrypted is whether the assertion came as an EncryptedAssertion.
	Encrypted bool `json:"encrypted"`
	// DataEncryption is the EncryptedData's EncryptionMethod (e.g. xmlenc11#aes256-gcm).
	DataEncryption string `json:"data_encryption,omitempty"`
	// KeyTransport is the EncryptedKey's EncryptionMethod (e.g. xmlenc#rsa-oaep-mgf1p);
	// KeyTransportDigest its DigestMethod ("" when absent: SHA-1), KeyTransportMGF its
	// xenc11:MGF ("" when absent).
	KeyTransport       string `json:"key_transport,omitempty"`
	KeyTransportDigest string `json:"key_transport_digest,omitempty"`
	KeyTransportMGF    string `json:"key_transport_mgf,omitempty"`
	// SymmetricKeyBits is the length of the content-encryption key that was unwrapped.
	SymmetricKeyBits int `json:"symmetric_key_bits,omitempty"`
	// AssertionSignature, AssertionDigest, AssertionC14N describe the assertion's signature.
	AssertionSignature string `json:"assertion_signature"`
	AssertionDigest    string `json:"assertion_digest"`
	AssertionC14N      string `json:"assertion_c14n"`
	// ResponseSigned is whether the Response itself carried a (verified) signature.
	ResponseSigned bool `json:"response_signed"`
}

// Result is an accepted Response.
type Result struct {
	ResponseID           string               `json:"response_id"`
	AssertionID          string               `json:"assertion_id"`
	InResponseTo         string               `json:"in_response_to"`
	Issuer               string               `json:"issuer"`
	NameID               string               `json:"name_id"`
	NameIDFormat         string               `json:"name_id_format"`
	Attributes           map[string]Attribute `json:"attributes"`
	AuthnContextClassRef string               `json:"authn_context_class_ref"`
	SessionIndex         string               `json:"session_index"`
	AuthnInstant         *time.Time           `json:"authn_instant,omitempty"`
	Audiences            []string             `json:"audiences"`
	// Warnings is what gosaml2 reported besides errors (the ones that matter here are refusals).
	Warnings   *saml2.WarningInfo `json:"warnings,omitempty"`
	Algorithms Algorithms         `json:"algorithms"`
}

// Value is the first value of the attribute name ("" when absent).
func (r *Result) Value(name string) string {
	if a, ok := r.Attributes[name]; ok && len(a.Values) > 0 {
		return a.Values[0]
	}
	return ""
}

// Validate checks a SAMLResponse (the form field, base64) that must answer one of this SP's
// pending AuthnRequests; the request is used up, so a second answer to it (a replay) is
// refused. Every refusal wraps ErrRefused.
func (s *SP) Validate(samlResponse string) (*Result, error) {
	return s.validate(samlResponse, "")
}

// ValidateFor is Validate for a Response that must answer the request with this ID (the one
// the browser's session at the SP started).
func (s *SP) ValidateFor(samlResponse, requestID string) (*Result, error) {
	if requestID == "" {
		return nil, fmt.Errorf("%w: no request id", ErrRefused)
	}
	return s.validate(samlResponse, requestID)
}

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrRefused}, args...)...)
}

func (s *SP) validate(samlResponse, want string) (*Result, error) {
	if len(samlResponse) > MaxResponseSize {
		return nil, refuse("SAMLResponse larger than %d bytes", MaxResponseSize)
	}
	// gosaml2 first: its size and token limits and its round-trip check guard the parsers.
	info, err := s.sp.RetrieveAssertionInfo(samlResponse)
	if err != nil {
		return nil, refuse("gosaml2: %v", err)
	}
	resp, err := s.sp.ValidateEncodedResponse(samlResponse) // the same checks again, for the Response fields
	if err != nil {
		return nil, refuse("gosaml2: %v", err)
	}
	if len(info.Assertions) != 1 || len(resp.Assertions) != 1 {
		return nil, refuse("%d assertions, want exactly 1", len(info.Assertions))
	}
	a := info.Assertions[0]

	// What gosaml2 only warns of.
	w := info.WarningInfo
	switch {
	case w == nil:
		return nil, refuse("gosaml2 reported no warning info")
	case w.InvalidTime:
		return nil, refuse("assertion Conditions NotBefore/NotOnOrAfter do not hold now")
	case w.NotInAudience:
		return nil, refuse("assertion audience is not %s", s.EntityID)
	}
	var audiences []string
	for _, ar := range a.Conditions.AudienceRestrictions {
		for _, au := range ar.Audiences {
			audiences = append(audiences, au.Value)
		}
	}
	if len(audiences) == 0 {
		// gosaml2 checks only the restrictions there are: none means any audience.
		return nil, refuse("assertion has no AudienceRestriction")
	}

	// What gosaml2 leaves to the caller.
	if resp.Destination != s.ACSURL {
		return nil, refuse("Response Destination %q, want %q", resp.Destination, s.ACSURL)
	}
	irt := resp.InResponseTo
	scd := a.Subject.SubjectConfirmation.SubjectConfirmationData
	if irt == "" || scd.InResponseTo != irt {
		return nil, refuse("InResponseTo: Response %q, SubjectConfirmationData %q", irt, scd.InResponseTo)
	}
	if want != "" && irt != want {
		return nil, refuse("Response answers request %q, not %q", irt, want)
	}
	if a.AuthnStatement == nil || a.AuthnStatement.AuthnContext == nil || a.AuthnStatement.AuthnContext.AuthnContextClassRef == nil {
		return nil, refuse("no AuthnStatement with an AuthnContextClassRef")
	}
	if a.ID == "" {
		return nil, refuse("assertion without ID")
	}

	alg, err := s.inspect(samlResponse)
	if err != nil {
		return nil, err
	}

	// Last, so that a refused Response uses up nothing: the request is consumed and the
	// assertion remembered together.
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[irt]; !ok {
		return nil, refuse("InResponseTo %q is no pending request of this SP (unsolicited, or answered already)", irt)
	}
	if s.seen[a.ID] || s.seen["response:"+resp.ID] {
		return nil, refuse("assertion %s was accepted before (replay)", a.ID)
	}
	delete(s.pending, irt)
	s.seen[a.ID] = true
	s.seen["response:"+resp.ID] = true

	res := &Result{ResponseID: resp.ID, AssertionID: a.ID, InResponseTo: irt, Issuer: resp.Issuer.Value,
		NameID: info.NameID, NameIDFormat: info.NameIDFormat, Attributes: map[string]Attribute{},
		AuthnContextClassRef: a.AuthnStatement.AuthnContext.AuthnContextClassRef.Value,
		SessionIndex:         info.SessionIndex, AuthnInstant: info.AuthnInstant, Audiences: audiences,
		Warnings: w, Algorithms: *alg}
	for name, at := range info.Values {
		v := Attribute{NameFormat: at.NameFormat}
		for _, av := range at.Values {
			v.Values = append(v.Values, av.Value)
		}
		res.Attributes[name] = v
	}
	return res, nil
}

// inspect reads what gosaml2 does not report: the algorithms, that the assertion itself is
// signed (WantAssertionsSigned: gosaml2 accepts an unsigned assertion inside a signed
// Response), that it was encrypted, and that it has exactly one AuthnStatement and one
// AttributeStatement. It runs after gosaml2 accepted the Response, so the XML has passed its
// limits; it decrypts with gosaml2's own types.EncryptedAssertion.
func (s *SP) inspect(samlResponse string) (*Algorithms, error) {
	raw, err := base64.StdEncoding.DecodeString(samlResponse)
	if err != nil {
		return nil, refuse("base64: %v", err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, refuse("XML: %v", err)
	}
	root := doc.Root()
	alg := &Algorithms{ResponseSigned: root.FindElement("./Signature") != nil}
	encs := root.SelectElements("EncryptedAssertion")
	plains := root.SelectElements("Assertion")
	var assertion *etree.Element
	switch {
	case len(encs) == 1 && len(plains) == 0:
		ea := encs[0]
		alg.Encrypted = true
		if m := ea.FindElement("./EncryptedData/EncryptionMethod"); m != nil {
			alg.DataEncryption = m.SelectAttrValue("Algorithm", "")
		}
		ek := ea.FindElement("./EncryptedData/KeyInfo/EncryptedKey")
		if ek == nil {
			ek = ea.FindElement("./EncryptedKey")
		}
		if ek == nil {
			return nil, refuse("EncryptedAssertion without EncryptedKey")
		}
		if m := ek.FindElement("./EncryptionMethod"); m != nil {
			alg.KeyTransport = m.SelectAttrValue("Algorithm", "")
			if d := m.FindElement("./DigestMethod"); d != nil {
				alg.KeyTransportDigest = d.SelectAttrValue("Algorithm", "")
			}
			if g := m.FindElement("./MGF"); g != nil {
				alg.KeyTransportMGF = g.SelectAttrValue("Algorithm", "")
			}
		}
		// The unwrapped key's length: gosaml2 does not check it against the algorithm's name.
		var tek types.EncryptedKey
		if err := unmarshalElement(ek, &tek); err != nil {
			return nil, refuse("EncryptedKey: %v", err)
		}
		alg.SymmetricKeyBits = symmetricKeyBits(alg, &tek, s.Key)
		var tea types.EncryptedAssertion
		if err := unmarshalElement(ea, &tea); err != nil {
			return nil, refuse("EncryptedAssertion: %v", err)
		}
		plain, err := tea.DecryptBytes(&s.tlsCert)
		if err != nil {
			return nil, refuse("EncryptedAssertion: %v", err)
		}
		pdoc := etree.NewDocument()
		if err := pdoc.ReadFromBytes(plain); err != nil {
			return nil, refuse("decrypted assertion: %v", err)
		}
		assertion = pdoc.Root()
	case len(plains) == 1 && len(encs) == 0:
		if !s.cfg.AllowPlainAssertion {
			return nil, refuse("the assertion is not encrypted, though the SP's metadata has an encryption key")
		}
		assertion = plains[0]
	default:
		return nil, refuse("%d EncryptedAssertion and %d Assertion elements, want exactly one", len(encs), len(plains))
	}
	if assertion == nil || assertion.Tag != "Assertion" {
		return nil, refuse("the decrypted element is not an Assertion")
	}
	sig := assertion.FindElement("./Signature")
	if sig == nil {
		return nil, refuse("the assertion is not signed (WantAssertionsSigned)")
	}
	if ref := sig.FindElement("./SignedInfo/Reference"); ref == nil || ref.SelectAttrValue("URI", "") != "#"+assertion.SelectAttrValue("ID", "") {
		return nil, refuse("the assertion's signature does not reference the assertion")
	}
	if m := sig.FindElement("./SignedInfo/SignatureMethod"); m != nil {
		alg.AssertionSignature = m.SelectAttrValue("Algorithm", "")
	}
	if m := sig.FindElement("./SignedInfo/Reference/DigestMethod"); m != nil {
		alg.AssertionDigest = m.SelectAttrValue("Algorithm", "")
	}
	if m := sig.FindElement("./SignedInfo/CanonicalizationMethod"); m != nil {
		alg.AssertionC14N = m.SelectAttrValue("Algorithm", "")
	}
	if strings.Contains(alg.AssertionSignature, "sha1") || strings.Contains(alg.AssertionDigest, "sha1") {
		return nil, refuse("the assertion is signed with SHA-1 (%s, %s)", alg.AssertionSignature, alg.AssertionDigest)
	}
	if n := len(assertion.SelectElements("AuthnStatement")); n != 1 {
		return nil, refuse("%d AuthnStatements, want exactly 1", n)
	}
	if n := len(assertion.SelectElements("AttributeStatement")); n != 1 {
		return nil, refuse("%d AttributeStatements, want exactly 1", n)
	}
	return alg, nil
}

// symmetricKeyBits unwraps the content-encryption key again, to measure it (gosaml2 hands out
// only a cipher.Block and never checks the key's length against the algorithm's name). It
// unwraps as the XML says (xmlenc §5.5.2 and xmlenc11 §5.5.2: the DigestMethod, default SHA-1,
// and MGF1 with the xenc11:MGF hash, default SHA-1), independently of how gosaml2 reads it.
// 0 when it cannot.
func symmetricKeyBits(alg *Algorithms, ek *types.EncryptedKey, key *rsa.PrivateKey) int {
	hashes := map[string]crypto.Hash{
		"": crypto.SHA1, "http://www.w3.org/2000/09/xmldsig#sha1": crypto.SHA1,
		"http://www.w3.org/2001/04/xmlenc#sha256": crypto.SHA256, "http://www.w3.org/2000/09/xmldsig#sha256": crypto.SHA256,
		"http://www.w3.org/2001/04/xmlenc#sha512": crypto.SHA512, "http://www.w3.org/2000/09/xmldsig#sha512": crypto.SHA512,
		"http://www.w3.org/2009/xmlenc11#mgf1sha1": crypto.SHA1, "http://www.w3.org/2009/xmlenc11#mgf1sha256": crypto.SHA256,
		"http://www.w3.org/2009/xmlenc11#mgf1sha512": crypto.SHA512,
	}
	h, ok1 := hashes[alg.KeyTransportDigest]
	mgf, ok2 := hashes[alg.KeyTransportMGF]
	ct, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(ek.CipherValue), ""))
	if !ok1 || !ok2 || err != nil {
		return 0
	}
	pt, err := key.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: h, MGFHash: mgf})
	if err != nil {
		return 0
	}
	return 8 * len(pt)
}

func unmarshalElement(el *etree.Element, v any) error {
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	raw, err := doc.WriteToBytes()
	if err != nil {
		return err
	}
	return xml.Unmarshal(raw, v)
}

// serveACS is the AssertionConsumerService (HTTP-POST): 200 with the Result as JSON, or 403
// with the refusal.
func (s *SP) serveACS(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxResponseSize+64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	res, err := s.Validate(r.PostForm.Get("SAMLResponse"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		*Result
		RelayState string `json:"relay_state"`
	}{res, r.PostForm.Get("RelayState")})
}
