// Package web serves the login flow to browsers (HTML, Danish and English) and to native apps
// and tests (JSON) on the same URLs, binds each flow to its browser, checks CSRF tokens on
// every POST, and writes every error in one place.
package web

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/throttle"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"deref": func(p *int) int { return *p },
	// methodForm is what the "method" template (a button that switches the second factor)
	// needs.
	"methodForm": func(v View, method, label string) methodForm {
		return methodForm{Flow: v.Flow, CSRFToken: v.CSRFToken, Method: method, Label: label}
	},
}).ParseFS(templateFS, "templates/*.html"))

type methodForm struct{ Flow, CSRFToken, Method, Label string }

// Cookie names. With a https issuer the __Host- prefix pins them to our origin.
const (
	browserCookie = "nemidp_browser"
	sessionCookie = "nemidp_sso"
	// claimCookie carries a one-login binding for an authorize request that came without the
	// browser cookie (a cross-site POST, for which SameSite=Lax withholds it): minting a new
	// browser cookie there would replace the one the citizen's other open logins are bound to.
	claimCookie = "nemidp_claim"
)

// claimPrefix marks a flow bound to a claim cookie until its first page view moves the
// binding to the browser cookie.
const claimPrefix = "claim:"

// View is the JSON answer of every login URL (DESIGN.md §5). Two extensions serve the keyapp
// step: keyapp_expires_at, when its request runs out, and methods (also at the codecard step),
// the second factors the citizen may switch to with POST /login/{flow}/method ("keyapp" is
// also how a new request is sent).
type View struct {
	Flow            string       `json:"flow"`
	Step            flows.Step   `json:"step"`
	KeyNumber       string       `json:"key_number,omitempty"`
	CardSerial      string       `json:"card_serial,omitempty"`
	BindingCode     string       `json:"binding_code,omitempty"`
	KeyAppExpiresAt *time.Time   `json:"keyapp_expires_at,omitempty"`
	Methods         []string     `json:"methods,omitempty"`
	Wards           []Ward       `json:"wards,omitempty"`
	RedirectTo      string       `json:"redirect_to,omitempty"`
	CSRFToken       string       `json:"csrf_token,omitempty"`
	Notice          *Notice      `json:"notice,omitempty"`
	Error           *flows.Error `json:"error,omitempty"`

	// Cards (codecard step, when there are several) are the citizen's usable cards, any of
	// which POST /login/{flow}/card {serial} switches to.
	Cards []string `json:"cards,omitempty"`
}

// Ward is someone a guardian may act for.
type Ward struct {
	Ref  string `json:"ref"`
	Name string `json:"name"`
}

// Notice is information that is not an error.
type Notice struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ClientNames finds the relying party's display name.
type ClientNames interface {
	Client(ctx context.Context, id string) (*store.Client, error)
}

// Handler serves /login/… and the static assets.
type Handler struct {
	Flows   *flows.Engine
	Clients ClientNames
	// CSRFKey keys the CSRF tokens (derived from the server secret).
	CSRFKey []byte
	// Secure puts the Secure flag and __Host- prefix on cookies (all but loopback http).
	Secure bool
	// Origin is the issuer's scheme://host, to refuse cross-site POSTs.
	Origin  string
	Metrics *Metrics
	// Throttle counts failed answers per client address (nil: no address limit).
	Throttle *throttle.Guard
	// Audit receives a line per judged answer and per completed login (nil: none).
	Audit *audit.Logger
}

// Metrics counts login outcomes.
type Metrics struct {
	Steps *prometheus.CounterVec
}

// NewMetrics registers the login metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{Steps: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nemidp_login_step_total", Help: "Answers to login steps, by step and outcome (ok or error code).",
	}, []string{"step", "outcome"})}
	reg.MustRegister(m.Steps)
	return m
}

// Register adds the routes.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("GET /static/", http.FileServerFS(staticFS))
	mux.HandleFunc("GET /login/{flow}", h.handle(h.get))
	mux.HandleFunc("POST /login/{flow}/{step}", h.handle(h.post))
	mux.HandleFunc("/login/", h.handle(h.unrouted)) // everything else under /login/: routes.go
}

// stepNames maps URL segments to steps.
var stepNames = map[string]flows.Step{
	"password":     flows.StepPassword,
	"codecard":     flows.StepCodeCard,
	"new-password": flows.StepNewPassword,
	"act-as":       flows.StepActAs,
}

// actions are the POSTs under /login/{flow}/ that answer no step: a look at the key-app
// request (a long-poll) and the choice of second factor. They pass the same checks as a step's
// answer (origin, browser binding, CSRF), and are neither throttled nor counted against the
// client address: none of them is a guess at anything.
var actions = map[string]func(*Handler, *request) error{
	"keyapp": (*Handler).pollKeyApp,
	"method": (*Handler).switchMethod,
	"card":   (*Handler).switchCard,
}

