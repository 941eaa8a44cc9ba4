package selfservice

import (
	"bytes"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/store"
)

// TestTextsBothLanguages: every text exists in both languages, every key a template names
// exists, and so do the texts picked by status, card status and outcome.
func TestTextsBothLanguages(t *testing.T) {
	t.Parallel()
	for k := range texts[langDA] {
		if texts[langEN][k] == "" {
			t.Errorf("%q has no English text", k)
		}
	}
	for k := range texts[langEN] {
		if texts[langDA][k] == "" {
			t.Errorf("%q has no Danish text", k)
		}
	}
	used := regexp.MustCompile(`\.T "([a-z_]+)"`)
	_ = fs.WalkDir(templateFS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, _ := fs.ReadFile(templateFS, p)
		for _, m := range used.FindAllStringSubmatch(string(raw), -1) {
			if texts[langDA][m[1]] == "" {
				t.Errorf("%s uses %q, which has no text", p, m[1])
			}
		}
		return nil
	})
	var keys []string
	for _, s := range []string{store.StatusActive, store.StatusBlocked, store.StatusExpired} {
		keys = append(keys, "status_"+s)
	}
	for _, s := range []string{store.CardActive, store.CardSent, store.CardRetired, store.CardBlocked} {
		keys = append(keys, "card_"+s)
	}
	for _, s := range []string{"card_ordered", "card_replaced", "renewed", "device_removed", "password_changed", "address_set", "address_cleared"} {
		keys = append(keys, "flash_"+s)
	}
	for _, s := range []string{"card_limit", "wrong_key", "used_key", "locked", "not_due", "blocked", "not_available", "unavailable", "csrf",
		"address_" + store.AddressTooLong, "address_" + store.AddressTooManyLines, "address_" + store.AddressInvalidChars} {
		keys = append(keys, "err_"+s)
	}
	for _, k := range keys {
		if texts[langDA][k] == "" {
			t.Errorf("no text %q", k)
		}
	}
}

// TestPagesRender: every page renders in both languages without a template error.
func TestPagesRender(t *testing.T) {
	t.Parallel()
	h := &Handler{Secret: []byte("k")}
	c := &store.Citizen{UserID: "123456789", Name: "Karen Jensen", Status: store.StatusActive, ExpiresAt: "2029-12-01"}
	sess := &session{ID: "s", UserID: c.UserID, AuthTime: time.Now(), Flash: &flash{Code: "card_ordered", Serial: "G1"}}
	d := pageData{Cards: []Card{{Serial: "G1", Status: "sent", KeysLeft: 148}}, CardsAvailable: true,
		Devices: []store.Device{{ID: "123456789.x", Name: "phone", CreatedAt: time.Now()}}, AltAddress: "a\nb",
		Flash: sess.Flash, Citizen: c, Serial: "G1", Number: "0042", Address: "a", Error: &pageError{status: 409, code: "card_limit", attemptsLeft: 2}}
	for _, lang := range []string{langDA, langEN} {
		for _, name := range []string{"overview", "lost_card", "block", "blocked", "renew", "password", "address", "error", "logged_out"} {
			w := httptest.NewRecorder()
			req := &request{w: w, r: httptest.NewRequest("GET", Path, nil), lang: lang, sess: sess, c: c}
			var buf bytes.Buffer
			if err := pages.ExecuteTemplate(&buf, name, d); err != nil {
				t.Errorf("%s/%s: %v", lang, name, err)
				continue
			}
			h.render(req, http.StatusOK, name, d)
			body := w.Body.String()
			if !strings.Contains(body, `<html lang="`+lang+`">`) || !strings.Contains(body, "</html>") {
				t.Errorf("%s/%s: incomplete page", lang, name)
			}
			if strings.Contains(body, "<script") || strings.Contains(body, "style=") || strings.Contains(body, "<style") {
				t.Errorf("%s/%s: inline script or style (the CSP refuses it)", lang, name)
			}
		}
	}
}

// TestCookie: with secure cookies the session cookie is __Host-, Secure, HttpOnly, Lax, path /.
func TestCookie(t *testing.T) {
	t.Parallel()
	for _, secure := range []bool{false, true} {
		h := &Handler{Secure: secure, Secret: []byte("0123456789abcdef0123456789abcdef")}
		w := httptest.NewRecorder()
		now := time.Now()
		if err := h.writeSession(w, &session{ID: "i", UserID: "123456789", AuthTime: now, Started: now, Seen: now}); err != nil {
			t.Fatal(err)
		}
		ck := w.Result().Cookies()[0]
		want := "nemidp_selvbetjening"
		if secure {
			want = "__Host-" + want
		}
		if ck.Name != want || ck.Secure != secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.MaxAge != 900 {
			t.Errorf("secure=%v: %+v", secure, ck)
		}
		r := httptest.NewRequest("GET", Path, nil)
		r.AddCookie(ck)
		if s := h.readSession(r); s == nil || s.UserID != "123456789" {
			t.Errorf("secure=%v: the cookie does not open: %+v", secure, s)
		}
		// Idle too long, or past its lifetime: no session.
		h.Now = func() time.Time { return now.Add(IdleTimeout + time.Second) }
		if s := h.readSession(r); s != nil {
			t.Errorf("secure=%v: idle session still open", secure)
		}
		h.Now = nil
		w = httptest.NewRecorder()
		old := now.Add(-MaxLifetime - time.Second)
		_ = h.writeSession(w, &session{ID: "i", UserID: "123456789", AuthTime: old, Started: old, Seen: now})
		r2 := httptest.NewRequest("GET", Path, nil)
		r2.AddCookie(w.Result().Cookies()[0])
		if s := h.readSession(r2); s != nil {
			t.Errorf("secure=%v: session past its lifetime still open", secure)
		}
		// Another key does not open it.
		h2 := &Handler{Secure: secure, Secret: []byte("another key")}
		if s := h2.readSession(r); s != nil {
			t.Errorf("secure=%v: opened with another key", secure)
		}
	}
}
