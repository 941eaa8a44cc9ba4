package idp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/idp"
	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/keyapp/deviceclient"
	"github.com/nemidp/nemidp/keys/device"
	"github.com/nemidp/nemidp/keys/password"
)

const (
	auditTokenBS   = "bs-token-0123456789abcdefghij"
	auditTokenBank = "bank-token-0123456789abcdefgh"
	auditCPR       = "0303701234"
	auditCPR2      = "0404801234"
	auditUnknown   = "0505901234" // a CPR number nobody has
	auditNewPw     = "Audit2026nemid"
	auditWrongPw   = "Wrong2026guess"
	auditSecret    = "audit-client-secret-0123456789"
)

// auditServer is the whole IdP with two operator tokens, its audit trail kept in rec.
func auditServer(t *testing.T) (*testServer, *audit.Recorder) {
	t.Helper()
	rec := &audit.Recorder{}
	s := newTestServerWith(t, func(cfg *config.Config) {
		cfg.AdminToken = "borgerservice:" + auditTokenBS + ",bank.dk:" + auditTokenBank
	}, idp.Options{PasswordParams: password.TestParams, AuditOut: rec})
	return s, rec
}

// call sends a JSON request and answers the status and the decoded body.
func call(t *testing.T, c *http.Client, method, u string, hdr map[string]string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, u, rd)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// browserLogin is one login in a browser: authorize, then the login page's view.
type browserLogin struct {
	t     *testing.T
	br    *http.Client
	login string
	csrf  string
}

