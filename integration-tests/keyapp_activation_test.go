package integrationtests

import (
	"encoding/base64"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/idp/keyapp/deviceclient"
	"github.com/nemidp/nemidp/keys/device"
)

// beginActivation starts an activation for c with its password and requires the key number.
func beginActivation(t *testing.T, d *deviceclient.Device, c *Citizen) *deviceclient.Activation {
	t.Helper()
	a, err := d.BeginActivation(t.Context(), c.UserID, c.Password)
	if err != nil {
		t.Fatalf("begin activation: %v", err)
	}
	if a.ID == "" || a.KeyNumber == "" || a.CardSerial != c.Serial {
		t.Fatalf("activation %+v", a)
	}
	return a
}

// unchanged requires the operator view to show the card's keys and active devices as before.
func unchanged(t *testing.T, p *IdP, c *Citizen, before citizenView, what string) {
	t.Helper()
	after := p.citizen(t, c.UserID)
	if after.keysLeft() != before.keysLeft() || !slices.Equal(after.active(), before.active()) || len(after.Devices) != len(before.Devices) {
		t.Fatalf("%s changed the NemID: keys left %d → %d, active devices %v → %v", what,
			before.keysLeft(), after.keysLeft(), before.active(), after.active())
	}
}

// TestKeyAppActivationAddsDevice: password, then a card key: the device is active at once
// (the operator sees it with its name and key thumbprint), exactly one key is spent, and a
// device_added event is recorded for the citizen's notices.
func TestKeyAppActivationAddsDevice(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c := p.issueCitizen(t, freshCPR(), "Ida Aktiv")
	p.activate(t, bank, c)
	before := p.citizen(t, c.UserID)

	d := p.newDevice(t)
	a := beginActivation(t, d, c)
	if err := d.CompleteActivation(t.Context(), a, c.Keys[a.KeyNumber], "Idas telefon"); err != nil {
		t.Fatalf("complete activation: %v", err)
	}
	if !strings.HasPrefix(d.ID, c.UserID+".") {
		t.Fatalf("device id %q does not name the citizen", d.ID)
	}
	v := p.citizen(t, c.UserID)
	if v.keysLeft() != before.keysLeft()-1 || !slices.Equal(v.active(), []string{d.ID}) || v.Failures != 0 {
		t.Fatalf("after activation: %+v (keys before %d)", v, before.keysLeft())
	}
	if dv := v.Devices[0]; dv.Name != "Idas telefon" || dv.Thumbprint != device.JWKOf(&d.Key.PublicKey).Thumbprint() {
		t.Fatalf("operator sees %+v", dv)
	}
	var list struct {
		Devices []struct {
			ID     string `json:"device_id"`
			Status string `json:"status"`
		} `json:"devices"`
	}
	if code := p.admin(t, http.MethodGet, "/admin/v1/citizens/"+c.UserID+"/devices", nil, &list); code != http.StatusOK ||
		len(list.Devices) != 1 || list.Devices[0].ID != d.ID || list.Devices[0].Status != "active" {
		t.Fatalf("GET …/devices: %d %+v", code, list)
	}
	evs, err := p.Store.Events(t.Context(), c.UserID, 10)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range evs {
		if e.Type == "device_added" {
			n++
			if e.Fields["device_id"] != d.ID || e.Fields["name"] != "Idas telefon" || e.Fields["at"] == "" {
				t.Fatalf("device_added event %+v", e)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d device_added events, want 1: %+v", n, evs)
	}
	// The device works at once.
	if reqs := pending(t, d); len(reqs) != 0 {
		t.Fatalf("a new device sees requests: %+v", reqs)
	}
}

// TestKeyAppActivationNeedsTwoUnusedKeys: the activation uses a key and the citizen must
// still be able to log in with the card: a card with 2 unused keys activates (1 left), one
// with 1 is refused 409 too_few_keys after the password, and its last key is not spent; one
// with none is refused 403 no_keys_left.
func TestKeyAppActivationNeedsTwoUnusedKeys(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	for _, tc := range []struct {
		left   int
		status int
		code   string
	}{
		{2, http.StatusCreated, ""},
		{1, http.StatusConflict, "too_few_keys"},
		{0, http.StatusForbidden, "no_keys_left"},
	} {
		t.Run(strconv.Itoa(tc.left)+" keys left", func(t *testing.T) {
			t.Parallel()
			c := p.issueCitizen(t, freshCPR(), "Kaj Kortslut")
			p.activate(t, bank, c)
			p.useKeys(t, c, tc.left)
			before := p.citizen(t, c.UserID)
			d := p.newDevice(t)
			a, err := d.BeginActivation(t.Context(), c.UserID, c.Password)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("begin with %d keys left: %v", tc.left, err)
				}
				if err := d.CompleteActivation(t.Context(), a, c.Keys[a.KeyNumber], "Kajs telefon"); err != nil {
					t.Fatalf("complete with %d keys left: %v", tc.left, err)
				}
				if v := p.citizen(t, c.UserID); v.keysLeft() != tc.left-1 || len(v.active()) != 1 {
					t.Fatalf("after activation: keys left %d, devices %v", v.keysLeft(), v.active())
				}
				return
			}
			apiErr(t, "begin activation", err, tc.status, tc.code)
			unchanged(t, p, c, before, "a refused activation")
			if v := p.citizen(t, c.UserID); v.Failures != 0 || v.Status != "active" {
				t.Fatalf("a refused activation counted against the NemID: %+v", v)
			}
		})
	}
}

