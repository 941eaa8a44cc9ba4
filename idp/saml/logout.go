package saml

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/crewjam/saml"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store"
)

// Single logout (SAML profiles §4.4) on crewjam/saml's ServeSLO: it parses and validates the
// LogoutRequest (Issuer a registered SP, signature by a key of its metadata, Destination,
// IssueInstant, ID never seen before), asks the session provider below for the session's
// participants and to end it, propagates the logout to the other SAML SPs of the session as
// a redirect chain (the browser visits each SP's SLO endpoint with a signed LogoutRequest;
// its LogoutResponse comes back here; the chain's state rides in a cookie signed with the
// IdP's key), and answers the initiating SP with a signed LogoutResponse — Success, or
// Success/PartialLogout when another SP failed. A redirect chain rather than iframes: each
// SP's answer is checked (signed, InResponseTo), so PartialLogout means something, it needs no
// script and no frame-src, and SPs that refuse to be framed (frame-ancestors) still log out.

// sloSessions is ServeSLO's session provider: the browser's SSO session (its cookie names
// it) and the participants recorded for its sid. One per request.
type sloSessions struct {
	h   *Handler
	sp  *spHolder
	mu  sync.Mutex
	got bool
	// What the request's cookie names: the cookie, its session (nil: none, or ended) and the
	// session's participants.
	cookie string
	sess   *flows.SessionInfo
	parts  []store.SessionParticipant
	err    error
	// matched: the LogoutRequest names the requesting SP's own entry of this session (its
	// NameID, and its SessionIndex when the request carries any).
	matched bool
}

// notParticipant stands in, in the list given to crewjam/saml, for the participants of a
// session the request does not match: with it, and without the requesting SP, ServeSLO
// refuses the request with StatusRequester and ends nothing.
const notParticipant = "urn:nemidp:not-a-participant-of-this-session"

func (s *sloSessions) GetSession(http.ResponseWriter, *http.Request, *saml.IdpAuthnRequest) *saml.Session {
	return nil // never asked by ServeSLO
}

// load reads the browser's session and its participants once per request.
func (s *sloSessions) load(r *http.Request) error {
	if s.got {
		return s.err
	}
	s.got = true
	ctx := r.Context()
	s.cookie = s.h.Web.SessionCookie(r)
	if s.cookie == "" {
		return nil
	}
	if s.sess, s.err = s.h.Flows.Session(ctx, s.cookie); s.err != nil || s.sess == nil {
		return s.err
	}
	if s.parts, s.err = s.h.Store.SessionParticipants(ctx, s.sess.SID); s.err != nil {
		return s.err
	}
	s.parts, s.err = s.h.samlParticipants(ctx, s.sess, s.parts)
	return s.err
}

// samlParticipants adds to a session's participants the SAML SPs among its clients (the
// flows' saves record "saml/<entity id>" in their round trip, so /saml/done adds none), with
// what their assertions carried: the SessionIndex made from the session's sid, the NameID
// from the citizen's pairwise subject at the SP's sector. An SP no longer registered, or
// without a subject (never answered), is left out. Costs two reads per SP, at logout only.
func (h *Handler) samlParticipants(ctx context.Context, sess *flows.SessionInfo, parts []store.SessionParticipant) ([]store.SessionParticipant, error) {
	out := parts
	for _, p := range parts {
		entity := EntityIDOf(p.ID)
		if p.Kind != store.ParticipantClient || entity == "" {
			continue
		}
		sp, err := h.Store.ServiceProvider(ctx, entity)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sub, err := h.Store.KnownPairwiseSubject(ctx, sess.CitizenID, sectorOf(sp))
		if err != nil {
			return nil, err
		}
		if sub == "" {
			continue
		}
		out = append(out, store.SessionParticipant{Kind: store.ParticipantSAML, ID: entity, NameID: NameIDPrefix + sub,
			SessionIndex: SessionIndex(sess.SID, entity)})
	}
	return out, nil
}

