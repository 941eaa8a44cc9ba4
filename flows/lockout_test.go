package flows_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
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

// TestNewPasswordRefusedWhenBlockedMeanwhile: a NemID blocked after the key was accepted
// cannot finish its first login by choosing a password.
func TestNewPasswordRefusedWhenBlockedMeanwhile(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issue(t) // with a temporary activation password
		f := env.begin(t, flows.Start{})
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, flows.StepNewPassword)
		env.block(t, c.UserID, "misuse")
		wantCode(t, env.submit(f, flows.StepNewPassword, flows.Answer{Password: "Valgt2026kode"}), flows.CodeBlocked)
		if f.Step != flows.StepNewPassword {
			t.Fatalf("step %q after a refused new password", f.Step)
		}
	})
}

// TestRepeatedKeyAdvances: when the answer to a right key was lost (the flow not saved), the
// same key sent again by the same login moves it on instead of failing — the key is spent
// either way, and the citizen must not lose it.
func TestRepeatedKeyAdvances(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issueWithPassword(t, "Hemmelig42")
		f := env.begin(t, flows.Start{})
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		// The first submit consumed the key in Redis, then its flow update was lost.
		serial, number := f.CardSerial, f.KeyNumber
		hash := env.e.Cards.Hash(serial, number, c.key(number))
		res, err := env.s.UseCardKeyInFlow(context.Background(), f.ID, c.UserID, serial, number, hash, maxFailures)
		if err != nil || res.Outcome != store.KeyOK {
			t.Fatalf("first use: %+v %v", res, err)
		}
		env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(number)}, flows.StepDone)
		if got := env.citizen(t, c.UserID); got.Failures != 0 {
			t.Fatalf("the repeat counted as a failure: %d", got.Failures)
		}
		// Another login sending that spent key is refused as used.
		g := env.begin(t, flows.Start{})
		env.mustSubmit(t, g, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		res, err = env.s.UseCardKeyInFlow(context.Background(), g.ID, c.UserID, serial, number, hash, maxFailures)
		if err != nil || res.Outcome != store.KeyUsed {
			t.Fatalf("another login with the spent key: %+v %v", res, err)
		}
	})
}

// TestUnknownCPRCountsOnceHoweverTyped: a real citizen has one failure counter whether the CPR
// number is typed with or without its dash; an unknown one must count the same way, or
// attempts_left tells which CPR numbers have a NemID.
func TestUnknownCPRCountsOnceHoweverTyped(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		cpr := storetest.NewCPR()
		for i, typed := range []string{cpr, cpr[:6] + "-" + cpr[6:], " " + cpr} {
			f := env.begin(t, flows.Start{})
			wantAttempts(t, env.submit(f, flows.StepPassword, flows.Answer{Username: typed, Password: "Forkert99"}),
				flows.CodeInvalidCredentials, maxFailures-1-i)
		}
	})
}

// TestUsedUpCardAtPassword: a citizen whose card has no unused keys is told so after the
// right password, not asked for a key number that does not exist.
func TestUsedUpCardAtPassword(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issueWithPassword(t, "Hemmelig42")
		unused := storetest.CitizenKey(env.prefix, c.UserID) + ":card:" + c.Serial + ":unused"
		if n, err := env.s.Redis().Del(context.Background(), unused).Result(); err != nil || n != 1 {
			t.Fatalf("emptying the card: %d %v", n, err)
		}
		f := env.begin(t, flows.Start{})
		wantCode(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}), flows.CodeNoKeysLeft)
		if got := env.citizen(t, c.UserID); got.Failures != 0 {
			t.Fatalf("a right password left %d failures counted", got.Failures)
		}
	})
}