// TestKeyAppActivationFourthDevice: with 3 active devices a 4th is refused 409
// too_many_devices after the password, before any key; an activation begun while a place was
// free is refused at its key once another took the last place, and its key is not spent; a
// removed device frees its place.
func TestKeyAppActivationFourthDevice(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c := p.issueCitizen(t, freshCPR(), "Tove Tretelefon")
	p.activate(t, bank, c)
	first := p.activateDevice(t, c, "en")
	p.activateDevice(t, c, "to")

	// Two activations begun for the last place; the second to answer its key is refused.
	late, early := p.newDevice(t), p.newDevice(t)
	la, ea := beginActivation(t, late, c), beginActivation(t, early, c)
	if err := early.CompleteActivation(t.Context(), ea, c.Keys[ea.KeyNumber], "tre"); err != nil {
		t.Fatalf("the third device: %v", err)
	}
	before := p.citizen(t, c.UserID)
	if len(before.active()) != 3 {
		t.Fatalf("active devices %v, want 3", before.active())
	}
	err := late.CompleteActivation(t.Context(), la, c.Keys[la.KeyNumber], "fire")
	apiErr(t, "the 4th device's key", err, http.StatusConflict, "too_many_devices")
	unchanged(t, p, c, before, "the 4th device's key")

	// A 4th begun now is refused after the password.
	_, err = p.newDevice(t).BeginActivation(t.Context(), c.UserID, c.Password)
	apiErr(t, "begin a 4th device", err, http.StatusConflict, "too_many_devices")
	unchanged(t, p, c, before, "begin a 4th device")

	// Removing it under another citizen's id removes nothing.
	other := p.issueCitizen(t, freshCPR(), "Otto Anden")
	var refusal map[string]any
	if code := p.admin(t, http.MethodDelete, "/admin/v1/citizens/"+other.UserID+"/devices/"+first.ID, nil, &refusal); code != http.StatusNotFound {
		t.Fatalf("DELETE a device under another citizen: %d %v, want 404", code, refusal)
	}
	unchanged(t, p, c, before, "DELETE under another citizen")
	if _, err := first.Requests(t.Context(), 0); err != nil {
		t.Fatalf("the device after a DELETE under another citizen: %v", err)
	}

	// Removing one frees its place.
	if code := p.admin(t, http.MethodDelete, "/admin/v1/citizens/"+c.UserID+"/devices/"+first.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE device: %d", code)
	}
	p.activateDevice(t, c, "fire")
	if v := p.citizen(t, c.UserID); len(v.active()) != 3 || len(v.Devices) != 4 || slices.Contains(v.active(), first.ID) {
		t.Fatalf("after removing one and adding one: %+v", v.Devices)
	}
}