// request carries what one login request works with.
type request struct {
	w          http.ResponseWriter
	r          *http.Request
	json       bool
	lang       string
	browser    string // digest of the browser cookie
	flow       *flows.Flow
	answer     flows.Answer
	answerCSRF string
}

// httpError is an error with its status, for the one place that writes errors.
type httpError struct {
	status int
	err    *flows.Error
	flow   *flows.Flow // for the way back, when known
}

func (e *httpError) Error() string { return e.err.Error() }

func (h *Handler) handle(fn func(*request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		req := &request{w: w, r: r, json: wantsJSON(r)}
		if err := fn(req); err != nil {
			h.writeError(req, err)
		}
	}
}

func wantsJSON(r *http.Request) bool {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		return true
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return ct == "application/json"
}

// browserID returns the digest of the browser cookie, setting a new cookie if there is none.
func (h *Handler) browserID(req *request, create bool) string {
	if b := h.BrowserOf(req.r); b != "" {
		return b
	}
	if !create {
		return ""
	}
	v := flows.NewID() + flows.NewID()
	h.setCookie(req.w, browserCookie, v, 0)
	return digest(v)
}

func (h *Handler) cookieName(name string) string {
	if h.Secure {
		return "__Host-" + name
	}
	return name
}

func (h *Handler) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: h.cookieName(name), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: h.Secure, SameSite: http.SameSiteLaxMode,
	})
}

