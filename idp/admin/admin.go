// Package admin is the operator API (/admin/v1/…): registering relying parties and issuing
// NemIDs. Every call needs one of the bearer tokens from the configuration; its label names
// the operator in the audit trail.
package admin

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/claims"
	"github.com/nemidp/nemidp/idp/cpr"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/oidc"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/throttle"
	"github.com/nemidp/nemidp/idp/web"
	"github.com/nemidp/nemidp/keys/password"
	keysecret "github.com/nemidp/nemidp/keys/secret"
)

// API serves the operator endpoints.
type API struct {
	Store  *store.Store
	Issuer *issuance.Issuer
	// Token is the admin_token setting: a bare operator bearer token, or "label:token" pairs
	// separated by commas (config.ParseAdminTokens); empty disables the API (every call is
	// refused), and so does a value that does not parse (config.Validate refuses it at start).
	Token string
	// Audit receives the audit trail of the operator calls (nil: none).
	Audit *audit.Logger
	// Throttle counts failed calls per client address like failed login answers: past the
	// limit every call from that address is refused with 429 (nil: no limit).
	Throttle *throttle.Guard
	// SigningAlgs are the algorithms the loaded signing keys sign with: a client may register
	// only for one of them.
	SigningAlgs []jose.SignatureAlgorithm
	// PublicURL is the issuer (the public listener's base URL): a card's print view takes its
	// stylesheet from there.
	PublicURL string

	once      sync.Once
	operators []operator
}

// operator is one configured token, kept as its SHA-256 digest.
type operator struct {
	label  string
	digest [sha256.Size]byte
}

// Register adds the routes.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("POST /admin/v1/clients", a.auth(a.createClient))
	mux.Handle("POST /admin/v1/citizens", a.auth(a.createCitizen))
	mux.Handle("GET /admin/v1/citizens/{user_id}", a.auth(a.getCitizen))
	mux.Handle("POST /admin/v1/citizens/{user_id}/renew", a.auth(a.renewCitizen))
	mux.Handle("POST /admin/v1/citizens/{user_id}/oces", a.auth(a.attachOCES))
	mux.Handle("POST /admin/v1/citizens/{user_id}/block", a.auth(a.blockCitizen))
	mux.Handle("POST /admin/v1/citizens/{user_id}/unblock", a.auth(a.unblockCitizen))
	mux.Handle("POST /admin/v1/citizens/{user_id}/temporary-password", a.auth(a.temporaryPassword))
	mux.Handle("POST /admin/v1/citizens/{user_id}/cards", a.auth(a.orderCard))
	mux.Handle("GET /admin/v1/citizens/{user_id}/cards/{serial}/print", a.auth(a.printCard))
	mux.Handle("GET /admin/v1/citizens/{user_id}/guardianships", a.auth(a.listGuardianships))
	mux.Handle("GET /admin/v1/citizens/{user_id}/devices", a.auth(a.listDevices))
	mux.Handle("DELETE /admin/v1/citizens/{user_id}/devices/{device_id}", a.auth(a.removeDevice))
	mux.Handle("POST /admin/v1/guardianships", a.auth(a.createGuardianship))
	mux.Handle("DELETE /admin/v1/guardianships/{id}", a.auth(a.endGuardianship))
	mux.Handle("GET /admin/v1/outbox", a.auth(a.outbox))
	mux.Handle("POST /admin/v1/service-providers", a.auth(a.createServiceProvider))
	mux.Handle("GET /admin/v1/service-providers", a.auth(a.listServiceProviders))
	mux.Handle("GET /admin/v1/service-providers/{entity_id}", a.auth(a.getServiceProvider))
	mux.Handle("DELETE /admin/v1/service-providers/{entity_id}", a.auth(a.deleteServiceProvider))
	mux.Handle("/admin/", a.auth(func(w http.ResponseWriter, r *http.Request) error {
		return &apiError{http.StatusNotFound, "not_found", "No such operator endpoint."}
	}))
}

