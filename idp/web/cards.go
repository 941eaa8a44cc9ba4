package web

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/nemidp/nemidp/flows"
)

// switchCard answers POST /login/{flow}/card {serial}: the codecard step asks a key of
// another usable card of the citizen (a newly sent one: its first key activates it). A
// page's form is answered with a redirect to the login's page, as switchMethod.
func (h *Handler) switchCard(req *request) error {
	err := h.Flows.SwitchCard(req.r.Context(), req.flow, req.answer.Serial)
	h.count("card", err)
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