func digest(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (h *Handler) csrfToken(flowID, browser string) string {
	m := hmac.New(sha256.New, h.CSRFKey)
	m.Write([]byte("csrf\x00" + flowID + "\x00" + browser))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (h *Handler) load(req *request) error {
	f, err := h.Flows.Load(req.r.Context(), req.r.PathValue("flow"))
	if err != nil {
		return err
	}
	return h.loaded(req, f)
}

// loaded takes a flow loaded for req, unless it is not a browser's to see.
func (h *Handler) loaded(req *request, f *flows.Flow) error {
	if f.Purpose != "" {
		// A key-app activation belongs to the key-app API: a browser never sees it, not even
		// that it exists.
		return notFound()
	}
	req.flow = f
	req.lang = chooseLang(req.r, f.Locales)
	return nil
}

// get shows the flow's current step, completing it from the SSO session when allowed.
func (h *Handler) get(req *request) error {
	ctx := req.r.Context()
	req.lang = chooseLang(req.r, nil)
	if l := req.r.URL.Query().Get("lang"); l == langDA || l == langEN {
		http.SetCookie(req.w, &http.Cookie{Name: "nemidp_lang", Value: l, Path: "/", MaxAge: 365 * 86400,
			Secure: h.Secure, SameSite: http.SameSiteLaxMode})
	}
	// The flow and the SSO session its password step may be completed from, in one round trip.
	f, sess, err := h.Flows.LoadWithSession(ctx, req.r.PathValue("flow"), h.SessionCookie(req.r))
	if err != nil {
		return err
	}
	if err := h.loaded(req, f); err != nil {
		return err
	}
	req.browser = h.browserID(req, true)
	if claim, ok := strings.CutPrefix(f.Browser, claimPrefix); ok {
		// Started by a request without the browser cookie: the claim cookie proves this is the
		// browser that sent it, and the binding moves to the browser cookie (the one a
		// top-level GET carries), which the citizen's other logins keep using.
		name, ok := h.claimCookieFor(req.r, claim)
		if !ok {
			return &httpError{status: http.StatusForbidden, err: flows.Errorf(flows.CodeWrongBrowser, "This login was started in another browser.")}
		}
		if err := h.Flows.Claim(ctx, f, f.Browser, req.browser); err != nil {
			return err
		}
		h.setCookie(req.w, name, "", -1)
	}
	if err := h.Flows.Bind(ctx, f, req.browser); err != nil {
		return err
	}
	if f.Expired(h.Flows.Time()) {
		if err := h.Flows.Fail(ctx, f, flows.Errorf(flows.CodeFlowExpired, "This login has expired.")); err != nil {
			return err
		}
		return &httpError{status: http.StatusGone, err: f.Failure, flow: f}
	}
	if f.Step == flows.StepPassword {
		if err := h.trySession(req, sess); err != nil {
			return err
		}
	}
	switch {
	case f.Step == flows.StepKeyApp:
		// A look at the request, as a poll that does not wait: the page shows it as it is
		// (approved, denied, spent by a wrong code, run out), never a code the app can no
		// longer choose.
		return h.keyAppAnswer(req, h.Flows.PollKeyApp(ctx, f, 0))
	case f.Done():
		h.keyAppSession(req) // completed by the key app while no page of it looked
	}
	if err := h.Flows.Prepare(ctx, f); err != nil {
		return err
	}
	if f.Step == flows.StepFailed && f.Failure != nil {
		return h.render(req, statusFor(f.Failure.Code), nil)
	}
	return h.render(req, http.StatusOK, nil)
}

// trySession completes a flow at its password step from the browser's SSO session (sess, nil
// when it has none), when the flow allows it.
func (h *Handler) trySession(req *request, sess *flows.SessionInfo) error {
	ctx := req.r.Context()
	f := req.flow
	resumed, err := h.Flows.Resume(ctx, f, sess)
	if err != nil {
		return err
	}
	if !resumed && f.PromptNone() {
		return h.Flows.Fail(ctx, f, flows.Errorf(flows.CodeLoginRequired, "The citizen is not logged in."))
	}
	return nil
}

// maxBody bounds a login POST; the largest answer is a password.
const maxBody = 16 << 10

func (h *Handler) post(req *request) error {
	ctx := req.r.Context()
	name := req.r.PathValue("step")
	step, isStep := stepNames[name]
	action, isAction := actions[name]
	if !isStep && !isAction {
		return &httpError{status: http.StatusNotFound, err: flows.Errorf(flows.CodeWrongStep, "No such step.")}
	}
	if err := h.checkOrigin(req.r); err != nil {
		return err
	}
	if err := h.decode(req); err != nil {
		return err
	}
	req.browser = h.browserID(req, false)
	if isAction {
		if err := h.load(req); err != nil {
			return err
		}
		if err := h.bound(req); err != nil {
			return err
		}
		return action(h, req)
	}
	// The browser and the CSRF token are checked before anything is loaded: the token is a
	// MAC of the flow id and the browser, so a refused POST costs no round trip. It is then
	// answered as it always was (an unknown flow first, then the browser, then the token).
	if req.browser == "" || !h.csrfOK(req, req.r.PathValue("flow")) {
		if err := h.load(req); err != nil {
			return err
		}
		return h.bound(req)
	}
	// An address past its limit of failed answers gets no answer judged.
	if wait, ok := h.Throttle.Throttled(req.r); ok && (step == flows.StepPassword || step == flows.StepCodeCard) {
		if err := h.load(req); err != nil {
			return err
		}
		h.count(string(step), flows.Errorf(flows.CodeThrottled, ""))
		h.audit(req, step, flows.Errorf(flows.CodeThrottled, ""))
		return h.throttled(req, wait)
	}
	// The flow is loaded by the answer itself (in its first round trip); guard refuses it as
	// load and bound would.
	guard := func(f *flows.Flow) error {
		if f.Purpose != "" {
			return notFound() // see load
		}
		req.flow, req.lang = f, chooseLang(req.r, f.Locales)
		if f.Browser != req.browser {
			return wrongBrowser()
		}
		return nil
	}
	_, err := h.Flows.Answer(ctx, req.r.PathValue("flow"), step, req.answer, guard)
	var he *httpError
	if req.flow == nil || errors.As(err, &he) {
		return err // refused before (or by) the guard: nothing judged
	}
	h.count(string(step), err)
	h.audit(req, step, err)
	if err != nil {
		var fe *flows.Error
		if !errors.As(err, &fe) {
			return err
		}
		if fe.Failed() {
			over, terr := h.Throttle.Fail(req.r)
			if terr != nil {
				slog.WarnContext(ctx, "failed answer not counted for its address", "err", terr)
			}
			if over { // counted past the limit by another instance's failures
				return h.throttled(req, h.Throttle.Wait(req.r))
			}
		}
		return h.render(req, statusFor(fe.Code), fe)
	}
	if c := req.flow.SessionCookie(); c != "" { // completed by this very answer
		h.setCookie(req.w, sessionCookie, c, int(h.Flows.SessionTTL.Seconds()))
	}
	// No Prepare here: a step that succeeded has set up the next one itself.
	return h.render(req, http.StatusOK, nil)
}

// bound refuses a request whose browser the loaded flow is not bound to, or whose CSRF token
// is not the flow's.
func (h *Handler) bound(req *request) error {
	if req.browser == "" || req.flow.Browser != req.browser {
		return wrongBrowser()
	}
	if !h.csrfOK(req, req.flow.ID) {
		return &httpError{status: http.StatusForbidden, err: flows.Errorf("csrf", "Missing or wrong CSRF token; reload the page.")}
	}
	return nil
}

func wrongBrowser() error {
	return &httpError{status: http.StatusForbidden, err: flows.Errorf(flows.CodeWrongBrowser,
		"This login is not bound to this browser (are cookies enabled?). Open the login page first.")}
}

// csrfOK checks the request's CSRF token (header, form field or JSON field) for flow id.
func (h *Handler) csrfOK(req *request, id string) bool {
	token := req.r.Header.Get("X-CSRF-Token")
	if token == "" {
		token = req.r.FormValue("csrf_token")
	}
	if token == "" {
		token = req.answerCSRF
	}
	return token != "" && hmac.Equal([]byte(token), []byte(h.csrfToken(id, req.browser)))
}

// startSession stores the SSO session of the login the request just completed and gives the
// browser its cookie.
func (h *Handler) startSession(req *request) {
	ctx := req.r.Context()
	sid, err := h.Flows.StartSession(ctx, req.flow.Result)
	if err != nil {
		// The login itself succeeded; only SSO is lost. Say so in the log, go on.
		slog.WarnContext(ctx, "sso session not stored", "flow", req.flow.ID, "err", err)
		return
	}
	h.setCookie(req.w, sessionCookie, sid, int(h.Flows.SessionTTL.Seconds()))
}

// pollKeyApp answers POST /login/{flow}/keyapp: the keyapp step as it is once its request is
// decided or ?wait= seconds have passed (at most flows.MaxWait; none: at once).
func (h *Handler) pollKeyApp(req *request) error {
	wait, err := pollWait(req.r.URL.Query())
	if err != nil {
		return err
	}
	err = h.Flows.PollKeyApp(req.r.Context(), req.flow, wait)
	h.count("keyapp", err)
	return h.keyAppAnswer(req, err)
}

// pollWait reads the ?wait= of a poll: whole seconds, clamped to [0, flows.MaxWait].
func pollWait(q url.Values) (time.Duration, error) {
	if !q.Has("wait") {
		return 0, nil
	}
	n, err := strconv.ParseInt(q.Get("wait"), 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) { // out of range: clamped as any other
		return 0, &httpError{status: http.StatusBadRequest, err: flows.Errorf(flows.CodeInvalidRequest,
			"wait is a whole number of seconds (at most %d).", int(flows.MaxWait/time.Second))}
	}
	return time.Duration(min(max(n, 0), int64(flows.MaxWait/time.Second))) * time.Second, nil
}

// keyAppAnswer answers a look at the key-app request (a poll, or the page of the keyapp step).
// An approval moves the login on (to its next step, or done), here or on the instance that
// got the device's decision; a denial ends it.
func (h *Handler) keyAppAnswer(req *request, err error) error {
	if err != nil {
		var fe *flows.Error
		if !errors.As(err, &fe) {
			return err
		}
		return h.render(req, statusFor(fe.Code), fe)
	}
	h.keyAppSession(req)
	return h.render(req, http.StatusOK, nil)
}

// keyAppSession starts the SSO session of a login the key app completed, for the one look
// that claims it (see flows.Engine.ClaimSessionHandout). A failure costs only SSO.
func (h *Handler) keyAppSession(req *request) {
	f := req.flow
	if !f.Done() || f.Result.FromSession || !f.Result.Deferred {
		return
	}
	ok, err := h.Flows.ClaimSessionHandout(req.r.Context(), f)
	if err != nil {
		slog.WarnContext(req.r.Context(), "sso session of a key-app login not handed out", "flow", f.ID, "err", err)
		return
	}
	if ok {
		h.auditDone(req) // the one look that claims the login the key app completed
		h.startSession(req)
	}
}

// switchMethod answers POST /login/{flow}/method: the code card's key, or a new key-app
// request. A page's form is answered with a redirect to the login's page (a reload then
// sends no second request).
func (h *Handler) switchMethod(req *request) error {
	return h.switched(req, "method", h.Flows.SwitchMethod(req.r.Context(), req.flow, req.answer.Method))
}

// switched answers a switch (of method or card) that came to err: the refusal on the step's
// page or view, else the login's page (a redirect, for a form) or its view.
func (h *Handler) switched(req *request, what string, err error) error {
	h.count(what, err)
	if err != nil {
		var fe *flows.Error
		if !errors.As(err, &fe) {
			return err
		}
		return h.render(req, statusFor(fe.Code), fe)
	}
	if !req.json {
		http.Redirect(req.w, req.r, "/login/"+url.PathEscape(req.flow.ID), http.StatusSeeOther)
		return nil
	}
	return h.render(req, http.StatusOK, nil)
}

// throttled answers 429 with Retry-After, on the page (or in the view) of the current step.
func (h *Handler) throttled(req *request, wait time.Duration) error {
	req.w.Header().Set("Retry-After", throttle.RetryAfter(wait))
	mins := int(math.Ceil(wait.Minutes()))
	return h.render(req, http.StatusTooManyRequests, flows.Errorf(flows.CodeThrottled,
		"Too many failed attempts from your network. Try again in %d minute(s).", max(mins, 1)))
}

func (h *Handler) count(step string, err error) {
	if h.Metrics == nil {
		return
	}
	h.Metrics.Steps.WithLabelValues(step, outcomeOf(err)).Inc()
}

// outcomeOf is an answer's outcome as metrics and the audit trail name it: ok or the error
// code.
func outcomeOf(err error) string {
	var fe *flows.Error
	switch {
	case errors.As(err, &fe) && fe.Code == flows.CodeUsedKey && !fe.Failed():
		return "used_key_by_other_login" // a second tab, not a replay
	case errors.As(err, &fe):
		return fe.Code
	case err != nil:
		return "error"
	}
	return "ok"
}

// audit writes the audit line of a judged answer to step (login.password, login.codecard,
// login.new_password, login.act_as) and, when it completed the login, login.done. The citizen
// is the one whose password the flow accepted (by citizen); before that nobody is proven (by
// anonymous), and a wrong password names the NemID it counted against (never the typed user
// ID, which may be a CPR number), or outcome unknown_user without a user_id.
func (h *Handler) audit(req *request, step flows.Step, err error) {
	if h.Audit == nil || req.flow == nil {
		return
	}
	f := req.flow
	ev := audit.Event{By: audit.ByAnonymous, What: "login." + string(step), UserID: f.CitizenID,
		Detail: map[string]any{"outcome": outcomeOf(err), "client_id": f.ClientID}}
	if f.CitizenID != "" {
		ev.By, ev.Who = audit.ByCitizen, f.CitizenID
	}
	var fe *flows.Error
	if step == flows.StepPassword && f.CitizenID == "" && errors.As(err, &fe) &&
		(fe.Code == flows.CodeInvalidCredentials || fe.Code == flows.CodeLocked) {
		ev.UserID = fe.Citizen() // the engine knows whose count it was, at no extra round trip
		if ev.UserID == "" {
			ev.Detail["outcome"], ev.Detail["code"] = "unknown_user", fe.Code
		}
	} else if step == flows.StepPassword && f.CitizenID == "" && errors.As(err, &fe) && fe.Citizen() != "" {
		// A right password refused (blocked, expired, no card): the citizen proved who they are.
		ev.By, ev.Who, ev.UserID = audit.ByCitizen, fe.Citizen(), fe.Citizen()
	}
	h.Audit.Log(req.w, req.r, ev)
	if err == nil && f.Done() {
		h.auditDone(req)
	}
}

// auditDone writes login.done for the completed login of req's flow.
func (h *Handler) auditDone(req *request) {
	res := req.flow.Result
	if h.Audit == nil || res == nil {
		return
	}
	d := map[string]any{"client_id": req.flow.ClientID, "amr": res.AMR, "acr": res.ACR, "from_session": res.FromSession}
	if res.OnBehalfOf != nil {
		d["on_behalf_of"], d["guardianship_id"] = res.OnBehalfOf.CitizenID, res.OnBehalfOf.Guardianship
	}
	h.Audit.Log(req.w, req.r, audit.Event{By: audit.ByCitizen, Who: res.CitizenID, What: "login.done", UserID: res.CitizenID, Detail: d})
}

// checkOrigin refuses POSTs a browser marks as cross-site: a JSON POST is never accepted from a
// cross-site form, and neither is a form.
func (h *Handler) checkOrigin(r *http.Request) error {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return &httpError{status: http.StatusForbidden, err: flows.Errorf("csrf", "Cross-site requests are refused.")}
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" && o != h.Origin {
		return &httpError{status: http.StatusForbidden, err: flows.Errorf("csrf", "Cross-origin requests are refused.")}
	}
	if o := r.Header.Get("Origin"); o == "null" {
		return &httpError{status: http.StatusForbidden, err: flows.Errorf("csrf", "Requests from opaque origins are refused.")}
	}
	return nil
}

// decode reads a JSON body (Content-Type application/json only) or a form.
func (h *Handler) decode(req *request) error {
	r := req.r
	r.Body = http.MaxBytesReader(req.w, r.Body, maxBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	bad := func(msg string) error {
		return &httpError{status: http.StatusBadRequest, err: flows.Errorf(flows.CodeInvalidRequest, "%s", msg)}
	}
	switch ct {
	case "application/json":
		var body struct {
			flows.Answer
			CSRF string `json:"csrf_token"`
		}
		dec := json.NewDecoder(r.Body)
		if err := dec.Decode(&body); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return &httpError{status: http.StatusRequestEntityTooLarge, err: flows.Errorf(flows.CodeInvalidRequest, "Request body too large.")}
			}
			if errors.Is(err, io.EOF) {
				return bad("Empty request body; send a JSON object.")
			}
			return bad("Malformed JSON body.")
		}
		req.answer, req.answerCSRF = body.Answer, body.CSRF
	case "application/x-www-form-urlencoded", "multipart/form-data":
		if err := r.ParseForm(); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return &httpError{status: http.StatusRequestEntityTooLarge, err: flows.Errorf(flows.CodeInvalidRequest, "Request body too large.")}
			}
			return bad("Malformed form body.")
		}
		req.answer = flows.Answer{Username: r.PostFormValue("username"), Password: r.PostFormValue("password"),
			Key: r.PostFormValue("key"), NewPassword: r.PostFormValue("new_password"), Method: r.PostFormValue("method"),
			Principal: r.PostFormValue("principal"), Serial: r.PostFormValue("serial")}
	default:
		return &httpError{status: http.StatusUnsupportedMediaType, err: flows.Errorf(flows.CodeInvalidRequest,
			"Send application/json or a form.")}
	}
	return nil
}