type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func (a *API) auth(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		label, ok := a.authenticate(w, r)
		if !ok {
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), operatorKey{}, label))
		if err := fn(w, r); err != nil {
			var ae *apiError
			switch {
			case errors.As(err, &ae):
			case errors.Is(err, store.ErrUnavailable):
				ae = &apiError{http.StatusServiceUnavailable, "unavailable", "The store is unavailable; nothing was changed."}
			case errors.Is(err, password.ErrBusy):
				// The password hash comes before any write: the operator may simply try again.
				w.Header().Set("Retry-After", "2")
				ae = &apiError{http.StatusServiceUnavailable, "unavailable", "Password hashing is busy with logins; nothing was changed. Try again in a moment."}
			case errors.Is(err, store.ErrConflict):
				ae = &apiError{http.StatusConflict, "conflict", err.Error()}
			case errors.Is(err, store.ErrNotFound):
				ae = &apiError{http.StatusNotFound, "not_found", "No such record."}
			default:
				slog.ErrorContext(r.Context(), "admin request failed", "path", r.URL.Path, "err", err)
				ae = &apiError{http.StatusInternalServerError, "internal", "Unexpected error."}
			}
			a.refused(w, r, ae.status, ae.code)
			web.WriteJSONError(w, ae.status, ae.code, ae.message)
		}
	})
}

// authenticate is the one place an operator call is let through (with the label of its
// token) or refused (401): a hook on failed calls (counting them per address) belongs here.
func (a *API) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	if wait, ok := a.Throttle.Throttled(r); ok {
		a.throttled(w, r, wait)
		return "", false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok {
		if label, ok := a.match(got); ok {
			return label, true
		}
	}
	over, err := a.Throttle.Fail(r)
	if err != nil {
		slog.WarnContext(r.Context(), "failed operator call not counted for its address", "err", err)
	}
	if over {
		a.throttled(w, r, a.Throttle.Wait(r))
		return "", false
	}
	a.refused(w, r, http.StatusUnauthorized, "unauthorized")
	w.Header().Set("WWW-Authenticate", `Bearer realm="nemidp-admin"`)
	web.WriteJSONError(w, http.StatusUnauthorized, "unauthorized", "A valid operator bearer token is required.")
	return "", false
}

func (a *API) throttled(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	a.refused(w, r, http.StatusTooManyRequests, "throttled")
	w.Header().Set("Retry-After", throttle.RetryAfter(wait))
	web.WriteJSONError(w, http.StatusTooManyRequests, "throttled", "Too many failed operator calls from this address; try again later.")
}

