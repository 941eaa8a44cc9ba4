package integrationtests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/keyapp/deviceclient"
	"github.com/nemidp/nemidp/keys/device"
)

type pollResult struct {
	status int
	view   View
	err    error
}

// pollAsync starts the browser's long-poll (POST /login/{flow}/keyapp?wait=N) in a goroutine;
// it never touches t, so the caller judges the result.
func (l *Login) pollAsync(ctx context.Context, wait int) <-chan pollResult {
	out := make(chan pollResult, 1)
	flow, csrf := l.View.Flow, l.csrf
	go func() {
		r, err := l.b.try(ctx, http.MethodPost, "/login/"+flow+"/keyapp?wait="+strconv.Itoa(wait), bytes.NewReader([]byte(`{}`)),
			map[string]string{"Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf})
		if err != nil {
			out <- pollResult{err: err}
			return
		}
		var v View
		if err := json.Unmarshal(r.Body, &v); err != nil {
			out <- pollResult{status: r.Status, err: fmt.Errorf("not a view: %s", r)}
			return
		}
		out <- pollResult{status: r.Status, view: v}
	}()
	return out
}

// requestsAsync starts the device's long-poll (GET /keyapp/v1/requests?wait=N).
func requestsAsync(ctx context.Context, d *deviceclient.Device, wait time.Duration) <-chan []deviceclient.Request {
	out := make(chan []deviceclient.Request, 1)
	go func() {
		reqs, err := d.Requests(ctx, wait)
		if err != nil {
			reqs = nil
		}
		out <- reqs
	}()
	return out
}

// waiting waits until p has at least n long-polls parked (its nemidp_longpolls_waiting), so
// what follows wakes them rather than being found by their first look.
func waiting(t *testing.T, p *IdP, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.Server.Waiters.Waiting() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d long-polls waiting on %s, want %d", p.Server.Waiters.Waiting(), p.URL, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestKeyAppDeviceLongPoll: a device's GET /keyapp/v1/requests?wait=20, parked before the
// login reaches its keyapp step, answers the new request as soon as the password is
// accepted, not at the end of its wait.
func TestKeyAppDeviceLongPoll(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c, d := p.appCitizen(t, bank, "Lone Lytter")
	l := p.newBrowser(t).authorize(t, bank)
	polled := requestsAsync(t.Context(), d, 20*time.Second)
	waiting(t, p, 1)
	l.passwordToApp(c)
	select {
	case reqs := <-polled:
		if len(reqs) != 1 || reqs[0].ID != l.flow().Approval.ID {
			t.Fatalf("the device's long-poll answered %+v, want the login's request", reqs)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the device's long-poll did not answer within 15 s of the request")
	}
}

// TestKeyAppTwoInstances: two servers behind one issuer on one Redis (a device activated
// through instance B, the browser on instance A): the device's long-poll on B is woken by
// the login's request made on A; the browser's long-poll on A is woken by the approval sent
// to B, well before its 20 s; the code exchange works.
func TestKeyAppTwoInstances(t *testing.T) {
	t.Parallel()
	a := startIdP(t)
	b := startSecondInstance(t, a)
	bank := a.relyingParty(t, a.registerClient(t, "openid"), "openid")
	c := a.issueCitizen(t, freshCPR(), "Tobias Toinstans")
	a.activate(t, bank, c)
	d := b.activateDevice(t, c, "Tobias' telefon") // through B
	if got := a.citizen(t, c.UserID).active(); !slices.Equal(got, []string{d.ID}) {
		t.Fatalf("instance A sees devices %v, want the one activated through B", got)
	}

	l := a.newBrowser(t).authorize(t, bank)
	devicePoll := requestsAsync(t.Context(), d, 20*time.Second)
	waiting(t, b, 1)
	l.passwordToApp(c) // on A
	var req deviceclient.Request
	select {
	case reqs := <-devicePoll:
		if len(reqs) != 1 {
			t.Fatalf("the device's long-poll on B answered %+v", reqs)
		}
		req = reqs[0]
	case <-time.After(15 * time.Second):
		t.Fatal("the device's long-poll on B was not woken by the request made on A")
	}

	code := l.bindingCode()
	browserPoll := l.pollAsync(t.Context(), 20)
	waiting(t, a, 1)
	if err := d.Decide(t.Context(), req.ID, device.Approve, code); err != nil { // on B
		t.Fatalf("approve through B: %v", err)
	}
	select {
	case res := <-browserPoll:
		if res.err != nil || res.view.Step != "done" || res.view.Error != nil || res.status != http.StatusOK {
			t.Fatalf("the browser's long-poll on A: %d %+v %v", res.status, res.view, res.err)
		}
		l.View = res.view
	case <-time.After(15 * time.Second):
		t.Fatal("the browser's long-poll on A was not woken by the approval sent to B")
	}
	l.finish()
	if tok := l.mustExchange(); !slices.Equal(tok.IDTokenClaims.AuthenticationMethodsReferences, []string{"pwd", "swk", "user"}) {
		t.Fatalf("amr %v", tok.IDTokenClaims.AuthenticationMethodsReferences)
	}
}

// TestKeyAppBrowserLongPollPending: a browser's long-poll with nothing decided answers
// step keyapp when its wait is over, and the request is still there.
func TestKeyAppBrowserLongPollPending(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c, d := p.appCitizen(t, bank, "Palle Venter")
	l := p.newBrowser(t).authorize(t, bank)
	l.passwordToApp(c)
	req := onlyRequest(t, d)
	start := time.Now()
	select {
	case res := <-l.pollAsync(t.Context(), 1):
		if res.err != nil || res.view.Step != "keyapp" || res.view.Error != nil || res.status != http.StatusOK {
			t.Fatalf("the poll: %d %+v %v", res.status, res.view, res.err)
		}
		if time.Since(start) < 900*time.Millisecond {
			t.Fatalf("a 1 s long-poll with nothing decided answered after %v", time.Since(start))
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a 1 s long-poll did not answer")
	}
	if again := onlyRequest(t, d); again.ID != req.ID {
		t.Fatalf("the request changed: %+v", again)
	}
}
