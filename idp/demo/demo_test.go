package demo

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nemidp/nemidp/idp/cardprint"
	"github.com/nemidp/nemidp/idp/idptest"
	"github.com/nemidp/nemidp/keys/codecard"
)

func get(t *testing.T, h http.Handler, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	r := httptest.NewRequest("GET", url, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result(), w.Body.String()
}

// TestCardPage: /demo/card is the print view of the seeded card, with the demo's user id line
// above the card, in Danish or English, never cached; its JSON answer is unchanged.
func TestCardPage(t *testing.T) {
	t.Parallel()
	c, err := codecard.Generate()
	if err != nil {
		t.Fatal(err)
	}
	s := &Seeder{card: c, uid: "123456789"}
	mux := http.NewServeMux()
	s.Register(mux)

	for _, tc := range []struct {
		name   string
		header map[string]string
		url    string
		lang   string
		note   string
	}{
		{"default Danish", nil, "/demo/card", "da", "Kun i demo-tilstand. Bruger-id 123456789."},
		{"English asked", map[string]string{"Accept-Language": "en-GB"}, "/demo/card", "en", "Demo mode only. User ID 123456789."},
		{"English chosen", nil, "/demo/card?lang=en", "en", "Demo mode only. User ID 123456789."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, body := get(t, mux, tc.url, tc.header)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("%d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
			}
			var want strings.Builder
			if err := cardprint.RenderPage(&want, cardprint.Page{Card: c, Lang: tc.lang, Note: tc.note}); err != nil {
				t.Fatal(err)
			}
			if body != want.String() {
				t.Fatalf("the card page is not the print view of the seeded card with the note %q:\n%s", tc.note, body)
			}
			note, card := strings.Index(body, tc.note), strings.Index(body, `class="card"`)
			if note < 0 || card < 0 || note > card {
				t.Fatal("the user id line is not above the card")
			}
			if strings.Contains(body, "<table") || strings.Contains(body, "nemid.css") {
				t.Fatal("the old table page is still served")
			}
		})
	}

	resp, body := get(t, mux, "/demo/card", map[string]string{"Accept": "application/json"})
	var got struct {
		UserID string        `json:"user_id"`
		Card   codecard.Card `json:"card"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON answer: %v %q %q", err, resp.Header.Get("Cache-Control"), body)
	}
	if got.UserID != s.uid || got.Card.Serial != c.Serial || len(got.Card.Keys) != codecard.KeysPerCard || got.Card.Keys[0] != c.Keys[0] {
		t.Fatalf("JSON answer: %+v", got)
	}
}

// TestCardPageServed: seeded on a whole IdP, the card page passes the server's middleware with
// its strict CSP and the stylesheet it links is served, so a browser prints it styled.
func TestCardPageServed(t *testing.T) {
	t.Parallel()
	srv := idptest.Start(t) // skips without Redis
	s := &Seeder{Store: srv.IdP.Store, Issuer: srv.IdP.Issuer, Base: srv.URL}
	if _, err := s.Seed(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.Register(srv.IdP.Mux)

	fetch := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	resp, body := fetch("/demo/card")
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(csp, "style-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Fatalf("card page: %d, CSP %q", resp.StatusCode, csp)
	}
	if !strings.Contains(body, `<link rel="stylesheet" href="`+cardprint.Stylesheet+`" />`) || !strings.Contains(body, s.card.Serial) {
		t.Fatalf("card page does not link %s or lacks the serial:\n%s", cardprint.Stylesheet, body)
	}
	for _, k := range s.card.Keys {
		if !strings.Contains(body, "<dt>"+k.Number+"</dt><dd>"+k.Key+"</dd>") {
			t.Fatalf("key %s is not printed beside its number", k.Number)
		}
	}
	resp, css := fetch(cardprint.Stylesheet)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || !strings.Contains(css, "@page") {
		t.Fatalf("%s: %d %q", cardprint.Stylesheet, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}
