package saml

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/claims"
	"github.com/nemidp/nemidp/idp/store"
)

// done is where a SAML flow's redirect_to leads: a done flow, bound to this browser and
// claimed here once, is answered with the auto-posting form carrying its signed Response; a
// failed or expired one with an error Response. A reload answers no second Response.
func (h *Handler) done(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	ctx := r.Context()
	f, answering, err := h.Flows.LoadAnswering(ctx, r.URL.Query().Get("id"), h.Web.BrowserOf(r), DoneMark)
	if errors.Is(err, store.ErrUnavailable) {
		h.Web.ErrorPage(w, r, http.StatusServiceUnavailable, flows.CodeUnavailable, "NemID is temporarily unavailable. Please try again shortly.")
		return
	}
	if err != nil {
		h.Web.ErrorPage(w, r, http.StatusGone, flows.CodeFlowExpired, "This login does not exist or has expired.")
		return
	}
	if !h.Web.BoundTo(r, f) {
		h.Web.ErrorPage(w, r, http.StatusForbidden, flows.CodeWrongBrowser, "This login was started in another browser.")
		return
	}
	ps, ok := stateOf(f)
	if !ok {
		h.Web.ErrorPage(w, r, http.StatusBadRequest, "wrong_front_end_saml", "This login was not started by a service using SAML; go back to where you started it.")
		return
	}
	failed := f.Step == flows.StepFailed || f.Expired(h.Flows.Time())
	if !failed && !f.Done() {
		http.Redirect(w, r, "/login/"+url.PathEscape(f.ID), http.StatusSeeOther)
		return
	}
	if f.Done() && !answering.Claimed {
		h.Web.ErrorPage(w, r, http.StatusConflict, "saml_answered", "This login has already been answered. Go back to the service.")
		return
	}
	// Until the form is written, a failure gives the claim back, so a reload answers: one
	// Response per login, but never none for a passing store error.
	answered := false
	defer func() {
		if !answered {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := h.Flows.Release(rctx, f.ID, DoneMark, answering); err != nil {
				slog.WarnContext(ctx, "saml: a failed answer's claim not given back; the login must start again", "err", err)
			}
		}
	}()
	sp, err := h.Store.ServiceProvider(ctx, ps.SP)
	if errors.Is(err, store.ErrNotFound) {
		h.Web.ErrorPage(w, r, http.StatusBadRequest, "unknown_service_provider", "The service that sent you here is no longer registered with NemID.")
		return
	}
	if err != nil {
		h.onError(w, r, http.StatusServiceUnavailable, err)
		return
	}
	if !acsRegistered(sp, ps.ACS) {
		// Replaced since the request (?replace=true) without this ACS: never post there.
		h.Web.ErrorPage(w, r, http.StatusBadRequest, "unknown_acs", "The service that sent you here no longer accepts answers at that address.")
		return
	}
	req := h.requestFor(r, sp, ps)
	if failed {
		answered = true // an error Response is sent once too
		h.sendStatus(w, r, req, failureStatus(f))
		return
	}
	if sp.RequiresOCES && f.Result.Cert != nil && !f.Result.Cert.OCES {
		// The SP requires OCES now (registered again since the login began): no assertion.
		answered = true
		h.sendStatus(w, r, req, &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusRequestDenied,
			Message: "oces_required: the citizen's NemID has no public digital signature (OCES)"})
		return
	}
	st, err := h.makeAssertion(r, req, sp, f)
	if err != nil {
		h.onError(w, r, http.StatusServiceUnavailable, err)
		return
	}
	if st != nil {
		answered = true
		h.sendStatus(w, r, req, st)
		return
	}
	if err := req.MakeResponse(); err != nil {
		h.onError(w, r, http.StatusInternalServerError, fmt.Errorf("saml: make response: %w", err))
		return
	}
	answered = true // from here the browser may have the Response
	if err := h.writeForm(w, req); err != nil {
		h.onError(w, r, http.StatusInternalServerError, err)
	}
}

// acsRegistered: the ACS URL a flow answers to is still one of the SP's.
func acsRegistered(sp *store.ServiceProvider, acs string) bool {
	for _, a := range sp.ACS {
		if a.Location == acs {
			return true
		}
	}
	return false
}

