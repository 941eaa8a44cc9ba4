package admin

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/idp/saml"
	"github.com/nemidp/nemidp/idp/store"
)

// SAML bindings an SP's endpoints may use.
const (
	bindingPOST     = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
	bindingRedirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
)

const mdNamespace = "urn:oasis:names:tc:SAML:2.0:metadata"

// maxSPBody bounds a JSON registration: the metadata as a JSON string may be six times its
// size (every '<' escaped as \u003c), and the policy fields are small.
const maxSPBody = 6*saml.MaxMetadataSize + maxBody

// ServiceProviderRequest registers a SAML service provider (DESIGN.md §5): its metadata XML
// and its policy. The metadata-XML form of the call carries only the metadata (the policy is
// then the default).
type ServiceProviderRequest struct {
	Metadata        string `json:"metadata"`
	Name            string `json:"name,omitempty"`
	RequiresOCES    bool   `json:"requires_oces,omitempty"`
	AllowOnBehalfOf bool   `json:"allow_on_behalf_of,omitempty"`
	// CPR releases the CPR attribute (the SAML twin of scope ssn).
	CPR     bool   `json:"cpr,omitempty"`
	Dialect string `json:"dialect,omitempty"`
	// Subject is "pairwise" (the default) or "global".
	Subject          string `json:"subject,omitempty"`
	UnsignedRequests bool   `json:"unsigned_requests,omitempty"`
}

// ServiceProviderView is the operator's view of a registered SP: what the IdP kept of its
// metadata (never the metadata itself) and its policy.
type ServiceProviderView struct {
	EntityID string                `json:"entity_id"`
	Name     string                `json:"name"`
	ACS      []store.SAMLEndpoint  `json:"acs"`
	SLO      []store.SAMLEndpoint  `json:"slo,omitempty"`
	Policy   ServiceProviderPolicy `json:"policy"`
	// Certificates are the metadata's certificates, each once with its uses.
	Certificates         []CertificateView `json:"certificates"`
	AuthnRequestsSigned  bool              `json:"authn_requests_signed"`
	WantAssertionsSigned bool              `json:"want_assertions_signed"`
	CreatedAt            string            `json:"created_at"`
	// Replaced: this registration replaced one of the same entity id (?replace=true).
	Replaced bool `json:"replaced,omitempty"`
	// Notes say what of the metadata was left out (endpoints of other bindings, an EC key
	// offered for encryption) or is doubtful (an expired certificate); registration only.
	Notes []string `json:"notes,omitempty"`
}

// ServiceProviderPolicy is an SP's policy as stored (subject and dialect filled in).
type ServiceProviderPolicy struct {
	RequiresOCES     bool   `json:"requires_oces"`
	AllowOnBehalfOf  bool   `json:"allow_on_behalf_of"`
	CPR              bool   `json:"cpr"`
	Dialect          string `json:"dialect"`
	Subject          string `json:"subject"`
	UnsignedRequests bool   `json:"unsigned_requests"`
}

// CertificateView is one certificate of an SP's metadata.
type CertificateView struct {
	Use      []string `json:"use"` // signing, encryption
	SHA256   string   `json:"sha256"`
	Subject  string   `json:"subject"`
	Key      string   `json:"key"` // e.g. "RSA 2048", "EC P-256"
	NotAfter string   `json:"not_after"`
	Expired  bool     `json:"expired,omitempty"`
}

func metadataError(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, "invalid_metadata", "metadata: " + fmt.Sprintf(format, args...)}
}

func policyError(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, "invalid_request", fmt.Sprintf(format, args...)}
}

