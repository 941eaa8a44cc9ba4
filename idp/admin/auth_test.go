package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestTokenMatches: the operator token is compared as SHA-256 digests, so the comparison
// takes the same time whatever the length of the guess (subtle.ConstantTimeCompare on the raw
// strings returns at once on a length mismatch, telling the token's length).
func TestTokenMatches(t *testing.T) {
	t.Parallel()
	const token = "operator-token-0123456789abcdef"
	tests := []struct {
		name, got, want string
		ok              bool
	}{
		{"same", token, token, true},
		{"empty configured token never matches", "", "", false},
		{"empty guess", "", token, false},
		{"prefix", token[:10], token, false},
		{"longer", token + "x", token, false},
		{"same length, one byte off", token[:len(token)-1] + "g", token, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tokenMatches(tc.got, tc.want); got != tc.ok {
				t.Fatalf("tokenMatches(%q, %q) = %v, want %v", tc.got, tc.want, got, tc.ok)
			}
		})
	}
}

// TestAuth: every route refuses a missing or wrong bearer token with 401 in one place.
func TestAuth(t *testing.T) {
	t.Parallel()
	const token = "operator-token-0123456789abcdef"
	tests := []struct {
		name, configured, header string
		status                   int
	}{
		{"right token", token, "Bearer " + token, http.StatusNotFound}, // through to the catch-all
		{"no header", token, "", http.StatusUnauthorized},
		{"not bearer", token, "Basic " + token, http.StatusUnauthorized},
		{"short guess", token, "Bearer x", http.StatusUnauthorized},
		{"long guess", token, "Bearer " + strings.Repeat("x", 4096), http.StatusUnauthorized},
		{"API disabled", "", "Bearer ", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mux := http.NewServeMux()
			(&API{Token: tc.configured}).Register(mux)
			req := httptest.NewRequest("GET", "/admin/v1/no-such-thing", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

func TestDatesOverlap(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		f1, t1, f2, t2 string
		want           bool
	}{
		{"", "", "", "", true},
		{"2026-01-01", "2026-06-30", "2026-07-01", "", false},
		{"2026-01-01", "2026-06-30", "2026-06-30", "", true},
		{"2026-07-01", "", "", "2026-06-30", false},
		{"", "2026-12-31", "2026-03-01", "2026-03-02", true},
	} {
		if got := datesOverlap(tc.f1, tc.t1, tc.f2, tc.t2); got != tc.want {
			t.Errorf("datesOverlap(%q..%q, %q..%q) = %v, want %v", tc.f1, tc.t1, tc.f2, tc.t2, got, tc.want)
		}
	}
}