func startLogin(t *testing.T, s *testServer) *browserLogin {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	br := noRedirects(jar)
	_, ch := pkce()
	resp, err := br.Get(s.base + "/authorize?" + url.Values{"client_id": {"bank"}, "redirect_uri": {"http://127.0.0.1:9/cb"},
		"response_type": {"code"}, "scope": {"openid"}, "state": {"s"}, "code_challenge": {ch},
		"code_challenge_method": {"S256"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	l := &browserLogin{t: t, br: br, login: s.base + resp.Header.Get("Location")}
	_, view := call(t, br, "GET", l.login, nil, nil)
	l.csrf, _ = view["csrf_token"].(string)
	if l.csrf == "" {
		t.Fatalf("login page: %v", view)
	}
	return l
}

func (l *browserLogin) answer(step string, body any, wantStatus int) map[string]any {
	l.t.Helper()
	st, view := call(l.t, l.br, "POST", l.login+"/"+step, map[string]string{"X-CSRF-Token": l.csrf}, body)
	if st != wantStatus {
		l.t.Fatalf("POST %s: %d %v, want %d", step, st, view, wantStatus)
	}
	return view
}

// TestAuditTrail runs every audited event once against the whole server and checks the line
// of each (who, what, user_id, ip, request_id, detail), and that no line holds any secret the
// test used: passwords, card keys, CPR numbers, operator tokens, the client secret, device
// JWTs, the CSRF token.
func TestAuditTrail(t *testing.T) {
	t.Parallel()
	s, rec := auditServer(t)
	ctx := context.Background()
	hc := &http.Client{Timeout: 30 * time.Second}
	op := func(token, method, path string, body any, want int) map[string]any {
		t.Helper()
		st, out := call(t, hc, method, s.base+path, map[string]string{"Authorization": "Bearer " + token, "X-Request-Id": "rid-" + method}, body)
		if st != want {
			t.Fatalf("%s %s: %d %v, want %d", method, path, st, out, want)
		}
		return out
	}
	secrets := []string{auditTokenBS, auditTokenBank, auditSecret, auditCPR, "030370-1234", auditCPR2, "040480-1234",
		auditUnknown, "050590-1234", auditNewPw, auditWrongPw, "eyJ"}

	// Operator calls.
	op(auditTokenBank, "POST", "/admin/v1/clients", map[string]any{"client_id": "bank", "redirect_uris": []string{"http://127.0.0.1:9/cb"},
		"secret": auditSecret, "scopes": []string{"openid"}}, http.StatusCreated)
	issued := op(auditTokenBS, "POST", "/admin/v1/citizens", map[string]any{"cpr": auditCPR, "name": "Audit Borger"}, http.StatusCreated)
	uid := issued["user_id"].(string)
	actPw := issued["activation_password"].(string)
	card := issued["card"].(map[string]any)
	serial := card["serial"].(string)
	keys := map[string]string{}
	for _, k := range card["keys"].([]any) {
		k := k.(map[string]any)
		keys[k["number"].(string)] = k["key"].(string)
	}
	secrets = append(secrets, actPw)
	ward := op(auditTokenBS, "POST", "/admin/v1/citizens", map[string]any{"cpr": auditCPR2, "name": "Bank Borger", "kind": "bank"}, http.StatusCreated)
	wardID := ward["user_id"].(string)
	secrets = append(secrets, ward["activation_password"].(string))
	op(auditTokenBank, "POST", "/admin/v1/citizens/"+wardID+"/oces", map[string]any{"id_check": "photo"}, http.StatusOK)
	op(auditTokenBank, "POST", "/admin/v1/citizens/"+uid+"/renew", nil, http.StatusOK)
	g := op(auditTokenBS, "POST", "/admin/v1/guardianships", map[string]any{"guardian": uid, "ward": wardID, "kind": "full"}, http.StatusCreated)
	op(auditTokenBS, "DELETE", "/admin/v1/guardianships/"+g["id"].(string), nil, http.StatusOK)
	op(auditTokenBS, "GET", "/admin/v1/citizens/"+auditUnknown, nil, http.StatusNotFound) // a CPR number typed for a user id
	op("bs-token-wrong", "GET", "/admin/v1/citizens/"+uid, nil, http.StatusUnauthorized)

	// A login: a wrong password, an unknown user ID (a CPR number), the temporary password, a
	// wrong key, the right one, the new password.
	l := startLogin(t, s)
	l.answer("password", map[string]string{"username": uid, "password": auditWrongPw}, http.StatusUnauthorized)
	l.answer("password", map[string]string{"username": auditUnknown, "password": auditWrongPw}, http.StatusUnauthorized)
	view := l.answer("password", map[string]string{"username": auditCPR, "password": actPw}, http.StatusOK)
	num := view["key_number"].(string)
	wrong := "000000"
	if keys[num] == wrong {
		wrong = "000001"
	}
	l.answer("codecard", map[string]string{"key": wrong}, http.StatusUnauthorized)
	view = l.answer("codecard", map[string]string{"key": keys[num]}, http.StatusOK)
	if view["step"] != "new_password" {
		t.Fatalf("after the key: %v", view)
	}
	if view = l.answer("new-password", map[string]string{"password": auditNewPw}, http.StatusOK); view["step"] != "done" {
		t.Fatalf("after the new password: %v", view)
	}

	// A key-app activation and logins approved, denied and answered with the wrong code.
	k, err := device.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dev := &deviceclient.Device{Base: s.base, Key: k, HTTP: hc}
	if _, err := dev.BeginActivation(ctx, uid, auditWrongPw); err == nil {
		t.Fatal("activation with a wrong password went on")
	}
	a, err := dev.BeginActivation(ctx, uid, auditNewPw)
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.CompleteActivation(ctx, a, keys[a.KeyNumber], "phone"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ decision, outcome string }{{device.Approve, "approved"}, {device.Deny, "denied"}, {device.Approve, "wrong_binding_code"}} {
		l := startLogin(t, s)
		view := l.answer("password", map[string]string{"username": uid, "password": auditNewPw}, http.StatusOK)
		code, _ := view["binding_code"].(string)
		reqs, err := dev.Requests(ctx, 0)
		if err != nil || len(reqs) != 1 {
			t.Fatalf("requests: %v %+v", err, reqs)
		}
		if tc.outcome == "wrong_binding_code" {
			for _, c := range reqs[0].BindingCodes {
				if c != code {
					code = c
					break
				}
			}
		}
		err = dev.Decide(ctx, reqs[0].ID, tc.decision, code)
		if (err == nil) != (tc.outcome != "wrong_binding_code") {
			t.Fatalf("%s: %v", tc.outcome, err)
		}
		if tc.outcome == "approved" {
			if v := l.answer("keyapp", map[string]string{}, http.StatusOK); v["step"] != "done" {
				t.Fatalf("after the approval: %v", v)
			}
		}
	}
	op(auditTokenBS, "DELETE", "/admin/v1/citizens/"+uid+"/devices/"+dev.ID, nil, http.StatusNoContent)
	op(auditTokenBank, "POST", "/admin/v1/citizens/"+uid+"/block", map[string]any{"reason": "misuse"}, http.StatusOK)
	op(auditTokenBank, "POST", "/admin/v1/citizens/"+uid+"/block", map[string]any{"reason": "lost_card"}, http.StatusOK)
	op(auditTokenBS, "POST", "/admin/v1/citizens/"+uid+"/unblock", nil, http.StatusOK)
	// The right password of a NemID past its expiry: refused, and the line names the citizen
	// who proved it (a block refuses before any password is checked, so names nobody).
	rkey := s.Store.Prefix() + "{c:" + uid + "}"
	exp, _ := s.Store.Redis().HGet(ctx, rkey, "expires_at").Result()
	s.Store.Redis().HSet(ctx, rkey, "expires_at", "2020-01-01")
	startLogin(t, s).answer("password", map[string]string{"username": uid, "password": auditNewPw}, http.StatusForbidden)
	s.Store.Redis().HSet(ctx, rkey, "expires_at", exp)
	tmp := op(auditTokenBS, "POST", "/admin/v1/citizens/"+uid+"/temporary-password", nil, http.StatusOK)
	temporary, _ := tmp["password"].(string)
	if temporary == "" {
		t.Fatalf("temporary password: %v", tmp)
	}
	secrets = append(secrets, temporary)

	// Every line is JSON and holds no secret.
	all := rec.String()
	for _, line := range rec.Lines() {
		if line == nil || line["audit"] != true || line["msg"] != "audit" {
			t.Fatalf("not an audit JSON line in %s", all)
		}
		if _, err := time.Parse(time.RFC3339, line["at"].(string)); err != nil || !strings.HasSuffix(line["at"].(string), "Z") {
			t.Errorf("at %v is not RFC 3339 UTC", line["at"])
		}
		if line["ip"] != "127.0.0.1" || line["request_id"] == "" {
			t.Errorf("line without ip or request id: %v", line)
		}
	}
	for _, sec := range append(secrets, l.csrf) {
		if strings.Contains(all, sec) {
			t.Errorf("the audit trail holds the secret %q", sec)
		}
	}
	for n, key := range keys {
		if strings.Contains(all, `"`+key+`"`) || strings.Contains(all, ":"+key) {
			t.Errorf("the audit trail holds the key of %s", n)
		}
	}

	type want struct {
		what, by, who, user string
		detail              map[string]any
	}
	wants := []want{
		{"client.registered", "operator", "bank.dk", "", map[string]any{"client_id": "bank"}},
		{"citizen.issued", "operator", "borgerservice", uid, map[string]any{"card_serial": serial}},
		{"citizen.issued", "operator", "borgerservice", wardID, nil},
		{"oces.attached", "operator", "bank.dk", wardID, nil},
		{"citizen.renewed", "operator", "bank.dk", uid, nil},
		{"guardianship.created", "operator", "borgerservice", wardID, map[string]any{"guardian": uid, "kind": "full", "guardianship_id": g["id"]}},
		{"guardianship.ended", "operator", "borgerservice", wardID, map[string]any{"guardian": uid}},
		{"operator.refused", "operator", "borgerservice", "", map[string]any{"code": "not_found", "status": 404.0}},
		{"operator.refused", "anonymous", "", uid, map[string]any{"code": "unauthorized", "status": 401.0}},
		{"login.password", "anonymous", "", uid, map[string]any{"outcome": "invalid_credentials", "client_id": "bank"}},
		{"login.password", "anonymous", "", "", map[string]any{"outcome": "unknown_user", "code": "invalid_credentials"}},
		{"login.password", "citizen", uid, uid, map[string]any{"outcome": "ok", "client_id": "bank"}},
		{"login.codecard", "citizen", uid, uid, map[string]any{"outcome": "wrong_key"}},
		{"login.codecard", "citizen", uid, uid, map[string]any{"outcome": "ok"}},
		{"login.new_password", "citizen", uid, uid, map[string]any{"outcome": "ok"}},
		{"login.done", "citizen", uid, uid, map[string]any{"client_id": "bank", "amr": []any{"pwd", "otp"}}},
		{"keyapp.activation.password", "anonymous", "", uid, map[string]any{"outcome": "invalid_credentials"}},
		{"keyapp.activation.password", "citizen", uid, uid, map[string]any{"outcome": "ok", "card_serial": serial}},
		{"device.added", "citizen", uid, uid, map[string]any{"device_id": dev.ID}},
		{"keyapp.activation.codecard", "citizen", uid, uid, map[string]any{"outcome": "ok"}},
		{"keyapp.decision", "citizen", uid, uid, map[string]any{"outcome": "approved", "device_id": dev.ID}},
		{"login.done", "citizen", uid, uid, map[string]any{"client_id": "bank", "amr": []any{"pwd", "swk", "user"}}},
		{"keyapp.decision", "citizen", uid, uid, map[string]any{"outcome": "denied"}},
		{"keyapp.decision", "citizen", uid, uid, map[string]any{"outcome": "wrong_binding_code"}},
		{"device.removed", "operator", "borgerservice", uid, map[string]any{"device_id": dev.ID}},
		{"citizen.blocked", "operator", "bank.dk", uid, map[string]any{"reason": "misuse"}},
		{"citizen.block_reason_changed", "operator", "bank.dk", uid, map[string]any{"reason": "lost_card", "was": "misuse"}},
		{"citizen.unblocked", "operator", "borgerservice", uid, map[string]any{"status": "active"}},
		{"login.password", "citizen", uid, uid, map[string]any{"outcome": "expired"}},
		{"citizen.temporary_password", "operator", "borgerservice", uid, map[string]any{"was": "active"}},
	}
	lines := rec.Lines()
	i := 0
	for _, w := range wants {
		found := false
		for ; i < len(lines); i++ {
			if l := lines[i]; l["what"] == w.what && l["by"] == w.by && l["who"] == w.who && (l["user_id"] == w.user || l["user_id"] == nil && w.user == "") &&
				detailHas(l["detail"], w.detail) {
				found = true
				i++
				break
			}
		}
		if !found {
			t.Fatalf("no line (in order) %+v in\n%s", w, all)
		}
	}
}

func detailHas(got any, want map[string]any) bool {
	d, _ := got.(map[string]any)
	for k, v := range want {
		a, _ := json.Marshal(d[k])
		b, _ := json.Marshal(v)
		if !bytes.Equal(a, b) {
			return false
		}
	}
	return true
}
