package integrationtests

import (
	"net/http"
	"slices"
	"testing"

	"github.com/nemidp/nemidp/keys/device"
)

// wantMethod switches the login's method and requires the step it lands on, with 200.
func (l *Login) wantMethod(m, step string) View {
	l.t.Helper()
	status, v := l.method(m)
	if v.Step != step || v.Error != nil || status != http.StatusOK {
		l.t.Fatalf("switch to %s: %d %+v %s, want step %s", m, status, v, v.Error, step)
	}
	return v
}

// TestKeyAppSwitchMethods: a citizen can always switch between the app and the card: app →
// card cancels the request (the device no longer offers it; a decision on it is 409
// already_decided) and asks the card's key; card → app sends a new request with a new code.
// One login ends with a card key (amr pwd, otp), another with the app (amr pwd, swk, user).
func TestKeyAppSwitchMethods(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c, d := p.appCitizen(t, bank, "Vibeke Veksler")

	t.Run("app, card, app, card", func(t *testing.T) {
		l := p.newBrowser(t).authorize(t, bank)
		l.passwordToApp(c)
		if !slices.Equal(l.View.Methods, []string{"keyapp", "codecard"}) {
			t.Fatalf("the keyapp step offers %v, want keyapp and codecard", l.View.Methods)
		}
		first := onlyRequest(t, d)
		code := l.bindingCode()
		v := l.wantMethod("codecard", "codecard")
		if v.KeyNumber == "" || v.BindingCode != "" || !slices.Equal(v.Methods, []string{"keyapp", "codecard"}) {
			t.Fatalf("the codecard step after the app: %+v", v)
		}
		if reqs := pending(t, d); len(reqs) != 0 {
			t.Fatalf("the device still offers %+v after the switch to the card", reqs)
		}
		wantAnswer(t, "approve the cancelled request", decide(t, p, d, first.ID, decision(t, d, first.ID, device.Approve, code)),
			http.StatusConflict, "already_decided")
		if f := l.flow(); f.Step != "codecard" {
			t.Fatalf("a decision on the cancelled request moved the login to %s", f.Step)
		}
		l.wantMethod("keyapp", "keyapp")
		second := onlyRequest(t, d)
		if second.ID == first.ID {
			t.Fatal("back to the app: the old request again")
		}
		keys := p.citizen(t, c.UserID).keysLeft()
		l.wantMethod("codecard", "codecard")
		if reqs := pending(t, d); len(reqs) != 0 {
			t.Fatalf("the device still offers %+v", reqs)
		}
		l.key(c)
		l.finish()
		if tok := l.mustExchange(); !slices.Equal(tok.IDTokenClaims.AuthenticationMethodsReferences, []string{"pwd", "otp"}) {
			t.Fatalf("amr %v, want pwd otp", tok.IDTokenClaims.AuthenticationMethodsReferences)
		}
		if got := p.citizen(t, c.UserID).keysLeft(); got != keys-1 {
			t.Fatalf("keys left %d → %d", keys, got)
		}
	})

	t.Run("app, card, app", func(t *testing.T) {
		l := p.newBrowser(t).authorize(t, bank)
		l.passwordToApp(c)
		onlyRequest(t, d)
		l.wantMethod("codecard", "codecard")
		l.wantMethod("keyapp", "keyapp")
		approveAndFinish(t, p, l, d, onlyRequest(t, d))
	})

	t.Run("at most 5 requests", func(t *testing.T) {
		l := p.newBrowser(t).authorize(t, bank)
		l.passwordToApp(c)
		for range 4 {
			l.wantMethod("keyapp", "keyapp")
		}
		last := onlyRequest(t, d) // one request of one login at a time
		status, v := l.method("keyapp")
		if codeOf(v.Error) != "too_many_requests" || status != http.StatusTooManyRequests || v.Step != "keyapp" {
			t.Fatalf("a 6th request: %d %+v %s, want 429 too_many_requests at the keyapp step", status, v, v.Error)
		}
		if again := onlyRequest(t, d); again.ID != last.ID {
			t.Fatalf("the refused 6th request changed the pending one: %+v", again)
		}
		l.wantMethod("codecard", "codecard")
		l.key(c)
		l.finish()
		l.mustExchange()
	})
}

// TestKeyAppSwitchWithoutDevice: switching to the key app without an active device is 409
// no_device and leaves the login at its codecard step: for a citizen who never activated one,
// and for one whose only device was removed during the login.
func TestKeyAppSwitchWithoutDevice(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")

	refused := func(t *testing.T, l *Login, c *Citizen) {
		t.Helper()
		number := l.View.KeyNumber
		status, v := l.method("keyapp")
		if codeOf(v.Error) != "no_device" || status != http.StatusConflict || v.Step != "codecard" {
			t.Fatalf("switch to keyapp without a device: %d %+v %s, want 409 no_device", status, v, v.Error)
		}
		if f := l.flow(); f.Step != "codecard" || f.KeyNumber != number || f.Approval != nil {
			t.Fatalf("the refused switch moved the login: %s %s %+v", f.Step, f.KeyNumber, f.Approval)
		}
		l.reload()
		l.key(c)
		l.finish()
		l.mustExchange()
	}

	t.Run("never activated", func(t *testing.T) {
		t.Parallel()
		c := p.issueCitizen(t, freshCPR(), "Karl Kortmand")
		p.activate(t, bank, c)
		l := p.newBrowser(t).authorize(t, bank)
		if code, v := l.password(c, c.Password); code != http.StatusOK || v.Step != "codecard" || !slices.Equal(v.Methods, []string{"codecard"}) {
			t.Fatalf("password: %d %+v, want the codecard step offering only the card", code, v)
		}
		refused(t, l, c)
	})

	t.Run("removed during the login", func(t *testing.T) {
		t.Parallel()
		c, d := p.appCitizen(t, bank, "Rita Fjernet")
		l := p.newBrowser(t).authorize(t, bank)
		l.passwordToApp(c)
		if code := p.admin(t, http.MethodDelete, "/admin/v1/citizens/"+c.UserID+"/devices/"+d.ID, nil, nil); code != http.StatusNoContent {
			t.Fatalf("DELETE device: %d", code)
		}
		l.wantMethod("codecard", "codecard")
		refused(t, l, c)
	})
}
