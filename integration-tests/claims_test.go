package integrationtests

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// registerWith registers a confidential client with extra registration fields (dialect,
// sector_identifier).
func (p *IdP) registerWith(t *testing.T, extra map[string]any, scopes ...string) Client {
	t.Helper()
	c := Client{ID: "rp-" + randHex(4), Secret: randHex(16), Scopes: scopes}
	body := map[string]any{"client_id": c.ID, "name": "Test RP " + c.ID,
		"redirect_uris": []string{redirectURI}, "secret": c.Secret, "scopes": scopes}
	for k, v := range extra {
		body[k] = v
	}
	p.mustRegister(t, body)
	return c
}

// claimsOf logs citizen c in at r and returns the ID token's and userinfo's claims.
func claimsOf(t *testing.T, p *IdP, r *RP, c *Citizen, opts ...AuthOption) (*Tokens, map[string]any, map[string]any) {
	t.Helper()
	tok := p.newBrowser(t).login(t, r, c, opts...)
	ui, err := rp.Userinfo[*oidc.UserInfo](t.Context(), tok.AccessToken, "Bearer", tok.IDTokenClaims.Subject, r)
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	return tok, tok.IDTokenClaims.Claims, ui.Claims
}

func over(age int) map[string]any {
	return map[string]any{"15": age >= 15, "16": age >= 16, "18": age >= 18, "21": age >= 21}
}

// TestAgeScopeAlone: a client registered for openid and age only learns the citizen's age —
// age, dk.age_under_18 and age_equal_or_over — and nothing that names them.
func TestAgeScopeAlone(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	r := p.relyingParty(t, p.registerClient(t, "openid", "age"), "openid", "age")
	karen := p.issueCitizen(t, karenCPR, "Karen Jensen")
	_, id, ui := claimsOf(t, p, r, karen)
	age := karenAge(time.Now())
	for where, c := range map[string]map[string]any{"ID token": id, "userinfo": ui} {
		if a, ok := c["age"].(float64); !ok || int(a) != age {
			t.Errorf("%s: age = %#v, want %d", where, c["age"], age)
		}
		if c["dk.age_under_18"] != false {
			t.Errorf("%s: dk.age_under_18 = %#v, want false", where, c["dk.age_under_18"])
		}
		if got, _ := json.Marshal(c["age_equal_or_over"]); string(got) != string(mustJSON(t, over(age))) {
			t.Errorf("%s: age_equal_or_over = %s, want %s", where, got, string(mustJSON(t, over(age))))
		}
		for _, k := range []string{"name", "given_name", "family_name", "birthdate", "dk.cpr", "nemid.pid",
			"nemid.oces", "dk.youth_certificate", "cprNumberIdentifier", "dateofbirth"} {
			if v, ok := c[k]; ok {
				t.Errorf("%s: %s = %#v with scope age alone", where, k, v)
			}
		}
		if !uuidRE.MatchString(c["sub"].(string)) || c["idp"] != "nemid" {
			t.Errorf("%s: sub %v, idp %v", where, c["sub"], c["idp"])
		}
	}
	var disc struct {
		Scopes      []string `json:"scopes_supported"`
		Claims      []string `json:"claims_supported"`
		ClaimsParam bool     `json:"claims_parameter_supported"`
	}
	resp, err := http.Get(p.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&disc); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"openid", "profile", "age", "ssn", "offline_access"} {
		if !slices.Contains(disc.Scopes, s) {
			t.Errorf("scopes_supported %v lacks %s", disc.Scopes, s)
		}
	}
	for _, c := range []string{"age_equal_or_over", "dk.youth_certificate", "nemid.pid", "cprNumberIdentifier", "isUnder18", "dk.cpr"} {
		if !slices.Contains(disc.Claims, c) {
			t.Errorf("claims_supported %v lacks %s", disc.Claims, c)
		}
	}
	if !disc.ClaimsParam {
		t.Error("claims_parameter_supported is false")
	}
}

