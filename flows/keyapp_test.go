package flows_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store"
)

// withDevice gives c an active key-app device and returns its id.
func (env *env) withDevice(t testing.TB, c *citizen) string {
	t.Helper()
	id := store.NewDeviceID(c.UserID)
	err := env.s.AddDevice(context.Background(), c.UserID, store.Device{ID: id, Name: "phone",
		PublicKey: json.RawMessage(`{}`), CreatedAt: env.clock.Now()}, 3)
	if err != nil {
		t.Fatalf("AddDevice: %v", err)
	}
	return id
}

// atKeyApp starts a login of c (who has a device) and answers the password.
func (env *env) atKeyApp(t testing.TB, c *citizen) *flows.Flow {
	t.Helper()
	f := env.begin(t, flows.Start{})
	env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepKeyApp)
	return f
}

// decide records a device decision and applies it as the key-app API does.
func (env *env) decide(t testing.TB, c *citizen, f *flows.Flow, decision, code, dev string) string {
	t.Helper()
	ctx := context.Background()
	outcome, state, flow, err := env.s.Decide(ctx, c.UserID, f.Approval.ID, decision, code, dev, env.clock.Now())
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if flow != f.ID {
		t.Fatalf("request names flow %q, want %q", flow, f.ID)
	}
	if err := env.e.ApplyDecision(ctx, flow, f.Approval.ID, state); err != nil {
		t.Fatalf("ApplyDecision: %v", err)
	}
	return outcome
}

// TestKeyAppChosenFromCitizenState: the password step leads a citizen with an active device to
// the key app, one without to the card, and an activation always to the card.
func TestKeyAppChosenFromCitizenState(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		plain := env.issueWithPassword(t, "Kode1234a")
		app := env.issueWithPassword(t, "Kode1234a")
		dev := env.withDevice(t, app)

		f := env.begin(t, flows.Start{})
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: plain.UserID, Password: plain.Password}, flows.StepCodeCard)
		if f.HasApp || f.Approval != nil {
			t.Fatalf("citizen without a device: has_app %v approval %v", f.HasApp, f.Approval)
		}

		f = env.atKeyApp(t, app)
		if f.Approval == nil || len(f.Approval.Code) != 2 || !slices.Contains(f.Approval.Codes, f.Approval.Code) || len(f.Approval.Codes) != 3 {
			t.Fatalf("approval %+v: want a 2-digit code among 3", f.Approval)
		}
		reqs, err := env.s.PendingApprovals(ctx, app.UserID, env.clock.Now())
		if err != nil || len(reqs) != 1 || reqs[0].ID != f.Approval.ID || reqs[0].Flow != f.ID {
			t.Fatalf("pending requests %+v, %v; want the flow's one", reqs, err)
		}

		a, err := env.e.BeginActivation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		env.mustSubmit(t, a, flows.StepPassword, flows.Answer{Username: app.UserID, Password: app.Password}, flows.StepCodeCard)
		wantCode(t, env.e.SwitchMethod(ctx, a, flows.MethodKeyApp), flows.CodeInvalidRequest)

		// Removing the device: the next login asks the card.
		if err := env.s.RemoveDevice(ctx, app.UserID, dev, "test"); err != nil {
			t.Fatal(err)
		}
		f = env.begin(t, flows.Start{})
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: app.UserID, Password: app.Password}, flows.StepCodeCard)
	})
}

// TestKeyAppDecisions: approve with the right code finishes the login with the key app's
// methods; deny fails it; a wrong code spends the request; each decision counts once.
func TestKeyAppDecisions(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Kode1234a")
		dev := env.withDevice(t, c)

		f := env.atKeyApp(t, c)
		if o := env.decide(t, c, f, "approve", f.Approval.Code, dev); o != store.DecideOK {
			t.Fatalf("approve: %s", o)
		}
		if err := env.e.PollKeyApp(ctx, f, 0); err != nil {
			t.Fatalf("poll after approval: %v", err)
		}
		got := env.load(t, f.ID)
		if !got.Done() || !slices.Equal(got.Result.AMR, []string{"pwd", "swk", "user"}) {
			t.Fatalf("after approval: step %s result %+v", got.Step, got.Result)
		}

		f = env.atKeyApp(t, c)
		env.decide(t, c, f, "deny", "", dev)
		wantCode(t, env.e.PollKeyApp(ctx, f, 0), flows.CodeKeyAppDenied)
		if got := env.load(t, f.ID); got.Step != flows.StepFailed {
			t.Fatalf("after deny: step %s", got.Step)
		}

		f = env.atKeyApp(t, c)
		wrong := ""
		for _, code := range f.Approval.Codes {
			if code != f.Approval.Code {
				wrong = code
			}
		}
		if o := env.decide(t, c, f, "approve", wrong, dev); o != store.DecideMismatch {
			t.Fatalf("wrong code: %s", o)
		}
		wantCode(t, env.e.PollKeyApp(ctx, f, 0), flows.CodeKeyAppWrongCode)
		if o, _, _, _ := env.s.Decide(ctx, c.UserID, f.Approval.ID, "approve", f.Approval.Code, dev, env.clock.Now()); o != store.DecideDecided {
			t.Fatalf("right code after a wrong one: %s, want decided (the request is spent)", o)
		}
		if got := env.load(t, f.ID); got.Step != flows.StepKeyApp {
			t.Fatalf("after a wrong code: step %s, want keyapp (a new request may be sent)", got.Step)
		}
		old := f.Approval.ID
		if err := env.e.SwitchMethod(ctx, f, flows.MethodKeyApp); err != nil {
			t.Fatalf("new request: %v", err)
		}
		if f.Approval.ID == old {
			t.Fatal("a new request kept the old id")
		}
	})
}