// view is the JSON state of a flow.
func (h *Handler) view(req *request) View {
	f := req.flow
	v := View{Flow: f.ID, Step: f.Step}
	switch f.Step {
	case flows.StepCodeCard:
		v.KeyNumber, v.CardSerial = f.KeyNumber, f.CardSerial
		v.Methods = methods(f)
		if len(f.Cards) > 1 {
			v.Cards = f.Cards
		}
	case flows.StepKeyApp:
		if a := f.Approval; a != nil {
			exp := a.ExpiresAt.UTC()
			v.BindingCode, v.KeyAppExpiresAt = a.Code, &exp
		}
		v.Methods = methods(f)
		if h.keyAppRanOut(f) {
			v.Error = flows.Errorf(flows.CodeKeyAppTimeout, "The request in the key app ran out. Send a new request, or use your code card.")
		}
	case flows.StepActAs:
		for _, w := range f.Wards {
			v.Wards = append(v.Wards, Ward{Ref: w.Ref, Name: w.Name})
		}
	case flows.StepDone:
		v.RedirectTo = f.ReturnURL
	case flows.StepFailed:
		v.RedirectTo, v.Error = f.ReturnURL, f.Failure
	}
	if f.Step != flows.StepDone && f.Step != flows.StepFailed {
		v.CSRFToken = h.csrfToken(f.ID, req.browser)
		if len(f.Notices) > 0 {
			v.Notice = &Notice{Code: f.Notices[0], Message: noticeText(langEN, f.Notices[0])}
		}
	}
	return v
}