// TestKeyAppActivationRaceForLastPlace: activations completing at once for the last of the 3
// places: exactly one adds its device. Through the API every activation of one card is asked
// the card's one pending key number, so the key alone decides the race; to race the cap
// itself, each activation is asked a number of its own (set through the store between the
// begins), so every key is right and only the step that adds the device can refuse.
func TestKeyAppActivationRaceForLastPlace(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	const racers = 8
	for _, ownNumbers := range []bool{false, true} {
		name := "one pending number"
		if ownNumbers {
			name = "own numbers"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := p.issueCitizen(t, freshCPR(), "Rasmus Racer")
			p.activate(t, bank, c)
			p.activateDevice(t, c, "en")
			p.activateDevice(t, c, "to")
			cardKey := p.Prefix + "{c:" + c.UserID + "}:card:" + c.Serial
			devs := make([]*deviceclient.Device, racers)
			acts := make([]*deviceclient.Activation, racers)
			numbers := map[string]bool{}
			for i := range racers {
				devs[i] = p.newDevice(t)
				acts[i] = beginActivation(t, devs[i], c)
				numbers[acts[i].KeyNumber] = true
				if ownNumbers {
					// The next activation is asked another unused number.
					for n := range c.Keys {
						if ok, _ := p.Store.KeyUnused(t.Context(), c.UserID, c.Serial, n); ok && !numbers[n] {
							if err := p.Store.Redis().HSet(t.Context(), cardKey, "pending", n).Err(); err != nil {
								t.Fatal(err)
							}
							break
						}
					}
				}
			}
			if want := map[bool]int{false: 1, true: racers}[ownNumbers]; len(numbers) != want {
				t.Fatalf("the activations were asked %d key numbers, want %d", len(numbers), want)
			}
			before := p.citizen(t, c.UserID)
			errs := barrier(racers, func(i int) error {
				return devs[i].CompleteActivation(t.Context(), acts[i], c.Keys[acts[i].KeyNumber], "racer "+strconv.Itoa(i))
			})
			won := 0
			for i, err := range errs {
				if err == nil {
					won++
					continue
				}
				e, ok := err.(*deviceclient.Error)
				switch {
				case !ok || e.Status != http.StatusConflict:
					t.Errorf("racer %d: %v, want 409", i, err)
				case ownNumbers && e.Code != "too_many_devices":
					t.Errorf("racer %d: %v, want too_many_devices (every key was right)", i, err)
				case !ownNumbers && e.Code != "used_key" && e.Code != "too_many_devices":
					t.Errorf("racer %d: %v, want used_key or too_many_devices", i, err)
				}
			}
			v := p.citizen(t, c.UserID)
			if won != 1 || len(v.active()) != 3 {
				t.Fatalf("%d of %d activations won the last place; active devices %v, want 3", won, racers, v.active())
			}
			if !ownNumbers && v.keysLeft() != before.keysLeft()-1 {
				t.Fatalf("keys left %d → %d, want one key spent", before.keysLeft(), v.keysLeft())
			}
		})
	}
}

