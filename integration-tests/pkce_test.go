package integrationtests

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

// TestPKCERequiredOfEveryClient: every client must send a code_challenge (S256) unless it is a
// confidential client registered with "require_pkce": false (OAuth 2.1, RFC 9700 §2.1.1). A
// missing challenge goes back to the relying party as invalid_request; a public client cannot
// opt out; a client stored before the field existed requires PKCE.
func TestPKCERequiredOfEveryClient(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	noPKCE := []AuthOption{withoutParam("code_challenge"), withoutParam("code_challenge_method")}

	optOut := Client{ID: "legacy-" + randHex(4), Secret: randHex(16), Scopes: []string{"openid"}}
	p.mustRegister(t, map[string]any{"client_id": optOut.ID, "redirect_uris": []string{redirectURI},
		"secret": optOut.Secret, "scopes": optOut.Scopes, "require_pkce": false})

	// A registration stored before require_pkce existed: no such field.
	old := Client{ID: "old-" + randHex(4), Secret: randHex(16), Scopes: []string{"openid"}}
	p.mustRegister(t, map[string]any{"client_id": old.ID, "redirect_uris": []string{redirectURI},
		"secret": old.Secret, "scopes": old.Scopes, "require_pkce": false})
	key := p.Prefix + "client:" + old.ID
	var raw map[string]any
	if err := json.Unmarshal([]byte(p.Store.Redis().Get(t.Context(), key).Val()), &raw); err != nil {
		t.Fatal(err)
	}
	for k := range raw {
		if k != "client_id" && k != "name" && k != "redirect_uris" && k != "secret_hash" && k != "public" && k != "scopes" && k != "created_at" {
			delete(raw, k)
		}
	}
	b, _ := json.Marshal(raw)
	if err := p.Store.Redis().Set(t.Context(), key, b, 0).Err(); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		client Client
	}{
		{"confidential client by default", p.registerClient(t, "openid")},
		{"public client", p.registerPublicClient(t, "openid")},
		{"client stored without the field", old},
	} {
		t.Run(tc.name+" without PKCE", func(t *testing.T) {
			t.Parallel()
			l := p.newBrowser(t).authorize(t, p.relyingParty(t, tc.client, "openid"), noPKCE...)
			if l.Back == nil {
				t.Fatalf("not sent back to the relying party: steps %v, last %v", l.Steps, l.Last)
			}
			if q := l.Back.Query(); q.Get("error") != "invalid_request" || q.Get("code") != "" || q.Get("state") != l.State {
				t.Errorf("back with %s, want error=invalid_request, the state and no code", l.Back)
			}
		})
	}

	t.Run("confidential client registered with require_pkce false", func(t *testing.T) {
		t.Parallel()
		l := p.newBrowser(t).authorize(t, p.relyingParty(t, optOut, "openid"), noPKCE...)
		l.run(karen)
		st, out := tokenPost(t, p, optOut, url.Values{"grant_type": {"authorization_code"}, "code": {l.code()},
			"redirect_uri": {redirectURI}})
		if st != http.StatusOK || out["id_token"] == nil {
			t.Fatalf("exchange without PKCE: %d %v", st, out)
		}
	})

	t.Run("a public client cannot opt out", func(t *testing.T) {
		t.Parallel()
		var out map[string]any
		code := p.admin(t, http.MethodPost, "/admin/v1/clients", map[string]any{"client_id": "app-" + randHex(4),
			"public": true, "redirect_uris": []string{redirectURI}, "require_pkce": false}, &out)
		e, _ := out["error"].(map[string]any)
		if code != http.StatusBadRequest || e["code"] != "invalid_client_metadata" {
			t.Errorf("public client with require_pkce false: %d %v, want 400 invalid_client_metadata", code, out)
		}
	})
}
