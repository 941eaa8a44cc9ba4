package integrationtests

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// signIDToken signs claims with the server's default key, as an ID token of this issuer
// would be (to make hints the server never issued in that shape: expired, without sid).
func signIDToken(t *testing.T, p *IdP, claims map[string]any) string {
	t.Helper()
	k := p.Server.Keys.Default()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Alg, Key: jose.JSONWebKey{Key: k.Priv, KeyID: k.KID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	base := map[string]any{"iss": p.Issuer, "iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		base[k] = v
	}
	obj, err := signer.Sign(mustJSON(t, base))
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// endSession sends the browser to end_session with an id_token_hint and reports whether its
// SSO session was ended at once (cookie cleared) or the confirmation page was shown.
func (b *Browser) endSession(t *testing.T, hint string) (ended, asked bool) {
	t.Helper()
	r := b.get(t, "/end_session?"+url.Values{"id_token_hint": {hint}}.Encode())
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if strings.HasSuffix(c.Name, "nemidp_sso") && c.MaxAge < 0 {
			ended = true
		}
	}
	asked = r.Status == http.StatusOK && strings.Contains(string(r.Body), `action="/end_session/confirm"`)
	return ended, asked
}

// TestLogoutNeedsTheSessionsOwnIDToken: end_session ends the browser's SSO session at once
// only for an id_token_hint issued to the session's own citizen — by its sid, or by its
// pairwise sub at its audience when it has no sid — expired or not. Another citizen's ID
// token (fresh or expired) gets the confirmation page and leaves the session alone.
func TestLogoutNeedsTheSessionsOwnIDToken(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	anna := p.issueCitizen(t, freshCPR(), "Anna Hansen")
	annaTok := p.newBrowser(t).login(t, bank, anna)

	for _, tc := range []struct {
		name     string
		hint     func(t *testing.T, karen *Tokens) string
		wantEnds bool
	}{
		{"another citizen's ID token", func(t *testing.T, _ *Tokens) string { return annaTok.IDToken }, false},
		{"another citizen's expired ID token", func(t *testing.T, _ *Tokens) string {
			return signIDToken(t, p, map[string]any{"sub": annaTok.IDTokenClaims.Subject, "aud": []string{bank.Client.ID},
				"azp": bank.Client.ID, "sid": annaTok.IDTokenClaims.SessionID, "exp": time.Now().Add(-time.Hour).Unix()})
		}, false},
		{"a made-up sid", func(t *testing.T, _ *Tokens) string {
			return signIDToken(t, p, map[string]any{"sub": annaTok.IDTokenClaims.Subject, "aud": []string{bank.Client.ID},
				"azp": bank.Client.ID, "sid": "not-the-session"})
		}, false},
		{"the session's own ID token", func(t *testing.T, k *Tokens) string { return k.IDToken }, true},
		{"the session's own expired ID token", func(t *testing.T, k *Tokens) string {
			return signIDToken(t, p, map[string]any{"sub": k.IDTokenClaims.Subject, "aud": []string{bank.Client.ID},
				"azp": bank.Client.ID, "sid": k.IDTokenClaims.SessionID, "exp": time.Now().Add(-time.Hour).Unix()})
		}, true},
		{"the citizen's ID token without sid (pairwise sub)", func(t *testing.T, k *Tokens) string {
			return signIDToken(t, p, map[string]any{"sub": k.IDTokenClaims.Subject, "aud": []string{bank.Client.ID}, "azp": bank.Client.ID})
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := p.newBrowser(t)
			// A NemID of its own: parallel logins of one card race for its one pending key.
			karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
			tok := b.login(t, bank, karen)
			if tok.IDTokenClaims.SessionID == "" {
				t.Fatal("the ID token has no sid")
			}
			if sid := tok.IDTokenClaims.SessionID; sid != "" && strings.Contains(b.sessionCookie(t), sid) {
				t.Fatal("the sid is (part of) the session cookie")
			}
			ended, asked := b.endSession(t, tc.hint(t, tok))
			if ended != tc.wantEnds || asked == tc.wantEnds {
				t.Fatalf("session ended at once %v, confirmation page %v; want ended %v", ended, asked, tc.wantEnds)
			}
			l := b.authorize(t, bank, withParam("prompt", "none"))
			alive := l.Back != nil && l.Back.Query().Get("code") != ""
			if alive == tc.wantEnds {
				t.Errorf("after end_session the SSO session is alive: %v (back %v)", alive, l.Back)
			}
		})
	}

	t.Run("a login from the SSO session keeps its sid, so does a refresh", func(t *testing.T) {
		t.Parallel()
		b := p.newBrowser(t)
		karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
		offline := p.relyingParty(t, p.registerClient(t, "openid", "offline_access"), "openid", "offline_access")
		first := b.login(t, offline, karen)
		ref, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), offline, first.RefreshToken, "", "")
		if err != nil || ref.IDTokenClaims == nil || ref.IDTokenClaims.SessionID != first.IDTokenClaims.SessionID {
			t.Errorf("refreshed ID token %+v (err %v), want the login's sid %q", ref, err, first.IDTokenClaims.SessionID)
		}
		again := b.login(t, bank, karen) // from the session
		if again.IDTokenClaims.SessionID != first.IDTokenClaims.SessionID {
			t.Errorf("sid %q from the session, want the session's %q", again.IDTokenClaims.SessionID, first.IDTokenClaims.SessionID)
		}
		other := p.newBrowser(t).login(t, bank, karen)
		if other.IDTokenClaims.SessionID == first.IDTokenClaims.SessionID {
			t.Errorf("two browsers' sessions share the sid %q", first.IDTokenClaims.SessionID)
		}
	})
}