// BuildServiceProvider validates a registration and makes the record the IdP keeps: the
// metadata parsed once (saml.ParseMetadata) and checked (well-formed XML without a DTD,
// HTTP-POST ACS on https, usable certificates, a signing key unless unsigned_requests), the
// policy checked and its defaults filled in. notes say what was left out. Shared by the API,
// the configuration (RegisterServiceProviders) and the CLI.
func BuildServiceProvider(req ServiceProviderRequest, now time.Time) (sp *store.ServiceProvider, notes []string, err error) {
	subject := req.Subject
	switch subject {
	case "":
		subject = store.SubjectPairwise
	case store.SubjectPairwise, store.SubjectGlobal:
	default:
		return nil, nil, policyError(`subject: want "pairwise" (the default) or "global"`)
	}
	// SAML has one attribute set (OIOSAML 3.0, DESIGN.md §4): a dialect would be stored and
	// never used, so none other than the default is taken.
	if req.Dialect != "" && req.Dialect != "default" {
		return nil, nil, policyError(`dialect: SAML service providers get the OIOSAML 3.0 attributes; leave it out (or "default")`)
	}
	if !validName(req.Name) {
		return nil, nil, policyError("name: at most 200 printable characters")
	}

	raw := []byte(req.Metadata)
	if err := checkMetadataXML(raw); err != nil {
		return nil, nil, err
	}
	sp, err = saml.ParseMetadata(raw)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), saml.ErrMetadata.Error()+": ")
		return nil, nil, metadataError("%s", msg)
	}
	if len(sp.EntityID) > 1024 {
		return nil, nil, metadataError("entityID: longer than 1024 characters (SAML core §8.3.6)")
	}

	// OIOSAML 3.0 answers by HTTP-POST: an ACS of another binding could never be used.
	var acs []store.SAMLEndpoint
	seen := map[int]bool{}
	for _, a := range sp.ACS {
		if a.Binding != bindingPOST {
			notes = append(notes, fmt.Sprintf("AssertionConsumerService index %d (%s) left out: responses go by HTTP-POST", a.Index, shortBinding(a.Binding)))
			continue
		}
		if err := checkEndpointURL(a.Location); err != nil {
			return nil, nil, metadataError("AssertionConsumerService index %d: Location %q: %v", a.Index, a.Location, err)
		}
		if seen[a.Index] {
			return nil, nil, metadataError("two AssertionConsumerServices with index %d: a request naming it would be ambiguous", a.Index)
		}
		seen[a.Index] = true
		acs = append(acs, a)
	}
	if len(acs) == 0 {
		return nil, nil, metadataError("no AssertionConsumerService with the HTTP-POST binding (%s): OIOSAML 3.0 responses go by POST", bindingPOST)
	}
	sp.ACS = acs
	var slo []store.SAMLEndpoint
	for _, e := range sp.SLO {
		if e.Binding != bindingPOST && e.Binding != bindingRedirect {
			notes = append(notes, fmt.Sprintf("SingleLogoutService (%s) left out: logout goes by HTTP-Redirect or HTTP-POST", shortBinding(e.Binding)))
			continue
		}
		for _, loc := range []string{e.Location, e.ResponseLocation} {
			if loc == "" {
				continue
			}
			if err := checkEndpointURL(loc); err != nil {
				return nil, nil, metadataError("SingleLogoutService %q: %v", loc, err)
			}
		}
		slo = append(slo, e)
	}
	sp.SLO = slo

	certNotes, err := checkCertificates(sp, now)
	if err != nil {
		return nil, nil, err
	}
	notes = append(notes, certNotes...)
	if !req.UnsignedRequests && len(sp.SigningCerts) == 0 {
		return nil, nil, metadataError(`no signing certificate (a KeyDescriptor with use="signing" or without use), and AuthnRequests must be signed: add the SP's signing certificate, or register it with "unsigned_requests": true`)
	}

	if !req.UnsignedRequests && !sp.AuthnRequestsSigned {
		notes = append(notes, `the metadata says AuthnRequestsSigned="false", but its requests must be signed all the same (OIOSAML 3.0); register it with "unsigned_requests": true to accept unsigned ones`)
	}
	sp.Name = req.Name
	if sp.Name == "" {
		sp.Name = sp.EntityID
	}
	sp.RequiresOCES, sp.AllowOnBehalfOf, sp.CPR = req.RequiresOCES, req.AllowOnBehalfOf, req.CPR
	sp.Dialect, sp.Subject, sp.UnsignedRequests = req.Dialect, subject, req.UnsignedRequests
	sp.CreatedAt = now.UTC()
	return sp, notes, nil
}

