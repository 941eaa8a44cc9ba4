package saml

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/web"
)

// The IdP's paths.
const (
	MetadataPath = "/saml/metadata"
	SSOPath      = "/saml/sso"
	SLOPath      = "/saml/slo"
	DonePath     = "/saml/done"
	ScriptPath   = "/saml/post.js"
)

// ClientPrefix makes an SP's entity id the ClientID of its flows. A registered OIDC client id
// never contains '/' (idp/admin), so the two never collide.
const ClientPrefix = "saml/"

// Sectors of the pairwise subjects (store.PairwiseSubject): per SP, or one for every SP
// registered with subject "global". OIDC sectors are client ids (no '/') or "sector/…".
const (
	sectorPrefix = "saml/sp/"
	sectorGlobal = "saml/global"
)

// NSIS assurance levels as AuthnContextClassRefs.
const (
	LoALow         = "https://data.gov.dk/concept/core/nsis/loa/Low"
	LoASubstantial = "https://data.gov.dk/concept/core/nsis/loa/Substantial"
	LoAHigh        = "https://data.gov.dk/concept/core/nsis/loa/High"
)

// NameIDPrefix is the persistent NameID's form (OIOSAML 3.0).
const NameIDPrefix = "https://data.gov.dk/model/core/eid/person/uuid/"

// Size limits of a request (bad input is refused before anything is parsed).
const (
	// MaxEncodedRequest bounds the SAMLRequest parameter as sent (base64).
	MaxEncodedRequest = 64 << 10
	// MaxInflatedRequest bounds the AuthnRequest XML once inflated (a deflate bomb).
	MaxInflatedRequest = 256 << 10
)

// ReplayWindow is how long a request ID is remembered: as long as crewjam/saml accepts a
// request (MaxIssueDelay past its IssueInstant, MaxClockSkew before it), with a minute spare.
func ReplayWindow() time.Duration { return saml.MaxIssueDelay + saml.MaxClockSkew + time.Minute }

// SetWindows sets how old an AuthnRequest may be (validity, past its IssueInstant) and how far
// clocks may differ (skew): the saml.request_validity and saml.clock_skew settings. crewjam/saml
// keeps them process-wide, so `nemidp serve` sets them once, before any request is served;
// tests keep crewjam's defaults (90 s, 180 s).
func SetWindows(skew, validity time.Duration) {
	if skew > 0 {
		saml.MaxClockSkew = skew
	}
	if validity > 0 {
		saml.MaxIssueDelay = validity
	}
}

// ResponseLifetime is how long an assertion may be presented at the ACS.
const ResponseLifetime = 5 * time.Minute

// DoneMark is the flow's one-time mark: one Response per login.
const DoneMark = "saml"

// Handler is the SAML IdP on the login flows.
type Handler struct {
	Store *store.Store
	Flows *flows.Engine
	Web   *web.Handler
	Keys  *Keys
	// Issuer is the server's public base URL; the IdP's entity id is Issuer + MetadataPath.
	Issuer string
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	idp  *saml.IdentityProvider
	meta metadataCache
}

// New builds the handler.
func New(h *Handler) (*Handler, error) {
	base := strings.TrimSuffix(h.Issuer, "/")
	parse := func(p string) (url.URL, error) {
		u, err := url.Parse(base + p)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return url.URL{}, fmt.Errorf("saml: issuer %q is not an absolute URL", h.Issuer)
		}
		return *u, nil
	}
	meta, err := parse(MetadataPath)
	if err != nil {
		return nil, err
	}
	sso, _ := parse(SSOPath)
	slo, _ := parse(SLOPath)
	if h.Keys == nil {
		return nil, ErrNoRSAKey
	}
	// XML Encryption 1.1 RSA-OAEP key transport with AES-256-GCM. The OAEP digest is SHA-1
	// (MGF1-SHA1): still sound for OAEP, and the one that gosaml2 (v0.12) reads besides
	// crewjam/saml; it knows the SHA-256 digest only under a URI that is not the standard one.
	enc := xmlenc.OAEP_SHA256()
	enc.DigestMethod = &xmlenc.SHA1
	enc.BlockCipher = xmlenc.AES256GCM
	h.idp = &saml.IdentityProvider{
		Signer:                  h.Keys.Current.Signer,
		Certificate:             h.Keys.Current.Cert,
		ExtraCertificates:       h.Keys.Next,
		Logger:                  slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
		MetadataURL:             meta,
		SSOURL:                  sso,
		LogoutURL:               slo,
		LogoutBindings:          []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding},
		ServiceProviderProvider: spProvider{h},
		SessionProvider:         sessionProvider{h},
		SignatureMethod:         dsig.RSASHA256SignatureMethod,
		NameIDFormats:           []saml.NameIDFormat{saml.PersistentNameIDFormat},
		AssertionEncrypter:      enc,
		SendErrorResponses:      true, // an expired request from a known SP gets a Requester Response
		RejectSHA1Signatures:    true,
		ResponseWriter:          formWriter{h},
		OnError:                 h.onError,
	}
	return h, nil
}

// Register adds the routes.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+MetadataPath, h.metadata)
	mux.HandleFunc("GET "+SSOPath, h.sso)
	mux.HandleFunc("POST "+SSOPath, h.sso)
	mux.HandleFunc(SLOPath, h.slo) // logout.go
	mux.HandleFunc("GET "+DonePath, h.done)
	mux.HandleFunc("GET "+ScriptPath, serveScript)
}

// EntityID is the IdP's entity id (its metadata URL).
func (h *Handler) EntityID() string { return h.idp.MetadataURL.String() }

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// ---- service providers ----

