package flows_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/password"
)

// TestGuessesInFlightSpendTheBudget: guesses still inside the (slow) password KDF have already
// spent their attempts. With maxFailures of them in flight, even the right password is not
// checked — judged by what was read before the KDF, it would slip through while the parallel
// guesses were locking the NemID, so one burst could try a whole PIN space. It is answered
// "try again" (the NemID is not locked: its stored status says active), and "locked" once the
// guesses came back wrong.
func TestGuessesInFlightSpendTheBudget(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Hemmelig42")
		var inFlight []store.Attempt
		for range maxFailures {
			a, err := env.s.BeginAttempt(ctx, c.UserID, maxFailures, env.clock.Now(), time.Minute)
			if err != nil || a.Refused || a.Busy {
				t.Fatalf("BeginAttempt: %+v %v", a, err)
			}
			inFlight = append(inFlight, a)
		}
		f := env.begin(t, flows.Start{})
		wantCode(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}), flows.CodeUnavailable)
		if got := env.citizen(t, c.UserID); got.Status != store.StatusActive || got.Failures != 0 {
			t.Fatalf("with guesses in flight: status %q failures %d, want active 0", got.Status, got.Failures)
		}
		for _, a := range inFlight { // the guesses come back wrong
			if _, err := env.s.FailAttempt(ctx, c.UserID, maxFailures, a, env.clock.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if got := env.citizen(t, c.UserID); got.Status != store.StatusBlocked || got.BlockReason != store.BlockFailures {
			t.Fatalf("status %q (%s), want blocked for failures", got.Status, got.BlockReason)
		}
		f = env.begin(t, flows.Start{})
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
			case errors.As(err, &fe) && (fe.Code == flows.CodeLocked || fe.Code == flows.CodeUnavailable):
				// not checked: locked, or "try again" (attempts in flight, or the KDF queue full)
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
		res, _, err := env.s.UseCardKeyInFlow(context.Background(), f.ID, c.UserID, serial, number, hash, maxFailures)
		if err != nil || res.Outcome != store.KeyOK {
			t.Fatalf("first use: %+v %v", res, err)
		}
		env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(number)}, flows.StepDone)
		if got := env.citizen(t, c.UserID); got.Failures != 0 {
			t.Fatalf("the repeat counted as a failure: %d", got.Failures)
		}
		// Another login sending that spent key is refused as used (typed right: not counted).
		g := env.begin(t, flows.Start{})
		env.mustSubmit(t, g, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		res, _, err = env.s.UseCardKeyInFlow(context.Background(), g.ID, c.UserID, serial, number, hash, maxFailures)
		if err != nil || res.Outcome != store.KeyUsedRight {
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

// TestFlowEndsAfterMaxWrongAnswers: one flow spraying a password across many user IDs (real
// and unknown, each named once, so no NemID locks) ends as failed with too_many_attempts at
// the max-th wrong answer; even a right password is not checked in it afterwards.
func TestFlowEndsAfterMaxWrongAnswers(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		right := env.issueWithPassword(t, "Hemmelig42")
		f := env.begin(t, flows.Start{})
		for i := 1; i <= maxFailures; i++ {
			user := storetest.NewCPR() // unknown
			if i%2 == 0 {
				user = env.issueWithPassword(t, "Andet1234x").UserID // real, wrong password
			}
			err := env.submit(f, flows.StepPassword, flows.Answer{Username: user, Password: "1397"})
			if i < maxFailures {
				wantAttempts(t, err, flows.CodeInvalidCredentials, maxFailures-1)
				continue
			}
			wantCode(t, err, flows.CodeTooManyAttempts)
		}
		if f.Step != flows.StepFailed {
			t.Fatalf("after %d wrong answers the flow is at %q, want failed", maxFailures, f.Step)
		}
		stored := env.load(t, f.ID)
		if stored.Step != flows.StepFailed || stored.Failure == nil || stored.Failure.Code != flows.CodeTooManyAttempts {
			t.Fatalf("stored flow: step %q failure %+v", stored.Step, stored.Failure)
		}
		wantCode(t, env.submit(stored, flows.StepPassword, flows.Answer{Username: right.UserID, Password: right.Password}), flows.CodeTooManyAttempts)
		if got := env.citizen(t, right.UserID); got.Failures != 0 {
			t.Fatalf("the refused answer counted against the citizen: %d", got.Failures)
		}
	})
}

