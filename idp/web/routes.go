package web

import (
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/nemidp/nemidp/flows"
)

// Error codes of requests under /login/ that no login route takes.
const (
	codeNotFound         = "not_found"
	codeMethodNotAllowed = "method_not_allowed"
)

// unrouted answers every request under /login/ that the login routes did not take (extra or
// empty segments, a method the URL does not take, a segment http.ServeMux will not match,
// such as a lone %2F), so that it too gets the JSON error or the HTML error page and never
// the mux's plain-text 404 or 405.
func (h *Handler) unrouted(req *request) error {
	r := req.r
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/login/"), "/")
	for _, s := range segs {
		if s == "" {
			return notFound()
		}
	}
	allow := ""
	switch len(segs) {
	case 1: // /login/{flow}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return h.routeTo(req, h.get, segs)
		}
		allow = "GET, HEAD"
	case 2: // /login/{flow}/{step}
		if r.Method == http.MethodPost {
			return h.routeTo(req, h.post, segs)
		}
		allow = "POST"
	default:
		return notFound()
	}
	req.w.Header().Set("Allow", allow)
	return &httpError{status: http.StatusMethodNotAllowed, err: flows.Errorf(codeMethodNotAllowed,
		"This URL answers %s only.", allow)}
}

// routeTo serves a request of a login route's shape that the mux did not match, as the route
// would have.
func (h *Handler) routeTo(req *request, fn func(*request) error, segs []string) error {
	for i, name := range []string{"flow", "step"}[:len(segs)] {
		v, err := url.PathUnescape(segs[i])
		if err != nil {
			return notFound()
		}
		req.r.SetPathValue(name, v)
	}
	return fn(req)
}

func notFound() error {
	return &httpError{status: http.StatusNotFound, err: flows.Errorf(codeNotFound, "There is no such page.")}
}

// CleanPaths answers a request under /login/ whose path is not clean (double slashes, dot
// segments) with the not-found error of the login pages, where http.ServeMux would redirect it
// to the cleaned path with a body in neither HTML nor JSON. Wrap the mux given to Register
// with it. Every other request goes on to next.
func (h *Handler) CleanPaths(next http.Handler) http.Handler {
	notClean := h.handle(func(*request) error { return notFound() })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		if c := cleanPath(p); c != p && (strings.HasPrefix(p, "/login/") || strings.HasPrefix(c, "/login/")) {
			notClean(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cleanPath is the path http.ServeMux redirects to: path.Clean, keeping a trailing slash.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}