// checkMetadataXML refuses what is not one well-formed XML document without a DTD before it
// is parsed: a DOCTYPE (and so any entity declaration) is refused at its first token, so a
// billion-laughs document costs nothing.
func checkMetadataXML(raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return metadataError("empty")
	}
	if len(raw) > saml.MaxMetadataSize {
		return metadataError("larger than %d bytes", saml.MaxMetadataSize)
	}
	dec := xml.NewDecoder(bytes.NewReader(raw))
	root, depth := false, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return metadataError("not well-formed XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return metadataError("a DTD or entity declaration (<!%s…>) is not accepted", firstWord(t))
		case xml.StartElement:
			if depth == 0 && root {
				return metadataError("not one XML document: a second root element <%s>", t.Name.Local)
			}
			// saml.ParseMetadata reads an aggregate as IdP metadata and would answer that it
			// has no IDPSSODescriptor.
			if depth == 0 && t.Name.Local == "EntitiesDescriptor" {
				return metadataError("an EntitiesDescriptor (a metadata aggregate): send the SP's own EntityDescriptor")
			}
			if depth == 0 && (t.Name.Local != "EntityDescriptor" || t.Name.Space != mdNamespace) {
				return metadataError("root element <%s>: want a SAML metadata EntityDescriptor (%s)", t.Name.Local, mdNamespace)
			}
			root = true
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return metadataError("not XML: text outside the root element")
			}
		}
	}
	if !root {
		return metadataError("not XML: no root element")
	}
	return nil
}

func firstWord(d xml.Directive) string {
	f := strings.Fields(string(d))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// checkEndpointURL: an absolute https URL, or http on a loopback host (tests, a local SP).
func checkEndpointURL(loc string) error {
	u, err := url.Parse(loc)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return errors.New("not an absolute URL")
	}
	if u.Fragment != "" || u.User != nil {
		return errors.New("no fragment or user info allowed")
	}
	// The host goes into the answer page's CSP (form-action): a DNS name or an IP address only,
	// never "*" or anything that could add a directive.
	if !validHost(u.Hostname()) || (u.Port() != "" && !isDigits(u.Port())) {
		return errors.New("the host must be a DNS name or an IP address")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && config.IsLoopback(u.Hostname()):
	case u.Scheme == "http":
		return errors.New("http is only allowed on a loopback host (127.0.0.1, localhost, [::1]); use https")
	default:
		return errors.New("want an https URL")
	}
	return nil
}

// checkCertificates parses every certificate of the metadata and refuses a weak or unknown
// key. An EC key offered for both uses is kept for signing only (assertions are encrypted
// with RSA-OAEP); one offered for encryption only is refused.
func checkCertificates(sp *store.ServiceProvider, now time.Time) (notes []string, err error) {
	for _, der := range slices.Concat(sp.SigningCerts, sp.EncryptionCerts) {
		c, err := parseCert(der)
		if err != nil {
			return nil, err
		}
		if desc, err := keyStrength(c); err != nil {
			return nil, metadataError("certificate %s (%s): %v", fingerprint(c), c.Subject, err)
		} else if now.After(c.NotAfter) {
			notes = append(notes, fmt.Sprintf("certificate %s (%s, %s) expired on %s", fingerprint(c), c.Subject, desc, c.NotAfter.UTC().Format(time.DateOnly)))
		}
	}
	var enc []string
	for _, der := range sp.EncryptionCerts {
		c, _ := parseCert(der)
		if _, ok := c.PublicKey.(*rsa.PublicKey); ok {
			enc = append(enc, der)
			continue
		}
		if !slices.Contains(sp.SigningCerts, der) {
			return nil, metadataError(`encryption certificate %s: its key is not RSA, and assertions are encrypted with RSA-OAEP`, fingerprint(c))
		}
		notes = append(notes, fmt.Sprintf("certificate %s: not RSA, so used for signing only (assertions are encrypted with RSA-OAEP)", fingerprint(c)))
	}
	sp.EncryptionCerts = enc
	return notes, nil
}

func parseCert(der string) (*x509.Certificate, error) {
	raw, err := base64.StdEncoding.DecodeString(der)
	if err != nil {
		return nil, metadataError("a certificate is not base64")
	}
	c, err := x509.ParseCertificate(raw)
	if err != nil {
		return nil, metadataError("a certificate is not X.509: %v", err)
	}
	return c, nil
}

// keyStrength describes an acceptable key ("RSA 2048", "EC P-256") or says why it is not.
func keyStrength(c *x509.Certificate) (string, error) {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 {
			return "", fmt.Errorf("RSA key of %d bits: want at least 2048", n)
		}
		return fmt.Sprintf("RSA %d", k.N.BitLen()), nil
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize < 256 {
			return "", fmt.Errorf("EC key on %s: want P-256, P-384 or P-521", k.Curve.Params().Name)
		}
		return "EC " + k.Curve.Params().Name, nil
	default:
		return "", fmt.Errorf("%s key: want RSA (2048 bits or more) or EC (P-256 or larger)", c.PublicKeyAlgorithm)
	}
}

