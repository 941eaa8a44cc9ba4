package selfservice

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store"
)

// session is the self-service session, sealed in its cookie. It holds no secret of the
// citizen's; it is bound to the login that made it (its auth time, which a block ends, and
// its SSO session, which a logout ends).
type session struct {
	// ID is random per session: it keys the CSRF token.
	ID       string    `json:"id"`
	UserID   string    `json:"uid"`
	AuthTime time.Time `json:"at"`
	// SID names the SSO session of the login ("" when it had none): the self-service
	// session lives only while the browser holds that SSO session.
	SID     string    `json:"sid,omitempty"`
	Started time.Time `json:"st"`
	Seen    time.Time `json:"seen"`
	// Flash is the outcome of the last change, shown once by the overview.
	Flash *flash `json:"fl,omitempty"`
}

type flash struct {
	Code   string `json:"c"`
	Serial string `json:"s,omitempty"`
}

const cookieName = "nemidp_selvbetjening"

// sealPurpose binds a sealed session to its use.
const sealPurpose = "selfservice-session/v1"

// claimMark is the flow's one-time mark: one self-service session per login.
const claimMark = "selfservice"

func (h *Handler) cookieName() string {
	if h.Secure {
		return "__Host-" + cookieName
	}
	return cookieName
}

func (h *Handler) setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: h.cookieName(), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: h.Secure, SameSite: http.SameSiteLaxMode,
	})
}

func (h *Handler) clearCookie(w http.ResponseWriter) { h.setCookie(w, "", -1) }

func (h *Handler) writeSession(w http.ResponseWriter, s *session) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("selfservice: encode session: %w", err)
	}
	sealed, err := h.Secret.Seal(sealPurpose, raw)
	if err != nil {
		return fmt.Errorf("selfservice: seal session: %w", err)
	}
	h.setCookie(w, base64.RawURLEncoding.EncodeToString(sealed), int(IdleTimeout.Seconds()))
	return nil
}

// readSession opens the request's session cookie; nil when there is none, it does not open,
// or it ran out (idle, or past its lifetime).
func (h *Handler) readSession(r *http.Request) *session {
	c, err := r.Cookie(h.cookieName())
	if err != nil || c.Value == "" || len(c.Value) > 2048 {
		return nil
	}
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return nil
	}
	raw, err := h.Secret.Open(sealPurpose, sealed)
	if err != nil {
		return nil
	}
	var s session
	if json.Unmarshal(raw, &s) != nil || s.ID == "" || s.UserID == "" {
		return nil
	}
	now := h.now()
	if now.Sub(s.Seen) > IdleTimeout || now.Sub(s.Started) > MaxLifetime {
		return nil
	}
	return &s
}

