package flows_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store"
)

// TestGuessesInFlightSpendTheBudget: guesses still inside the (slow) password KDF have already
// spent their attempts. With maxFailures of them in flight, even the right password is answered
// "locked" — judged by what was read before the KDF, it slipped through while the parallel
// guesses were locking the NemID, so one burst could try a whole PIN space.
func TestGuessesInFlightSpendTheBudget(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Hemmelig42")
		var inFlight []store.Attempt
		for range maxFailures {
			a, err := env.s.BeginAttempt(ctx, c.UserID, maxFailures)
			if err != nil || a.Refused {
				t.Fatalf("BeginAttempt: %+v %v", a, err)
			}
			inFlight = append(inFlight, a)
		}
		f := env.begin(t, flows.Start{})
		wantCode(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}), flows.CodeLocked)
		for _, a := range inFlight { // the guesses come back wrong
			if _, err := env.s.FailAttempt(ctx, c.UserID, maxFailures, a); err != nil {
				t.Fatal(err)
			}
		}
		if got := env.citizen(t, c.UserID); got.Status != store.StatusBlocked || got.BlockReason != store.BlockFailures {
			t.Fatalf("status %q (%s), want blocked for failures", got.Status, got.BlockReason)
		}
		wantCode(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}), flows.CodeLocked)
	})
}

// TestParallelGuessesCannotPassTheLimit: in a real burst with the right password among 30
// wrong ones, at most maxFailures passwords are answered other than "locked".
func TestParallelGuessesCannotPassTheLimit(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issueWithPassword(t, "Hemmelig42")
		const wrong = 30
		var wg sync.WaitGroup
		errs := make([]error, wrong+1)
		for i := range wrong + 1 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pw := "Forkert99"
				if i == wrong/2 {
					pw = c.Password
				}
				f := env.begin(t, flows.Start{})
				errs[i] = env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: pw})
			}()
		}
		wg.Wait()
		checked := 0
		for i, err := range errs {
			var fe *flows.Error
			switch {
			case err == nil && i == wrong/2, errors.As(err, &fe) && fe.Code == flows.CodeInvalidCredentials:
				checked++
			case errors.As(err, &fe) && fe.Code == flows.CodeLocked:
			default:
				t.Fatalf("answer %d: %v", i, err)
			}
		}
		if checked > maxFailures {
			t.Fatalf("%d passwords were checked, want at most %d", checked, maxFailures)
		}
	})
}