// TestKeyAppActivationBlockedNemID: a blocked NemID activates nothing: blocked by an operator
// (403 blocked), locked after failed attempts (403 locked, the password not even checked),
// expired (403 expired), or blocked between the password and the key (403 blocked, the key not
// spent).
func TestKeyAppActivationBlockedNemID(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	for _, tc := range []struct {
		name, status, reason string
		code                 string
		http                 int
	}{
		{"operator block", "blocked", "misuse", "blocked", http.StatusForbidden},
		{"locked", "blocked", "failures", "locked", http.StatusForbidden},
		{"expired", "expired", "", "expired", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := p.issueCitizen(t, freshCPR(), "Bent Blokeret")
			p.activate(t, bank, c)
			p.setStatus(t, c.UserID, tc.status, tc.reason)
			before := p.citizen(t, c.UserID)
			_, err := p.newDevice(t).BeginActivation(t.Context(), c.UserID, c.Password)
			apiErr(t, "begin activation", err, tc.http, tc.code)
			unchanged(t, p, c, before, "a blocked NemID's activation")
		})
	}
	t.Run("blocked after the password", func(t *testing.T) {
		t.Parallel()
		c := p.issueCitizen(t, freshCPR(), "Bodil Blokeret")
		p.activate(t, bank, c)
		d := p.newDevice(t)
		a := beginActivation(t, d, c)
		p.setStatus(t, c.UserID, "blocked", "misuse")
		before := p.citizen(t, c.UserID)
		err := d.CompleteActivation(t.Context(), a, c.Keys[a.KeyNumber], "Bodils telefon")
		apiErr(t, "complete activation", err, http.StatusForbidden, "blocked")
		unchanged(t, p, c, before, "a blocked NemID's key")
		if v := p.citizen(t, c.UserID); v.Failures != 0 {
			t.Fatalf("the key of a blocked NemID counted as a failure: %+v", v)
		}
	})
}

// TestKeyAppActivationWrongPassword: a wrong password is 401 invalid_credentials with
// attempts_left, and counts toward the NemID's lockout like a login's: the 5th locks it (403
// locked), and then the right password activates nothing either.
func TestKeyAppActivationWrongPassword(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c := p.issueCitizen(t, freshCPR(), "Vera Forkert")
	p.activate(t, bank, c)
	before := p.citizen(t, c.UserID)
	d := p.newDevice(t)
	for i := 1; i <= 4; i++ {
		_, err := d.BeginActivation(t.Context(), c.UserID, "Forkert"+randHex(2)+"9")
		e := apiErr(t, "wrong password "+strconv.Itoa(i), err, http.StatusUnauthorized, "invalid_credentials")
		if e.AttemptsLeft == nil || *e.AttemptsLeft != 5-i {
			t.Fatalf("wrong password %d: attempts_left %v, want %d", i, e.AttemptsLeft, 5-i)
		}
		if v := p.citizen(t, c.UserID); v.Failures != i || v.Status != "active" {
			t.Fatalf("after wrong password %d the operator sees %d failures (%s)", i, v.Failures, v.Status)
		}
	}
	_, err := d.BeginActivation(t.Context(), c.UserID, "Forkert"+randHex(2)+"9")
	apiErr(t, "wrong password 5", err, http.StatusForbidden, "locked")
	if v := p.citizen(t, c.UserID); v.Status != "blocked" || v.BlockReason != "failures" {
		t.Fatalf("after 5 wrong passwords: %s (%s)", v.Status, v.BlockReason)
	}
	_, err = d.BeginActivation(t.Context(), c.UserID, c.Password)
	apiErr(t, "the right password of a locked NemID", err, http.StatusForbidden, "locked")
	unchanged(t, p, c, before, "wrong passwords")
}