// TestClaimsParameter: the claims request parameter gets what the granted scopes allow into
// the member it names, never more (a claim of a scope not granted, or of scope ssn for a client
// not registered for it); a malformed one is invalid_request.
func TestClaimsParameter(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	client := p.registerClient(t, "openid", "profile", "age")
	karen := p.issueCitizen(t, karenCPR, "Karen Jensen")
	p.activate(t, p.relyingParty(t, client, "openid", "profile"), karen)

	param := `{"id_token":{"dk.cpr":{"essential":true},"age_equal_or_over":null,"given_name":{"essential":true}},` +
		`"userinfo":{"dk.cpr":null,"cprNumberIdentifier":null,"birthdate":{"value":"1990-06-15"}}}`
	t.Run("within the scopes", func(t *testing.T) { // not parallel: logins of one card share its pending key
		r := p.relyingParty(t, client, "openid", "profile", "ssn") // ssn asked, not registered
		_, id, ui := claimsOf(t, p, r, karen, withParam("claims", param))
		if id["given_name"] != "Karen" || ui["birthdate"] != "1990-06-15" {
			t.Errorf("asked and allowed: ID token given_name %v, userinfo birthdate %v", id["given_name"], ui["birthdate"])
		}
		for where, c := range map[string]map[string]any{"ID token": id, "userinfo": ui} {
			for _, k := range []string{"dk.cpr", "cprNumberIdentifier", "age_equal_or_over"} {
				if v, ok := c[k]; ok {
					t.Errorf("%s: %s = %#v although no granted scope allows it", where, k, v)
				}
			}
		}
	})
	t.Run("a scope not granted", func(t *testing.T) { // not parallel: logins of one card share its pending key
		r := p.relyingParty(t, client, "openid", "age")
		_, id, ui := claimsOf(t, p, r, karen, withParam("claims", `{"id_token":{"name":null,"age_equal_or_over":null},"userinfo":{"family_name":null}}`))
		if _, ok := id["age_equal_or_over"]; !ok {
			t.Errorf("ID token: age_equal_or_over missing (asked, scope age granted): %v", id)
		}
		for where, c := range map[string]map[string]any{"ID token": id, "userinfo": ui} {
			for _, k := range []string{"name", "family_name"} {
				if v, ok := c[k]; ok {
					t.Errorf("%s: %s = %#v without scope profile", where, k, v)
				}
			}
		}
	})
	for _, bad := range []string{`{`, `[]`, `{"userinfo":["name"]}`, `{"id_token":{"name":true}}`} {
		t.Run("malformed "+bad, func(t *testing.T) {
			t.Parallel()
			l := p.newBrowser(t).authorize(t, p.relyingParty(t, client, "openid", "profile"), withParam("claims", bad))
			if l.Back == nil || l.Back.Query().Get("error") != "invalid_request" {
				t.Fatalf("claims=%s: back %v, last %v; want error=invalid_request at the redirect URI", bad, l.Back, l.Last)
			}
		})
	}
}

