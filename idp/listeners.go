package idp

import (
	"net/http"

	"github.com/nemidp/nemidp/idp/admin"
)

// registerAdmin puts the operator API on the public mux, or, when Config.AdminAddr names its
// own listener, on a mux of its own (returned) while the public mux answers 404 under
// /admin/ (a JSON error when the request asks for JSON).
func (s *Server) registerAdmin(public *http.ServeMux, api *admin.API) *http.ServeMux {
	if s.Config.AdminAddr == "" {
		api.Register(public)
		return nil
	}
	public.HandleFunc("/admin/", func(w http.ResponseWriter, r *http.Request) {
		s.Web.ErrorPage(w, r, http.StatusNotFound, "not_found", "Not found.")
	})
	mux := http.NewServeMux()
	api.Register(mux)
	return mux
}