// authenticate finds the request's live session and its citizen: the cookie opens and has
// not run out, its SSO session is still the browser's, the citizen is active and no block
// since the login ended it. A session that is over is cleared. A store that does not answer
// is an error (the session stays).
func (h *Handler) authenticate(req *request) (bool, error) {
	s := h.readSession(req.r)
	if s == nil {
		if _, err := req.r.Cookie(h.cookieName()); err == nil {
			h.clearCookie(req.w)
		}
		return false, nil
	}
	ctx := req.r.Context()
	if s.SID != "" {
		sso, err := h.Flows.Session(ctx, h.Web.SessionCookie(req.r))
		if err != nil {
			return false, err
		}
		if sso == nil || sso.SID != s.SID || sso.CitizenID != s.UserID {
			h.clearCookie(req.w)
			return false, nil
		}
	}
	c, err := h.Store.Citizen(ctx, s.UserID)
	if errors.Is(err, store.ErrNotFound) {
		h.clearCookie(req.w)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !c.ActiveOn(h.now()) || c.MustChange || store.LoginEnded(c.SessionsEnded, s.AuthTime) {
		h.clearCookie(req.w)
		return false, nil
	}
	req.sess, req.c = s, c
	return true, nil
}

// keepSession renews the cookie's idle time (and drops a flash the page is about to show).
func (h *Handler) keepSession(req *request) {
	s := *req.sess
	s.Seen, s.Flash = h.now(), nil
	if err := h.writeSession(req.w, &s); err != nil {
		slog.WarnContext(req.r.Context(), "self-service session not renewed", "err", err)
	}
}

// setFlash keeps the outcome of a change in the session, for the page the browser is sent to.
func (h *Handler) setFlash(req *request, f flash) {
	s := *req.sess
	s.Seen, s.Flash = h.now(), &f
	if err := h.writeSession(req.w, &s); err != nil {
		slog.WarnContext(req.r.Context(), "self-service outcome not kept", "err", err)
	}
}

// fresh reports whether the session's login is recent enough for blocking and renewing.
func (h *Handler) fresh(s *session) bool {
	age := h.now().Sub(s.AuthTime)
	return age <= FreshLogin && age > -time.Minute
}

// protocol is the self-service state a flow carries: where to go when it is done.
type protocol struct {
	SelfService bool   `json:"selfservice"`
	Next        string `json:"next,omitempty"`
}

// nextPages are the pages a login may return to.
var nextPages = []string{Path, Path + "/kort/mistet", Path + "/spaerring", Path + "/fornyelse", Path + "/adgangskode", Path + "/adresse"}

// login sends the browser through a login flow that returns to next; fresh asks for a new
// login (prompt=login, max_age=0) whatever SSO session the browser has.
func (h *Handler) login(req *request, next string, fresh bool) error {
	if !slices.Contains(nextPages, next) {
		next = Path
	}
	raw, err := json.Marshal(protocol{SelfService: true, Next: next})
	if err != nil {
		return fmt.Errorf("selfservice: %w", err)
	}
	st := flows.Start{
		ClientID:  ClientID,
		ReturnURL: func(id string) string { return Path + "/callback?id=" + url.QueryEscape(id) },
		Locales:   []string{req.lang},
		Protocol:  raw,
	}
	if fresh {
		zero := int64(0)
		st.Prompt, st.MaxAge = []string{"login"}, &zero
		if req.sess != nil {
			st.LoginHint = req.sess.UserID // the same citizen, most likely
		}
	}
	r := h.Web.BindBrowser(req.w, req.r)
	f, err := h.Flows.Begin(r.Context(), st)
	if err != nil {
		return err
	}
	http.Redirect(req.w, req.r, "/login/"+url.PathEscape(f.ID), http.StatusSeeOther)
	return nil
}

// callback takes the browser back from its login: a done self-service flow bound to this
// browser, claimed once, becomes a self-service session.
func (h *Handler) callback(req *request) error {
	ctx := req.r.Context()
	id := req.r.URL.Query().Get("id")
	f, answering, err := h.Flows.LoadAnswering(ctx, id, h.Web.BrowserOf(req.r), claimMark)
	var fe *flows.Error
	if errors.As(err, &fe) && fe.Code == flows.CodeFlowExpired {
		return errorf(http.StatusGone, "flow_expired", "This login does not exist or has expired.")
	}
	if err != nil {
		return err
	}
	var p protocol
	if f.ClientID != ClientID || json.Unmarshal(f.Protocol, &p) != nil || !p.SelfService {
		return errorf(http.StatusGone, "flow_expired", "This login does not exist or has expired.")
	}
	if !h.Web.BoundTo(req.r, f) {
		return errorf(http.StatusForbidden, "wrong_browser", "This login was started in another browser.")
	}
	if f.Step == flows.StepFailed || f.Expired(h.Flows.Time()) {
		code := flows.CodeFlowExpired
		if f.Failure != nil {
			code = f.Failure.Code
		}
		return errorf(http.StatusForbidden, code, "The login did not succeed.")
	}
	if !f.Done() {
		http.Redirect(req.w, req.r, "/login/"+url.PathEscape(f.ID), http.StatusSeeOther)
		return nil
	}
	if !answering.Claimed {
		// Used already (a reload): whatever session it made stands.
		http.Redirect(req.w, req.r, Path, http.StatusSeeOther)
		return nil
	}
	res := f.Result
	if res.OnBehalfOf != nil {
		return errorf(http.StatusForbidden, "not_available", "Self-service is for your own NemID.")
	}
	c, err := h.Store.Citizen(ctx, res.CitizenID)
	if err != nil {
		return err
	}
	if c.Status != store.StatusActive || store.LoginEnded(c.SessionsEnded, res.AuthTime) {
		return errorf(http.StatusForbidden, flows.CodeBlocked, "Your NemID is blocked.")
	}
	// Bound to the SSO session the browser holds for this login. Should it hold none (its
	// store failed: the login went on without SSO), the session is bound to the login alone,
	// rather than sending the citizen round the login again and again.
	sid := res.SessionID
	if sid != "" {
		sso, err := h.Flows.Session(ctx, h.Web.SessionCookie(req.r))
		if err != nil {
			return err
		}
		if sso == nil || sso.SID != sid {
			sid = ""
		}
	}
	now := h.now()
	s := &session{ID: flows.NewID(), UserID: res.CitizenID, AuthTime: res.AuthTime, SID: sid, Started: now, Seen: now}
	if err := h.writeSession(req.w, s); err != nil {
		return err
	}
	req.sess, req.c = s, c
	h.audit(req, "selfservice.login", map[string]any{"amr": res.AMR, "from_session": res.FromSession})
	next := p.Next
	if !slices.Contains(nextPages, next) {
		next = Path
	}
	http.Redirect(req.w, req.r, next, http.StatusSeeOther)
	return nil
}

// csrfToken is the session's form token.
func (h *Handler) csrfToken(s *session) string {
	m := hmac.New(sha256.New, h.Secret.Derive("csrf"))
	m.Write([]byte("selvbetjening\x00" + s.ID + "\x00" + s.UserID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (h *Handler) csrfOK(req *request) bool {
	token := req.r.PostFormValue("csrf_token")
	return token != "" && hmac.Equal([]byte(token), []byte(h.csrfToken(req.sess)))
}

// checkOrigin refuses POSTs a browser marks as cross-site or from another origin.
func (h *Handler) checkOrigin(r *http.Request) error {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return errorf(http.StatusForbidden, "csrf", "Cross-site requests are refused.")
	}
	if o := r.Header.Get("Origin"); o != "" && o != h.Origin {
		return errorf(http.StatusForbidden, "csrf", "Cross-origin requests are refused.")
	}
	return nil
}

// maxBody bounds a form; the largest is an address.
const maxBody = 16 << 10

// parseForm reads a form POST (and nothing else).
func (h *Handler) parseForm(req *request) error {
	ct, _, _ := mime.ParseMediaType(req.r.Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" {
		return errorf(http.StatusUnsupportedMediaType, "invalid_request", "Send a form.")
	}
	req.r.Body = http.MaxBytesReader(req.w, req.r.Body, maxBody)
	if err := req.r.ParseForm(); err != nil {
		return errorf(http.StatusBadRequest, "invalid_request", "The form could not be read.")
	}
	return nil
}
