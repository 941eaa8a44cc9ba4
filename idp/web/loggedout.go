package web

import "net/http"

// LoggedOutPage tells the citizen they are logged out of NemID: where a logout ends when the
// relying party registered no post_logout_redirect_uri.
func (h *Handler) LoggedOutPage(w http.ResponseWriter, r *http.Request) {
	req := &request{w: w, r: r, lang: chooseLang(r, nil)}
	w.Header().Set("Cache-Control", "no-store")
	_ = h.page(req, http.StatusOK, "logged_out", pageData{})
}