// match finds the operator whose token got is, comparing it with every configured token in
// time independent of which one (if any) matches and of the lengths: SHA-256 digests are
// compared, all of them, without stopping at a match.
func (a *API) match(got string) (string, bool) {
	a.once.Do(func() {
		toks, err := config.ParseAdminTokens(a.Token)
		if err != nil {
			return // no operator: every call is refused
		}
		for _, t := range toks {
			a.operators = append(a.operators, operator{label: t.Label, digest: sha256.Sum256([]byte(t.Token))})
		}
	})
	g := sha256.Sum256([]byte(got))
	found := -1
	for i := range a.operators {
		eq := subtle.ConstantTimeCompare(g[:], a.operators[i].digest[:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return "", false
	}
	return a.operators[found].label, true
}

const maxBody = 64 << 10

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		return &apiError{http.StatusUnsupportedMediaType, "invalid_request", "Send Content-Type: application/json."}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{http.StatusRequestEntityTooLarge, "invalid_request", "Body too large."}
		}
		if errors.Is(err, io.EOF) {
			return &apiError{http.StatusBadRequest, "invalid_request", "Empty body."}
		}
		return &apiError{http.StatusBadRequest, "invalid_request", "Malformed JSON: " + err.Error()}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ClientRequest registers a relying party (DESIGN.md §5).
type ClientRequest struct {
	ClientID               string   `json:"client_id"`
	Name                   string   `json:"name"`
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	Secret                 string   `json:"secret,omitempty"`
	Public                 bool     `json:"public,omitempty"`
	Scopes                 []string `json:"scopes,omitempty"`
	RequiresOCES           bool     `json:"requires_oces,omitempty"`
	AllowOnBehalfOf        bool     `json:"allow_on_behalf_of,omitempty"`
	Dialect                string   `json:"dialect,omitempty"`
	// SectorIdentifier: clients registered with the same one see a citizen under one pairwise
	// sub (several apps of one bank); without it the client id is the sector.
	SectorIdentifier string `json:"sector_identifier,omitempty"`
	// IDTokenSignedResponseAlg is "ES256" (default) or "RS256" (OIDC Dynamic Registration name).
	IDTokenSignedResponseAlg string `json:"id_token_signed_response_alg,omitempty"`
	// RequirePKCE is true unless set false, which only a confidential client may.
	RequirePKCE *bool `json:"require_pkce,omitempty"`
}

// ClientResponse echoes the client; client_secret only when the server generated it.
type ClientResponse struct {
	ClientID         string   `json:"client_id"`
	Name             string   `json:"name"`
	RedirectURIs     []string `json:"redirect_uris"`
	Public           bool     `json:"public"`
	Scopes           []string `json:"scopes"`
	RequirePKCE      bool     `json:"require_pkce"`
	ClientSecret     string   `json:"client_secret,omitempty"`
	Dialect          string   `json:"dialect,omitempty"`
	SectorIdentifier string   `json:"sector_identifier,omitempty"`
}

// ResponseOf is what registering c answers (generated: the secret, when the server made it).
func ResponseOf(c *store.Client, generated string) ClientResponse {
	return ClientResponse{ClientID: c.ID, Name: c.Name, RedirectURIs: c.RedirectURIs, Public: c.Public,
		Scopes: c.Scopes, RequirePKCE: !c.PKCEOptional, ClientSecret: generated,
		Dialect: c.Dialect, SectorIdentifier: c.SectorIdentifier}
}

// BuildClient validates a registration and makes the stored client (and the secret, if the
// server generated one). algs are the algorithms the loaded signing keys sign with: a client
// registered for another could never get an ID token. Shared by the API and the CLI.
func BuildClient(req ClientRequest, algs []jose.SignatureAlgorithm) (*store.Client, string, error) {
	bad := func(msg string) error { return &apiError{http.StatusBadRequest, "invalid_client_metadata", msg} }
	if !validClientID(req.ClientID) {
		return nil, "", bad("client_id: 1–64 characters of letters, digits, '.', '_', '-', ':'")
	}
	if req.Public && req.Secret != "" {
		return nil, "", bad("a public client has no secret")
	}
	pkceOptional := req.RequirePKCE != nil && !*req.RequirePKCE
	if req.Public && pkceOptional {
		return nil, "", bad("require_pkce: a public client must use PKCE (it has no secret to prove the code is its own)")
	}
	if req.Secret != "" && len(req.Secret) < 16 {
		return nil, "", bad("secret: at least 16 characters")
	}
	if err := oidc.ValidateRedirectURIs(req.RedirectURIs, req.Public); err != nil {
		return nil, "", bad(err.Error())
	}
	if err := oidc.ValidateRedirectURIs(append([]string{"https://x.invalid/"}, req.PostLogoutRedirectURIs...), req.Public); err != nil {
		return nil, "", bad("post_" + err.Error())
	}
	if _, err := claims.DialectNamed(req.Dialect); err != nil {
		return nil, "", bad(fmt.Sprintf("dialect: want one of %s", strings.Join(claims.DialectNames(), ", ")))
	}
	if !validSector(req.SectorIdentifier) {
		return nil, "", bad("sector_identifier: at most 255 printable characters without spaces")
	}
	switch alg := req.IDTokenSignedResponseAlg; alg {
	case "":
	case "ES256", "RS256":
		if !slices.Contains(algs, jose.SignatureAlgorithm(alg)) {
			return nil, "", bad(fmt.Sprintf("id_token_signed_response_alg: no loaded signing key signs %s (loaded: %s)", alg, algList(algs)))
		}
	default:
		return nil, "", bad("id_token_signed_response_alg: want ES256 or RS256")
	}
	scopes := req.Scopes
	if len(scopes) == 0 {
		scopes = []string{"openid", "profile"}
	}
	generated := ""
	secret := req.Secret
	if !req.Public && secret == "" {
		secret = "s_" + keysecret.Generate()
		generated = secret
	}
	c := &store.Client{
		ID: req.ClientID, Name: req.Name, RedirectURIs: req.RedirectURIs, PostLogoutRedirectURIs: req.PostLogoutRedirectURIs,
		Public: req.Public, Scopes: scopes, RequiresOCES: req.RequiresOCES, AllowOnBehalfOf: req.AllowOnBehalfOf,
		Dialect: req.Dialect, SectorIdentifier: req.SectorIdentifier, IDTokenAlg: req.IDTokenSignedResponseAlg, PKCEOptional: pkceOptional, CreatedAt: time.Now().UTC(),
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	if secret != "" {
		c.SecretHash = oidc.HashSecret(secret)
	}
	return c, generated, nil
}

func algList(algs []jose.SignatureAlgorithm) string {
	if len(algs) == 0 {
		return "none"
	}
	var names []string
	for _, a := range algs {
		names = append(names, string(a))
	}
	return strings.Join(names, ", ")
}

// validSector: "" (the client id is the sector) or up to 255 printable non-space characters
// (a name or an https URL of the organisation).
func validSector(s string) bool {
	if len(s) > 255 {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func validClientID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-:", r)) {
			return false
		}
	}
	return true
}

func (a *API) createClient(w http.ResponseWriter, r *http.Request) error {
	var req ClientRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	c, generated, err := BuildClient(req, a.SigningAlgs)
	if err != nil {
		return err
	}
	if err := a.Store.CreateClient(r.Context(), c); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return &apiError{http.StatusConflict, "conflict", fmt.Sprintf("client_id %q is already registered", c.ID)}
		}
		return err
	}
	slog.InfoContext(r.Context(), "client registered", "client_id", c.ID)
	a.audit(w, r, "client.registered", "", map[string]any{"client_id": c.ID, "public": c.Public})
	writeJSON(w, http.StatusCreated, ResponseOf(c, generated))
	return nil
}

