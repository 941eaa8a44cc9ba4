package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/crewjam/saml"

	"github.com/nemidp/nemidp/flows"
)

// protocolState is this front end's part of a flow: the request's essentials, parsed once at
// /saml/sso (the XML is never read again).
type protocolState struct {
	SAML       bool   `json:"saml"`
	SP         string `json:"sp"`
	RequestID  string `json:"request_id"`
	ACS        string `json:"acs"`
	ACSBinding string `json:"acs_binding"`
	RelayState string `json:"relay_state,omitempty"`
	ForceAuthn bool   `json:"force_authn,omitempty"`
	IsPassive  bool   `json:"is_passive,omitempty"`
	// Subject is the person UUID the request's <Subject> named ("" none): the assertion must be
	// about that person (saml-core §3.4.1.4), whoever logs in.
	Subject string `json:"subject,omitempty"`
}

// stateOf reads a SAML flow's state; false for another front end's flow.
func stateOf(f *flows.Flow) (protocolState, bool) {
	var ps protocolState
	if EntityIDOf(f.ClientID) == "" || json.Unmarshal(f.Protocol, &ps) != nil || !ps.SAML || ps.SP != EntityIDOf(f.ClientID) ||
		ps.RequestID == "" || ps.ACS == "" {
		return protocolState{}, false
	}
	return ps, true
}

// errRequest is bad input refused before crewjam/saml parses anything.
type errRequest struct{ msg string }

func (e *errRequest) Error() string { return "saml: " + e.msg }

// sso is /saml/sso (HTTP-Redirect and HTTP-POST bindings). The request's size, its inflated
// size and the absence of a DTD are checked here; crewjam/saml then parses and validates it
// (Destination, IssueInstant, version, ID, Issuer, signature, ACS) and calls GetSession.
func (h *Handler) sso(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if err := precheck(w, r); err != nil {
		var re *errRequest
		if errors.As(err, &re) {
			h.Web.ErrorPage(w, r, http.StatusBadRequest, "saml_invalid_request", "The login request from the service could not be read ("+re.msg+").")
			return
		}
		h.Web.ErrorPage(w, r, http.StatusRequestEntityTooLarge, "saml_invalid_request", "The login request from the service is too large.")
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), spKey{}, &spHolder{}))
	h.idp.ServeSSO(w, r)
}

// precheck bounds and inspects the request before crewjam/saml reads it.
func precheck(w http.ResponseWriter, r *http.Request) error {
	return precheckMessage(w, r, "SAMLRequest")
}

// precheckMessage bounds and inspects the SAML message of a Redirect (GET, deflated) or POST
// request, the first of params that is present, before crewjam/saml reads it: the query or
// body size, then checkEncoded.
func precheckMessage(w http.ResponseWriter, r *http.Request, params ...string) error {
	var q url.Values
	deflated := false
	switch r.Method {
	case http.MethodGet:
		if len(r.URL.RawQuery) > MaxEncodedRequest+8<<10 {
			return &errRequest{"too large"}
		}
		var err error
		if q, err = url.ParseQuery(r.URL.RawQuery); err != nil {
			return &errRequest{"malformed query"}
		}
		deflated = true
	case http.MethodPost:
		r.Body = http.MaxBytesReader(w, r.Body, MaxEncodedRequest+8<<10)
		if err := r.ParseForm(); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return err
			}
			return &errRequest{"malformed form"}
		}
		q = r.PostForm
	default:
		return &errRequest{"method not allowed"}
	}
	encoded := ""
	for _, p := range params {
		if encoded = q.Get(p); encoded != "" {
			break
		}
	}
	if encoded == "" {
		return &errRequest{"no SAMLRequest"}
	}
	return checkEncoded(encoded, deflated)
}