// noticeText is a notice's text in lang; an unknown code has its code as text.
func noticeText(lang, code string) string {
	if t, ok := texts[lang]["notice_"+code]; ok {
		return t
	}
	return code
}

// methods lists the second factors the citizen may switch to (the one asked now included: to
// the key app is also how a new request is sent).
func methods(f *flows.Flow) []string {
	var m []string
	if f.HasApp && f.Purpose == "" {
		m = append(m, flows.MethodKeyApp)
	}
	if f.CardSerial != "" {
		m = append(m, flows.MethodCodeCard)
	}
	return m
}

// keyAppRanOut reports whether the key-app request of a flow at its keyapp step can no longer
// be approved for lateness.
func (h *Handler) keyAppRanOut(f *flows.Flow) bool {
	return f.Approval == nil || !h.Flows.Time().Before(f.Approval.ExpiresAt)
}

func (h *Handler) render(req *request, status int, fe *flows.Error) error {
	v := h.view(req)
	if fe != nil {
		v.Error = fe
	} else if v.Step == flows.StepKeyApp && v.Error != nil && status == http.StatusOK {
		status = statusFor(v.Error.Code) // the request ran out, though nobody said so yet
	}
	retryAfter(req.w, status)
	if req.json {
		writeJSON(req.w, status, v)
		return nil
	}
	if v.Step == flows.StepDone || (v.Step == flows.StepFailed && req.flow.PromptNone()) {
		http.Redirect(req.w, req.r, v.RedirectTo, http.StatusSeeOther)
		return nil
	}
	username := req.answer.Username
	if username == "" && v.Step == flows.StepPassword {
		username = req.flow.LoginHint // the relying party's login_hint prefills the user ID
	}
	d := pageData{View: v, Error: v.Error, ClientName: h.clientName(req), Username: username}
	if v.Notice != nil {
		d.Notices = req.flow.Notices
	}
	if v.Step == flows.StepKeyApp {
		d.KeyApp = h.keyAppPage(req.flow, v, d.ClientName)
	}
	return h.page(req, status, "login", d)
}