// TestFlowLimitHoldsUnderRace: wrong answers racing on one flow (released together) cannot
// get more than max passwords checked.
func TestFlowLimitHoldsUnderRace(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		f := env.begin(t, flows.Start{})
		const racers = 4 * maxFailures
		start := make(chan struct{})
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				g := env.load(t, f.ID)
				<-start
				errs[i] = env.submit(g, flows.StepPassword, flows.Answer{Username: storetest.NewCPR(), Password: "1397"})
			})
		}
		close(start)
		wg.Wait()
		checked, spent := 0, 0
		for i, err := range errs {
			var fe *flows.Error
			switch {
			case errors.As(err, &fe) && fe.Code == flows.CodeInvalidCredentials:
				checked++
			case errors.As(err, &fe) && fe.Code == flows.CodeTooManyAttempts:
				spent++
			case errors.As(err, &fe) && (fe.Code == flows.CodeUnavailable || fe.Code == flows.CodeWrongStep):
			default:
				t.Fatalf("answer %d: %v", i, err)
			}
		}
		if checked > maxFailures-1 || spent == 0 {
			t.Fatalf("%d answers checked and %d refused as spent; want at most %d checked", checked, spent, maxFailures-1)
		}
		if got := env.load(t, f.ID); got.Step != flows.StepFailed {
			t.Fatalf("flow at %q, want failed", got.Step)
		}
	})
}

// TestAbandonedAttemptsCostNothing: requests with the right password that are cancelled while
// they wait for a busy KDF (client gone, timeout) leave no trace: the citizen stays active
// with no failures, the flow counts nothing, and the right password logs in at once
// afterwards (not "locked").
func TestAbandonedAttemptsCostNothing(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		env.e.Passwords = password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, Concurrency: 1, Queue: 4 * maxFailures})
		c := env.issueWithPassword(t, "Hemmelig42")
		release, err := env.e.Passwords.Hold(context.Background()) // the KDF busy until we say
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, maxFailures)
		var ids []string
		for range maxFailures {
			f := env.begin(t, flows.Start{})
			ids = append(ids, f.ID)
			go func() {
				errs <- env.e.Submit(ctx, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password})
			}()
		}
		// All of them in the KDF queue, their attempts reserved; then they are dropped.
		waitQueued(t, env.e.Passwords, maxFailures)
		cancel()
		for range maxFailures {
			if err := <-errs; !errors.Is(err, context.Canceled) {
				t.Fatalf("abandoned request: %v, want context.Canceled", err)
			}
		}
		release()
		if got := env.citizen(t, c.UserID); got.Status != store.StatusActive || got.Failures != 0 {
			t.Fatalf("after %d abandoned requests: status %q failures %d, want active 0", maxFailures, got.Status, got.Failures)
		}
		for _, id := range ids {
			if got := env.load(t, id); got.Failures != 0 {
				t.Fatalf("an abandoned answer counted against its flow: %d", got.Failures)
			}
		}
		env.login(t, c)
	})
}

// TestCancelledRequestForgivesNothing: a request that goes away before it reached Redis must
// not give back an attempt it never reserved (that would forgive an earlier wrong answer, and
// alternating the two would give one flow unlimited guesses).
func TestCancelledRequestForgivesNothing(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		f := env.begin(t, flows.Start{})
		judged := 0
		for range 4 * maxFailures {
			var fe *flows.Error
			if err := env.submit(env.load(t, f.ID), flows.StepPassword, flows.Answer{Username: storetest.NewCPR(), Password: "1397"}); errors.As(err, &fe) && fe.Code == flows.CodeInvalidCredentials {
				judged++
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = env.e.Submit(ctx, env.load(t, f.ID), flows.StepPassword, flows.Answer{Username: storetest.NewCPR(), Password: "1397"})
		}
		if judged != maxFailures-1 {
			t.Fatalf("%d wrong answers judged in one flow, want %d (then too_many_attempts)", judged, maxFailures-1)
		}
	})
}