// SessionParticipants answers ServeSLO for the request's own session: its SAML participants
// when the request matches the requesting SP's entry (match is IdpLogoutRequest.MatchesSession),
// else the sentinel that makes ServeSLO refuse it. A session StartLogout names by its sid is
// matched the same way (match compares the ID).
func (s *sloSessions) SessionParticipants(r *http.Request, match func(*saml.Session) bool) ([]saml.SessionParticipant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(r); err != nil {
		return nil, err
	}
	if s.sess == nil {
		return nil, nil // nothing to end: the citizen is logged out here already
	}
	requester := ""
	if s.sp != nil {
		s.sp.mu.Lock()
		if s.sp.sp != nil {
			requester = s.sp.sp.EntityID
		}
		s.sp.mu.Unlock()
	}
	var out []saml.SessionParticipant
	for _, p := range s.parts {
		if p.Kind != store.ParticipantSAML {
			continue
		}
		sess := &saml.Session{ID: s.sess.SID, NameID: p.NameID, Index: p.SessionIndex}
		if p.ID == requester && match(sess) {
			s.matched = true
		}
		out = append(out, saml.SessionParticipant{ServiceProviderID: p.ID,
			NameID:       saml.NameID{Format: string(saml.PersistentNameIDFormat), Value: p.NameID},
			SessionIndex: p.SessionIndex})
	}
	if requester == "" { // StartLogout: by the session's id
		if !match(&saml.Session{ID: s.sess.SID}) {
			return nil, nil
		}
		return out, nil
	}
	if !s.matched {
		// Another citizen's NameID, another SP's entry, a SessionIndex of another session, or
		// an SP this session never answered: refused, and this session stays.
		return []saml.SessionParticipant{{ServiceProviderID: notParticipant}}, nil
	}
	return out, nil
}

// AddSessionParticipant is not used: the flows' saves record the clients (samlParticipants),
// as the core answers outside ServeSSO.
func (s *sloSessions) AddSessionParticipant(*http.Request, *saml.Session, saml.SessionParticipant) error {
	return nil
}

// InvalidateSession ends the browser's SSO session — for every protocol: OIDC clients of the
// session find no session at their next authorize — when the request matched it.
func (s *sloSessions) InvalidateSession(w http.ResponseWriter, r *http.Request, req *saml.IdpLogoutRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(r); err != nil {
		return err
	}
	if s.sess == nil {
		if s.cookie != "" {
			s.h.Web.ClearSession(w)
		}
		return nil
	}
	if !s.matched {
		return errors.New("saml: logout request does not match the browser's session")
	}
	if err := s.h.Store.EndSessionWithParticipants(r.Context(), s.cookie, s.sess.SID); err != nil {
		return fmt.Errorf("saml: end session: %w", err)
	}
	s.h.Web.ClearSession(w)
	var clients []string
	for _, p := range s.parts {
		if p.Kind == store.ParticipantClient && EntityIDOf(p.ID) == "" {
			clients = append(clients, p.ID) // OIDC clients (and self-service): no front channel
		}
	}
	slog.InfoContext(r.Context(), "saml single logout ended the sso session", "sp", req.Request.Issuer.Value,
		"participants", len(s.parts), "other_clients", strings.Join(clients, ","))
	return nil
}

// sloReplay is crewjam/saml's replay cache for one LogoutRequest: its ID is claimed in Redis
// for the SP that sent it (the one Validate looked up), as AuthnRequest IDs are.
type sloReplay struct {
	ctx context.Context
	h   *Handler
	sp  *spHolder
}

func (c sloReplay) Consume(key string, expiresAt time.Time) error {
	c.sp.mu.Lock()
	sp := c.sp.sp
	c.sp.mu.Unlock()
	if sp == nil {
		return errors.New("saml: logout request without its service provider")
	}
	ttl := max(time.Until(expiresAt)+saml.MaxClockSkew, ReplayWindow())
	fresh, err := c.h.Store.ClaimSAMLRequestID(c.ctx, sp.EntityID, key, ttl)
	if err != nil {
		return err
	}
	if !fresh {
		return saml.ErrAssertionReplayed
	}
	return nil
}

// lastLine keeps what crewjam/saml logged last (why it refused a message) and passes it on to
// slog.
type lastLine struct {
	ctx  context.Context
	mu   sync.Mutex
	line string
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.line = strings.TrimSpace(string(p))
	l.mu.Unlock()
	slog.InfoContext(l.ctx, "saml single logout", "detail", l.line)
	return len(p), nil
}

// sloWriter holds back the plain-text error ServeSLO writes (http.Error), so the citizen
// gets our error page instead.
type sloWriter struct {
	http.ResponseWriter
	status int // the held-back error status; 0: passed through
}

