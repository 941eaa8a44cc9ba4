package saml

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/crewjam/saml"
)

func deflated(t *testing.T, doc []byte) string {
	t.Helper()
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = fw.Write(doc)
	_ = fw.Close()
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

// TestPrecheck: the size of the request as sent and as inflated is bounded (below crewjam's
// own 1 MiB inflate limit), a DTD or entity declaration is refused, comments and CDATA are
// not; the POST body is bounded too.
func TestPrecheck(t *testing.T) {
	t.Parallel()
	doc := func(pad int, extra string) []byte {
		return []byte(`<?xml version="1.0"?>` + extra + `<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="a">` +
			strings.Repeat(" ", pad) + `<!-- a comment --><![CDATA[x]]></samlp:AuthnRequest>`)
	}
	tests := []struct {
		name  string
		query string
		ok    bool
	}{
		{"small", "SAMLRequest=" + url.QueryEscape(deflated(t, doc(10, ""))), true},
		{"just under the inflated limit", "SAMLRequest=" + url.QueryEscape(deflated(t, doc(MaxInflatedRequest-300, ""))), true},
		{"inflates past the limit (and below crewjam's)", "SAMLRequest=" + url.QueryEscape(deflated(t, doc(MaxInflatedRequest+1, ""))), false},
		{"DOCTYPE", "SAMLRequest=" + url.QueryEscape(deflated(t, doc(0, `<!DOCTYPE x>`))), false},
		{"ENTITY", "SAMLRequest=" + url.QueryEscape(deflated(t, doc(0, `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>`))), false},
		{"not deflated", "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(doc(0, ""))), false},
		{"query too long", "SAMLRequest=" + strings.Repeat("A", MaxEncodedRequest+9<<10), false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, SSOPath+"?"+tc.query, nil)
			err := precheck(httptest.NewRecorder(), r)
			if (err == nil) != tc.ok {
				t.Fatalf("precheck: %v, want ok %v", err, tc.ok)
			}
		})
	}
	big := url.Values{"SAMLRequest": {strings.Repeat("A", MaxEncodedRequest+16<<10)}}.Encode()
	r := httptest.NewRequest(http.MethodPost, SSOPath, strings.NewReader(big))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var mbe *http.MaxBytesError
	if err := precheck(httptest.NewRecorder(), r); !errors.As(err, &mbe) {
		t.Fatalf("a body past the limit: %v", err)
	}
}

// TestAuthnContextStatus: Substantial meets exact Substantial and minimum Low/Substantial,
// maximum Substantial/High and better Low; anything else, and an unknown class, is
// NoAuthnContext; an unknown comparison is the requester's error.
func TestAuthnContextStatus(t *testing.T) {
	t.Parallel()
	rac := func(cmp string, refs ...string) *saml.RequestedAuthnContext {
		return &saml.RequestedAuthnContext{Comparison: cmp, AuthnContextClassRefs: refs}
	}
	tests := []struct {
		rac  *saml.RequestedAuthnContext
		want string // "" met, else the second-level status
	}{
		{nil, ""},
		{rac("exact"), ""},
		{rac("", LoASubstantial), ""},
		{rac("exact", LoASubstantial), ""},
		{rac("exact", LoALow), saml.StatusNoAuthnContext},
		{rac("exact", "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"), saml.StatusNoAuthnContext},
		{rac("exact", "urn:unknown", LoASubstantial), ""},
		{rac("minimum", LoALow), ""},
		{rac("minimum", LoASubstantial), ""},
		{rac("minimum", LoAHigh), saml.StatusNoAuthnContext},
		{rac("minimum", "urn:unknown"), saml.StatusNoAuthnContext},
		{rac("maximum", LoAHigh), ""},
		{rac("maximum", LoALow), saml.StatusNoAuthnContext},
		{rac("better", LoALow), ""},
		{rac("better", LoASubstantial), saml.StatusNoAuthnContext},
		{rac("sideways", LoASubstantial), saml.StatusRequestUnsupported},
	}
	for _, tc := range tests {
		st := authnContextStatus(tc.rac)
		got := ""
		if st != nil {
			got = st.SecondLevel
		}
		if got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.rac, got, tc.want)
		}
	}
}

// TestSessionIndex: one SSO session has a different SessionIndex at each SP, the same at one.
func TestSessionIndex(t *testing.T) {
	t.Parallel()
	a, b := SessionIndex("sid1", "https://a"), SessionIndex("sid1", "https://b")
	if a == b || a != SessionIndex("sid1", "https://a") || a == SessionIndex("sid2", "https://a") || SessionIndex("", "x") != "" {
		t.Fatalf("%s %s", a, b)
	}
	if strings.Contains(a, "sid1") {
		t.Fatal("the sid shows in the SessionIndex")
	}
}
