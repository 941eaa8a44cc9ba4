package web

// switchCard answers POST /login/{flow}/card {serial}: the codecard step asks a key of
// another usable card of the citizen (a newly sent one: its first key activates it). A
// page's form is answered with a redirect to the login's page, as switchMethod.
func (h *Handler) switchCard(req *request) error {
	return h.switched(req, "card", h.Flows.SwitchCard(req.r.Context(), req.flow, req.answer.Serial))
}
