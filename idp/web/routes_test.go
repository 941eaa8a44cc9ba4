package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/flows"
)

// TestUnroutedLoginPaths: every request under /login/ that no login route takes — an unknown
// or empty step, extra segments, an encoded slash, a method the URL does not take, double
// slashes, dot segments — answers through the one error writer: the JSON error to a JSON
// request, the HTML error page otherwise, with a fitting status (405 with Allow).
func TestUnroutedLoginPaths(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.flow(t)
	tests := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"POST", "/login/" + id + "/%2F", 404, flows.CodeWrongStep, ""},
		{"POST", "/login/" + id + "/nope", 404, flows.CodeWrongStep, ""},
		{"POST", "/login/" + id + "/password/extra", 404, codeNotFound, ""},
		{"POST", "/login/" + id + "/a/b/c", 404, codeNotFound, ""},
		{"POST", "/login/" + id + "/", 404, codeNotFound, ""},
		{"GET", "/login/" + id + "/", 404, codeNotFound, ""},
		{"GET", "/login/", 404, codeNotFound, ""},
		{"POST", "/login/", 404, codeNotFound, ""},
		{"GET", "/login/%2F", 410, flows.CodeFlowExpired, ""},
		{"GET", "/login/" + id + "/password", 405, codeMethodNotAllowed, "POST"},
		{"GET", "/login/" + id + "/keyapp", 405, codeMethodNotAllowed, "POST"},
		{"PUT", "/login/" + id + "/method", 405, codeMethodNotAllowed, "POST"},
		{"POST", "/login/" + id + "/keyapp/extra", 404, codeNotFound, ""},
		{"POST", "/login/" + id + "/method/", 404, codeNotFound, ""},
		{"POST", "/login/" + id + "/./keyapp", 404, codeNotFound, ""},
		{"PUT", "/login/" + id + "/password", 405, codeMethodNotAllowed, "POST"},
		{"POST", "/login/" + id, 405, codeMethodNotAllowed, "GET, HEAD"},
		{"DELETE", "/login/" + id, 405, codeMethodNotAllowed, "GET, HEAD"},
		{"OPTIONS", "/login/" + id, 405, codeMethodNotAllowed, "GET, HEAD"},
		{"POST", "/login//password", 404, codeNotFound, ""},
		{"POST", "/login/" + id + "//password", 404, codeNotFound, ""},
		{"GET", "/login//" + id, 404, codeNotFound, ""},
		{"GET", "//login/" + id, 404, codeNotFound, ""},
		{"POST", "/login/" + id + "/./password", 404, codeNotFound, ""},
		{"POST", "/login/" + id + "/../" + id + "/password", 404, codeNotFound, ""},
		{"GET", "/login/" + id + "/..", 404, codeNotFound, ""},
		{"GET", "/login/.", 404, codeNotFound, ""},
	}
	for _, tc := range tests {
		for _, asJSON := range []bool{true, false} {
			name := tc.method + " " + tc.path
			if !asJSON {
				name += " (HTML)"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				req, err := http.NewRequest(tc.method, f.srv.URL+tc.path, strings.NewReader(`{}`))
				if err != nil {
					t.Fatal(err)
				}
				if asJSON {
					req.Header.Set("Accept", "application/json")
					req.Header.Set("Content-Type", "application/json")
				} else {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				resp, err := browser().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				raw := readAll(t, resp)
				if resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow {
					t.Fatalf("got %d (Allow %q), want %d (Allow %q): %.300s", resp.StatusCode, resp.Header.Get("Allow"), tc.status, tc.allow, raw)
				}
				ct := resp.Header.Get("Content-Type")
				if asJSON {
					v := decodeView(t, ct, raw)
					if v.Error == nil || v.Error.Code != tc.code || v.Error.Message == "" {
						t.Fatalf("want JSON error %q, got %s %s", tc.code, ct, raw)
					}
				} else if !strings.HasPrefix(ct, "text/html") || !strings.Contains(raw, `data-code="`+tc.code+`"`) {
					t.Fatalf("want the HTML error page with %q, got %s %.300s", tc.code, ct, raw)
				}
			})
		}
	}
}

// FuzzLoginPath sends any method and path under /login/ as a JSON request: the answer is
// always JSON, and every error carries the JSON error — never the mux's plain text, a
// redirect, or a 5xx.
func FuzzLoginPath(f *testing.F) {
	fx := newFixture(f)
	id := fx.flow(f)
	methods := []string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"}
	for _, seed := range []string{id, id + "/password", id + "/%2F", id + "//x", "./" + id, id + "/../..", "%2F", "", id + "?lang=en", id + "/codecard/x", id + "/keyapp?wait=x", id + "/method"} {
		f.Add(uint8(0), seed)
		f.Add(uint8(1), seed)
	}
	b := browser()
	f.Fuzz(func(t *testing.T, m uint8, rest string) {
		method := methods[int(m)%len(methods)]
		u, err := url.Parse(fx.srv.URL + "/login/" + rest)
		if err != nil || u.Host != strings.TrimPrefix(fx.srv.URL, "http://") ||
			strings.IndexFunc(u.RequestURI(), func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
			// Not a URL under /login/ a client can send: url.Parse keeps a raw query as
			// given, and a space in the request line is refused by net/http (400) before
			// any handler runs.
			return
		}
		// A hanging answer fails rather than stalls the fuzzer.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, u.String(), strings.NewReader(`{}`))
		if err != nil {
			return
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Content-Type", "application/json")
		resp, err := b.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		defer resp.Body.Close()
		raw := readAll(t, resp)
		ct := resp.Header.Get("Content-Type")
		if resp.StatusCode >= 500 || resp.StatusCode/100 == 3 || !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("%s %s: %d %s %.300s", method, u.RequestURI(), resp.StatusCode, ct, raw)
		}
		if method == "HEAD" {
			return
		}
		if v := decodeView(t, ct, raw); resp.StatusCode >= 400 && (v.Error == nil || v.Error.Code == "") {
			t.Fatalf("%s %s: %d without a JSON error: %s", method, u.RequestURI(), resp.StatusCode, raw)
		}
	})
}