// keyAppPage is what the page of the keyapp step shows besides the view.
func (h *Handler) keyAppPage(f *flows.Flow, v View, clientName string) *keyAppPage {
	p := &keyAppPage{RPName: cmp.Or(f.ClientName, clientName, "NemID")}
	code := ""
	if v.Error != nil {
		code = v.Error.Code
	}
	spent := code == flows.CodeKeyAppTimeout || code == flows.CodeKeyAppWrongCode
	p.Waiting = !spent && !h.keyAppRanOut(f)
	p.Resend = !p.Waiting && code != flows.CodeTooManyRequests && slices.Contains(v.Methods, flows.MethodKeyApp)
	return p
}

func (h *Handler) clientName(req *request) string {
	if req.flow != nil && req.flow.ClientName != "" {
		return req.flow.ClientName // read when the flow began (Engine.Policy): also a built-in front end's
	}
	if h.Clients == nil || req.flow == nil {
		return ""
	}
	c, err := h.Clients.Client(req.r.Context(), req.flow.ClientID)
	if err != nil {
		return ""
	}
	return c.Name
}

type pageData struct {
	Lang       string
	View       View
	Error      *flows.Error
	ClientName string
	Username   string
	KeyApp     *keyAppPage
	BackURL    string
	RequestID  string
	Params     url.Values // hidden fields carried through a form (logout confirmation)
	// Notices are the flow's notices (flows.Notice…), shown above the step.
	Notices []string
}

