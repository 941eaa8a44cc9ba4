package idp_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/password"
)

// TestOutboxEndToEnd: an operator's block over the HTTP API is in GET /admin/v1/outbox at once
// as nemid_blocked, to the citizen's register address, under the NemID number and never the
// CPR number; once the citizen has an alternative address, the unblock's letter goes there.
func TestOutboxEndToEnd(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, password.TestParams)
	hc := &http.Client{Timeout: 30 * time.Second}
	op := func(method, path string, body any, want int) map[string]any {
		t.Helper()
		st, out := call(t, hc, method, s.base+path, map[string]string{"Authorization": "Bearer " + s.admin}, body)
		if st != want {
			t.Fatalf("%s %s: %d %v, want %d", method, path, st, out, want)
		}
		return out
	}
	const cpr, address = "120388-1234", "Strandvejen 10, 2900 Hellerup"
	issued := op("POST", "/admin/v1/citizens", map[string]any{"cpr": cpr, "name": "Ida Holm", "address": address}, http.StatusCreated)
	uid, _ := issued["user_id"].(string)
	op("POST", "/admin/v1/citizens/"+uid+"/block", map[string]any{"reason": "misuse"}, http.StatusOK)
	const alt = "Sommerhusvej 3, 4500 Nykøbing Sj"
	if err := s.Store.Redis().HSet(context.Background(), storetest.CitizenKey(s.Store.Prefix(), uid), "alt_address", alt).Err(); err != nil {
		t.Fatal(err)
	}
	op("POST", "/admin/v1/citizens/"+uid+"/unblock", nil, http.StatusOK)

	out := op("GET", "/admin/v1/outbox", nil, http.StatusOK)
	evs, _ := out["events"].([]any)
	var got []string
	for _, raw := range evs {
		e, _ := raw.(map[string]any)
		data, _ := e["data"].(map[string]any)
		got = append(got, strings.Join([]string{e["type"].(string), e["user_id"].(string), e["address"].(string), data["by"].(string)}, "|"))
		for _, v := range data {
			if strings.Contains(v.(string), strings.ReplaceAll(cpr, "-", "")) {
				t.Fatalf("an outbox entry holds the CPR number: %v", e)
			}
		}
	}
	want := []string{"nemid_blocked|" + uid + "|" + address + "|operator", "nemid_unblocked|" + uid + "|" + alt + "|operator"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("outbox\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if out["next"] != evs[1].(map[string]any)["id"] {
		t.Fatalf("next %v, want the last id", out["next"])
	}
}

// TestOutboxLockoutAndAddressChange: a lockout after failed passwords sends the citizen a
// nemid_blocked letter (reason failures, by system) without the login waiting for it; a change
// of the alternative address sends address_changed to where letters went before the change.
func TestOutboxLockoutAndAddressChange(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, password.TestParams)
	hc := &http.Client{Timeout: 30 * time.Second}
	op := func(method, path string, body any, want int) map[string]any {
		t.Helper()
		st, out := call(t, hc, method, s.base+path, map[string]string{"Authorization": "Bearer " + s.admin}, body)
		if st != want {
			t.Fatalf("%s %s: %d %v, want %d", method, path, st, out, want)
		}
		return out
	}
	op("POST", "/admin/v1/clients", map[string]any{"client_id": "bank", "redirect_uris": []string{"http://127.0.0.1:9/cb"},
		"secret": "bank-secret-0123456789abcdef0123", "scopes": []string{"openid"}}, http.StatusCreated)
	const address = "Strandvejen 10, 2900 Hellerup"
	issued := op("POST", "/admin/v1/citizens", map[string]any{"cpr": "130388-1234", "name": "Ida Holm", "address": address}, http.StatusCreated)
	uid, _ := issued["user_id"].(string)
	l := startLogin(t, s)
	for i := range 5 {
		want := http.StatusUnauthorized
		if i == 4 {
			want = http.StatusForbidden // locked
		}
		l.answer("password", map[string]string{"username": uid, "password": "wrong-Password-9"}, want)
	}
	const alt = "Sommerhusvej 3, 4500 Nykøbing Sj"
	ctx := context.Background()
	s.Store.Wait() // the lockout's letter is relayed in the background
	if err := s.Store.SetAltAddress(ctx, uid, alt); err != nil {
		t.Fatal(err)
	}
	evs, err := s.Store.Outbox(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		if e.UserID == uid {
			got = append(got, e.Type+"|"+e.Address+"|"+e.Data["reason"]+e.Data["cleared"]+"|"+e.Data["by"])
		}
	}
	want := []string{"nemid_blocked|" + address + "|failures|system", "address_changed|" + address + "|0|self"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("outbox\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
