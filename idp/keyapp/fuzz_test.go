package keyapp_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/keyapp"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
)

// FuzzKeyAppAPI sends arbitrary methods, paths, bearer tokens and bodies to the key-app API:
// every answer is JSON with a status below 500 (503 aside: the store answering slowly), and
// nothing panics.
func FuzzKeyAppAPI(f *testing.F) {
	st := storetest.NewStore(f, storetest.Embedded().Client(f))
	cards, err := codecard.NewHasher([]byte("card-secret-0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	e := &flows.Engine{Store: st, Passwords: password.NewHasher(password.TestParams), Cards: cards, MaxFailures: 5,
		FlowTTL: time.Minute, SessionTTL: time.Hour, Grace: time.Hour}
	mux := http.NewServeMux()
	(&keyapp.API{Flows: e, Store: st, Audience: "http://idp.example/keyapp"}).Register(mux)

	const jwt = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiIxMjM0NTY3ODkuQUFBQUFBQUFBQUFBQUFBQUFBQUFBQSJ9.c2ln"
	for _, s := range []struct{ method, path, auth, body string }{
		{"POST", "/keyapp/v1/activations", "", `{"username":"123456789","password":"x"}`},
		{"POST", "/keyapp/v1/activations", "", `{"username":1}`},
		{"POST", "/keyapp/v1/activations/AAAAAAAAAAAAAAAAAAAAAA", "", `{"key":"123456","public_key":{"kty":"EC","crv":"P-256","x":"","y":""},"device_name":"p"}`},
		{"POST", "/keyapp/v1/activations/x", "", `{"public_key":"not a jwk"}`},
		{"GET", "/keyapp/v1/requests?wait=1", "Bearer " + jwt, ""},
		{"GET", "/keyapp/v1/requests", "Bearer a.b.c", ""},
		{"POST", "/keyapp/v1/requests/r1", "Bearer " + jwt, `{"decision":"a.b.c"}`},
		{"DELETE", "/keyapp/v1/requests/r1", "", ""},
		{"GET", "/keyapp/v2/", "", ""},
	} {
		f.Add(s.method, s.path, s.auth, s.body)
	}
	f.Fuzz(func(t *testing.T, method, path, auth, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \r\n\t") || !validMethod(method) {
			return
		}
		req, err := http.NewRequest(method, "http://idp.example"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		if auth != "" && !strings.ContainsAny(auth, "\r\n") {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		if w.Code >= 500 && w.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
		}
		if strings.HasPrefix(req.URL.Path, "/keyapp/") && w.Code >= 400 && !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("%s %s: %d answered %q, not JSON", method, path, w.Code, w.Header().Get("Content-Type"))
		}
	})
}

func validMethod(m string) bool {
	switch m {
	case "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS":
		return true
	}
	return false
}
