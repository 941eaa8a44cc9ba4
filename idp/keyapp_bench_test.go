package idp_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/keyapp/deviceclient"
	"github.com/nemidp/nemidp/keys/device"
)

// keyAppRig is a server with a citizen whose key-app device is active.
type keyAppRig struct {
	rp  *benchRP
	uid string
	dev *deviceclient.Device
}

func newKeyAppRig(tb testing.TB) *keyAppRig {
	tb.Helper()
	rp := newBenchRP(tb)
	ctx := context.Background()
	res, err := rp.s.Issuer.IssueWithPassword(ctx, issuance.Request{CPR: "0303701234", Name: "App Borger"}, "Bench2026nemid")
	if err != nil {
		tb.Fatal(err)
	}
	k, err := device.GenerateKey()
	if err != nil {
		tb.Fatal(err)
	}
	d := &deviceclient.Device{Base: rp.s.base, Key: k, HTTP: &http.Client{Timeout: 30 * time.Second}}
	a, err := d.BeginActivation(ctx, res.UserID, "Bench2026nemid")
	if err != nil {
		tb.Fatal(err)
	}
	for _, key := range res.Card.Keys {
		if key.Number == a.KeyNumber {
			if err := d.CompleteActivation(ctx, a, key.Key, "bench"); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if d.ID == "" {
		tb.Fatal("device not activated")
	}
	return &keyAppRig{rp: rp, uid: res.UserID, dev: d}
}

// keyAppLogin is one key-app login in its phases; each phase is a func so a caller can time
// or count it alone.
type keyAppLogin struct {
	r     *keyAppRig
	br    *http.Client
	login string
	csrf  string
	req   deviceclient.Request
	code  string
}

// start is authorize and the login page: the part every login shares.
func (r *keyAppRig) start(tb testing.TB) *keyAppLogin {
	jar, _ := cookiejar.New(nil)
	br := noRedirects(jar)
	_, ch := pkce()
	resp, err := br.Get(r.rp.s.base + "/authorize?" + url.Values{"client_id": {"bank"}, "redirect_uri": {"http://127.0.0.1:9/cb"},
		"response_type": {"code"}, "scope": {"openid"}, "state": {"s"}, "code_challenge": {ch},
		"code_challenge_method": {"S256"}}.Encode())
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	l := &keyAppLogin{r: r, br: br, login: r.rp.s.base + resp.Header.Get("Location")}
	l.csrf = jsonCall(tb, br, "GET", l.login, "", nil)["csrf_token"].(string)
	return l
}

// password answers the password: the login waits at its keyapp step, the request stored.
func (l *keyAppLogin) password(tb testing.TB) {
	view := jsonCall(tb, l.br, "POST", l.login+"/password", l.csrf, map[string]string{"username": l.r.uid, "password": "Bench2026nemid"})
	if view["step"] != "keyapp" {
		tb.Fatalf("after the password: %v", view)
	}
	l.code, _ = view["binding_code"].(string)
	if len(l.code) != 2 {
		tb.Fatalf("the keyapp view shows no binding code: %v", view)
	}
}

func (l *keyAppLogin) list(tb testing.TB) {
	reqs, err := l.r.dev.Requests(context.Background(), 0)
	if err != nil || len(reqs) != 1 {
		tb.Fatalf("requests: %v %+v", err, reqs)
	}
	l.req = reqs[0]
}

func (l *keyAppLogin) decide(tb testing.TB) {
	if err := l.r.dev.Decide(context.Background(), l.req.ID, device.Approve, l.code); err != nil {
		tb.Fatalf("approve: %v", err)
	}
}

// poll is the browser's POST /login/{flow}/keyapp after the decision: done.
func (l *keyAppLogin) poll(tb testing.TB) {
	if view := jsonCall(tb, l.br, "POST", l.login+"/keyapp", l.csrf, map[string]string{}); view["step"] != "done" {
		tb.Fatalf("after the approval: %v", view)
	}
}

// BenchmarkKeyAppApproval is one key-app approval, from the password answer that makes the
// request to the browser seeing the login done: password, the device's list, its decision,
// the browser's poll (authorize and the login page outside the timer). Reported beside time
// and allocations (of the whole process, client included): Redis round trips per approval.
func BenchmarkKeyAppApproval(b *testing.B) {
	r := newKeyAppRig(b)
	rt := &roundTrips{}
	r.rp.s.Store.Redis().AddHook(rt)
	trips := 0
	var cpu, decided time.Duration
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		l := r.start(b)
		rt.Take()
		b.StartTimer()
		start := cpuTime()
		l.password(b)
		mid := cpuTime()
		l.list(b)
		l.decide(b)
		l.poll(b)
		end := cpuTime()
		cpu += end - start
		decided += end - mid
		n, _ := rt.Take()
		trips += n
	}
	b.ReportMetric(float64(trips)/float64(b.N), "redis-rt/approval")
	// Process CPU (server and client, not Redis): the whole approval, and from the device's
	// list to the browser seeing the login done (no KDF in it).
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/approval")
	b.ReportMetric(float64(decided.Microseconds())/float64(b.N), "cpu-µs/list-decide-poll")
}

// TestRoundTripsKeyAppLogin counts the Redis round trips of a key-app login's own phases
// (the password answer that stores the request, the device's list, its decision, the
// browser's poll that finds the login done and hands out its SSO session) and holds them to a
// budget: 12 in all, where a card login's password and key answers take 5 (2 + 3).
func TestRoundTripsKeyAppLogin(t *testing.T) {
	t.Parallel()
	r := newKeyAppRig(t)
	rt := &roundTrips{}
	r.rp.s.Store.Redis().AddHook(rt)
	for i := range 2 { // the first loads the scripts
		l := r.start(t)
		rt.Take()
		phases := []struct {
			name   string
			run    func(testing.TB)
			budget int
		}{
			{"password, request stored", l.password, 3}, // as a card login's (2), then the request stored
			{"device list", l.list, 2},                  // the device with its jti marked, the list
			{"decision", l.decide, 5},                   // the device with its jti, the decision, the flow load and save, the wake
			// the flow, the one-time claim of its SSO session, the session
			{"browser poll", l.poll, 3},
		}
		for _, ph := range phases {
			ph.run(t)
			n, cmds := rt.Take()
			if i == 0 {
				continue
			}
			t.Logf("%s: %d round trips: %v", ph.name, n, cmds)
			if n > ph.budget {
				t.Errorf("%s takes %d Redis round trips, budget %d: %v", ph.name, n, ph.budget, cmds)
			}
		}
	}
}