// TestBusyLooksTheSameForUnknown: with max guesses in flight for one user ID (parallel
// guesses, held in the KDF queue), the next guess is "try again" — for a real citizen and for
// a user ID with no NemID alike, and then both answer the same sequence.
func TestBusyLooksTheSameForUnknown(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		env.e.Passwords = password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, Concurrency: 1, Queue: 4 * maxFailures})
		c := env.issueWithPassword(t, "Hemmelig42")
		probe := func(user string) []string {
			release, err := env.e.Passwords.Hold(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			errs := make(chan error, maxFailures)
			for range maxFailures {
				f := env.begin(t, flows.Start{})
				go func() { errs <- env.submit(f, flows.StepPassword, flows.Answer{Username: user, Password: "Forkert99"}) }()
			}
			waitQueued(t, env.e.Passwords, maxFailures)
			var fe *flows.Error
			errors.As(env.submit(env.begin(t, flows.Start{}), flows.StepPassword, flows.Answer{Username: user, Password: "Forkert99"}), &fe)
			codes := []string{fe.Code}
			release()
			var rest []string
			for range maxFailures {
				errors.As(<-errs, &fe)
				rest = append(rest, fmt.Sprintf("%s:%d", fe.Code, deref(fe.AttemptsLeft)))
			}
			slices.Sort(rest)
			return append(codes, rest...)
		}
		real, unknown := probe(c.UserID), probe(storetest.NewCPR())
		if real[0] != flows.CodeUnavailable || !slices.Equal(real, unknown) {
			t.Fatalf("real citizen answers %v, unknown user ID %v; want the same, starting with unavailable", real, unknown)
		}
	})
}

// waitQueued waits until n hashes wait for the KDF (which the test holds busy).
func waitQueued(t *testing.T, h *password.Hasher, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); h.Waiting() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests reached the KDF queue", h.Waiting(), n)
		}
	}
}

func deref(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

// TestUnsettledReservationRunsOut: reservations never settled (a crash between the reserve and
// the settle, or Redis failing at the settle) stop counting at their deadline, judged by the
// engine's clock.
func TestUnsettledReservationRunsOut(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Hemmelig42")
		for range maxFailures {
			if _, err := env.s.BeginAttempt(ctx, c.UserID, maxFailures, env.clock.Now(), 15*time.Second); err != nil {
				t.Fatal(err)
			}
		}
		f := env.begin(t, flows.Start{})
		wantCode(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}), flows.CodeUnavailable)
		env.clock.Add(16 * time.Second)
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		if got := env.citizen(t, c.UserID); got.Status != store.StatusActive || got.Failures != 0 {
			t.Fatalf("status %q failures %d, want active 0", got.Status, got.Failures)
		}
	})
}

// TestKDFQueueSheds: past the queue bound a password answer is "try again" at once, before
// anything is looked up or counted.
func TestKDFQueueSheds(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		env.e.Passwords = password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, Concurrency: 1, Queue: 1})
		c := env.issueWithPassword(t, "Hemmelig42")
		var held []*password.Ticket
		for range 2 { // the one slot and the one queue place
			tk, err := env.e.Passwords.Admit()
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, tk)
		}
		f := env.begin(t, flows.Start{})
		wantCode(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: "Forkert99"}), flows.CodeUnavailable)
		if got := env.load(t, f.ID); got.Failures != 0 {
			t.Fatalf("a shed answer counted against the flow: %d", got.Failures)
		}
		if got := env.citizen(t, c.UserID); got.Failures != 0 {
			t.Fatalf("a shed answer counted against the citizen: %d", got.Failures)
		}
		for _, tk := range held {
			tk.Release()
		}
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
	})
}

// TestDuplicateRightKeyCostsTheFlowNothing: the right key sent again by a stale copy of the
// login (a double click, a second tab) after the first copy moved on is no wrong answer: the
// flow's count of wrong answers stays where it was.
func TestDuplicateRightKeyCostsTheFlowNothing(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issueWithPassword(t, "Hemmelig42")
		f := env.begin(t, flows.Start{})
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		for range maxFailures - 2 {
			wantCode(t, env.submit(f, flows.StepCodeCard, flows.Answer{Key: c.wrongKey(f.KeyNumber)}), flows.CodeWrongKey)
		}
		stale := env.load(t, f.ID)
		key := c.key(f.KeyNumber)
		env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: key}, flows.StepDone)
		for range 3 {
			copy := *stale
			wantCode(t, env.submit(&copy, flows.StepCodeCard, flows.Answer{Key: key}), flows.CodeWrongStep)
		}
		if got := env.load(t, f.ID); got.Failures != maxFailures-2 || got.Step != flows.StepDone {
			t.Fatalf("after duplicates of the right key: %d wrong answers counted, step %q; want %d, done", got.Failures, got.Step, maxFailures-2)
		}
	})
}