// inflate reads a DEFLATE stream of at most MaxInflatedRequest bytes.
func inflate(raw []byte) ([]byte, error) {
	fr := flate.NewReader(bytes.NewReader(raw))
	defer fr.Close()
	out, err := io.ReadAll(io.LimitReader(fr, MaxInflatedRequest+1))
	if err != nil {
		return nil, errors.New("not deflated")
	}
	if len(out) > MaxInflatedRequest {
		return nil, errors.New("inflates to more than the limit")
	}
	return out, nil
}

// checkXML refuses a document type declaration (and with it every entity): a SAML message
// never has one. encoding/xml would not expand entities, but nothing should be read from
// such a document at all.
func checkXML(doc []byte) error {
	for i := 0; ; {
		j := bytes.Index(doc[i:], []byte("<!"))
		if j < 0 {
			return nil
		}
		rest := doc[i+j+2:]
		if !bytes.HasPrefix(rest, []byte("--")) && !bytes.HasPrefix(rest, []byte("[CDATA[")) {
			return &errRequest{"a DTD or entity declaration is not allowed"}
		}
		i += j + 2
	}
}

// sessionProvider is where crewjam/saml hands over a validated request: the SP is known,
// the signature checked and the ACS one of its metadata. What is refused from here on is
// answered with a SAML Response to that ACS; what passes starts a login flow.
type sessionProvider struct{ h *Handler }

func (p sessionProvider) GetSession(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest) *saml.Session {
	h := p.h
	ctx := r.Context()
	sp := heldSP(ctx)
	if sp == nil || req.ACSEndpoint == nil {
		h.onError(w, r, http.StatusInternalServerError, errors.New("saml: validated request without its service provider"))
		return nil
	}
	if req.ACSEndpoint.Binding != saml.HTTPPostBinding {
		h.Web.ErrorPage(w, r, http.StatusBadRequest, "unknown_acs", "The service asked to be answered with a binding NemID does not send (only HTTP-POST).")
		return nil
	}
	// What no login can satisfy is answered before the request id is claimed.
	if st := nameIDPolicyStatus(req.Request.NameIDPolicy); st != nil {
		h.sendStatus(w, r, req, st)
		return nil
	}
	subject := ""
	if s := req.Request.Subject; s != nil && s.NameID != nil {
		uuid, ok := strings.CutPrefix(strings.TrimSpace(s.NameID.Value), NameIDPrefix)
		if !ok || uuid == "" {
			h.sendStatus(w, r, req, &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusUnknownPrincipal,
				Message: "the request's Subject is not a NemID person UUID"})
			return nil
		}
		subject = uuid
	}
	fresh, err := h.Store.ClaimSAMLRequestID(ctx, sp.EntityID, req.Request.ID, ReplayWindow())
	if err != nil {
		h.onError(w, r, http.StatusServiceUnavailable, err)
		return nil
	}
	if !fresh {
		h.sendStatus(w, r, req, &saml.StatusError{TopLevel: saml.StatusRequester, SecondLevel: saml.StatusRequestDenied,
			Message: "the request ID was used before"})
		return nil
	}
	if st := authnContextStatus(req.Request.RequestedAuthnContext); st != nil {
		h.sendStatus(w, r, req, st)
		return nil
	}
	ps := protocolState{SAML: true, SP: sp.EntityID, RequestID: req.Request.ID, ACS: req.ACSEndpoint.Location,
		ACSBinding: req.ACSEndpoint.Binding, RelayState: req.RelayState,
		ForceAuthn: req.Request.ForceAuthn != nil && *req.Request.ForceAuthn,
		IsPassive:  req.Request.IsPassive != nil && *req.Request.IsPassive, Subject: subject}
	raw, err := json.Marshal(ps)
	if err != nil {
		h.onError(w, r, http.StatusInternalServerError, err)
		return nil
	}
	st := flows.Start{
		ClientID:      ClientPrefix + sp.EntityID,
		ReturnURL:     func(id string) string { return DonePath + "?id=" + url.QueryEscape(id) },
		SubjectHint:   subject, // an SSO session of another person does not answer it
		SubjectSector: sectorOf(sp),
		Protocol:      raw,
	}
	if ps.ForceAuthn {
		zero := int64(0)
		st.Prompt, st.MaxAge = append(st.Prompt, "login"), &zero
	}
	if ps.IsPassive {
		st.Prompt = append(st.Prompt, "none") // the login page never shows: done or login_required
	}
	rb := h.Web.BindBrowser(w, r)
	f, err := h.Flows.Begin(rb.Context(), st)
	if err != nil {
		// Nothing was started: the request id is given back, so the SP's retry is no replay.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if rerr := h.Store.ReleaseSAMLRequestID(rctx, sp.EntityID, req.Request.ID); rerr != nil {
			slog.WarnContext(ctx, "saml: request id of a failed start not given back", "err", rerr)
		}
		h.onError(w, r, http.StatusServiceUnavailable, err)
		return nil
	}
	http.Redirect(w, r, "/login/"+url.PathEscape(f.ID), http.StatusSeeOther)
	return nil
}