func (a *API) createCitizen(w http.ResponseWriter, r *http.Request) error {
	var req issuance.Request
	if err := decode(w, r, &req); err != nil {
		return err
	}
	req.By = blockedBy(r)
	out, err := a.Issuer.Issue(r.Context(), req)
	if err != nil {
		var ve *issuance.ValidationError
		if errors.As(err, &ve) {
			return &apiError{http.StatusBadRequest, "invalid_request", ve.Error()}
		}
		if errors.Is(err, store.ErrConflict) {
			return &apiError{http.StatusConflict, "conflict", "A NemID already exists for this CPR number."}
		}
		return err
	}
	slog.InfoContext(r.Context(), "nemid issued", "user_id", out.UserID)
	a.audit(w, r, "citizen.issued", out.UserID, map[string]any{"card_serial": out.Card.Serial,
		"id_check": cmp.Or(req.IDCheck, issuance.IDCheckPhoto), "channel": cmp.Or(req.Channel, issuance.ChannelBorgerservice), "card_sent": out.CardSent})
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// CitizenView is the operator's view of a NemID (never the password or card keys).
type CitizenView struct {
	UserID string `json:"user_id"`
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Status string `json:"status"`
	// BlockReason says why a blocked NemID is blocked ("failures": locked after too many
	// failed attempts); Failures is the failed attempts in a row so far.
	BlockReason string `json:"block_reason,omitempty"`
	Failures    int    `json:"failures"`
	IssuedAt    string `json:"issued_at"`
	ExpiresAt   string `json:"expires_at,omitempty"`
	PID         string `json:"pid,omitempty"` // only when OCES is attached
	// OCESIssuedAt is when the OCES was issued or last reissued; YouthCert its youth marker.
	OCESIssuedAt string     `json:"oces_issued_at,omitempty"`
	YouthCert    bool       `json:"youth_certificate"`
	CPR          string     `json:"cpr_masked"`
	Cards        []CardView `json:"cards"`
	// Devices are the citizen's key-app devices, active ones first.
	Devices []DeviceView `json:"devices"`

	// IDCheck and Channel are the issuance's ID check and channel ("" for NemIDs from before).
	IDCheck string `json:"id_check,omitempty"`
	Channel string `json:"channel,omitempty"`
}

// CardView is one card's state.
type CardView struct {
	Serial   string `json:"serial"`
	Status   string `json:"status"`
	KeysLeft int    `json:"keys_left"`
	// Origin is why the card exists (first, auto, extra, lost); Replaces the card it
	// replaces; Printable: its printed form waits for the print service (…/print).
	Origin    string `json:"origin,omitempty"`
	Replaces  string `json:"replaces,omitempty"`
	OrderedBy string `json:"ordered_by,omitempty"`
	Printable bool   `json:"printable,omitempty"`
	Default   bool   `json:"default,omitempty"` // the card a login asks first
}

func (a *API) getCitizen(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	c, err := a.Store.Citizen(ctx, r.PathValue("user_id"))
	if err != nil {
		return err
	}
	v := CitizenView{UserID: c.UserID, Name: c.Name, Kind: c.Kind, Status: c.Status, IssuedAt: c.IssuedAt,
		Failures: c.Failures, ExpiresAt: c.ExpiresAt, PID: c.PID, OCESIssuedAt: c.OCESIssuedAt, YouthCert: c.YouthCert}
	if c.Status == store.StatusBlocked {
		v.BlockReason = c.BlockReason
	}
	if c.Status == store.StatusActive && store.ExpiryOf(c.ExpiresAt, time.Now()).Expired {
		v.Status = store.StatusExpired // the date decides, as at login; no status is written
	}
	if n, err := cpr.Parse(c.CPR); err == nil {
		v.CPR = n.Masked()
	}
	v.IDCheck, v.Channel = c.IDCheck, c.Channel
	if v.Cards, err = cardViews(ctx, a.Store, c); err != nil {
		return err
	}
	ds, err := a.Store.Devices(ctx, c.UserID)
	if err != nil {
		return err
	}
	v.Devices = deviceViews(ds)
	writeJSON(w, http.StatusOK, v)
	return nil
}

// GuardianshipRequest registers a guardianship (DESIGN.md §5): guardian and ward are user ids.
type GuardianshipRequest struct {
	Guardian  string `json:"guardian"`
	Ward      string `json:"ward"`
	Kind      string `json:"kind"`
	ValidFrom string `json:"valid_from,omitempty"`
	ValidTo   string `json:"valid_to,omitempty"`
}

// GuardianshipView is a guardianship as the operator sees it.
type GuardianshipView struct {
	ID        string `json:"id"`
	Guardian  string `json:"guardian"`
	Ward      string `json:"ward"`
	Kind      string `json:"kind"`
	ValidFrom string `json:"valid_from,omitempty"`
	ValidTo   string `json:"valid_to,omitempty"`
	CreatedAt string `json:"created_at"`
	EndedAt   string `json:"ended_at,omitempty"`
}

func guardianshipView(g *store.Guardianship) GuardianshipView {
	v := GuardianshipView{ID: g.ID, Guardian: g.Guardian, Ward: g.Ward, Kind: g.Kind, ValidFrom: g.ValidFrom,
		ValidTo: g.ValidTo, CreatedAt: g.CreatedAt.UTC().Format(time.RFC3339)}
	if !g.EndedAt.IsZero() {
		v.EndedAt = g.EndedAt.UTC().Format(time.RFC3339)
	}
	return v
}

func (a *API) createGuardianship(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var req GuardianshipRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	bad := func(msg string) error { return &apiError{http.StatusBadRequest, "invalid_request", msg} }
	if req.Guardian == "" || req.Ward == "" {
		return bad("guardian and ward (user ids) are required")
	}
	if req.Guardian == req.Ward {
		return bad("a citizen cannot be their own guardian")
	}
	if req.Kind != store.GuardianshipFull && req.Kind != store.GuardianshipPartial {
		return bad(`kind: want "full" or "partial"`)
	}
	var from, to time.Time
	var err error
	if req.ValidFrom != "" {
		if from, err = store.ParseDanishDate(req.ValidFrom); err != nil {
			return bad("valid_from: " + err.Error())
		}
	}
	if req.ValidTo != "" {
		if to, err = store.ParseDanishDate(req.ValidTo); err != nil {
			return bad("valid_to: " + err.Error())
		}
	}
	if !from.IsZero() && !to.IsZero() && to.Before(from) {
		return bad("valid_to is before valid_from")
	}
	if _, err := a.Store.Citizen(ctx, req.Guardian); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return bad("guardian: no NemID with this user id")
		}
		return err
	}
	ward, err := a.Store.Citizen(ctx, req.Ward)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return bad("ward: no NemID with this user id")
		}
		return err
	}
	// One guardianship of a guardian for a ward at a time (not ended, dates overlapping): a
	// second would list the ward twice at act_as. End the old one first to change it.
	existing, err := a.Store.Guardianships(ctx, req.Guardian)
	if err != nil {
		return err
	}
	for _, o := range existing {
		if o.Ward == req.Ward && o.EndedAt.IsZero() && datesOverlap(o.ValidFrom, o.ValidTo, req.ValidFrom, req.ValidTo) {
			return &apiError{http.StatusConflict, "conflict", "This guardian already has a guardianship for this ward (" + o.ID + "); end it first."}
		}
	}
	g := &store.Guardianship{ID: "gs_" + keysecret.Generate()[:22], Guardian: req.Guardian, Ward: req.Ward, WardName: ward.Name,
		Kind: req.Kind, ValidFrom: req.ValidFrom, ValidTo: req.ValidTo, CreatedAt: time.Now().UTC()}
	if err := a.Store.CreateGuardianship(ctx, g); err != nil {
		return fmt.Errorf("admin: guardianship: %w", err)
	}
	slog.InfoContext(ctx, "guardianship registered", "id", g.ID, "guardian", g.Guardian, "ward", g.Ward, "kind", g.Kind)
	a.audit(w, r, "guardianship.created", g.Ward, map[string]any{"guardianship_id": g.ID, "guardian": g.Guardian, "kind": g.Kind,
		"valid_from": g.ValidFrom, "valid_to": g.ValidTo})
	writeJSON(w, http.StatusCreated, guardianshipView(g))
	return nil
}