// TestKeyAppActivationWrongKey: a wrong key is 401 wrong_key with attempts_left; it counts
// toward the NemID's lockout (the operator sees it; with the wrong password before it, the
// 5th failure in a row locks the NemID) and spends no key; the activation can still be
// completed with the right one, which resets the count.
func TestKeyAppActivationWrongKey(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")

	t.Run("then the right key", func(t *testing.T) {
		t.Parallel()
		c := p.issueCitizen(t, freshCPR(), "Kim Kortfejl")
		p.activate(t, bank, c)
		before := p.citizen(t, c.UserID)
		d := p.newDevice(t)
		a := beginActivation(t, d, c)
		err := d.CompleteActivation(t.Context(), a, wrongKeyOf(c, a.KeyNumber), "Kims telefon")
		e := apiErr(t, "wrong key", err, http.StatusUnauthorized, "wrong_key")
		if e.AttemptsLeft == nil || *e.AttemptsLeft != 4 {
			t.Fatalf("wrong key: attempts_left %v, want 4", e.AttemptsLeft)
		}
		unchanged(t, p, c, before, "a wrong key")
		if v := p.citizen(t, c.UserID); v.Failures != 1 {
			t.Fatalf("after a wrong key the operator sees %d failures, want 1", v.Failures)
		}
		if err := d.CompleteActivation(t.Context(), a, c.Keys[a.KeyNumber], "Kims telefon"); err != nil {
			t.Fatalf("the right key after a wrong one: %v", err)
		}
		if v := p.citizen(t, c.UserID); v.Failures != 0 || len(v.active()) != 1 || v.keysLeft() != before.keysLeft()-1 {
			t.Fatalf("after the right key: %+v", v)
		}
	})

	t.Run("lockout", func(t *testing.T) {
		t.Parallel()
		c := p.issueCitizen(t, freshCPR(), "Lis Laast")
		p.activate(t, bank, c)
		before := p.citizen(t, c.UserID)
		d := p.newDevice(t)
		_, err := d.BeginActivation(t.Context(), c.UserID, "Forkert"+randHex(2)+"9")
		apiErr(t, "wrong password", err, http.StatusUnauthorized, "invalid_credentials")
		a := beginActivation(t, d, c)
		for i := 2; i <= 4; i++ {
			err := d.CompleteActivation(t.Context(), a, wrongKeyOf(c, a.KeyNumber), "Lis' telefon")
			e := apiErr(t, "wrong key", err, http.StatusUnauthorized, "wrong_key")
			if e.AttemptsLeft == nil || *e.AttemptsLeft != 5-i {
				t.Fatalf("failure %d: attempts_left %v, want %d", i, e.AttemptsLeft, 5-i)
			}
		}
		err = d.CompleteActivation(t.Context(), a, wrongKeyOf(c, a.KeyNumber), "Lis' telefon")
		apiErr(t, "the 5th failure", err, http.StatusForbidden, "locked")
		if v := p.citizen(t, c.UserID); v.Status != "blocked" || v.BlockReason != "failures" {
			t.Fatalf("after 5 failures: %s (%s)", v.Status, v.BlockReason)
		}
		err = d.CompleteActivation(t.Context(), a, c.Keys[a.KeyNumber], "Lis' telefon")
		if e, ok := err.(*deviceclient.Error); !ok || e.Status != http.StatusForbidden {
			t.Fatalf("the right key of a locked NemID: %v, want 403", err)
		}
		unchanged(t, p, c, before, "a locked NemID's activation")
	})
}

// wrongKeyOf is a 6-digit key that is not the one printed beside number.
func wrongKeyOf(c *Citizen, number string) string {
	b := []byte(c.Keys[number])
	b[5] = '0' + (b[5]-'0'+1)%10
	return string(b)
}

