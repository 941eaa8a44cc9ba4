package integrationtests

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// adminAnswer is an operator API answer: the citizen, or {"error"}.
type adminAnswer struct {
	Status      string `json:"status"`
	BlockReason string `json:"block_reason"`
	Password    string `json:"password"`
	Error       *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func (p *IdP) adminCall(t *testing.T, path string, body any) (int, adminAnswer) {
	t.Helper()
	var out adminAnswer
	code := p.admin(t, http.MethodPost, path, body, &out)
	return code, out
}

func (p *IdP) block(t *testing.T, uid, reason string) {
	t.Helper()
	code, out := p.adminCall(t, "/admin/v1/citizens/"+uid+"/block", map[string]string{"reason": reason})
	if code != http.StatusOK || out.Status != "blocked" || out.BlockReason != reason {
		t.Fatalf("block %s for %s: %d %+v", uid, reason, code, out)
	}
}

// lockOut answers wrong passwords until the NemID is locked after failures.
func (p *IdP) lockOut(t *testing.T, r *RP, c *Citizen) {
	t.Helper()
	l := p.newBrowser(t).authorize(t, r)
	for i := 0; i < 5; i++ {
		if code, v := l.password(c, "Forkert"+randHex(2)+"9"); code == http.StatusOK || v.Error == nil {
			t.Fatalf("wrong password %d: %d %+v", i, code, v)
		}
	}
	var v struct {
		Status      string `json:"status"`
		BlockReason string `json:"block_reason"`
	}
	if p.admin(t, http.MethodGet, "/admin/v1/citizens/"+c.UserID, nil, &v); v.Status != "blocked" || v.BlockReason != "failures" {
		t.Fatalf("after 5 wrong passwords: %+v, want locked after failures", v)
	}
}

// TestOperatorBlockAPI: what block, unblock and temporary-password answer for each state of a
// NemID, and the clear errors they refuse with.
func TestOperatorBlockAPI(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	unknown := "/admin/v1/citizens/123456789"
	for _, tc := range []struct {
		name string
		// setup makes the citizen's state; nil: no citizen (path unknown).
		setup      func(t *testing.T, c *Citizen)
		path       string // after /admin/v1/citizens/{user_id}
		body       any
		wantStatus int
		wantCode   string // error code, or "" for success
		wantState  string // status after, on success
		wantMsg    string // part of the error message
	}{
		{"block unknown", nil, "/block", map[string]string{"reason": "misuse"}, 404, "not_found", "", "No NemID"},
		{"unblock unknown", nil, "/unblock", nil, 404, "not_found", "", "No NemID"},
		{"temporary password unknown", nil, "/temporary-password", nil, 404, "not_found", "", "No NemID"},
		{"block without reason", func(*testing.T, *Citizen) {}, "/block", map[string]string{}, 400, "invalid_request", "", "reason"},
		{"block for failures", func(*testing.T, *Citizen) {}, "/block", map[string]string{"reason": "failures"}, 400, "invalid_request", "", "reason"},
		{"block with a made-up reason", func(*testing.T, *Citizen) {}, "/block", map[string]string{"reason": "Misuse"}, 400, "invalid_request", "", "reason"},
		{"block with an unknown field", func(*testing.T, *Citizen) {}, "/block", map[string]string{"reason": "misuse", "why": "x"}, 400, "invalid_request", "", ""},
		{"block", func(*testing.T, *Citizen) {}, "/block", map[string]string{"reason": "lost_card"}, 200, "", "blocked", ""},
		{"block again", func(t *testing.T, c *Citizen) { p.block(t, c.UserID, "misuse") }, "/block", map[string]string{"reason": "misuse"}, 200, "", "blocked", ""},
		{"block a lockout", func(t *testing.T, c *Citizen) { p.lockOut(t, bank, c) }, "/block", map[string]string{"reason": "operator"}, 200, "", "blocked", ""},
		{"unblock", func(t *testing.T, c *Citizen) { p.block(t, c.UserID, "operator") }, "/unblock", nil, 200, "", "active", ""},
		{"unblock an active NemID", func(*testing.T, *Citizen) {}, "/unblock", nil, 409, "not_blocked", "", "not blocked"},
		{"unblock a lockout", func(t *testing.T, c *Citizen) { p.lockOut(t, bank, c) }, "/unblock", nil, 409, "locked", "", "temporary password"},
		{"temporary password of a blocked NemID", func(t *testing.T, c *Citizen) { p.block(t, c.UserID, "misuse") }, "/temporary-password", nil, 409, "blocked", "", "unblock it first"},
		{"temporary password of a lockout", func(t *testing.T, c *Citizen) { p.lockOut(t, bank, c) }, "/temporary-password", nil, 200, "", "active", ""},
		{"temporary password of an active NemID", func(*testing.T, *Citizen) {}, "/temporary-password", nil, 200, "", "active", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			base := unknown
			var c *Citizen
			if tc.setup != nil {
				c = p.issueCitizen(t, freshCPR(), "Karen Jensen")
				p.activate(t, bank, c)
				tc.setup(t, c)
				base = "/admin/v1/citizens/" + c.UserID
			}
			code, out := p.adminCall(t, base+tc.path, tc.body)
			if code != tc.wantStatus {
				t.Fatalf("%s: %d %+v, want %d", tc.path, code, out, tc.wantStatus)
			}
			if tc.wantCode != "" {
				if out.Error == nil || out.Error.Code != tc.wantCode || !strings.Contains(out.Error.Message, tc.wantMsg) {
					t.Fatalf("%s: error %+v, want code %q with a message naming %q", tc.path, out.Error, tc.wantCode, tc.wantMsg)
				}
				return
			}
			if out.Error != nil {
				t.Fatalf("%s: error %+v", tc.path, out.Error)
			}
			if tc.path == "/temporary-password" {
				if len(out.Password) < 8 {
					t.Fatalf("temporary password %q", out.Password)
				}
				if st := p.citizenStatus(t, c.UserID); st != tc.wantState {
					t.Fatalf("status after the temporary password %q, want %q", st, tc.wantState)
				}
				return
			}
			if out.Status != tc.wantState {
				t.Fatalf("%s: status %q, want %q", tc.path, out.Status, tc.wantState)
			}
		})
	}
}

