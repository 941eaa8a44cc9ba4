package integrationtests

import (
	"net/http"
	"testing"
	"time"

	"github.com/nemidp/nemidp/keys/device"
)

// TestKeyAppMetrics: /metrics counts the key-app requests by event (created, approved,
// denied, expired) and the refusals by reason, on a server of this test alone.
func TestKeyAppMetrics(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	p.Server.Flows.KeyAppTTL = 2 * time.Second // before any login of this server
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	m := p.metrics(t)
	for _, e := range []string{"created", "approved", "denied", "expired"} {
		if v, ok := m[requests(e)]; !ok || v != 0 {
			t.Fatalf("%s before any login: %v (present %v), want 0", requests(e), v, ok)
		}
	}
	c, d := p.appCitizen(t, bank, "Mette Måler")

	// Approved.
	l := p.newBrowser(t).authorize(t, bank)
	l.passwordToApp(c)
	req := onlyRequest(t, d)
	wantAnswer(t, "approve", decide(t, p, d, req.ID, decision(t, d, req.ID, device.Approve, l.bindingCode())), http.StatusOK, "")
	// Denied.
	l = p.newBrowser(t).authorize(t, bank)
	l.passwordToApp(c)
	req = onlyRequest(t, d)
	wantAnswer(t, "deny", decide(t, p, d, req.ID, decision(t, d, req.ID, device.Deny, "")), http.StatusOK, "")
	// Expired, decided late.
	l = p.newBrowser(t).authorize(t, bank)
	l.passwordToApp(c)
	req = onlyRequest(t, d)
	jws := decision(t, d, req.ID, device.Approve, l.bindingCode())
	time.Sleep(time.Until(l.flow().Approval.ExpiresAt) + 100*time.Millisecond)
	wantAnswer(t, "late", decide(t, p, d, req.ID, jws), http.StatusGone, "request_expired")
	wantAnswer(t, "late again", decide(t, p, d, req.ID, jws), http.StatusConflict, "already_decided")
	l.wantPoll("keyapp", "keyapp_timeout") // the poll sees it ended: not counted again
	// A refused token.
	if r := p.keyapp(t, http.MethodGet, "/keyapp/v1/requests", "", nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("no token: %s", r)
	}

	m = p.metrics(t)
	for series, want := range map[string]float64{
		requests("created"): 3, requests("approved"): 1, requests("denied"): 1, requests("expired"): 1,
		refused("expired"): 1, refused("already_decided"): 1, refused("no_token"): 1,
		`nemidp_keyapp_activations_total{outcome="ok",step="password"}`: 1,
		`nemidp_keyapp_activations_total{outcome="ok",step="codecard"}`: 1,
	} {
		if got := m[series]; got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
}
