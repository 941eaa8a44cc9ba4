// Package selfservice serves the citizen's own pages at /selvbetjening (Danish and English):
// the NemID's status and expiry, code cards and keys left, ordering an extra card, reporting a
// lost one, blocking the NemID, renewing it, key-app devices, the password and the
// alternative address.
//
// It is a front end like idp/oidc: it starts a login flow (flows.Engine) under its own
// built-in client (ClientID, no registration), the citizen logs in on the normal login pages
// (an SSO session may answer), and the flow's return lands on /selvbetjening/callback, which
// takes the done flow bound to this browser once and gives the browser a self-service session
// of its own: a sealed cookie, 15 minutes idle, bound to the login's auth time and its SSO
// session. Blocking and renewing need a fresh login (at most FreshLogin old); an older one is
// sent through a new flow with prompt=login and max_age=0.
package selfservice

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/web"
	"github.com/nemidp/nemidp/keys/password"
	"github.com/nemidp/nemidp/keys/secret"
)

// ClientID is the client the self-service flows run under. A registered client id is letters,
// digits and ".-_:" (admin), and a SAML entity id an absolute URI: neither starts with '#'.
const ClientID = "#selvbetjening"

// ClientName is what the key app's request and the audit trail call self-service.
const ClientName = "NemID Selvbetjening"

// Path is where the pages live.
const Path = "/selvbetjening"

// Session limits.
const (
	// IdleTimeout ends a self-service session nobody used for that long.
	IdleTimeout = 15 * time.Minute
	// MaxLifetime ends a self-service session that long after it started, however busy.
	MaxLifetime = time.Hour
	// FreshLogin is how old a login may be for blocking and renewing.
	FreshLogin = 5 * time.Minute
)

// LifeCycle is what self-service needs of the card and renewal services (implemented by
// idp/issuance).
type LifeCycle interface {
	// Cards is every card of the citizen.
	Cards(ctx context.Context, uid string) ([]Card, error)
	// OrderCard orders a card (reason "extra" or "lost": a lost card's old card is blocked at
	// once), always sent by post.
	OrderCard(ctx context.Context, uid, reason string) (serial string, err error)
	// RenewalKey is the card key number renewal asks.
	RenewalKey(ctx context.Context, uid string) (serial, number string, err error)
	// Renew renews the NemID with the key beside number on card serial. serial and number
	// come back from the page's form: Renew must refuse any but the pending ones.
	Renew(ctx context.Context, uid, serial, number, key string) error
}

// Card is a code card as the citizen sees it. Status is active, sent, retired or blocked.
type Card struct {
	Serial   string
	Status   string
	KeysLeft int
}

// Order reasons.
const (
	ReasonExtra = "extra"
	ReasonLost  = "lost"
)

// Refusal is an error the citizen is shown: Code picks the page text (card_limit, wrong_key,
// used_key, locked, not_due, blocked, …), Message is the English fallback, AttemptsLeft when
// > 0.
type Refusal struct {
	Code, Message string
	AttemptsLeft  int
}

func (r *Refusal) Error() string { return "selfservice: refused: " + r.Code + ": " + r.Message }