// TestKeyAppActivationThrottledAddress: failed activation answers count against the client
// address with the failed login answers: past login.ip_max_failures the address's next key
// answer (even the right key) is 429 throttled with Retry-After, judges nothing and spends
// nothing, and so is its next password; the same activation completes from another address.
func TestKeyAppActivationThrottledAddress(t *testing.T) {
	t.Parallel()
	const limit = 3
	p := startIdP(t, func(c *config.Config) {
		c.Login.IPMaxFailures = limit
		c.TrustedProxies = []string{"127.0.0.1/32"}
	})
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c := p.issueCitizen(t, freshCPR(), "Tage Throttle")
	p.activate(t, bank, c)
	from := func(d *deviceclient.Device, addr string) *deviceclient.Device {
		d.HTTP = &http.Client{Transport: forwardedFor{addr: addr}}
		return d
	}
	d := from(p.newDevice(t), "198.51.100.7")
	a := beginActivation(t, d, c)
	for i := range limit {
		err := d.CompleteActivation(t.Context(), a, wrongKeyOf(c, a.KeyNumber), "Tages telefon")
		apiErr(t, "wrong key "+strconv.Itoa(i+1), err, http.StatusUnauthorized, "wrong_key")
	}
	before := p.citizen(t, c.UserID)
	// The right key from the throttled address: refused before it is judged.
	err := d.CompleteActivation(t.Context(), a, c.Keys[a.KeyNumber], "Tages telefon")
	apiErr(t, "the right key from a throttled address", err, http.StatusTooManyRequests, "throttled")
	_, err = from(p.newDevice(t), "198.51.100.7").BeginActivation(t.Context(), c.UserID, c.Password)
	apiErr(t, "a password from a throttled address", err, http.StatusTooManyRequests, "throttled")
	after := p.citizen(t, c.UserID)
	if after.Failures != before.Failures || after.Failures != limit {
		t.Fatalf("throttled answers counted against the NemID: failures %d → %d", before.Failures, after.Failures)
	}
	unchanged(t, p, c, before, "throttled answers")

	// From another address, the same activation completes with the right key.
	d.HTTP = &http.Client{Transport: forwardedFor{addr: "198.51.100.8"}}
	if err := d.CompleteActivation(t.Context(), a, c.Keys[a.KeyNumber], "Tages telefon"); err != nil {
		t.Fatalf("the right key from another address: %v", err)
	}
}

// forwardedFor is a client behind the trusted proxy on 127.0.0.1.
type forwardedFor struct{ addr string }

func (f forwardedFor) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("X-Forwarded-For", f.addr)
	return http.DefaultTransport.RoundTrip(req)
}

// TestKeyAppActivationNeedsOwnPassword: a NemID still on its temporary activation password is
// refused 403 activation_refused after the password, with nothing spent; once the citizen
// chose their own at a first login, the activation goes through.
func TestKeyAppActivationNeedsOwnPassword(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c := p.issueCitizen(t, freshCPR(), "Nina Nyborger")
	before := p.citizen(t, c.UserID)
	_, err := p.newDevice(t).BeginActivation(t.Context(), c.UserID, c.Password)
	apiErr(t, "activation with the temporary password", err, http.StatusForbidden, "activation_refused")
	unchanged(t, p, c, before, "activation with the temporary password")
	if v := p.citizen(t, c.UserID); v.keysLeft() != 148 || v.Failures != 0 {
		t.Fatalf("after the refusal: %+v", v)
	}
	p.activate(t, bank, c)
	p.activateDevice(t, c, "Ninas telefon")
}