func (a *API) listGuardianships(w http.ResponseWriter, r *http.Request) error {
	gs, err := a.Store.Guardianships(r.Context(), r.PathValue("user_id"))
	if err != nil {
		return err
	}
	out := []GuardianshipView{}
	for i := range gs {
		out = append(out, guardianshipView(&gs[i]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"guardianships": out})
	return nil
}

// endGuardianship ends a guardianship now (DELETE: the record stays, marked ended).
func (a *API) endGuardianship(w http.ResponseWriter, r *http.Request) error {
	g, err := a.Store.EndGuardianship(r.Context(), r.PathValue("id"), time.Now())
	if err != nil {
		return err
	}
	slog.InfoContext(r.Context(), "guardianship ended", "id", g.ID, "guardian", g.Guardian, "ward", g.Ward)
	a.audit(w, r, "guardianship.ended", g.Ward, map[string]any{"guardianship_id": g.ID, "guardian": g.Guardian})
	writeJSON(w, http.StatusOK, guardianshipView(g))
	return nil
}

// datesOverlap reports whether two inclusive YYYY-MM-DD ranges (open-ended when empty) share
// a day. The format compares as text.
func datesOverlap(from1, to1, from2, to2 string) bool {
	before := func(to, from string) bool { return to != "" && from != "" && to < from }
	return !before(to1, from2) && !before(to2, from1)
}