// Handler serves /selvbetjening.
type Handler struct {
	Flows *flows.Engine
	Store *store.Store
	// Web is the login front end: its browser binding and SSO cookie.
	Web *web.Handler
	// Passwords is the server's hasher (it bounds concurrent KDF runs).
	Passwords *password.Hasher
	// LifeCycle is nil until wired: the pages that need it answer 503 "not available".
	LifeCycle LifeCycle
	Audit     *audit.Logger
	// Secret is derived from the server secret for self-service alone: it seals the session
	// cookie and keys the CSRF tokens.
	Secret secret.Secret
	// Secure puts the Secure flag and __Host- prefix on the cookie (all but loopback http).
	Secure bool
	// Origin is the issuer's scheme://host, to refuse cross-site POSTs.
	Origin string
	// Now is the clock (nil: time.Now); tests move it.
	Now func() time.Time
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Policy is next with the built-in self-service client added: no OCES needed (a bank-only
// NemID has cards and a password too), nobody acts for a ward here.
func Policy(next flows.ClientPolicy) flows.ClientPolicy { return policy{next} }

type policy struct{ next flows.ClientPolicy }

func (p policy) Policy(ctx context.Context, clientID string) (flows.Policy, error) {
	if clientID == ClientID {
		return flows.Policy{Name: ClientName}, nil
	}
	if p.next == nil {
		return flows.Policy{}, nil
	}
	return p.next.Policy(ctx, clientID)
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

var pages = template.Must(template.New("").ParseFS(templateFS, "templates/*.html"))

// Register adds the routes.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("GET "+Path+"/static/", http.StripPrefix(Path, http.FileServerFS(staticFS)))
	mux.HandleFunc("GET "+Path, h.handle(h.overview, needSession))
	mux.HandleFunc("GET "+Path+"/callback", h.handle(h.callback, 0))
	// Ordering a card and changing where it goes need a fresh login too: else a stolen session
	// could send a card to an address of its choosing.
	mux.HandleFunc("POST "+Path+"/kort", h.handle(h.orderCard, needSession|needFresh|isPost))
	mux.HandleFunc("GET "+Path+"/kort/mistet", h.handle(h.lostCardPage, needSession|needFresh))
	mux.HandleFunc("GET "+Path+"/spaerring", h.handle(h.blockPage, needSession|needFresh))
	mux.HandleFunc("POST "+Path+"/spaerring", h.handle(h.block, needSession|needFresh|isPost))
	mux.HandleFunc("GET "+Path+"/fornyelse", h.handle(h.renewPage, needSession|needFresh))
	mux.HandleFunc("POST "+Path+"/fornyelse", h.handle(h.renew, needSession|needFresh|isPost))
	mux.HandleFunc("POST "+Path+"/noegleapp/fjern", h.handle(h.removeDevice, needSession|isPost))
	mux.HandleFunc("GET "+Path+"/adgangskode", h.handle(h.passwordPage, needSession))
	mux.HandleFunc("POST "+Path+"/adgangskode", h.handle(h.changePassword, needSession|isPost))
	mux.HandleFunc("GET "+Path+"/adresse", h.handle(h.addressPage, needSession|needFresh))
	mux.HandleFunc("POST "+Path+"/adresse", h.handle(h.setAddress, needSession|needFresh|isPost))
	mux.HandleFunc("POST "+Path+"/log-af", h.handle(h.logout, needSession|isPost))
	mux.HandleFunc(Path+"/", h.handle(h.unrouted, 0))
}

// What a route needs before its handler runs.
type need int

const (
	needSession need = 1 << iota // a live self-service session (else: log in)
	needFresh                    // a login at most FreshLogin old (else: log in again)
	isPost                       // a same-origin form with the session's CSRF token
)

// request carries what one request works with.
type request struct {
	w    http.ResponseWriter
	r    *http.Request
	lang string
	sess *session
	c    *store.Citizen
}

// pageError is an error answered with the error page: status, code (the page text) and the
// English fallback.
type pageError struct {
	status       int
	code, msg    string
	attemptsLeft int
}

func (e *pageError) Error() string {
	return fmt.Sprintf("selfservice: %d %s: %s", e.status, e.code, e.msg)
}

func errorf(status int, code, msg string) *pageError {
	return &pageError{status: status, code: code, msg: msg}
}

var (
	errNotAvailable = errorf(http.StatusServiceUnavailable, "not_available", "This service is not available right now.")
	errCSRF         = errorf(http.StatusForbidden, "csrf", "Missing or wrong form token; reload the page and try again.")
	errNotFound     = errorf(http.StatusNotFound, "not_found", "There is no such page.")
)

func (h *Handler) handle(fn func(*request) error, n need) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		req := &request{w: w, r: r, lang: h.chooseLang(w, r)}
		if err := h.serve(req, fn, n); err != nil {
			h.writeError(req, err)
		}
	}
}