func fingerprint(c *x509.Certificate) string {
	d := sha256.Sum256(c.Raw)
	return hex.EncodeToString(d[:])
}

func shortBinding(b string) string {
	if s, ok := strings.CutPrefix(b, "urn:oasis:names:tc:SAML:2.0:bindings:"); ok {
		return s
	}
	return b
}

func validName(s string) bool {
	if len([]rune(s)) > 200 {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// ServiceProviderViewOf is the operator's view of sp.
func ServiceProviderViewOf(sp *store.ServiceProvider, now time.Time) ServiceProviderView {
	v := ServiceProviderView{EntityID: sp.EntityID, Name: sp.Name, ACS: sp.ACS, SLO: sp.SLO,
		Policy: ServiceProviderPolicy{RequiresOCES: sp.RequiresOCES, AllowOnBehalfOf: sp.AllowOnBehalfOf, CPR: sp.CPR,
			Dialect: sp.Dialect, Subject: sp.Subject, UnsignedRequests: sp.UnsignedRequests},
		Certificates: []CertificateView{}, AuthnRequestsSigned: sp.AuthnRequestsSigned,
		WantAssertionsSigned: sp.WantAssertionsSigned, CreatedAt: sp.CreatedAt.UTC().Format(time.RFC3339)}
	if v.Policy.Dialect == "" {
		v.Policy.Dialect = "default"
	}
	if v.Policy.Subject == "" {
		v.Policy.Subject = store.SubjectPairwise
	}
	index := map[string]int{}
	add := func(der, use string) {
		if i, ok := index[der]; ok {
			v.Certificates[i].Use = append(v.Certificates[i].Use, use)
			return
		}
		cv := CertificateView{Use: []string{use}}
		if c, err := parseCert(der); err == nil {
			cv.SHA256, cv.Subject = fingerprint(c), c.Subject.String()
			cv.Key, _ = keyStrength(c)
			cv.NotAfter, cv.Expired = c.NotAfter.UTC().Format(time.RFC3339), now.After(c.NotAfter)
		}
		index[der] = len(v.Certificates)
		v.Certificates = append(v.Certificates, cv)
	}
	for _, der := range sp.SigningCerts {
		add(der, "signing")
	}
	for _, der := range sp.EncryptionCerts {
		add(der, "encryption")
	}
	return v
}

// readServiceProvider reads either form of the registration: the metadata XML as the body,
// or the JSON form with the metadata as a string.
func readServiceProvider(w http.ResponseWriter, r *http.Request) (ServiceProviderRequest, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/samlmetadata+xml", "application/xml", "text/xml":
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, saml.MaxMetadataSize))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return ServiceProviderRequest{}, metadataError("larger than %d bytes", saml.MaxMetadataSize)
			}
			return ServiceProviderRequest{}, &apiError{http.StatusBadRequest, "invalid_request", "The body could not be read."}
		}
		return ServiceProviderRequest{Metadata: string(raw)}, nil
	case "application/json":
		var req ServiceProviderRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSPBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &mbe):
				return req, &apiError{http.StatusRequestEntityTooLarge, "invalid_request", "Body too large."}
			case errors.Is(err, io.EOF):
				return req, &apiError{http.StatusBadRequest, "invalid_request", "Empty body."}
			}
			return req, &apiError{http.StatusBadRequest, "invalid_request", "Malformed JSON: " + err.Error()}
		}
		return req, nil
	}
	return ServiceProviderRequest{}, &apiError{http.StatusUnsupportedMediaType, "invalid_request",
		"Send the SP's metadata as Content-Type: application/samlmetadata+xml, or the JSON form as application/json."}
}

