package admin

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nemidp/nemidp/idp/audit"
)

// TestMatch: a presented token is compared with every configured one as SHA-256 digests,
// so the comparison takes the same time whatever the guess's length and whichever token (if
// any) it is; it names the label of the token that matched, and only that one.
func TestMatch(t *testing.T) {
	t.Parallel()
	const bare = "operator-token-0123456789abcdef"
	const multi = "borgerservice:bs-token-0123456789abcdef, bank.dk:bank-token-0123456789abcdef,embassy:emb-token-0123456789"
	tests := []struct {
		name, configured, got string
		label                 string // "" = refused
	}{
		{"bare token: labelled operator", bare, bare, "operator"},
		{"empty configured token never matches", "", "", ""},
		{"empty guess", bare, "", ""},
		{"prefix", bare, bare[:10], ""},
		{"longer", bare, bare + "x", ""},
		{"same length, one byte off", bare, bare[:len(bare)-1] + "g", ""},
		{"first of several", multi, "bs-token-0123456789abcdef", "borgerservice"},
		{"middle of several", multi, "bank-token-0123456789abcdef", "bank.dk"},
		{"last of several", multi, "emb-token-0123456789", "embassy"},
		{"label:token as a whole is no token", multi, "bank.dk:bank-token-0123456789abcdef", ""},
		{"wrong token among several", multi, "bank-token-0123456789abcdeX", ""},
		{"unparsable setting refuses all", "bank:x,bank:y", "x", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := &API{Token: tc.configured}
			label, ok := a.match(tc.got)
			if label != tc.label || ok != (tc.label != "") {
				t.Fatalf("match(%q) = %q, %v; want %q", tc.got, label, ok, tc.label)
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

// TestAuthNamesTheOperator: with several tokens each call is let through as the operator of
// the token it presented (named in its audit line) and as no other; a wrong token is refused
// 401 with an anonymous audit line. The catch-all answers 404, itself an audited refusal.
func TestAuthNamesTheOperator(t *testing.T) {
	t.Parallel()
	const setting = "borgerservice:bs-token-0123456789abcdef,bank.dk:bank-token-0123456789abcdef,legacy-bare-token-0123456789"
	tests := []struct {
		name, token string
		status      int
		by, who     string
		code        string
	}{
		{"borgerservice", "bs-token-0123456789abcdef", http.StatusNotFound, "operator", "borgerservice", "not_found"},
		{"bank", "bank-token-0123456789abcdef", http.StatusNotFound, "operator", "bank.dk", "not_found"},
		{"bare token", "legacy-bare-token-0123456789", http.StatusNotFound, "operator", "operator", "not_found"},
		{"wrong token", "bank-token-0123456789abcdeX", http.StatusUnauthorized, "anonymous", "", "unauthorized"},
		{"label and token", "bank.dk:bank-token-0123456789abcdef", http.StatusUnauthorized, "anonymous", "", "unauthorized"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var rec audit.Recorder
			mux := http.NewServeMux()
			(&API{Token: setting, Audit: audit.New(&rec, nil)}).Register(mux)
			req := httptest.NewRequest("GET", "/admin/v1/no-such-thing", nil)
			req.Header.Set("Authorization", "Bearer "+tc.token)
			w := httptest.NewRecorder()
			w.Header().Set("X-Request-Id", "rid-"+tc.name)
			mux.ServeHTTP(w, req)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			lines := rec.Find("operator.refused")
			if len(lines) != 1 {
				t.Fatalf("want one operator.refused line, got %q", rec.String())
			}
			l := lines[0]
			d, _ := l["detail"].(map[string]any)
			if l["by"] != tc.by || l["who"] != tc.who || d["code"] != tc.code || l["request_id"] != "rid-"+tc.name {
				t.Fatalf("line %v, want by %q who %q code %q", l, tc.by, tc.who, tc.code)
			}
			if strings.Contains(rec.String(), "token-0123") {
				t.Fatalf("a token reached the audit trail: %s", rec.String())
			}
		})
	}
}

func TestPathUser(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ path, want string }{
		{"/c/123456789", "123456789"},
		{"/c/0101901234", ""}, // a CPR number typed for a user id
		{"/c/alias", ""},
		{"/c/12345", ""},
	} {
		mux := http.NewServeMux()
		got := "unset"
		mux.HandleFunc("/c/{user_id}", func(w http.ResponseWriter, r *http.Request) { got = pathUser(r) })
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", tc.path, nil))
		if got != tc.want {
			t.Errorf("pathUser(%s) = %q, want %q", tc.path, got, tc.want)
		}
	}
}