func (h *Handler) serve(req *request, fn func(*request) error, n need) error {
	if n&isPost != 0 {
		if err := h.checkOrigin(req.r); err != nil {
			return err
		}
		if err := h.parseForm(req); err != nil {
			return err
		}
	}
	if n&needSession == 0 {
		return fn(req)
	}
	ok, err := h.authenticate(req)
	if err != nil {
		return err
	}
	// The page a login (or a fresh one) comes back to: a form's own page, never the POST.
	back := backPath(req.r)
	if !ok {
		return h.login(req, back, false)
	}
	if n&isPost != 0 && !h.csrfOK(req) {
		return errCSRF
	}
	if n&needFresh != 0 && !h.fresh(req.sess) {
		return h.login(req, back, true)
	}
	h.keepSession(req)
	return fn(req)
}

// backPath is the page a request's login returns to: its own GET page, or the overview for a
// POST that has none.
func backPath(r *http.Request) string {
	p := r.URL.Path
	if r.Method == http.MethodPost {
		switch p {
		case Path + "/spaerring", Path + "/fornyelse", Path + "/adgangskode", Path + "/adresse":
			return p
		}
		return Path
	}
	return p
}

// unrouted answers every other path under /selvbetjening/ with the error page (and the
// trailing-slash overview with a redirect), never the mux's plain text.
func (h *Handler) unrouted(req *request) error {
	if req.r.URL.Path == Path+"/" && req.r.Method == http.MethodGet {
		http.Redirect(req.w, req.r, Path, http.StatusSeeOther)
		return nil
	}
	return errNotFound
}

// writeError is the one place errors become pages.
func (h *Handler) writeError(req *request, err error) {
	pe := toPageError(err)
	if pe.status >= 500 && pe.code != "unavailable" && pe.code != "not_available" {
		slog.ErrorContext(req.r.Context(), "self-service request failed", "path", req.r.URL.Path, "err", err)
	}
	if pe.status == http.StatusServiceUnavailable {
		req.w.Header().Set("Retry-After", "2")
	}
	h.render(req, pe.status, "error", pageData{Error: pe})
}

func toPageError(err error) *pageError {
	var pe *pageError
	if errors.As(err, &pe) {
		return pe
	}
	var rf *Refusal
	if errors.As(err, &rf) {
		return refusalError(rf)
	}
	var fe *flows.Error
	if errors.As(err, &fe) && fe.Code == flows.CodeUnavailable {
		return errorf(http.StatusServiceUnavailable, "unavailable", fe.Message)
	}
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, password.ErrBusy) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return errorf(http.StatusServiceUnavailable, "unavailable", "NemID is temporarily unavailable. Please try again shortly.")
	}
	return errorf(http.StatusInternalServerError, "internal", "Unexpected error. Please try again.")
}

// refusalError is the page error of a refusal of the card or renewal service.
func refusalError(rf *Refusal) *pageError {
	status := http.StatusConflict
	switch rf.Code {
	case "wrong_key", "used_key", "invalid_key":
		status = http.StatusBadRequest
	case "locked", "blocked":
		status = http.StatusForbidden
	}
	return &pageError{status: status, code: rf.Code, msg: rf.Message, attemptsLeft: rf.AttemptsLeft}
}

// audit writes the audit line of the citizen's change through self-service.
func (h *Handler) audit(req *request, what string, detail map[string]any) {
	if detail == nil {
		detail = map[string]any{}
	}
	detail["channel"] = "selfservice"
	uid := req.sess.UserID
	h.Audit.Log(req.w, req.r, audit.Event{By: audit.ByCitizen, Who: uid, What: what, UserID: uid, Detail: detail})
}