// spKey carries, through crewjam/saml's calls, the SP record the request's lookup read.
type spKey struct{}

type spHolder struct {
	mu sync.Mutex
	sp *store.ServiceProvider
}

// heldSP is the SP record the request's lookup read (nil: none yet).
func heldSP(ctx context.Context) *store.ServiceProvider {
	hold, ok := ctx.Value(spKey{}).(*spHolder)
	if !ok {
		return nil
	}
	hold.mu.Lock()
	defer hold.mu.Unlock()
	return hold.sp
}

// spProvider finds SPs for crewjam/saml in the store. An SP that is not registered with
// unsigned_requests must sign its AuthnRequests, whatever its metadata says.
type spProvider struct{ h *Handler }

func (p spProvider) GetServiceProvider(r *http.Request, entityID string) (*saml.EntityDescriptor, error) {
	sp, err := p.h.Store.ServiceProvider(r.Context(), entityID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("saml: service provider %q: %w", entityID, os.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	if hold, ok := r.Context().Value(spKey{}).(*spHolder); ok {
		hold.mu.Lock()
		hold.sp = sp
		hold.mu.Unlock()
	}
	return descriptorFor(sp), nil
}

// descriptorFor is the SP's metadata as crewjam/saml reads it, with our signing policy.
func descriptorFor(sp *store.ServiceProvider) *saml.EntityDescriptor {
	ed := Descriptor(sp)
	signed := !sp.UnsignedRequests
	for i := range ed.SPSSODescriptors {
		ed.SPSSODescriptors[i].AuthnRequestsSigned = &signed
	}
	return ed
}

// sectorOf is where the SP's subjects live.
func sectorOf(sp *store.ServiceProvider) string {
	if sp.Subject == store.SubjectGlobal {
		return sectorGlobal
	}
	return sectorPrefix + sp.EntityID
}

// EntityIDOf is the SP entity id behind a flow's ClientID ("" for another front end's).
func EntityIDOf(clientID string) string {
	id, ok := strings.CutPrefix(clientID, ClientPrefix)
	if !ok {
		return ""
	}
	return id
}

// Policy is next with the registered SPs added: a SAML flow's policy is its SP's.
func Policy(next flows.ClientPolicy, st *store.Store) flows.ClientPolicy { return policy{next, st} }

type policy struct {
	next flows.ClientPolicy
	st   *store.Store
}

func (p policy) Policy(ctx context.Context, clientID string) (flows.Policy, error) {
	if id := EntityIDOf(clientID); id != "" {
		sp := heldSP(ctx) // the flow's first save: /saml/sso read the record a moment ago
		if sp == nil || sp.EntityID != id {
			var err error
			if sp, err = p.st.ServiceProvider(ctx, id); err != nil {
				return flows.Policy{}, fmt.Errorf("saml: policy of %q: %w", id, err)
			}
		}
		return flows.Policy{RequiresOCES: sp.RequiresOCES, AllowOnBehalfOf: sp.AllowOnBehalfOf, Name: sp.Name}, nil
	}
	if p.next == nil {
		return flows.Policy{}, nil
	}
	return p.next.Policy(ctx, clientID)
}

// ClientNames is next with the SPs' names added, for the login page's "you are logging on to".
func ClientNames(next web.ClientNames, st *store.Store) web.ClientNames { return names{next, st} }

type names struct {
	next web.ClientNames
	st   *store.Store
}

func (n names) Client(ctx context.Context, id string) (*store.Client, error) {
	if e := EntityIDOf(id); e != "" {
		sp, err := n.st.ServiceProvider(ctx, e)
		if err != nil {
			return nil, err
		}
		return &store.Client{ID: id, Name: sp.Name}, nil
	}
	return n.next.Client(ctx, id)
}

// ---- errors ----

// onError answers what crewjam/saml refuses before the SP and its ACS are trusted: an error
// page, never a message to an address the request alone names.
func (h *Handler) onError(w http.ResponseWriter, r *http.Request, status int, err error) {
	code, msg := "saml_invalid_request", "The login request from the service could not be accepted."
	switch {
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		status, code, msg = http.StatusServiceUnavailable, flows.CodeUnavailable, "NemID is temporarily unavailable. Please try again shortly."
	case errors.Is(err, saml.ErrUnknownServiceProvider):
		status, code, msg = http.StatusBadRequest, "unknown_service_provider", "The service that sent you here is not registered with NemID."
	case errors.Is(err, saml.ErrInvalidSignature):
		status, code, msg = http.StatusBadRequest, "saml_invalid_signature", "The login request is not signed by the service that sent it."
	case errors.Is(err, saml.ErrUnknownAssertionConsumerService):
		status, code, msg = http.StatusBadRequest, "unknown_acs", "The service asked to be answered at an address it has not registered."
	case errors.Is(err, saml.ErrExpired), errors.Is(err, saml.ErrNotYetValid):
		status, code, msg = http.StatusBadRequest, "saml_request_expired", "The login request has expired or is dated in the future. Go back to the service and try again."
	case status >= 500:
		code, msg = "internal", "Unexpected error. Please try again."
	default:
		status = http.StatusBadRequest
	}
	if status >= 500 && code != flows.CodeUnavailable {
		slog.ErrorContext(r.Context(), "saml request failed", "path", r.URL.Path, "err", err)
	} else {
		slog.InfoContext(r.Context(), "saml request refused", "code", code, "err", err)
	}
	h.Web.ErrorPage(w, r, status, code, msg)
}
