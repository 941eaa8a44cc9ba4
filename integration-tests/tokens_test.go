package integrationtests

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/signing"
)

// tokenPost sends a token request as the client (Basic auth) and returns the status and the
// decoded JSON answer.
func tokenPost(t *testing.T, p *IdP, c Client, form url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, p.Issuer+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(c.ID, c.Secret)
	resp, err := p.http.Do(req)
	if err != nil {
		t.Fatalf("POST /oauth/token: %v", err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// breakCitizen removes the citizen's record from Redis (as an unreadable record would look);
// the returned function puts it back.
func breakCitizen(t *testing.T, p *IdP, c *Client, karen *Citizen) func() {
	t.Helper()
	key := storetest.CitizenKey(p.Prefix, karen.UserID)
	fields, err := p.Store.Redis().HGetAll(t.Context(), key).Result()
	if err != nil || len(fields) == 0 {
		t.Fatalf("read citizen %s: %v (%d fields)", key, err, len(fields))
	}
	if err := p.Store.Redis().Del(t.Context(), key).Err(); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := p.Store.Redis().HSet(t.Context(), key, fields).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// breakSigningKey re-registers the client for an ID-token algorithm no loaded key signs
// (bypassing the registration check); the returned function restores the registration.
func breakSigningKey(t *testing.T, p *IdP, c *Client, _ *Citizen) func() {
	t.Helper()
	orig, err := p.Store.Client(t.Context(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	broken := *orig
	broken.IDTokenAlg = "EdDSA"
	if err := p.Store.PutClient(t.Context(), &broken); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := p.Store.PutClient(t.Context(), orig); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTokenRequestsAreRetrySafe: when something fails after the token request was checked
// (the citizen's record cannot be read, the client's signing key is missing), the client gets
// a 5xx and its code or refresh token stays usable: the retry succeeds and the grant is not
// revoked as a replay.
func TestTokenRequestsAreRetrySafe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		refresh bool
		breaks  func(*testing.T, *IdP, *Client, *Citizen) func()
	}{
		{"code, citizen record missing", false, breakCitizen},
		{"code, signing key missing", false, breakSigningKey},
		{"refresh, citizen record missing", true, breakCitizen},
		{"refresh, signing key missing", true, breakSigningKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startIdP(t)
			c := p.registerClient(t, "openid", "profile", "offline_access")
			bank := p.relyingParty(t, c, "openid", "profile", "offline_access")
			karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
			p.activate(t, bank, karen)
			l := p.newBrowser(t).authorize(t, bank)
			l.run(karen)
			code := l.code()

			var tok *Tokens
			var form url.Values
			if tc.refresh {
				var err error
				if tok, err = l.exchange(code); err != nil {
					t.Fatalf("code exchange: %v", err)
				}
				form = url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
			} else {
				form = url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
					"code_verifier": {l.Verifier}}
			}

			restore := tc.breaks(t, p, &c, karen)
			if st, out := tokenPost(t, p, c, form); st/100 != 5 {
				restore()
				t.Fatalf("token request with the failure injected: %d %v, want 5xx", st, out)
			}
			restore()

			if tc.refresh {
				ref, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, tok.RefreshToken, "", "")
				if err != nil {
					t.Fatalf("the retried refresh: %v", err)
				}
				tok.AccessToken, tok.RefreshToken = ref.AccessToken, ref.RefreshToken
			} else {
				var err error
				if tok, err = l.exchange(code); err != nil {
					t.Fatalf("the retried code exchange: %v", err)
				}
			}
			if _, err := rp.Userinfo[*oidc.UserInfo](t.Context(), tok.AccessToken, "Bearer", tok.IDTokenClaims.Subject, bank); err != nil {
				t.Errorf("userinfo with the retry's access token: %v", err)
			}
			if _, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, tok.RefreshToken, "", ""); err != nil {
				t.Errorf("the grant does not refresh after the retry: %v", err)
			}
		})
	}
}

// TestRegistrationRefusesAnAlgorithmNoKeySigns: with only an ES256 key loaded, a client
// registering for RS256 ID tokens is refused (it could never get one), naming the algorithms
// there are.
func TestRegistrationRefusesAnAlgorithmNoKeySigns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	k, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "es256.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startIdP(t, func(c *config.Config) { c.SigningKeys = dir })
	for _, tc := range []struct {
		alg  string
		want int
	}{
		{"RS256", http.StatusBadRequest},
		{"ES256", http.StatusCreated},
		{"", http.StatusCreated},
	} {
		var out map[string]any
		code := p.admin(t, http.MethodPost, "/admin/v1/clients", map[string]any{"client_id": "rp-" + randHex(4),
			"redirect_uris": []string{redirectURI}, "id_token_signed_response_alg": tc.alg}, &out)
		if code != tc.want {
			t.Errorf("alg %q: %d %v, want %d", tc.alg, code, out, tc.want)
		}
		if code == http.StatusBadRequest {
			e, _ := out["error"].(map[string]any)
			if e["code"] != "invalid_client_metadata" || !strings.Contains(e["message"].(string), "ES256") {
				t.Errorf("alg %q: error %v, want invalid_client_metadata naming the loaded ES256", tc.alg, out)
			}
		}
	}
}

// TestGrantMaxLifetime: a grant lives tokens.grant_max_lifetime from its code exchange,
// however often it is refreshed: a refresh token issued near the end lives only until then,
// and a refresh after the end is invalid_grant.
func TestGrantMaxLifetime(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	p := startIdP(t, func(c *config.Config) { c.Tokens.GrantMaxLifetime = config.Duration(48 * time.Hour) })
	p.Server.Storage.Now, p.Server.Flows.Now = clock, clock
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile", "offline_access"), "openid", "profile", "offline_access")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	tok := p.newBrowser(t).login(t, bank, karen)

	rt := tok.RefreshToken
	for _, at := range []time.Duration{time.Hour, 24 * time.Hour, 47 * time.Hour} {
		offset.Store(int64(at))
		ref, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, rt, "", "")
		if err != nil {
			t.Fatalf("refresh %v after the exchange: %v", at, err)
		}
		rt = ref.RefreshToken
	}
	// The refresh token issued 47 h in lives at most the grant's last hour (in Redis too).
	grant, _, _ := strings.Cut(rt, ".")
	keys, err := p.Store.Redis().Keys(t.Context(), p.Prefix+"{g:"+grant+"}:rt:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	live := 0
	for _, k := range keys {
		if v, _ := p.Store.Redis().Get(t.Context(), k).Result(); v == "used" {
			continue
		}
		live++
		if ttl := p.Store.Redis().PTTL(t.Context(), k).Val(); ttl <= 0 || ttl > time.Hour+time.Minute {
			t.Errorf("the last refresh token lives %v in Redis, want at most the grant's remaining hour", ttl)
		}
	}
	if live != 1 {
		t.Errorf("%d live refresh tokens in grant %s, want 1", live, grant)
	}
	offset.Store(int64(48*time.Hour + time.Second))
	if _, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, rt, "", ""); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("refresh after the grant's end: err = %v, want invalid_grant", err)
	}
}
