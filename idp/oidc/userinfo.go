package oidc

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/nemidp/nemidp/idp/store"
)

// Userinfo answers the userinfo endpoint with RFC 6750 errors: a missing, malformed, expired
// or revoked token is 401 invalid_token with WWW-Authenticate (zitadel/oidc answers 403 for a
// token its storage refuses), and an unreachable store is 503, not a verdict on the token.
func Userinfo(provider *op.Provider, s *Storage) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok && r.Method == http.MethodPost {
			if err := r.ParseForm(); err == nil {
				token = r.PostForm.Get("access_token")
			}
		}
		if token == "" {
			bearerError(w, http.StatusUnauthorized, "invalid_request", "no access token")
			return
		}
		plain, err := provider.Crypto().Decrypt(token)
		id, _, found := strings.Cut(plain, ":")
		if err != nil || !found {
			bearerError(w, http.StatusUnauthorized, "invalid_token", "malformed access token")
			return
		}
		info := new(oidc.UserInfo)
		err = s.SetUserinfoFromToken(r.Context(), info, id, "", r.Header.Get("Origin"))
		switch {
		case errors.Is(err, store.ErrUnavailable):
			w.Header().Set("Retry-After", "5")
			bearerError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the login service is temporarily unavailable")
			return
		case err != nil:
			bearerError(w, http.StatusUnauthorized, "invalid_token", "the access token is expired or revoked")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(info)
	}
}

func bearerError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("WWW-Authenticate", `Bearer error="`+code+`", error_description="`+desc+`"`)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}