// TestKeyAppActivationInvalidPublicKey: a public key that is not an EC P-256 public JWK with
// a point on the curve is 400 invalid_public_key (a bad device name 400 invalid_request),
// refused before the key is looked at: nothing is spent, nothing counted, and the same
// activation completes afterwards with a good key.
func TestKeyAppActivationInvalidPublicKey(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c := p.issueCitizen(t, freshCPR(), "Jens Jwk")
	p.activate(t, bank, c)
	d := p.newDevice(t)
	a := beginActivation(t, d, c)
	good := device.JWKOf(&d.Key.PublicKey)
	other, _ := device.GenerateKey()
	rawPriv, err := d.Key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	priv := map[string]string{"kty": "EC", "crv": "P-256", "x": good.X, "y": good.Y,
		"d": base64.RawURLEncoding.EncodeToString(rawPriv)}
	offCurve := good
	y := new(big.Int).Add(d.Key.Y, big.NewInt(1))
	offCurve.Y = base64.RawURLEncoding.EncodeToString(y.FillBytes(make([]byte, 32)))
	mixed := good
	mixed.Y = device.JWKOf(&other.PublicKey).Y
	before := p.citizen(t, c.UserID)
	for _, tc := range []struct {
		name string
		key  any
		dev  string
		code string
	}{
		{"missing", nil, "x", "invalid_public_key"},
		{"a string", "not a key", "x", "invalid_public_key"},
		{"RSA", map[string]string{"kty": "RSA", "n": "sXch", "e": "AQAB"}, "x", "invalid_public_key"},
		{"P-384", map[string]string{"kty": "EC", "crv": "P-384", "x": good.X, "y": good.Y}, "x", "invalid_public_key"},
		{"point off the curve", offCurve, "x", "invalid_public_key"},
		{"x and y of two keys", mixed, "x", "invalid_public_key"},
		{"short x", map[string]string{"kty": "EC", "crv": "P-256", "x": "AQAB", "y": good.Y}, "x", "invalid_public_key"},
		{"no y", map[string]string{"kty": "EC", "crv": "P-256", "x": good.X}, "x", "invalid_public_key"},
		{"with the private key", priv, "x", "invalid_public_key"},
		{"no device name", good, "", "invalid_request"},
		{"device name too long", good, strings.Repeat("x", 65), "invalid_request"},
		{"device name with a control character", good, "tele\x00fon", "invalid_request"},
	} {
		body := map[string]any{"key": c.Keys[a.KeyNumber], "public_key": tc.key, "device_name": tc.dev}
		r := p.keyapp(t, http.MethodPost, "/keyapp/v1/activations/"+a.ID, "", body)
		if r.Status != http.StatusBadRequest || errorCode(r) != tc.code {
			t.Errorf("%s: %s, want 400 %s", tc.name, r, tc.code)
		}
	}
	unchanged(t, p, c, before, "invalid public keys")
	if v := p.citizen(t, c.UserID); v.Failures != 0 {
		t.Fatalf("invalid public keys counted as failures: %+v", v)
	}
	if err := d.CompleteActivation(t.Context(), a, c.Keys[a.KeyNumber], "Jens' telefon"); err != nil {
		t.Fatalf("the same activation with a good key: %v", err)
	}
}

// TestKeyAppActivationReplay: an activation id that added its device adds no other: sent
// again (the same body, or another key) it is 409 wrong_step; sent by 4 racers at once, one
// adds its device and the others get 409 wrong_step.
func TestKeyAppActivationReplay(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c := p.issueCitizen(t, freshCPR(), "Rie Replay")
	p.activate(t, bank, c)
	d := p.newDevice(t)
	a := beginActivation(t, d, c)
	key := c.Keys[a.KeyNumber]
	if err := d.CompleteActivation(t.Context(), a, key, "Ries telefon"); err != nil {
		t.Fatal(err)
	}
	before := p.citizen(t, c.UserID)
	first := d.ID
	err := d.CompleteActivation(t.Context(), a, key, "Ries telefon")
	apiErr(t, "the same activation again", err, http.StatusConflict, "wrong_step")
	err = p.newDevice(t).CompleteActivation(t.Context(), a, key, "Ries anden telefon")
	apiErr(t, "the activation with another device key", err, http.StatusConflict, "wrong_step")
	unchanged(t, p, c, before, "a replayed activation")
	if d.ID != first {
		t.Fatalf("device id changed to %q", d.ID)
	}

	const racers = 4
	devs := make([]*deviceclient.Device, racers)
	for i := range devs {
		devs[i] = p.newDevice(t)
	}
	a = beginActivation(t, devs[0], c)
	key = c.Keys[a.KeyNumber]
	before = p.citizen(t, c.UserID)
	errs := barrier(racers, func(i int) error {
		return devs[i].CompleteActivation(t.Context(), a, key, "racer "+strconv.Itoa(i))
	})
	won := 0
	for i, err := range errs {
		if err == nil {
			won++
			continue
		}
		if e, ok := err.(*deviceclient.Error); !ok || e.Status != http.StatusConflict || e.Code != "wrong_step" {
			t.Errorf("racer %d: %v, want 409 wrong_step", i, err)
		}
	}
	v := p.citizen(t, c.UserID)
	if won != 1 || len(v.active()) != 2 || v.keysLeft() != before.keysLeft()-1 {
		t.Fatalf("%d of %d racers on one activation won; active %v, keys left %d → %d", won, racers, v.active(), before.keysLeft(), v.keysLeft())
	}
}