// requestFor rebuilds, from the flow's state and the SP's record, what crewjam/saml needs to
// answer the request: no XML is parsed again.
func (h *Handler) requestFor(r *http.Request, sp *store.ServiceProvider, ps protocolState) *saml.IdpAuthnRequest {
	ed := descriptorFor(sp)
	req := &saml.IdpAuthnRequest{
		IDP: h.idp, HTTPRequest: r, RelayState: ps.RelayState, Now: h.now().UTC(),
		Request:                 saml.AuthnRequest{ID: ps.RequestID, Issuer: &saml.Issuer{Value: sp.EntityID}},
		ServiceProviderMetadata: ed,
		ACSEndpoint:             &saml.IndexedEndpoint{Binding: ps.ACSBinding, Location: ps.ACS},
	}
	if len(ed.SPSSODescriptors) > 0 {
		req.SPSSODescriptor = &ed.SPSSODescriptors[0]
	}
	return req
}

// failureStatus is the Response status of a failed (or expired) flow.
func failureStatus(f *flows.Flow) *saml.StatusError {
	code := flows.CodeFlowExpired
	if f.Failure != nil && f.Step == flows.StepFailed {
		code = f.Failure.Code
	}
	switch code {
	case flows.CodeLoginRequired:
		return &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusNoPassive, Message: "the citizen is not logged in"}
	case flows.CodeOCESRequired:
		return &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusRequestDenied,
			Message: "oces_required: the citizen's NemID has no public digital signature (OCES)"}
	}
	return &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusAuthnFailed, Message: code}
}

// makeAssertion sets req.Assertion for the flow's citizen at sp (nil status), or returns the
// status to answer with instead (a NemID blocked since the login).
func (h *Handler) makeAssertion(r *http.Request, req *saml.IdpAuthnRequest, sp *store.ServiceProvider, f *flows.Flow) (*saml.StatusError, error) {
	ctx := r.Context()
	res := f.Result
	sector := sectorOf(sp)
	c, sub, err := h.Store.CitizenWithSubject(ctx, res.CitizenID, sector)
	if errors.Is(err, store.ErrNotFound) {
		return &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusAuthnFailed, Message: "unknown citizen"}, nil
	}
	if err != nil {
		return nil, err
	}
	now := req.Now
	if !c.ActiveOn(now) || store.LoginEnded(c.SessionsEnded, res.AuthTime) {
		return &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusAuthnFailed,
			Message: "the NemID is blocked or expired"}, nil
	}
	if sub == "" {
		if sub, err = h.Store.PairwiseSubject(ctx, res.CitizenID, sector, flows.NewSubject()); err != nil {
			return nil, err
		}
	}
	if ps, _ := stateOf(f); ps.Subject != "" && ps.Subject != sub {
		// The request named another person than the one who logged in.
		return &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusUnknownPrincipal,
			Message: "the citizen who logged in is not the subject the request named"}, nil
	}
	attrs := claims.SAMLAttributes(res.Cert.Apply(c), claims.Login{ACR: res.ACR, AMR: res.AMR, AuthTime: res.AuthTime}, sp.CPR, now)
	if w := res.OnBehalfOf; w != nil {
		// The guardian stays the subject; the ward is named by CPR number in the privileges.
		ward, err := h.Store.Citizen(ctx, w.CitizenID)
		if errors.Is(err, store.ErrNotFound) {
			return &saml.StatusError{TopLevel: saml.StatusResponder, SecondLevel: saml.StatusRequestDenied, Message: "unknown ward"}, nil
		}
		if err != nil {
			return nil, err
		}
		bpp, err := PrivilegeList(ward.CPR, w.Kind)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, claims.SAMLAttribute{Name: claims.SAMLPrivileges, Value: bpp})
	}
	var list []saml.Attribute
	for _, a := range attrs {
		list = append(list, saml.Attribute{Name: a.Name, NameFormat: claims.SAMLAttrNameFormat,
			Values: []saml.AttributeValue{{Type: "xs:string", Value: a.Value}}})
	}
	// A minute of slack for the SP's clock.
	notBefore, until := now.Add(-time.Minute), now.Add(ResponseLifetime)
	req.Assertion = &saml.Assertion{
		ID: newID(), IssueInstant: now, Version: "2.0",
		Issuer: saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: h.EntityID()},
		Subject: &saml.Subject{
			NameID: &saml.NameID{Format: string(saml.PersistentNameIDFormat), Value: NameIDPrefix + sub},
			SubjectConfirmations: []saml.SubjectConfirmation{{
				Method: "urn:oasis:names:tc:SAML:2.0:cm:bearer",
				SubjectConfirmationData: &saml.SubjectConfirmationData{
					InResponseTo: req.Request.ID, NotOnOrAfter: until, Recipient: req.ACSEndpoint.Location,
				},
			}},
		},
		Conditions: &saml.Conditions{NotBefore: notBefore, NotOnOrAfter: until,
			AudienceRestrictions: []saml.AudienceRestriction{{Audience: saml.Audience{Value: sp.EntityID}}}},
		AuthnStatements: []saml.AuthnStatement{{
			AuthnInstant: res.AuthTime, SessionIndex: SessionIndex(res.SessionID, sp.EntityID),
			AuthnContext: saml.AuthnContext{AuthnContextClassRef: &saml.AuthnContextClassRef{Value: LoASubstantial}},
		}},
		AttributeStatements: []saml.AttributeStatement{{Attributes: list}},
	}
	return nil, nil
}

