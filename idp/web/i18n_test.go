package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestChooseLang: the order of DESIGN.md §5 — ?lang=, the nemidp_lang cookie, the relying
// party's ui_locales, the browser's Accept-Language (by q-value, regional tags counting as
// their language), Danish.
func TestChooseLang(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		query   string
		cookie  string
		locales []string
		accept  string
		want    string
	}{
		{"nothing: Danish", "", "", nil, "", "da"},
		{"browser prefers English", "", "", nil, "en-US,en;q=0.9", "en"},
		{"browser en-GB", "", "", nil, "en-GB", "en"},
		{"browser upper case", "", "", nil, "EN", "en"},
		{"browser prefers Danish", "", "", nil, "da-DK,da;q=0.9,en;q=0.8", "da"},
		{"browser q-values put da first", "", "", nil, "en;q=0.5,da;q=0.8", "da"},
		{"browser q-values put en first", "", "", nil, "da;q=0.3, en-GB;q=0.7", "en"},
		{"browser equal q: order decides", "", "", nil, "en, da", "en"},
		{"browser: other languages skipped", "", "", nil, "fr, de;q=0.9, en;q=0.5, da;q=0.4", "en"},
		{"browser: neither language", "", "", nil, "fr, de;q=0.9", "da"},
		{"browser: refused English", "", "", nil, "en;q=0, fr", "da"},
		{"browser: wildcard is no preference", "", "", nil, "*", "da"},
		{"browser: malformed entry skipped", "", "", nil, "zz-bad, en;q=0.5", "en"},
		{"browser: garbage", "", "", nil, ";;,q=1", "da"},
		{"ui_locales over browser", "", "", []string{"da-DK"}, "en-US", "da"},
		{"ui_locales English over browser", "", "", []string{"en"}, "da", "en"},
		{"ui_locales: first known one", "", "", []string{"fr", "en-GB", "da"}, "da", "en"},
		{"ui_locales: none known, browser decides", "", "", []string{"fr"}, "en", "en"},
		{"cookie over ui_locales", "", "da", []string{"en"}, "en", "da"},
		{"cookie English", "", "en", nil, "da", "en"},
		{"cookie: unknown value ignored", "", "fr", nil, "en", "en"},
		{"?lang= over cookie", "en", "da", []string{"da"}, "da", "en"},
		{"?lang=da over everything", "da", "en", []string{"en"}, "en", "da"},
		{"?lang= unknown ignored", "fr", "", nil, "en", "en"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/login/x?lang="+url.QueryEscape(tc.query), nil)
			if tc.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "nemidp_lang", Value: tc.cookie})
			}
			if tc.accept != "" {
				r.Header.Set("Accept-Language", tc.accept)
			}
			if got := chooseLang(r, tc.locales); got != tc.want {
				t.Fatalf("chooseLang = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPagesLanguage: every page — the login page, the error page of a login, a standalone
// error page (ErrorPage) and the logout confirmation — is in the language chosen, with
// <html lang> saying so.
func TestPagesLanguage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := &Handler{CSRFKey: []byte("k")}
	errorPage := func(query, accept string) (int, string) {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/authorize?"+query, nil)
		if accept != "" {
			r.Header.Set("Accept-Language", accept)
		}
		_ = r.ParseForm()
		h.ErrorPage(rec, r, http.StatusBadRequest, "unknown_client", "The service that sent you here is not registered with NemID.")
		return rec.Code, rec.Body.String()
	}
	logoutPage := func(query, accept string) (int, string) {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/end_session?"+query, nil)
		if accept != "" {
			r.Header.Set("Accept-Language", accept)
		}
		_ = r.ParseForm()
		h.LogoutPage(rec, r, r.Form)
		return rec.Code, rec.Body.String()
	}
	get := func(path, accept string) func(string, string) (int, string) {
		return func(string, string) (int, string) {
			code, _, page := do(t, browser(), "GET", f.srv.URL+path, "", "", map[string]string{"Accept-Language": accept})
			return code, page
		}
	}
	tests := []struct {
		name   string
		page   func(query, accept string) (int, string)
		query  string
		accept string
		status int
		want   string // a text of the page, besides <html lang>
		lang   string
	}{
		{"login page, English browser", get("/login/"+f.flow(t), "en-GB,en;q=0.9,da;q=0.5"), "", "", 200, "User ID", "en"},
		{"login page, Danish browser", get("/login/"+f.flow(t), "da-DK,en;q=0.5"), "", "", 200, "Bruger-id", "da"},
		{"login page, no header", get("/login/"+f.flow(t), ""), "", "", 200, "Bruger-id", "da"},
		{"login page, ui_locales over browser", get("/login/"+f.flowWith(t, []string{"en"}), "da"), "", "", 200, "User ID", "en"},
		{"login page, ?lang= over ui_locales", get("/login/"+f.flowWith(t, []string{"en"})+"?lang=da", "en"), "", "", 200, "Bruger-id", "da"},
		{"login error page, English browser", get("/login/no-such-flow", "en-US"), "", "", 410, "Something went wrong", "en"},
		{"login error page, Danish browser", get("/login/no-such-flow", "da"), "", "", 410, "Der opstod en fejl", "da"},
		{"error page, English browser", errorPage, "client_id=x", "en", 400, "Something went wrong", "en"},
		{"error page, ui_locales", errorPage, "client_id=x&ui_locales=en-GB+da", "da", 400, "Something went wrong", "en"},
		{"error page, default", errorPage, "client_id=x", "", 400, "Der opstod en fejl", "da"},
		{"logout page, English browser", logoutPage, "client_id=x", "en", 200, "Log off NemID", "en"},
		{"logout page, ui_locales", logoutPage, "ui_locales=da", "en", 200, "Log af NemID", "da"},
		{"logout page, ?lang=", logoutPage, "lang=en", "da", 200, "Log off NemID", "en"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, page := tc.page(tc.query, tc.accept)
			if code != tc.status || !strings.Contains(page, tc.want) || !strings.Contains(page, `<html lang="`+tc.lang+`">`) {
				t.Fatalf("got %d, want %d with %q and lang %q: %.600s", code, tc.status, tc.want, tc.lang, page)
			}
		})
	}
}

// TestTextsBothLanguages: every page text is there in Danish and English, and every error text
// in Danish (an English one may fall back to the engine's message, which is English).
func TestTextsBothLanguages(tt *testing.T) {
	tt.Parallel()
	for key := range texts[langDA] {
		if _, ok := texts[langEN][key]; !ok && !strings.HasPrefix(key, "err_") {
			tt.Errorf("%q has no English text", key)
		}
	}
	for key := range texts[langEN] {
		if _, ok := texts[langDA][key]; !ok {
			tt.Errorf("%q has no Danish text", key)
		}
	}
	for _, code := range []string{"keyapp_denied", "keyapp_timeout", "keyapp_wrong_code", "no_device", "too_many_requests"} {
		for _, lang := range []string{langDA, langEN} {
			if t(lang, "err_"+code) == "" {
				tt.Errorf("no %s text for error %s", lang, code)
			}
		}
	}
}