func (w *sloWriter) WriteHeader(code int) {
	if code >= 400 && strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		w.status = code
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *sloWriter) Write(b []byte) (int, error) {
	if w.status != 0 {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// The forms ServeSLO posts with (a LogoutRequest to an SP's POST endpoint, a LogoutResponse to
// the initiator's): the page CSP allows, with our script instead of crewjam's inline ones.
var (
	logoutRequestForm = template.Must(template.New("slo-request").Parse(formHead +
		`<form method="post" action="{{.URL}}" id="saml-post">
<input type="hidden" name="SAMLRequest" value="{{.SAMLRequest}}">
<p>Du logges af tjenesterne. / You are being logged out of the services.</p>
<button type="submit" id="saml-continue">Fortsæt / Continue</button>
</form>` + formFoot))
	logoutResponseForm = template.Must(template.New("slo-response").Parse(formHead +
		`<form method="post" action="{{.URL}}" id="saml-post">
<input type="hidden" name="SAMLResponse" value="{{.SAMLResponse}}">
{{if .RelayState}}<input type="hidden" name="RelayState" value="{{.RelayState}}">{{end}}
<p>Du er logget af. / You are logged out.</p>
<button type="submit" id="saml-continue">Fortsæt / Continue</button>
</form>` + formFoot))
)

const formHead = `<!doctype html>
<html lang="da">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>NemID</title>
<link rel="stylesheet" href="/static/nemid.css">
<script src="` + ScriptPath + `" defer></script>
</head>
<body>
<main>
<header><span class="logo">NemID</span></header>
`

const formFoot = `
</main>
</body>
</html>
`

// slo is /saml/slo (HTTP-Redirect and HTTP-POST): a LogoutRequest from an SP, or an SP's
// LogoutResponse to the LogoutRequest the chain sent it.
func (h *Handler) slo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if err := sloPrecheck(w, r); err != nil {
		var re *errRequest
		if errors.As(err, &re) {
			h.Web.ErrorPage(w, r, http.StatusBadRequest, "saml_invalid_logout_request", "The logout request from the service could not be read ("+re.msg+").")
			return
		}
		h.Web.ErrorPage(w, r, http.StatusRequestEntityTooLarge, "saml_invalid_logout_request", "The logout request from the service is too large.")
		return
	}
	if r.Method == http.MethodPost && r.PostForm.Get(resubmitField) == "" && h.crossSiteWithoutCookie(r) {
		h.resubmit(w, r)
		return
	}
	hold := &spHolder{}
	ctx := context.WithValue(r.Context(), spKey{}, hold)
	r = r.WithContext(ctx)
	why := &lastLine{ctx: ctx}
	idp := *h.idp // per request: the session provider and replay cache are this request's
	idp.SessionProvider = &sloSessions{h: h, sp: hold}
	idp.ReplayCache = sloReplay{ctx: ctx, h: h, sp: hold}
	idp.Logger = log.New(why, "", 0)
	idp.LogoutRequestFormTemplate = logoutRequestForm
	idp.ResponseFormTemplate = logoutResponseForm
	sw := &sloWriter{ResponseWriter: w}
	idp.ServeSLO(sw, r)
	if sw.status == 0 {
		return
	}
	why.mu.Lock()
	detail := why.line
	why.mu.Unlock()
	code, msg := sloRefusal(sw.status, detail)
	h.Web.ErrorPage(w, r, sw.status, code, msg)
}

// sloRefusal is the error page's code and message for what ServeSLO refused, by the reason it
// logged.
func sloRefusal(status int, detail string) (string, string) {
	switch {
	case status >= 500:
		return "internal", "Unexpected error. Please try again."
	case strings.Contains(detail, "unknown service provider"):
		return "unknown_service_provider", "The service that sent you here is not registered with NemID."
	case strings.Contains(detail, "cannot verify signature"):
		return "saml_invalid_signature", "The logout request is not signed by the service that sent it."
	case strings.Contains(detail, saml.ErrAssertionReplayed.Error()):
		return "saml_replayed", "This logout request was used before. Go back to the service and log out again."
	case strings.Contains(detail, "destination"):
		return "saml_wrong_destination", "The logout request was meant for another identity provider."
	case strings.Contains(detail, "expired"), strings.Contains(detail, "in the future"):
		return "saml_request_expired", "The logout request has expired or is dated in the future. Go back to the service and try again."
	case strings.Contains(detail, "logout response"), strings.Contains(detail, "no single logout is in progress"):
		return "saml_invalid_logout_response", "A service's answer to the logout could not be accepted."
	}
	return "saml_invalid_logout_request", "The logout request from the service could not be accepted."
}

// sloPrecheck bounds and inspects the message before crewjam/saml reads it, as precheck does
// for AuthnRequests: size, inflated size, no DTD.
func sloPrecheck(w http.ResponseWriter, r *http.Request) error {
	return precheckMessage(w, r, "SAMLRequest", "SAMLResponse")
}

// LogoutSession ends the SSO session behind cookie for a logout that did not come from a SAML
// SP (OIDC end_session), and when SAML SPs took part in it, sends the browser down the same
// redirect chain to each of them, ending at then (a path of ours). It reports whether it
// wrote the response; when not, the caller ends the session and answers as before (no
// session, no SAML participant, or the store failed: the session is ended all the same).
func (h *Handler) LogoutSession(w http.ResponseWriter, r *http.Request, cookie, then string) bool {
	ctx := r.Context()
	sess, err := h.Flows.Session(ctx, cookie)
	if err != nil || sess == nil {
		return false
	}
	parts, err := h.Store.SessionParticipants(ctx, sess.SID)
	if err == nil {
		parts, err = h.samlParticipants(ctx, sess, parts)
	}
	if err != nil {
		slog.WarnContext(ctx, "single logout: session participants not read", "err", err)
		return false
	}
	if err := h.Store.EndSessionWithParticipants(ctx, cookie, sess.SID); err != nil {
		slog.WarnContext(ctx, "single logout: end session", "err", err)
		return false
	}
	samlParts := 0
	for _, p := range parts {
		if p.Kind == store.ParticipantSAML {
			samlParts++
		}
	}
	if samlParts == 0 {
		return false
	}
	h.Web.ClearSession(w)
	// The session is gone from Redis; StartLogout reads its participants from what was loaded.
	sessions := &sloSessions{h: h, got: true, cookie: cookie, sess: sess, parts: parts}
	idp := *h.idp
	idp.SessionProvider = sessions
	idp.Logger = log.New(&lastLine{ctx: ctx}, "", 0)
	idp.LogoutRequestFormTemplate = logoutRequestForm
	idp.ResponseFormTemplate = logoutResponseForm
	w.Header().Set("Cache-Control", "no-store")
	idp.StartLogout(w, r, &saml.Session{ID: sess.SID}, then)
	return true
}

// resubmitField marks a POST that resubmit made: it is never resubmitted again.
const resubmitField = "nemidp_resubmit"

// logoutStateCookie is crewjam/saml's cookie of a logout chain in progress.
const logoutStateCookie = "saml_idp_logout"

// crossSiteWithoutCookie reports whether a POST binding message came without the cookie it
// needs: the SSO cookie for a LogoutRequest, the chain's state for a LogoutResponse. Both are
// SameSite=Lax (the state cookie only over plain http), so a browser leaves them out of an
// SP's cross-site POST, though it has them.
func (h *Handler) crossSiteWithoutCookie(r *http.Request) bool {
	if r.PostForm.Get("SAMLRequest") != "" {
		return h.Web.SessionCookie(r) == ""
	}
	_, err := r.Cookie(logoutStateCookie)
	return err != nil
}

var resubmitForm = template.Must(template.New("slo-resubmit").Parse(formHead +
	`<form method="post" action="` + SLOPath + `" id="saml-post">
{{range .}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<p>Du logges af. / You are being logged out.</p>
<button type="submit" id="saml-continue">Fortsæt / Continue</button>
</form>` + formFoot))

// resubmit answers a cross-site POST with a page that posts the same fields to /saml/slo
// again, now from our own origin, so the browser sends its SameSite=Lax cookies. Nothing is
// validated or consumed before: the resubmitted POST is judged as any other.
func (h *Handler) resubmit(w http.ResponseWriter, r *http.Request) {
	type field struct{ Name, Value string }
	var fields []field
	for _, name := range []string{"SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature", "KeyInfo"} {
		if v := r.PostForm.Get(name); v != "" {
			fields = append(fields, field{name, v})
		}
	}
	fields = append(fields, field{resubmitField, "1"})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := resubmitForm.Execute(w, fields); err != nil {
		slog.WarnContext(r.Context(), "single logout: resubmit page", "err", err)
	}
}