// keyAppPage is the state of the keyapp step's page.
type keyAppPage struct {
	// RPName is the relying party the app's request names.
	RPName string
	// Waiting: the request can still be approved; the page shows its code and polls.
	Waiting bool
	// Resend: the request is spent, and a new one may be sent.
	Resend bool
}

func (p pageData) T(key string) string { return t(p.Lang, key) }

// Can reports whether the citizen may switch to method here.
func (p pageData) Can(method string) bool { return slices.Contains(p.View.Methods, method) }

// ErrorText is the citizen-facing text of the error, in the page's language.
func (p pageData) ErrorText() string {
	if p.Error == nil {
		return ""
	}
	if p.Error.Reason != "" {
		if s := t(p.Lang, "err_"+p.Error.Code+"_"+p.Error.Reason); s != "" {
			return s
		}
	}
	if s := t(p.Lang, "err_"+p.Error.Code); s != "" {
		return fillErrorText(p.Lang, s, p.Error)
	}
	return p.Error.Message
}

func (h *Handler) page(req *request, status int, name string, d pageData) error {
	d.Lang = req.lang
	if d.Lang == "" {
		d.Lang = langDA
	}
	d.RequestID = req.w.Header().Get("X-Request-Id")
	req.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	req.w.WriteHeader(status)
	if err := pages.ExecuteTemplate(req.w, name, d); err != nil {
		slog.ErrorContext(req.r.Context(), "render page", "page", name, "err", err)
	}
	return nil
}

// writeError is the one place errors become answers.
func (h *Handler) writeError(req *request, err error) {
	he := toHTTPError(err)
	if he.status >= 500 && he.err.Code != flows.CodeUnavailable {
		slog.ErrorContext(req.r.Context(), "login request failed", "path", req.r.URL.Path, "err", err)
	}
	retryAfter(req.w, he.status)
	f := he.flow
	if f == nil {
		f = req.flow
	}
	if req.json {
		v := View{Error: he.err}
		if f != nil {
			v.Flow, v.Step = f.ID, f.Step
			if f.Step == flows.StepFailed {
				v.RedirectTo = f.ReturnURL
			}
		}
		writeJSON(req.w, he.status, v)
		return
	}
	d := pageData{Error: he.err}
	if f != nil && f.Step == flows.StepFailed {
		d.BackURL = f.ReturnURL
	}
	if req.lang == "" {
		req.lang = chooseLang(req.r, requestLocales(req.r))
	}
	_ = h.page(req, he.status, "error", d)
}

func toHTTPError(err error) *httpError {
	var he *httpError
	if errors.As(err, &he) {
		return he
	}
	var fe *flows.Error
	if errors.As(err, &fe) {
		return &httpError{status: statusFor(fe.Code), err: fe}
	}
	if errors.Is(err, store.ErrUnavailable) {
		return &httpError{status: http.StatusServiceUnavailable, err: flows.Errorf(flows.CodeUnavailable,
			"The login service is temporarily unavailable. Please try again shortly.")}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &httpError{status: http.StatusServiceUnavailable, err: flows.Errorf(flows.CodeUnavailable,
			"The request was cancelled or timed out. Please try again.")}
	}
	return &httpError{status: http.StatusInternalServerError, err: flows.Errorf("internal", "Unexpected error. Please try again.")}
}

// retryAfter tells a client refused for a while (503: Redis away, KDF queue full) when to
// come back, unless the answer said so already.
func retryAfter(w http.ResponseWriter, status int) {
	if status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "2")
	}
}

// StatusFor is the HTTP status of a login error code (the key-app API answers the login
// errors of an activation with the same statuses).
func StatusFor(code string) int { return statusFor(code) }