// loaRank orders the NSIS levels for the comparisons minimum, maximum and better.
var loaRank = map[string]int{LoALow: 1, LoASubstantial: 2, LoAHigh: 3}

// authnContextStatus judges a RequestedAuthnContext against what every NemID login achieves,
// NSIS Substantial: nil when met (or none asked), else the status to answer with. An unknown
// class ref is never met.
func authnContextStatus(rac *saml.RequestedAuthnContext) *saml.StatusError {
	if rac == nil {
		return nil
	}
	refs := rac.AuthnContextClassRefs // every AuthnContextClassRef of the parsed request
	if len(refs) == 0 {
		return nil
	}
	achieved := loaRank[LoASubstantial]
	met := func(ok func(rank int) bool) bool {
		for _, ref := range refs {
			if rank, known := loaRank[strings.TrimSpace(ref)]; known && ok(rank) {
				return true
			}
		}
		return false
	}
	var ok bool
	switch rac.Comparison {
	case "", "exact":
		ok = met(func(rank int) bool { return rank == achieved })
	case "minimum":
		ok = met(func(rank int) bool { return rank <= achieved })
	case "maximum":
		ok = met(func(rank int) bool { return rank >= achieved })
	case "better":
		ok = met(func(rank int) bool { return rank < achieved })
	default:
		return &saml.StatusError{TopLevel: saml.StatusRequester, SecondLevel: saml.StatusRequestUnsupported,
			Message: fmt.Sprintf("unknown comparison %q", rac.Comparison)}
	}
	if ok {
		return nil
	}
	return &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusNoAuthnContext,
		Message: "NemID authenticates at NSIS Substantial"}
}

// nameIDPolicyStatus: a NameIDPolicy asking a format other than persistent (or unspecified,
// or encrypted: the whole assertion is) cannot be met: InvalidNameIDPolicy (saml-core
// §3.4.1.1). nil when it can.
func nameIDPolicyStatus(p *saml.NameIDPolicy) *saml.StatusError {
	if p == nil || p.Format == nil {
		return nil
	}
	switch strings.TrimSpace(*p.Format) {
	case "", string(saml.PersistentNameIDFormat), string(saml.UnspecifiedNameIDFormat), "urn:oasis:names:tc:SAML:2.0:nameid-format:encrypted":
		return nil
	}
	return &saml.StatusError{TopLevel: saml.StatusRequester, SecondLevel: saml.StatusInvalidNameIDPolicy,
		Message: "NemID issues persistent NameIDs only"}
}

// checkEncoded is the precheck of a SAML message as a binding carries it (base64, deflated for
// HTTP-Redirect): the size caps, then checkXML on what crewjam/saml will parse.
func checkEncoded(encoded string, deflated bool) error {
	if len(encoded) > MaxEncodedRequest {
		return &errRequest{"too large"}
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return &errRequest{"not base64"}
	}
	if deflated {
		if raw, err = inflate(raw); err != nil {
			return &errRequest{err.Error()}
		}
	}
	return checkXML(raw)
}
