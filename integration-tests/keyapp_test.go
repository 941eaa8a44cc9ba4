package integrationtests

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/keyapp/deviceclient"
	"github.com/nemidp/nemidp/keys/device"
)

// newDevice makes a device key for the IdP (not yet activated).
func (p *IdP) newDevice(t *testing.T) *deviceclient.Device {
	t.Helper()
	k, err := device.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return &deviceclient.Device{Base: p.Issuer, Key: k, HTTP: &http.Client{Timeout: 40 * time.Second}}
}

// activateDevice activates a new device for c (who has chosen their own password).
func (p *IdP) activateDevice(t *testing.T, c *Citizen, name string) *deviceclient.Device {
	t.Helper()
	d := p.newDevice(t)
	c.mu.Lock()
	defer c.mu.Unlock()
	a, err := d.BeginActivation(t.Context(), c.UserID, c.Password)
	if err != nil {
		t.Fatalf("begin activation: %v", err)
	}
	if err := d.CompleteActivation(t.Context(), a, c.Keys[a.KeyNumber], name); err != nil {
		t.Fatalf("complete activation: %v", err)
	}
	return d
}

// TestKeyAppLoginHappyPath: a citizen with an activated device logs in through zitadel's rp
// with the key app: password, then the device approves with the browser's binding code; the
// ID token verifies and says amr pwd, swk, user.
func TestKeyAppLoginHappyPath(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c := p.issueCitizen(t, freshCPR(), "Søren Appelbruger")
	p.activate(t, bank, c)
	d := p.activateDevice(t, c, "Sørens telefon")

	l := p.newBrowser(t).authorize(t, bank)
	if code, v := l.password(c, c.Password); code != http.StatusOK {
		t.Fatalf("password: %d %s", code, v.Error)
	}
	l.requireStep("keyapp")
	if l.View.BindingCode == "" { // TEMP until the web view carries it
		f, _ := p.Server.Flows.Load(t.Context(), l.View.Flow)
		l.View.BindingCode = f.Approval.Code
	}
	if len(l.View.BindingCode) != 2 {
		t.Fatalf("binding code %q", l.View.BindingCode)
	}
	reqs, err := d.Requests(t.Context(), time.Second)
	if err != nil || len(reqs) != 1 {
		t.Fatalf("requests: %v %+v", err, reqs)
	}
	if !slices.Contains(reqs[0].BindingCodes, l.View.BindingCode) || len(reqs[0].BindingCodes) != 3 {
		t.Fatalf("device offered %v, browser shows %s", reqs[0].BindingCodes, l.View.BindingCode)
	}
	if err := d.Decide(t.Context(), reqs[0].ID, device.Approve, l.View.BindingCode); err != nil {
		t.Fatalf("approve: %v", err)
	}
	v := l.reload() // TEMP: poll when the web route lands
	if v.Step != "done" {
		t.Fatalf("after approval: %+v", v)
	}
	l.finish()
	tok := l.mustExchange()
	if got := tok.IDTokenClaims.AuthenticationMethodsReferences; !slices.Equal(got, []string{"pwd", "swk", "user"}) {
		t.Fatalf("amr = %v", got)
	}
}