// createServiceProvider registers an SP. An entity id registered already is refused (409)
// unless the call says ?replace=true: a typo in another SP's metadata must not silently take
// over its keys and endpoints.
func (a *API) createServiceProvider(w http.ResponseWriter, r *http.Request) error {
	replace := false
	switch v := r.URL.Query().Get("replace"); v {
	case "", "false":
	case "true":
		replace = true
	default:
		return policyError(`replace: want "true" or "false"`)
	}
	req, err := readServiceProvider(w, r)
	if err != nil {
		return err
	}
	now := time.Now()
	sp, notes, err := BuildServiceProvider(req, now)
	if err != nil {
		return err
	}
	replaced, err := a.Store.PutServiceProvider(r.Context(), sp, replace)
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return &apiError{http.StatusConflict, "conflict", fmt.Sprintf("entity id %q is already registered; send ?replace=true to replace it", sp.EntityID)}
		}
		return err
	}
	slog.InfoContext(r.Context(), "service provider registered", "entity_id", sp.EntityID, "replaced", replaced)
	a.audit(w, r, "service_provider.registered", "", map[string]any{"entity_id": sp.EntityID, "replaced": replaced,
		"subject": sp.Subject, "cpr": sp.CPR, "unsigned_requests": sp.UnsignedRequests})
	v := ServiceProviderViewOf(sp, now)
	v.Replaced, v.Notes = replaced, notes
	status := http.StatusCreated
	if replaced {
		status = http.StatusOK
	}
	writeJSON(w, status, v)
	return nil
}

func (a *API) getServiceProvider(w http.ResponseWriter, r *http.Request) error {
	sp, err := a.Store.ServiceProvider(r.Context(), r.PathValue("entity_id"))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &apiError{http.StatusNotFound, "not_found", "No service provider with this entity id (URL-escape it in the path)."}
		}
		return err
	}
	writeJSON(w, http.StatusOK, ServiceProviderViewOf(sp, time.Now()))
	return nil
}

func (a *API) listServiceProviders(w http.ResponseWriter, r *http.Request) error {
	ids, err := a.Store.ServiceProviders(r.Context())
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entity_ids": ids})
	return nil
}

func (a *API) deleteServiceProvider(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("entity_id")
	if err := a.Store.DeleteServiceProvider(r.Context(), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return &apiError{http.StatusNotFound, "not_found", "No service provider with this entity id (URL-escape it in the path)."}
		}
		return err
	}
	slog.InfoContext(r.Context(), "service provider deleted", "entity_id", id)
	a.audit(w, r, "service_provider.deleted", "", map[string]any{"entity_id": id})
	writeJSON(w, http.StatusOK, map[string]any{"entity_id": id, "deleted": true})
	return nil
}

// RegisterServiceProviders registers the SPs of the configuration (saml.service_providers)
// at start: each metadata file is read and checked as the API checks it, and the record is
// written whether or not it exists (the configuration wins over an earlier registration of
// the same entity id), so restarts and several instances starting at once end in the same
// records. A wrong entry is a config.FieldError naming it.
func RegisterServiceProviders(ctx context.Context, st *store.Store, sps []config.ServiceProvider, log *slog.Logger) error {
	now := time.Now()
	built := make([]*store.ServiceProvider, 0, len(sps))
	first := map[string]int{}
	for i, c := range sps {
		field := fmt.Sprintf("saml.service_providers[%d]", i)
		raw, err := readCapped(c.MetadataFile, saml.MaxMetadataSize)
		if err != nil {
			return &config.FieldError{Field: field + ".metadata_file", Err: err}
		}
		sp, notes, err := BuildServiceProvider(ServiceProviderRequest{Metadata: string(raw), Name: c.Name, RequiresOCES: c.RequiresOCES,
			AllowOnBehalfOf: c.AllowOnBehalfOf, CPR: c.CPR, Dialect: c.Dialect, Subject: c.Subject, UnsignedRequests: c.UnsignedRequests}, now)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				err = errors.New(ae.message)
			}
			return &config.FieldError{Field: field + " (" + c.MetadataFile + ")", Err: err}
		}
		if j, ok := first[sp.EntityID]; ok {
			return &config.FieldError{Field: field, Err: fmt.Errorf("entity id %q is also saml.service_providers[%d]'s", sp.EntityID, j)}
		}
		first[sp.EntityID] = i
		for _, n := range notes {
			log.Warn("saml service provider from the configuration: "+n, "entity_id", sp.EntityID, "field", field)
		}
		built = append(built, sp)
	}
	for _, sp := range built {
		if err := st.SaveServiceProvider(ctx, sp); err != nil {
			return fmt.Errorf("register saml service provider %q from the configuration: %w", sp.EntityID, err)
		}
	}
	if len(built) > 0 {
		log.Info("registered the saml service providers of the configuration", "count", len(built))
	}
	return nil
}

// readCapped reads a file of at most max bytes.
func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return raw, nil
}

// validHost: a DNS name (letters, digits, hyphens, dots) or an IP address.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return !strings.HasPrefix(h, ".") && !strings.HasPrefix(h, "-")
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