// TestKeyAppActivationIDIsNoLoginFlow: only an activation's id completes an activation: a
// login flow's id is 404 not_found (and the login goes on as before), an unknown one 410
// flow_expired; neither spends the key.
func TestKeyAppActivationIDIsNoLoginFlow(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c := p.issueCitizen(t, freshCPR(), "Leo Loginflow")
	p.activate(t, bank, c)
	l := p.newBrowser(t).authorize(t, bank)
	if code, v := l.password(c, c.Password); code != http.StatusOK || v.Step != "codecard" {
		t.Fatalf("password: %d %+v", code, v)
	}
	before := p.citizen(t, c.UserID)
	d := p.newDevice(t)
	for _, tc := range []struct {
		name, id string
		status   int
		code     string
	}{
		{"a login flow", l.View.Flow, http.StatusNotFound, "not_found"},
		{"unknown", "AAAAAAAAAAAAAAAAAAAAAA", http.StatusGone, "flow_expired"},
		{"malformed", "not-an-id", http.StatusGone, "flow_expired"},
	} {
		err := d.CompleteActivation(t.Context(), &deviceclient.Activation{ID: tc.id}, c.Keys[l.View.KeyNumber], "Leos telefon")
		apiErr(t, tc.name, err, tc.status, tc.code)
	}
	unchanged(t, p, c, before, "activations with the wrong id")
	if f := l.flow(); f.Step != "codecard" || f.Failures != 0 {
		t.Fatalf("the login flow after it was used as an activation: step %s, failures %d", f.Step, f.Failures)
	}
	l.key(c)
	l.finish()
	if tok := l.mustExchange(); !slices.Equal(tok.IDTokenClaims.AuthenticationMethodsReferences, []string{"pwd", "otp"}) {
		t.Fatalf("amr %v", tok.IDTokenClaims.AuthenticationMethodsReferences)
	}
}

// TestKeyAppActivationIsNoBrowserLogin: an activation belongs to the key-app API alone: a
// browser given its id is answered 404 not_found (no step shown, nothing bound), its key
// answer there too, without being judged; no SSO session is started, and the device then
// completes its activation with the key.
func TestKeyAppActivationIsNoBrowserLogin(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c := p.issueCitizen(t, freshCPR(), "Birk Browser")
	p.activate(t, bank, c)
	d := p.newDevice(t)
	a := beginActivation(t, d, c)
	before := p.citizen(t, c.UserID)

	b := p.newBrowser(t)
	r := b.get(t, "/login/"+a.ID)
	if r.Status != http.StatusNotFound || errorCode(r) != "not_found" || strings.Contains(string(r.Body), a.KeyNumber) {
		t.Fatalf("GET /login/{activation}: %s, want 404 not_found", r)
	}
	r = b.do(t, http.MethodPost, "/login/"+a.ID+"/codecard", strings.NewReader(`{"key":"`+c.Keys[a.KeyNumber]+`"}`),
		map[string]string{"Content-Type": "application/json", "Accept": "application/json"})
	if r.Status != http.StatusNotFound || errorCode(r) != "not_found" {
		t.Fatalf("POST /login/{activation}/codecard: %s, want 404 not_found", r)
	}
	for _, ck := range r.Header.Values("Set-Cookie") {
		if strings.Contains(ck, "nemidp_sso") {
			t.Fatalf("an activation started an SSO session: %s", ck)
		}
	}
	unchanged(t, p, c, before, "a browser on the activation")
	if err := d.CompleteActivation(t.Context(), a, c.Keys[a.KeyNumber], "Birks telefon"); err != nil {
		t.Fatalf("the device's activation after a browser tried it: %v", err)
	}
}