// TestNoExistenceOracleOverTime: waiting between guesses tells an unknown user ID from a real
// citizen no more than guessing quickly: both counters live for good (no TTL in Redis), and
// the answers stay the same however far the engine's clock moves.
func TestNoExistenceOracleOverTime(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Hemmelig42")
		unknown := storetest.NewCPR()
		for i := 1; i < maxFailures; i++ {
			for _, user := range []string{c.UserID, unknown} {
				f := env.begin(t, flows.Start{})
				wantAttempts(t, env.submit(f, flows.StepPassword, flows.Answer{Username: user, Password: "Forkert99"}),
					flows.CodeInvalidCredentials, maxFailures-i)
			}
			env.clock.Add(25 * time.Hour) // a day between guesses
		}
		keys, err := env.s.Redis().Keys(ctx, env.prefix+"{u:*}").Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("unknown-user counters: %v %v, want one", keys, err)
		}
		if ttl, err := env.s.Redis().PTTL(ctx, keys[0]).Result(); err != nil || ttl != -1 {
			t.Fatalf("the unknown user's counter expires (PTTL %v, %v): waiting would tell it from a citizen", ttl, err)
		}
		for _, user := range []string{c.UserID, unknown} {
			f := env.begin(t, flows.Start{})
			wantCode(t, env.submit(f, flows.StepPassword, flows.Answer{Username: user, Password: "Forkert99"}), flows.CodeLocked)
		}
	})
}

// TestSecondTabAfterTheKeyWasUsed: two logins of one card (two tabs) are asked the card's one
// pending number. Once the first used its key, the second typing that same key is told it was
// just used, is asked the card's next number at once, and loses nothing: no failure for the
// citizen or the flow. A used key typed wrong still counts.
func TestSecondTabAfterTheKeyWasUsed(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issueWithPassword(t, "Hemmelig42")
		first, second := env.begin(t, flows.Start{}), env.begin(t, flows.Start{})
		env.mustSubmit(t, first, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		env.mustSubmit(t, second, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		number := first.KeyNumber
		if second.KeyNumber != number {
			t.Fatalf("two logins of one card asked %s and %s", number, second.KeyNumber)
		}
		env.mustSubmit(t, first, flows.StepCodeCard, flows.Answer{Key: c.key(number)}, flows.StepDone)
		fe := wantCode(t, env.submit(second, flows.StepCodeCard, flows.Answer{Key: c.key(number)}), flows.CodeUsedKey)
		if fe.AttemptsLeft != nil || fe.Failed() {
			t.Fatalf("the right, just used key counted as a failed answer: %+v", fe)
		}
		if second.KeyNumber == number || c.key(second.KeyNumber) == "" || env.load(t, second.ID).KeyNumber != second.KeyNumber {
			t.Fatalf("after the used key: key number %s (used %s), stored %s", second.KeyNumber, number, env.load(t, second.ID).KeyNumber)
		}
		if got := env.citizen(t, c.UserID); got.Failures != 0 {
			t.Fatalf("the citizen counts %d failures", got.Failures)
		}
		if got := env.load(t, second.ID); got.Failures != 0 {
			t.Fatalf("the second login counts %d wrong answers", got.Failures)
		}
		// A used key typed wrong is a wrong answer as before.
		third := env.begin(t, flows.Start{})
		env.mustSubmit(t, third, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		env.mustSubmit(t, second, flows.StepCodeCard, flows.Answer{Key: c.key(second.KeyNumber)}, flows.StepDone)
		wantAttempts(t, env.submit(third, flows.StepCodeCard, flows.Answer{Key: c.wrongKey(third.KeyNumber)}), flows.CodeUsedKey, maxFailures-1)
	})
}