// TestBlockedLoginNamesReason: after the right password a NemID blocked for each reason is
// refused 403 blocked, the JSON error naming the reason (error.reason, and in the message).
func TestBlockedLoginNamesReason(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	for _, tc := range []struct{ reason, names string }{
		{"misuse", "misuse"}, {"lost_card", "lost"}, {"operator", "blocked by NemID support"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			t.Parallel()
			c := p.issueCitizen(t, freshCPR(), "Karen Jensen")
			p.activate(t, bank, c)
			p.block(t, c.UserID, tc.reason)
			l := p.newBrowser(t).authorize(t, bank)
			r := l.postRaw("password", map[string]string{"username": c.UserID, "password": c.Password})
			var v struct {
				Step  string `json:"step"`
				Error struct {
					Code, Message, Reason string
				} `json:"error"`
			}
			if err := json.Unmarshal(r.Body, &v); err != nil {
				t.Fatalf("%s: %v", r, err)
			}
			if r.Status != http.StatusForbidden || v.Error.Code != "blocked" || v.Error.Reason != tc.reason || !strings.Contains(v.Error.Message, tc.names) {
				t.Fatalf("blocked for %s: %s", tc.reason, r)
			}
		})
	}
}

// TestBlockEndsSessionsAndGrants: a block ends the citizen's SSO session and grants at once,
// whatever its reason: an authorize in the logged-in browser asks for a login (prompt=none
// answers login_required), a refresh answers invalid_grant, userinfo with an access token
// issued before answers 401; an unblock brings none of them back (also when none was tried
// while blocked), and a fresh login works.
func TestBlockEndsSessionsAndGrants(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile", "offline_access"), "openid", "profile", "offline_access")
	for _, tc := range []struct {
		reason string
		// whileBlocked: the session and tokens are tried while blocked too (which revokes the
		// grant on the way), else only after the unblock.
		whileBlocked bool
	}{
		{"misuse", true}, {"lost_card", true}, {"operator", true}, {"misuse", false}, {"lost_card", false},
	} {
		reason := tc.reason
		name := reason + "/tried while blocked"
		if !tc.whileBlocked {
			name = reason + "/first tried after the unblock"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := p.issueCitizen(t, freshCPR(), "Karen Jensen")
			p.activate(t, bank, c)
			b := p.newBrowser(t)
			tok := b.login(t, bank, c)
			// The session works before the block.
			if l := b.authorize(t, bank, withParam("prompt", "none")); l.Back == nil || l.Back.Query().Get("code") == "" {
				t.Fatalf("the SSO session does not work before the block: %v %+v", l.Back, l.View)
			}
			p.block(t, c.UserID, reason)
			ended := func(when string) {
				t.Helper()
				if l := b.authorize(t, bank); l.Back != nil || l.View.Step != "password" {
					t.Fatalf("%s: an authorize in the logged-in browser: back %v, step %q; want a login", when, l.Back, l.View.Step)
				}
				if l := b.authorize(t, bank, withParam("prompt", "none")); l.Back == nil || l.Back.Query().Get("error") != "login_required" {
					t.Fatalf("%s: prompt=none: back %v, want login_required", when, l.Back)
				}
				if _, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, tok.RefreshToken, "", ""); !isOAuthError(err, "invalid_grant") {
					t.Fatalf("%s: refresh: %v, want invalid_grant", when, err)
				}
				if st := userinfoStatus(t, p, bank, tok.AccessToken); st != http.StatusUnauthorized {
					t.Fatalf("%s: userinfo with the access token from before: %d, want 401", when, st)
				}
			}
			if tc.whileBlocked {
				ended("blocked")
			}
			if code, out := p.adminCall(t, "/admin/v1/citizens/"+c.UserID+"/unblock", nil); code != http.StatusOK || out.Status != "active" {
				t.Fatalf("unblock: %d %+v", code, out)
			}
			ended("unblocked")
			fresh := b.login(t, bank, c)
			if st := userinfoStatus(t, p, bank, fresh.AccessToken); st != http.StatusOK {
				t.Fatalf("userinfo after a fresh login: %d", st)
			}
			if _, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), bank, fresh.RefreshToken, "", ""); err != nil {
				t.Fatalf("refresh after a fresh login: %v", err)
			}
		})
	}
}