// TestKeyAppExpiry: a request not decided in time answers keyapp_timeout, once counted as
// expired; a decision after expiry is refused; a new request can be sent.
func TestKeyAppExpiry(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		var events []string
		env.e.OnKeyApp = func(e string) { events = append(events, e) }
		c := env.issueWithPassword(t, "Kode1234a")
		dev := env.withDevice(t, c)
		f := env.atKeyApp(t, c)
		env.clock.Add(2*time.Minute + time.Second)
		wantCode(t, env.e.PollKeyApp(ctx, f, 0), flows.CodeKeyAppTimeout)
		wantCode(t, env.e.PollKeyApp(ctx, f, 0), flows.CodeKeyAppTimeout)
		if o, _, _, _ := env.s.Decide(ctx, c.UserID, f.Approval.ID, "approve", f.Approval.Code, dev, env.clock.Now()); o != store.DecideDecided {
			t.Fatalf("decision after expiry: %s", o)
		}
		if !slices.Equal(events, []string{"created", "expired"}) {
			t.Fatalf("events %v, want created then expired once", events)
		}
		if err := env.e.SwitchMethod(ctx, f, flows.MethodKeyApp); err != nil {
			t.Fatalf("new request after expiry: %v", err)
		}
		env.decide(t, c, f, "approve", f.Approval.Code, dev)
		if got := env.load(t, f.ID); !got.Done() {
			t.Fatalf("second request approved: step %s", got.Step)
		}
	})
}

// TestKeyAppSwitchBothWays: app → card → app in one login; the card's request is cancelled
// (no device offers it), the login ends with whichever method answers.
func TestKeyAppSwitchBothWays(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Kode1234a")
		dev := env.withDevice(t, c)
		f := env.atKeyApp(t, c)
		first := f.Approval.ID
		if err := env.e.SwitchMethod(ctx, f, flows.MethodCodeCard); err != nil {
			t.Fatalf("to card: %v", err)
		}
		if f.Step != flows.StepCodeCard || f.KeyNumber == "" || f.Approval != nil {
			t.Fatalf("after switch to card: %+v", f)
		}
		if st, _ := env.s.ApprovalState(ctx, c.UserID, first); st != store.ApprovalCancelled {
			t.Fatalf("the app request after switching to the card: %q, want cancelled", st)
		}
		if err := env.e.SwitchMethod(ctx, f, flows.MethodKeyApp); err != nil {
			t.Fatalf("back to app: %v", err)
		}
		if f.Step != flows.StepKeyApp || f.Approval == nil || f.Approval.ID == first {
			t.Fatalf("after switch back: %+v", f)
		}
		// The cancelled request cannot be approved.
		if o, _, _, _ := env.s.Decide(ctx, c.UserID, first, "approve", "00", dev, env.clock.Now()); o != store.DecideDecided {
			t.Fatalf("deciding the cancelled request: %s", o)
		}
		if err := env.e.SwitchMethod(ctx, f, flows.MethodCodeCard); err != nil {
			t.Fatal(err)
		}
		env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, flows.StepDone)
		if !slices.Equal(f.Result.AMR, []string{"pwd", "otp"}) {
			t.Fatalf("card login amr %v", f.Result.AMR)
		}
		wantCode(t, env.e.SwitchMethod(ctx, f, flows.MethodKeyApp), flows.CodeWrongStep)

		plain := env.issueWithPassword(t, "Kode1234a")
		g := env.begin(t, flows.Start{})
		env.mustSubmit(t, g, flows.StepPassword, flows.Answer{Username: plain.UserID, Password: plain.Password}, flows.StepCodeCard)
		wantCode(t, env.e.SwitchMethod(ctx, g, flows.MethodKeyApp), flows.CodeNoDevice)
		wantCode(t, env.e.SwitchMethod(ctx, g, "sms"), flows.CodeInvalidRequest)
	})
}

// TestKeyAppPollWokenByDecision: a long-poll returns as soon as a decision made through
// another store (another instance) is applied, long before its wait runs out.
func TestKeyAppPollWokenByDecision(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		env.e.Waiters = env.s.NewWaiters()
		t.Cleanup(func() { _ = env.e.Waiters.Close() })
		c := env.issueWithPassword(t, "Kode1234a")
		dev := env.withDevice(t, c)
		f := env.atKeyApp(t, c)
		id := f.Approval.ID
		code := f.Approval.Code

		done := make(chan error, 1)
		polling := env.load(t, f.ID)
		go func() { done <- env.e.PollKeyApp(ctx, polling, 25*time.Second) }()
		// The poll must be watching before the decision, or a missed wake would only show as
		// a slow test: wait until the waiter is registered.
		for env.e.Waiters.Waiting() == 0 {
			time.Sleep(time.Millisecond)
		}
		env.decide(t, c, &flows.Flow{ID: f.ID, Approval: &flows.PendingApproval{ID: id, Code: code}}, "approve", code, dev)
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("poll: %v", err)
			}
			if !polling.Done() {
				t.Fatalf("poll returned at step %s", polling.Step)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the long-poll was not woken by the decision")
		}
	})
}