// TestLoggedOutPage: after logout without a post_logout_redirect_uri the browser lands on a
// "you are logged out" page (200, Danish by default, English when asked), never a 404.
func TestLoggedOutPage(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	for _, tc := range []struct {
		lang, want string
		extra      url.Values
	}{
		{"da", "Du er logget af", nil},
		{"en", "You are logged off", url.Values{"ui_locales": {"en"}}},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			t.Parallel()
			b := p.newBrowser(t)
			karen := p.issueCitizen(t, freshCPR(), "Karen Jensen") // its own card: see above
			tok := b.login(t, bank, karen)
			b.Accept = "text/html"
			q := url.Values{"id_token_hint": {tok.IDToken}}
			for k, v := range tc.extra {
				q[k] = v
			}
			u := "/end_session?" + q.Encode()
			var r *Resp
			for range 5 {
				r = b.get(t, u)
				if r.Status/100 != 3 {
					break
				}
				u = r.Location(p.Issuer + "/end_session")
			}
			if r.Status != http.StatusOK || !strings.Contains(string(r.Body), tc.want) || !strings.Contains(string(r.Body), `lang="`+tc.lang+`"`) {
				t.Fatalf("after logout: %s, want 200 with %q", r, tc.want)
			}
		})
	}
}

// TestPromptNoneWithAnotherCitizensHint: prompt=none with an id_token_hint naming another
// citizen than the browser's session answers login_required (OpenID Connect Core §3.1.2.1);
// without prompt=none the citizen is asked to log in; the session's own hint is answered
// from the session.
func TestPromptNoneWithAnotherCitizensHint(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	anna := p.issueCitizen(t, freshCPR(), "Anna Hansen")
	annaTok := p.newBrowser(t).login(t, bank, anna)
	b := p.newBrowser(t)
	karenTok := b.login(t, bank, karen)

	l := b.authorize(t, bank, withParam("prompt", "none"), withParam("id_token_hint", annaTok.IDToken))
	if l.Back == nil || l.Back.Query().Get("error") != "login_required" || l.Back.Query().Get("code") != "" {
		t.Errorf("prompt=none, another citizen's hint: back %v (steps %v), want error=login_required", l.Back, l.Steps)
	}
	l = b.authorize(t, bank, withParam("id_token_hint", annaTok.IDToken))
	l.requireStep("password")

	l = b.authorize(t, bank, withParam("prompt", "none"), withParam("id_token_hint", karenTok.IDToken))
	if tok := l.mustExchange(); tok.IDTokenClaims.Subject != karenTok.IDTokenClaims.Subject {
		t.Errorf("prompt=none with the session's own hint: sub %q, want %q", tok.IDTokenClaims.Subject, karenTok.IDTokenClaims.Subject)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sessionCookie is the browser's SSO cookie value.
func (b *Browser) sessionCookie(t *testing.T) string {
	t.Helper()
	u, _ := url.Parse(b.idp.Issuer)
	for _, c := range b.http.Jar.Cookies(u) {
		if strings.HasSuffix(c.Name, "nemidp_sso") {
			return c.Value
		}
	}
	t.Fatal("the browser has no SSO cookie")
	return ""
}