// TestBrokerDialect: a client registered with dialect broker gets broker-style names and
// formats in the ID token and userinfo, and none of the default names they replace.
func TestBrokerDialect(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	c := p.registerWith(t, map[string]any{"dialect": "broker"}, "openid", "profile", "ssn", "age")
	r := p.relyingParty(t, c, "openid", "profile", "ssn", "age")
	karen := p.issueCitizen(t, karenCPR, "Karen Jensen")
	_, id, ui := claimsOf(t, p, r, karen)
	age := karenAge(time.Now())
	want := map[string]any{"name": "Karen Jensen", "given_name": "Karen", "family_name": "Jensen",
		"dateofbirth": "1990-06-15", "age": strconv.Itoa(age), "isUnder18": false, "isYouthCert": false,
		"hasOCES": true, "cprNumberIdentifier": karenCPR, "idp": "nemid", "acr": acrSubstantial}
	for where, cl := range map[string]map[string]any{"ID token": id, "userinfo": ui} {
		for k, v := range want {
			if cl[k] != v {
				t.Errorf("%s: %s = %#v, want %#v", where, k, cl[k], v)
			}
		}
		if got, _ := json.Marshal(cl["ageEqualOrOver"]); string(got) != string(mustJSON(t, over(age))) {
			t.Errorf("%s: ageEqualOrOver = %s", where, got)
		}
		for _, k := range []string{"dk.cpr", "birthdate", "dk.age_under_18", "nemid.oces", "dk.youth_certificate", "age_equal_or_over"} {
			if v, ok := cl[k]; ok {
				t.Errorf("%s: default-dialect %s = %#v in the broker dialect", where, k, v)
			}
		}
	}
	var out map[string]any
	if code := p.admin(t, http.MethodPost, "/admin/v1/clients", map[string]any{"client_id": "rp-" + randHex(4),
		"redirect_uris": []string{redirectURI}, "dialect": "klingon"}, &out); code != http.StatusBadRequest {
		t.Errorf("dialect klingon: %d %v, want 400", code, out)
	}
}

// TestSectorIdentifier: two clients registered with one sector identifier see a citizen under
// one sub (and an ID token of one is a subject hint the other's SSO honours); a third client,
// without it, gets another sub, kept under its client id as before sectors existed.
func TestSectorIdentifier(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	sector := map[string]any{"sector_identifier": "https://bank.example"}
	app := p.relyingParty(t, p.registerWith(t, sector, "openid", "profile"), "openid", "profile")
	web := p.relyingParty(t, p.registerWith(t, sector, "openid", "profile"), "openid", "profile")
	otherClient := p.registerClient(t, "openid", "profile")
	other := p.relyingParty(t, otherClient, "openid", "profile")
	karen := p.issueCitizen(t, karenCPR, "Karen Jensen")

	b := p.newBrowser(t)
	tApp := b.login(t, app, karen)
	tWeb := p.newBrowser(t).login(t, web, karen)
	tOther := p.newBrowser(t).login(t, other, karen)
	if s := tApp.IDTokenClaims.Subject; !uuidRE.MatchString(s) || s != tWeb.IDTokenClaims.Subject {
		t.Errorf("same sector: sub %q and %q, want one UUID", s, tWeb.IDTokenClaims.Subject)
	}
	if s := tOther.IDTokenClaims.Subject; s == tApp.IDTokenClaims.Subject || !uuidRE.MatchString(s) {
		t.Errorf("no sector: sub %q, sector's %q: want another UUID", s, tApp.IDTokenClaims.Subject)
	}
	if sub, err := p.Store.KnownPairwiseSubject(t.Context(), karen.UserID, otherClient.ID); err != nil || sub != tOther.IDTokenClaims.Subject {
		t.Errorf("the sub of a client without sector is kept under its client id: %q, %v", sub, err)
	}
	// The app's ID token names the citizen of the browser's SSO session at web too.
	l := b.authorize(t, web, withParam("prompt", "none"), withParam("id_token_hint", tApp.IDToken))
	tok := l.mustExchange()
	if tok.IDTokenClaims.Subject != tApp.IDTokenClaims.Subject {
		t.Errorf("SSO at web with the app's hint: sub %q, want %q", tok.IDTokenClaims.Subject, tApp.IDTokenClaims.Subject)
	}
	var out map[string]any
	if code := p.admin(t, http.MethodPost, "/admin/v1/clients", map[string]any{"client_id": "rp-" + randHex(4),
		"redirect_uris": []string{redirectURI}, "sector_identifier": "a b"}, &out); code != http.StatusBadRequest {
		t.Errorf("sector_identifier with a space: %d %v, want 400", code, out)
	}
}
