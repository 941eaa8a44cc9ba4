package flows_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store"
)

// blockReasons are the reasons a NemID is blocked for, with a word its refusal must name.
var blockReasons = []struct{ reason, names string }{
	{store.BlockMisuse, "misuse"},
	{store.BlockLostCard, "code card was reported lost"},
	{store.BlockOperator, "blocked by NemID support"},
}

func wantBlocked(t *testing.T, err error, reason, names string) {
	t.Helper()
	fe := wantCode(t, err, flows.CodeBlocked)
	if fe.Reason != reason || !strings.Contains(fe.Message, names) {
		t.Fatalf("blocked for %s: reason %q, message %q; want reason %q and a message naming %q", reason, fe.Reason, fe.Message, reason, names)
	}
}

// TestBlockedReasonAtEveryStep: a NemID blocked (by Store.Block) for each reason is refused
// with code blocked, the reason's category in the message and error.reason: at the password
// (a right password; a citizen with a key-app device too), at the code card when blocked after
// the password, and a key-app request made before the block is approved by nothing.
func TestBlockedReasonAtEveryStep(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		for _, br := range blockReasons {
			t.Run(br.reason, func(t *testing.T) {
				for _, app := range []bool{false, true} {
					c := env.issueWithPassword(t, "Hemmelig42")
					if app {
						env.withDevice(t, c)
					}
					if _, err := env.s.Block(ctx, c.UserID, br.reason, "operator", env.clock.Now()); err != nil {
						t.Fatal(err)
					}
					f := env.begin(t, flows.Start{})
					wantBlocked(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}), br.reason, br.names)
					if f.Step != flows.StepPassword {
						t.Fatalf("key app %v: a blocked citizen moved on to %s", app, f.Step)
					}
				}

				// Blocked between the password and the key.
				c := env.issueWithPassword(t, "Hemmelig42")
				f := env.begin(t, flows.Start{})
				env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
				if _, err := env.s.Block(ctx, c.UserID, br.reason, "operator", env.clock.Now()); err != nil {
					t.Fatal(err)
				}
				wantBlocked(t, env.submit(f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}), br.reason, br.names)
				if unused, _ := env.s.KeyUnused(ctx, c.UserID, c.Serial, f.KeyNumber); !unused {
					t.Error("a blocked citizen's key was consumed")
				}

				// Blocked while the key-app request waits: the device's approval is refused and the
				// login does not finish.
				a := env.issueWithPassword(t, "Hemmelig42")
				dev := env.withDevice(t, a)
				g := env.atKeyApp(t, a)
				if _, err := env.s.Block(ctx, a.UserID, br.reason, "operator", env.clock.Now()); err != nil {
					t.Fatal(err)
				}
				outcome, _, _, err := env.s.Decide(ctx, a.UserID, g.Approval.ID, "approve", g.Approval.Code, dev, env.clock.Now())
				if err != nil || outcome != store.DecideNotActive {
					t.Fatalf("approval of a NemID blocked for %s: %q %v, want %q", br.reason, outcome, err, store.DecideNotActive)
				}
				if err := env.e.PollKeyApp(ctx, g, time.Millisecond); err != nil && g.Done() {
					t.Fatalf("poll: %v", err)
				}
				if g = env.load(t, g.ID); g.Done() {
					t.Fatalf("a login blocked for %s at the key app finished", br.reason)
				}
			})
		}
	})
}

// TestBlockedWithoutReason: a NemID blocked with no reason recorded keeps the plain message.
func TestBlockedWithoutReason(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issueWithPassword(t, "Hemmelig42")
		env.block(t, c.UserID, "")
		f := env.begin(t, flows.Start{})
		fe := wantCode(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}), flows.CodeBlocked)
		if fe.Reason != "" || fe.Message == "" {
			t.Fatalf("blocked without a reason: %+v", fe)
		}
	})
}