// statusFor maps login error codes to HTTP statuses.
func statusFor(code string) int {
	switch code {
	case flows.CodeInvalidCredentials, flows.CodeWrongKey:
		return http.StatusUnauthorized
	case flows.CodeUsedKey, flows.CodeWrongStep, flows.CodeConflict,
		flows.CodeKeyAppTimeout, flows.CodeKeyAppWrongCode, flows.CodeNoDevice:
		return http.StatusConflict
	case flows.CodeLocked, flows.CodeBlocked, flows.CodeExpired, flows.CodeOCESRequired, flows.CodeWrongBrowser,
		flows.CodeNoKeysLeft, flows.CodeCardRetired, flows.CodeCardBlocked, "csrf", flows.CodeLoginRequired, flows.CodeTooManyAttempts, flows.CodeKeyAppDenied:
		return http.StatusForbidden
	case flows.CodeThrottled:
		return http.StatusTooManyRequests
	case flows.CodeTooManyRequests:
		// No Retry-After: the limit is the login's, and waiting does not lift it.
		return http.StatusTooManyRequests
	case flows.CodeFlowExpired:
		return http.StatusGone
	case flows.CodeInvalidRequest, flows.CodeWeakPassword:
		return http.StatusBadRequest
	case flows.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteJSONError writes {"error":{"code","message"}} — for other packages' JSON APIs.
func WriteJSONError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// ErrorPage renders a standalone error page (unknown client, bad redirect_uri) in HTML or
// JSON as the request asks.
func (h *Handler) ErrorPage(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	req := &request{w: w, r: r, json: wantsJSON(r)} // writeError picks the language
	h.writeError(req, &httpError{status: status, err: flows.Errorf(code, "%s", msg)})
}

// logoutParams are the end_session parameters the confirmation page carries through.
var logoutParams = []string{"client_id", "post_logout_redirect_uri", "state", "ui_locales", "logout_hint"}

// LogoutPage asks the citizen to confirm logging out of NemID (an end_session request without
// a valid id_token_hint), with a form that posts back with a CSRF token.
func (h *Handler) LogoutPage(w http.ResponseWriter, r *http.Request, form url.Values) {
	req := &request{w: w, r: r, lang: chooseLang(r, strings.Fields(form.Get("ui_locales")))}
	b := h.browserID(req, true)
	keep := url.Values{}
	for _, k := range logoutParams {
		if v := form.Get(k); v != "" {
			keep.Set(k, v)
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	_ = h.page(req, http.StatusOK, "logout", pageData{Params: keep, View: View{CSRFToken: h.csrfToken("logout", b)}})
}

// CheckLogout checks the confirmation POST (same-origin, CSRF token) and returns the
// end_session parameters to continue with; on refusal it has answered already.
func (h *Handler) CheckLogout(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	req := &request{w: w, r: r} // writeError picks the language, with the form's ui_locales
	if err := h.checkOrigin(r); err != nil {
		h.writeError(req, err)
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	b := h.browserID(req, false)
	if err := r.ParseForm(); err != nil || b == "" ||
		!hmac.Equal([]byte(r.PostFormValue("csrf_token")), []byte(h.csrfToken("logout", b))) {
		h.writeError(req, &httpError{status: http.StatusForbidden, err: flows.Errorf("csrf", "Missing or wrong CSRF token; reload the page.")})
		return nil, false
	}
	keep := url.Values{}
	for _, k := range logoutParams {
		if v := r.PostFormValue(k); v != "" {
			keep.Set(k, v)
		}
	}
	return keep, true
}

// BindBrowser gives the browser its cookie (if it has none yet) and returns the request with
// its context marked, so a login flow started by this request is bound to this browser. A POST
// without the cookie may come from a browser that has one (SameSite=Lax withholds it from a
// cross-site POST): it gets a claim cookie for this login instead, so the browser cookie its
// other open logins are bound to is never replaced.
func (h *Handler) BindBrowser(w http.ResponseWriter, r *http.Request) *http.Request {
	req := &request{w: w, r: r}
	b := h.browserID(req, r.Method != http.MethodPost)
	if b == "" {
		// A cookie of its own for each such login (two tabs may POST before either is
		// opened), gone when the login is claimed or expires.
		v := flows.NewID() + flows.NewID()
		h.setCookie(w, claimCookie+"_"+v[:8], v, int(h.Flows.FlowTTL.Seconds()))
		b = claimPrefix + digest(v)
	}
	return r.WithContext(flows.WithBrowser(r.Context(), b))
}

// claimCookieFor finds the claim cookie whose digest a flow is bound to; it returns the
// cookie's name (without the __Host- prefix) to clear it.
func (h *Handler) claimCookieFor(r *http.Request, claim string) (string, bool) {
	prefix := h.cookieName(claimCookie + "_")
	for _, c := range r.Cookies() {
		if strings.HasPrefix(c.Name, prefix) && len(c.Value) <= 64 && hmac.Equal([]byte(digest(c.Value)), []byte(claim)) {
			return strings.TrimPrefix(c.Name, h.cookieName("")), true
		}
	}
	return "", false
}

// BoundTo reports whether the request comes from the browser the flow is bound to.
func (h *Handler) BoundTo(r *http.Request, f *flows.Flow) bool {
	b := h.BrowserOf(r)
	return b != "" && f.Browser == b
}

// BrowserOf is what a flow bound to the request's browser holds ("" without the cookie, or
// with one of a length we never set).
func (h *Handler) BrowserOf(r *http.Request) string {
	c, err := r.Cookie(h.cookieName(browserCookie))
	if err != nil || len(c.Value) < 22 || len(c.Value) > 64 {
		return ""
	}
	return digest(c.Value)
}

// SessionCookie returns the SSO cookie value of the request, if any.
func (h *Handler) SessionCookie(r *http.Request) string {
	if c, err := r.Cookie(h.cookieName(sessionCookie)); err == nil {
		return c.Value
	}
	return ""
}

// ClearSession removes the SSO cookie.
func (h *Handler) ClearSession(w http.ResponseWriter) { h.setCookie(w, sessionCookie, "", -1) }

// OriginOf returns scheme://host of a URL.
func OriginOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
