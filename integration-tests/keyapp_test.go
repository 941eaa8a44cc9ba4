package integrationtests

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/keyapp/deviceclient"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/device"
)

// ---- devices ----

// newDevice makes a device key for the IdP (not yet activated). It reaches the instance p is
// (for a second instance, through a transport that routes the issuer's URLs to it).
func (p *IdP) newDevice(t *testing.T) *deviceclient.Device {
	t.Helper()
	k, err := device.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return &deviceclient.Device{Base: p.Issuer, Key: k, HTTP: p.deviceHTTP()}
}

func (p *IdP) deviceHTTP() *http.Client {
	return &http.Client{Timeout: 40 * time.Second, Transport: p.transport()}
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

// appCitizen issues a NemID, makes its first login (own password) and activates one device.
func (p *IdP) appCitizen(t *testing.T, r *RP, name string) (*Citizen, *deviceclient.Device) {
	t.Helper()
	c := p.issueCitizen(t, freshCPR(), name)
	p.activate(t, r, c)
	return c, p.activateDevice(t, c, name+"s telefon")
}

// apiErr requires err to be the key-app API's refusal with status and code.
func apiErr(t *testing.T, what string, err error, status int, code string) *deviceclient.Error {
	t.Helper()
	e, ok := err.(*deviceclient.Error)
	if !ok || e.Status != status || e.Code != code {
		t.Fatalf("%s: %v, want %d %s", what, err, status, code)
	}
	return e
}

// keyapp sends one raw call to the key-app API (for what the device client would never send).
// body is marshalled unless it is a string (sent as it is); token "" sends no Authorization.
func (p *IdP) keyapp(t *testing.T, method, path, token string, body any) *Resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, p.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		// Errorf, not Fatalf: racers call this off the test's goroutine.
		t.Errorf("%s %s: %v", method, path, err)
		return &Resp{Header: http.Header{}, Body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return &Resp{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// signJWT signs claims with k (ES256): device JWTs the device client would never make.
func signJWT(t *testing.T, k *ecdsa.PrivateKey, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// token is a fresh, valid device JWT of d.
func token(t *testing.T, d *deviceclient.Device) string {
	t.Helper()
	tok, err := d.Token()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// decision is d's signed decision over a request.
func decision(t *testing.T, d *deviceclient.Device, requestID, verdict, code string) string {
	t.Helper()
	jws, err := device.SignDecision(d.Key, requestID, verdict, code, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return jws
}

// pending lists d's pending requests (no wait).
func pending(t *testing.T, d *deviceclient.Device) []deviceclient.Request {
	t.Helper()
	reqs, err := d.Requests(t.Context(), 0)
	if err != nil {
		t.Fatalf("requests: %v", err)
	}
	return reqs
}

// onlyRequest requires d to see exactly one pending request, and returns it.
func onlyRequest(t *testing.T, d *deviceclient.Device) deviceclient.Request {
	t.Helper()
	reqs := pending(t, d)
	if len(reqs) != 1 {
		t.Fatalf("device sees %d pending requests, want 1: %+v", len(reqs), reqs)
	}
	return reqs[0]
}

// otherCode is one of the offered binding codes that is not the browser's.
func otherCode(t *testing.T, r deviceclient.Request, browser string) string {
	t.Helper()
	for _, c := range r.BindingCodes {
		if c != browser {
			return c
		}
	}
	t.Fatalf("offered codes %v hold nothing but %s", r.BindingCodes, browser)
	return ""
}

// ---- the operator's view ----

// citizenView is GET /admin/v1/citizens/{id}: what must not change is checked through it.
type citizenView struct {
	Status      string `json:"status"`
	BlockReason string `json:"block_reason"`
	Failures    int    `json:"failures"`
	Cards       []struct {
		Serial   string `json:"serial"`
		Status   string `json:"status"`
		KeysLeft int    `json:"keys_left"`
	} `json:"cards"`
	Devices []struct {
		ID         string `json:"device_id"`
		Name       string `json:"name"`
		Status     string `json:"status"`
		Thumbprint string `json:"key_thumbprint"`
	} `json:"devices"`
}

func (p *IdP) citizen(t *testing.T, uid string) citizenView {
	t.Helper()
	var v citizenView
	if code := p.admin(t, http.MethodGet, "/admin/v1/citizens/"+uid, nil, &v); code != http.StatusOK {
		t.Fatalf("GET /admin/v1/citizens/%s: %d", uid, code)
	}
	return v
}

// keysLeft is the unused keys of the active card.
func (v citizenView) keysLeft() int {
	if len(v.Cards) != 1 {
		return -1
	}
	return v.Cards[0].KeysLeft
}

// active lists the ids of the active devices.
func (v citizenView) active() []string {
	var out []string
	for _, d := range v.Devices {
		if d.Status == "active" {
			out = append(out, d.ID)
		}
	}
	return out
}

// useKeys spends unused keys of c's card through the store, as other logins would, until
// left remain.
func (p *IdP) useKeys(t *testing.T, c *Citizen, left int) {
	t.Helper()
	ctx := t.Context()
	have := p.citizen(t, c.UserID).keysLeft()
	numbers := make([]string, 0, len(c.Keys))
	for n := range c.Keys {
		numbers = append(numbers, n)
	}
	slices.Sort(numbers)
	for _, n := range numbers {
		if have <= left {
			break
		}
		if ok, err := p.Store.KeyUnused(ctx, c.UserID, c.Serial, n); err != nil || !ok {
			continue
		}
		res, _, err := p.Store.UseCardKeyInFlow(ctx, "", c.UserID, c.Serial, n, p.Server.Flows.Cards.Hash(c.Serial, n, c.Keys[n]), 5)
		if err != nil || res.Outcome != store.KeyOK {
			t.Fatalf("use key %s: %+v %v", n, res, err)
		}
		have = res.KeysLeft
	}
	if got := p.citizen(t, c.UserID).keysLeft(); got != left {
		t.Fatalf("card has %d keys left, want %d", got, left)
	}
}

// setStatus writes the NemID's status straight into its record (there is no operator block
// endpoint yet).
func (p *IdP) setStatus(t *testing.T, uid, status, reason string) {
	t.Helper()
	if err := p.Store.Redis().HSet(t.Context(), p.Prefix+"{c:"+uid+"}", "status", status, "block_reason", reason).Err(); err != nil {
		t.Fatal(err)
	}
}

// ---- metrics ----

var seriesLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) ([0-9.eE+-]+|NaN|[+-]Inf)$`)

// metrics scrapes /metrics: series ("name{label=\"value\"}") → value.
func (p *IdP) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := p.http.Get(p.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		m := seriesLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[m[1]] = v
	}
	return out
}

func requests(event string) string {
	return fmt.Sprintf(`nemidp_keyapp_requests_total{event=%q}`, event)
}
func refused(reason string) string {
	return fmt.Sprintf(`nemidp_keyapp_refused_total{reason=%q}`, reason)
}

// ---- the browser at the keyapp step ----

// bindingCode is the code the keyapp view shows.
func (l *Login) bindingCode() string {
	l.t.Helper()
	l.requireStep("keyapp")
	if len(l.View.BindingCode) != 2 {
		l.t.Fatalf("binding code %q", l.View.BindingCode)
	}
	return l.View.BindingCode
}

// poll is the browser's POST /login/{flow}/keyapp?wait=N.
func (l *Login) poll(wait int) (int, View) {
	l.t.Helper()
	step := "keyapp"
	if wait > 0 {
		step += "?wait=" + strconv.Itoa(wait)
	}
	return l.post(step, map[string]string{})
}

// keyAppStatus is the status a keyapp poll or method switch answers with for an error code.
var keyAppStatus = map[string]int{
	"": http.StatusOK, "keyapp_wrong_code": http.StatusConflict, "keyapp_timeout": http.StatusConflict,
	"no_device": http.StatusConflict, "keyapp_denied": http.StatusForbidden, "too_many_requests": http.StatusTooManyRequests,
}

// wantPoll polls once (no wait) and requires the step, the error code ("" for none) and the
// status that goes with it.
func (l *Login) wantPoll(step, code string) View {
	l.t.Helper()
	status, v := l.poll(0)
	want, ok := keyAppStatus[code]
	if !ok {
		l.t.Fatalf("no status known for %q", code)
	}
	if v.Step != step || codeOf(v.Error) != code || status != want {
		l.t.Fatalf("poll: %d %+v %s, want %d, step %s, error %q", status, v, v.Error, want, step, code)
	}
	return v
}

// method is POST /login/{flow}/method {method}.
func (l *Login) method(m string) (int, View) {
	l.t.Helper()
	return l.post("method", map[string]string{"method": m})
}

// passwordToApp answers the password of a citizen with the key app: the login waits at the
// keyapp step.
func (l *Login) passwordToApp(c *Citizen) {
	l.t.Helper()
	if code, v := l.password(c, c.Password); code != http.StatusOK || v.Step != "keyapp" {
		l.t.Fatalf("password: %d %+v %s, want the keyapp step", code, v, v.Error)
	}
}

// flow loads the login's flow from the engine.
func (l *Login) flow() *flows.Flow {
	l.t.Helper()
	f, err := l.b.idp.Server.Flows.Load(l.t.Context(), l.View.Flow)
	if err != nil {
		l.t.Fatalf("load flow: %v", err)
	}
	return f
}

// barrier lines n goroutines up: each calls fn once the gate opens; it returns their results
// once all have answered.
func barrier[T any](n int, fn func(i int) T) []T {
	out := make([]T, n)
	gate := make(chan struct{})
	var ready, done sync.WaitGroup
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-gate
			out[i] = fn(i)
		}()
	}
	ready.Wait()
	close(gate)
	done.Wait()
	return out
}

// TestKeyAppLoginHappyPath: a citizen with an activated device logs in through zitadel's rp
// with the key app: password, then the device approves with the browser's binding code; the
// ID token verifies and says amr pwd, swk, user.
func TestKeyAppLoginHappyPath(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c, d := p.appCitizen(t, bank, "Søren Appelbruger")

	l := p.newBrowser(t).authorize(t, bank)
	l.passwordToApp(c)
	code := l.bindingCode()
	reqs, err := d.Requests(t.Context(), time.Second)
	if err != nil || len(reqs) != 1 {
		t.Fatalf("requests: %v %+v", err, reqs)
	}
	if !slices.Contains(reqs[0].BindingCodes, code) || len(reqs[0].BindingCodes) != 3 {
		t.Fatalf("device offered %v, browser shows %s", reqs[0].BindingCodes, code)
	}
	if err := d.Decide(t.Context(), reqs[0].ID, device.Approve, code); err != nil {
		t.Fatalf("approve: %v", err)
	}
	l.wantPoll("done", "")
	l.finish()
	tok := l.mustExchange()
	if got := tok.IDTokenClaims.AuthenticationMethodsReferences; !slices.Equal(got, []string{"pwd", "swk", "user"}) {
		t.Fatalf("amr = %v", got)
	}
}

func readAll(resp *http.Response) []byte {
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return raw
}