func userinfoStatus(t *testing.T, p *IdP, r *RP, access string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, r.UserinfoEndpoint(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := p.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestTemporaryPasswordLiftsLockout: a NemID locked after failed passwords is not unblocked
// (409), but a temporary password lifts the lockout: the old password is refused, the
// temporary one logs in and asks for a new password, which then logs in.
func TestTemporaryPasswordLiftsLockout(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	p.activate(t, bank, c)
	old := c.Password
	p.lockOut(t, bank, c)
	if code, out := p.adminCall(t, "/admin/v1/citizens/"+c.UserID+"/unblock", nil); code != http.StatusConflict || out.Error == nil || out.Error.Code != "locked" {
		t.Fatalf("unblock of a lockout: %d %+v, want 409 locked", code, out)
	}
	code, out := p.adminCall(t, "/admin/v1/citizens/"+c.UserID+"/temporary-password", nil)
	if code != http.StatusOK || out.Password == "" {
		t.Fatalf("temporary password: %d %+v", code, out)
	}
	if st := p.citizenStatus(t, c.UserID); st != "active" {
		t.Fatalf("status after the temporary password: %s", st)
	}
	l := p.newBrowser(t).authorize(t, bank)
	if code, v := l.password(c, old); code != http.StatusUnauthorized || v.Error == nil || v.Error.Code != "invalid_credentials" {
		t.Fatalf("the old password after a temporary one: %d %s, want 401 invalid_credentials", code, v.Error)
	}
	c.Password = out.Password
	b := p.newBrowser(t)
	l = b.authorize(t, bank)
	l.mustPost("password", map[string]string{"username": c.UserID, "password": c.Password})
	l.requireStep("codecard")
	l.key(c)
	l.requireStep("new_password")
	l.run(c) // chooses a new password
	l.mustExchange()
	if c.Password == out.Password {
		t.Fatal("no new password was chosen")
	}
	// The temporary password is spent: the chosen one logs in, the temporary one does not.
	tmp := &Citizen{UserID: c.UserID, Password: out.Password}
	if code, v := p.newBrowser(t).authorize(t, bank).password(tmp, out.Password); code != http.StatusUnauthorized {
		t.Fatalf("the temporary password after the new one was chosen: %d %s", code, v.Error)
	}
	p.newBrowser(t).login(t, bank, c)
}

// TestBlockRacesRightPassword: a block and the right password answered at once (lined up at
// a barrier): whichever wins, the login does not finish: the password is refused blocked, or
// the key after it is.
func TestBlockRacesRightPassword(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	for i := range 6 {
		c := p.issueCitizen(t, freshCPR(), "Karen Jensen")
		p.activate(t, bank, c)
		l := p.newBrowser(t).authorize(t, bank)
		body, _ := json.Marshal(map[string]string{"reason": "misuse"})
		start := make(chan struct{})
		var wg sync.WaitGroup
		var pwStatus int
		var pwView View
		var blockStatus int
		wg.Go(func() {
			<-start
			pwStatus, pwView = l.password(c, c.Password)
		})
		wg.Go(func() {
			<-start
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, p.URL+"/admin/v1/citizens/"+c.UserID+"/block", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+p.AdminToken)
			req.Header.Set("Content-Type", "application/json")
			if resp, err := p.http.Do(req); err == nil {
				blockStatus = resp.StatusCode
				resp.Body.Close()
			}
		})
		close(start)
		wg.Wait()
		if blockStatus != http.StatusOK {
			t.Fatalf("round %d: block: %d", i, blockStatus)
		}
		switch {
		case pwStatus == http.StatusForbidden && pwView.Error != nil && pwView.Error.Code == "blocked":
		case pwStatus == http.StatusOK && pwView.Step == "codecard":
			k := c.Keys[pwView.KeyNumber]
			code, v := l.post("codecard", map[string]string{"key": k})
			if code != http.StatusForbidden || v.Error == nil || v.Error.Code != "blocked" || v.Step == "done" {
				t.Fatalf("round %d: the key after a password that beat the block: %d step %q %s, want 403 blocked", i, code, v.Step, v.Error)
			}
		default:
			t.Fatalf("round %d: the right password racing a block: %d step %q %s", i, pwStatus, pwView.Step, pwView.Error)
		}
		if st := p.citizenStatus(t, c.UserID); st != "blocked" {
			t.Fatalf("round %d: status %s after the block", i, st)
		}
	}
}

// TestGuardianBlockEndsWardGrants: a guardian's block ends the grants the guardian holds for a
// ward as well (refresh invalid_grant, userinfo 401), and the unblock does not bring them back.
func TestGuardianBlockEndsWardGrants(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	kommune := p.relyingParty(t, p.registerOnBehalfClient(t, "openid", "profile", "offline_access"), "openid", "profile", "offline_access")
	guardian := p.issueCitizen(t, freshCPR(), "Grete Værge")
	ward := p.issueCitizen(t, freshCPR(), "Mads Myndling")
	p.activate(t, kommune, guardian)
	p.guardianship(t, guardian, ward, "full")
	tok := p.newBrowser(t).loginActingAs(t, kommune, guardian, "Mads Myndling")
	p.block(t, guardian.UserID, "misuse")
	if code, out := p.adminCall(t, "/admin/v1/citizens/"+guardian.UserID+"/unblock", nil); code != http.StatusOK || out.Status != "active" {
		t.Fatalf("unblock: %d %+v", code, out)
	}
	if st := userinfoStatus(t, p, kommune, tok.AccessToken); st != http.StatusUnauthorized {
		t.Fatalf("userinfo of the ward's grant after the guardian's block: %d, want 401", st)
	}
	if _, err := rp.RefreshTokens[*oidc.IDTokenClaims](t.Context(), kommune, tok.RefreshToken, "", ""); !isOAuthError(err, "invalid_grant") {
		t.Fatalf("refresh of the ward's grant after the guardian's block: %v, want invalid_grant", err)
	}
}