// SessionIndex names the SSO session to one SP: a digest of the session's sid and the SP, so
// SPs cannot correlate their users by it, and a logout from the SP can be matched to the
// session that carries the sid.
func SessionIndex(sid, entityID string) string {
	if sid == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("saml-session-index\x00" + entityID + "\x00" + sid))
	return "_" + hex.EncodeToString(sum[:16])
}

func newID() string {
	var b [20]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return "_" + hex.EncodeToString(b[:])
}

// sendStatus answers the request with a signed error Response (no assertion) to its ACS.
func (h *Handler) sendStatus(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest, st *saml.StatusError) {
	slog.InfoContext(r.Context(), "saml error response", "sp", req.Request.Issuer.Value, "status", st.TopLevel,
		"second", st.SecondLevel)
	if err := h.idp.SendErrorResponse(w, req, st); err != nil {
		h.onError(w, r, http.StatusInternalServerError, err)
	}
}

// formWriter writes every Response crewjam/saml or this package makes as the form page.
type formWriter struct{ h *Handler }

func (fw formWriter) WriteResponse(w http.ResponseWriter, req *saml.IdpAuthnRequest) error {
	return fw.h.writeForm(w, req)
}

var formPage = template.Must(template.New("post").Parse(formHead + `<form method="post" action="{{.URL}}" id="saml-post">
<input type="hidden" name="SAMLResponse" value="{{.SAMLResponse}}">
{{if .RelayState}}<input type="hidden" name="RelayState" value="{{.RelayState}}">{{end}}
<p>Du sendes tilbage til tjenesten. / You are sent back to the service.</p>
<button type="submit" id="saml-continue">Fortsæt / Continue</button>
</form>` + formFoot))

// writeForm writes the auto-posting form of req.ResponseEl. It is clean under a strict CSP:
// its one script is a file of ours, and form-action allows exactly the ACS's origin.
func (h *Handler) writeForm(w http.ResponseWriter, req *saml.IdpAuthnRequest) error {
	if req.ResponseEl == nil || req.ACSEndpoint == nil {
		return errors.New("saml: no response to write")
	}
	acs, err := url.Parse(req.ACSEndpoint.Location)
	if err != nil || (acs.Scheme != "https" && acs.Scheme != "http") || acs.Host == "" {
		return fmt.Errorf("saml: ACS %q is not an http(s) URL", req.ACSEndpoint.Location)
	}
	doc := etree.NewDocument()
	doc.SetRoot(req.ResponseEl)
	raw, err := doc.WriteToBytes()
	if err != nil {
		return fmt.Errorf("saml: serialize response: %w", err)
	}
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; form-action "+
		acs.Scheme+"://"+acs.Host+"; base-uri 'none'; frame-ancestors 'none'")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Pragma", "no-cache")
	hd.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	return formPage.Execute(w, saml.IdpAuthnRequestForm{URL: acs.String(),
		SAMLResponse: base64.StdEncoding.EncodeToString(raw), RelayState: req.RelayState})
}

// postScript submits the form of the page (the button stays for browsers without scripts).
const postScript = `(function () {
  var f = document.getElementById("saml-post");
  if (f) { f.submit(); }
})();
`

func serveScript(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write([]byte(postScript))
}
