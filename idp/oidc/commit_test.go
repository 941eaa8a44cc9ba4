package oidc

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nemidp/nemidp/idp/store"
)

// TestTokenEndpointCommitsOnlySuccess: the prepared tokens are written only after a 200; when
// writing them fails because Redis is unreachable, the tokens zitadel/oidc put in its answer
// are thrown away and the client is told 503 temporarily_unavailable with Retry-After.
func TestTokenEndpointCommitsOnlySuccess(t *testing.T) {
	t.Parallel()
	st, err := store.Open("redis://127.0.0.1:1/0", "unreachable:") // nothing listens on port 1
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s := &Storage{Store: st}
	for _, tc := range []struct {
		name       string
		status     int
		prepare    bool
		wantStatus int
		wantBody   string
	}{
		{"success, commit fails", http.StatusOK, true, http.StatusServiceUnavailable, "temporarily_unavailable"},
		{"error answer: nothing to commit", http.StatusBadRequest, true, http.StatusBadRequest, "zitadel-error"},
		{"success without tokens", http.StatusOK, false, http.StatusOK, "access_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := s.TokenEndpoint(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if p := pendingOf(r.Context()); tc.prepare && p != nil {
					p.issue, p.citizenChecked = &store.TokenIssue{Grant: "g", AccessID: "a"}, true
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				if tc.status == http.StatusOK {
					_, _ = w.Write([]byte(`{"access_token":"secret-token"}`))
				} else {
					_, _ = w.Write([]byte(`{"error":"zitadel-error"}`))
				}
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader("grant_type=x")))
			if rec.Code != tc.wantStatus || !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Fatalf("%d %s, want %d with %q", rec.Code, rec.Body, tc.wantStatus, tc.wantBody)
			}
			if rec.Code == http.StatusServiceUnavailable {
				if rec.Header().Get("Retry-After") == "" || strings.Contains(rec.Body.String(), "secret-token") {
					t.Errorf("503 answer: Retry-After %q, body %s", rec.Header().Get("Retry-After"), rec.Body)
				}
			}
		})
	}
}
