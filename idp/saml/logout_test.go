package saml

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/crewjam/saml"
)

// TestSLOPrecheck: a LogoutRequest or LogoutResponse is bounded as an AuthnRequest is (as
// sent, as inflated), a DTD is refused, and a message without either parameter is bad input.
func TestSLOPrecheck(t *testing.T) {
	t.Parallel()
	doc := func(pad int, extra string) []byte {
		return []byte(`<?xml version="1.0"?>` + extra + `<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="a">` +
			strings.Repeat(" ", pad) + `</samlp:LogoutRequest>`)
	}
	tests := []struct {
		name, method, query string
		ok                  bool
	}{
		{"request", http.MethodGet, "SAMLRequest=" + url.QueryEscape(deflated(t, doc(10, ""))), true},
		{"response", http.MethodGet, "SAMLResponse=" + url.QueryEscape(deflated(t, doc(10, ""))), true},
		{"POST request", http.MethodPost, "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(doc(10, ""))), true},
		{"deflate bomb", http.MethodGet, "SAMLRequest=" + url.QueryEscape(deflated(t, doc(MaxInflatedRequest+1, ""))), false},
		{"DTD", http.MethodGet, "SAMLRequest=" + url.QueryEscape(deflated(t, doc(0, `<!DOCTYPE x [<!ENTITY e "x">]>`))), false},
		{"POST DTD", http.MethodPost, "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(doc(0, `<!DOCTYPE x>`))), false},
		{"not base64", http.MethodPost, "SAMLRequest=%%%", false},
		{"query too long", http.MethodGet, "SAMLRequest=" + strings.Repeat("A", MaxEncodedRequest+9<<10), false},
		{"neither", http.MethodGet, "RelayState=x", false},
		{"PUT", http.MethodPut, "SAMLRequest=x", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r *http.Request
			if tc.method == http.MethodGet {
				r = httptest.NewRequest(tc.method, SLOPath+"?"+tc.query, nil)
			} else {
				r = httptest.NewRequest(tc.method, SLOPath, strings.NewReader(tc.query))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			err := sloPrecheck(httptest.NewRecorder(), r)
			if (err == nil) != tc.ok {
				t.Fatalf("sloPrecheck: %v, want ok %v", err, tc.ok)
			}
		})
	}
	big := url.Values{"SAMLRequest": {strings.Repeat("A", MaxEncodedRequest+16<<10)}}.Encode()
	r := httptest.NewRequest(http.MethodPost, SLOPath, strings.NewReader(big))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var mbe *http.MaxBytesError
	if err := sloPrecheck(httptest.NewRecorder(), r); !errors.As(err, &mbe) {
		t.Fatalf("a body past the limit: %v", err)
	}
}

// TestSLORefusal: what crewjam/saml logged when it refused a message picks the error page
// (these are its messages, so a change of its wording shows here).
func TestSLORefusal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status       int
		detail, want string
	}{
		{400, "failed to validate logout request: cannot handle logout request from unknown service provider https://sp", "unknown_service_provider"},
		{400, "failed to validate logout request: cannot verify signature of logout request from https://sp: x", "saml_invalid_signature"},
		{400, `failed to validate logout request: cannot accept logout request from https://sp: logout request "a": ` + saml.ErrAssertionReplayed.Error(), "saml_replayed"},
		{400, `failed to validate logout request: expected logout request destination to be "a", not "b"`, "saml_wrong_destination"},
		{400, "failed to validate logout request: logout request expired at 2026", "saml_request_expired"},
		{400, "failed to validate logout request: logout request IssueInstant 2027 is in the future", "saml_request_expired"},
		{400, "failed to handle logout response: no single logout is in progress", "saml_invalid_logout_response"},
		{400, "failed to parse logout request: method not allowed", "saml_invalid_logout_request"},
		{500, "failed to write logout response", "internal"},
	} {
		if code, msg := sloRefusal(tc.status, tc.detail); code != tc.want || msg == "" {
			t.Errorf("sloRefusal(%d, %q) = %s, want %s", tc.status, tc.detail, code, tc.want)
		}
	}
}

// TestSLOWriter: http.Error's plain-text answer is held back (for the error page); anything
// else, a redirect or an HTML form, passes.
func TestSLOWriter(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	w := &sloWriter{ResponseWriter: rec}
	http.Error(w, "Bad Request", http.StatusBadRequest)
	if w.status != http.StatusBadRequest || rec.Body.Len() != 0 || rec.Code != http.StatusOK || rec.Flushed {
		t.Fatalf("held %d; written %d %q", w.status, rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	w = &sloWriter{ResponseWriter: rec}
	http.Redirect(w, httptest.NewRequest(http.MethodGet, "/", nil), "https://sp/slo", http.StatusFound)
	if w.status != 0 || rec.Code != http.StatusFound {
		t.Fatalf("redirect: held %d, written %d", w.status, rec.Code)
	}
	rec = httptest.NewRecorder()
	w = &sloWriter{ResponseWriter: rec}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte("<form>"))
	if w.status != 0 || rec.Body.String() != "<form>" {
		t.Fatalf("form: held %d, written %q", w.status, rec.Body)
	}
}

// FuzzSLOPrecheck: whatever arrives at /saml/slo (query or form), the precheck answers
// without a panic, and what it lets through inflates within the limit and has no DTD.
func FuzzSLOPrecheck(f *testing.F) {
	f.Add("SAMLRequest="+url.QueryEscape(deflated(&testing.T{}, []byte(`<samlp:LogoutRequest ID="a"/>`))), false)
	f.Add("SAMLResponse="+url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(`<samlp:LogoutResponse/>`))), true)
	f.Add("SAMLRequest="+url.QueryEscape(deflated(&testing.T{}, []byte(`<!DOCTYPE x><a/>`))), false)
	f.Add("SAMLRequest=%zz&RelayState=x", true)
	f.Fuzz(func(t *testing.T, query string, post bool) {
		var r *http.Request
		if post {
			r = httptest.NewRequest(http.MethodPost, SLOPath, strings.NewReader(query))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			r = httptest.NewRequest(http.MethodGet, SLOPath, nil)
			r.URL.RawQuery = query
		}
		_ = sloPrecheck(httptest.NewRecorder(), r)
	})
}
