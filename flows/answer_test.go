package flows_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/password"
)

// Engine.Answer: the browser's answer, which loads its flow itself (in the answer's first
// round trip for the password and code-card steps) and lets the front end's guard refuse it
// once loaded. These tests attack what the answer reserves before the guard and the flow's
// state have been looked at, and what the answer that completes the login hands back.

// errOtherBrowser is what the tests' guard answers for a flow bound to another browser.
var errOtherBrowser = errors.New("guard: the flow is bound to another browser")

// boundTo is the guard of a front end whose request comes from browser.
func boundTo(browser string) func(*flows.Flow) error {
	return func(f *flows.Flow) error {
		if f.Browser != browser {
			return errOtherBrowser
		}
		return nil
	}
}

// inFlight counts the password attempts reserved on uid's record and not settled: the
// citizen's, or (unknown) the record an unknown user ID of user-ID shape counts on.
func (env *env) inFlight(t testing.TB, uid string, unknown bool) int64 {
	t.Helper()
	key := storetest.CitizenKey(env.prefix, uid) + ":att"
	if unknown {
		key = storetest.CitizenKey(env.prefix, uid) + ":unknown:att"
	}
	n, err := env.s.Redis().ZCard(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("ZCARD %s: %v", key, err)
	}
	return n
}

// answer is Engine.Answer with a background context.
func (env *env) answer(id string, step flows.Step, a flows.Answer, guard func(*flows.Flow) error) (*flows.Flow, error) {
	return env.e.Answer(context.Background(), id, step, a, guard)
}

// mustAnswer answers through Engine.Answer, which must succeed and move the flow to want.
func (env *env) mustAnswer(t testing.TB, id string, step flows.Step, a flows.Answer, guard func(*flows.Flow) error, want flows.Step) *flows.Flow {
	t.Helper()
	f, err := env.answer(id, step, a, guard)
	if err != nil {
		t.Fatalf("Answer(%s): %v", step, err)
	}
	if f == nil || f.Step != want {
		t.Fatalf("Answer(%s): flow %+v, want step %q", step, f, want)
	}
	if stored := env.load(t, id); stored.Step != want {
		t.Fatalf("Answer(%s): stored step %q, want %q", step, stored.Step, want)
	}
	return f
}

// boundFlow begins a flow bound to browser.
func (env *env) boundFlow(t testing.TB, s flows.Start, browser string) *flows.Flow {
	t.Helper()
	f := env.begin(t, s)
	if err := env.e.Bind(context.Background(), f, browser); err != nil {
		t.Fatalf("Bind: %v", err)
	}
	return f
}

// TestAnswerGuardRefusalCountsNothing: an answer whose flow the guard refuses (a POST from
// another browser) is judged not at all. Whatever it reserved in the round trip that loaded
// the flow is given back: the flow's wrong answers, the citizen's failures and the attempts
// in flight are as before, no key is used. Refused max times over, it still leaves the right
// browser's right answer to succeed at once (not "try again": max leaked reservations would
// make it so, and not too_many_attempts).
func TestAnswerGuardRefusalCountsNothing(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		var unknown string // a user ID with no NemID, new for each case
		for _, tc := range []struct {
			name string
			// at brings c's flow to the step the answer is for.
			at    func(t *testing.T, f *flows.Flow, c *citizen)
			step  flows.Step
			probe func(f *flows.Flow, c *citizen) flows.Answer // the refused answer
			right func(f *flows.Flow, c *citizen) flows.Answer // then the right browser's
			want  flows.Step
			// activation: c still has the temporary activation password (new_password follows).
			activation bool
		}{
			{name: "right password", step: flows.StepPassword,
				probe: func(_ *flows.Flow, c *citizen) flows.Answer {
					return flows.Answer{Username: c.UserID, Password: c.Password}
				},
				right: func(_ *flows.Flow, c *citizen) flows.Answer {
					return flows.Answer{Username: c.UserID, Password: c.Password}
				},
				want: flows.StepCodeCard},
			{name: "wrong password", step: flows.StepPassword,
				probe: func(_ *flows.Flow, c *citizen) flows.Answer {
					return flows.Answer{Username: c.UserID, Password: "Forkert99"}
				},
				right: func(_ *flows.Flow, c *citizen) flows.Answer {
					return flows.Answer{Username: c.UserID, Password: c.Password}
				},
				want: flows.StepCodeCard},
			{name: "unknown user ID", step: flows.StepPassword,
				probe: func(*flows.Flow, *citizen) flows.Answer {
					return flows.Answer{Username: unknown, Password: "Forkert99"}
				},
				right: func(_ *flows.Flow, c *citizen) flows.Answer {
					return flows.Answer{Username: c.UserID, Password: c.Password}
				},
				want: flows.StepCodeCard},
			{name: "right key", step: flows.StepCodeCard, at: env.atCodeCard,
				probe: func(f *flows.Flow, c *citizen) flows.Answer { return flows.Answer{Key: c.key(f.KeyNumber)} },
				right: func(f *flows.Flow, c *citizen) flows.Answer { return flows.Answer{Key: c.key(f.KeyNumber)} },
				want:  flows.StepDone},
			{name: "wrong key", step: flows.StepCodeCard, at: env.atCodeCard,
				probe: func(f *flows.Flow, c *citizen) flows.Answer { return flows.Answer{Key: c.wrongKey(f.KeyNumber)} },
				right: func(f *flows.Flow, c *citizen) flows.Answer { return flows.Answer{Key: c.key(f.KeyNumber)} },
				want:  flows.StepDone},
			{name: "new password", step: flows.StepNewPassword, activation: true,
				at: func(t *testing.T, f *flows.Flow, c *citizen) {
					env.atCodeCard(t, f, c)
					env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, flows.StepNewPassword)
				},
				probe: func(*flows.Flow, *citizen) flows.Answer { return flows.Answer{NewPassword: "Valgt2026kode"} },
				right: func(*flows.Flow, *citizen) flows.Answer { return flows.Answer{NewPassword: "Valgt2026kode"} },
				want:  flows.StepDone},
		} {
			t.Run(tc.name, func(t *testing.T) {
				unknown = storetest.NewUserID()
				var c *citizen
				if tc.activation {
					c = env.issue(t)
				} else {
					c = env.issueWithPassword(t, "Hemmelig42")
				}
				f := env.boundFlow(t, flows.Start{}, "browser-a")
				if tc.at != nil {
					tc.at(t, f, c)
				}
				before := env.load(t, f.ID)
				for i := range maxFailures {
					got, err := env.answer(f.ID, tc.step, tc.probe(before, c), boundTo("browser-b"))
					if !errors.Is(err, errOtherBrowser) {
						t.Fatalf("refused answer %d: %v, want the guard's error", i, err)
					}
					if got == nil || got.ID != f.ID || got.Step != before.Step {
						t.Fatalf("refused answer %d: flow %+v, want the flow as loaded", i, got)
					}
				}
				after := env.load(t, f.ID)
				if after.Failures != before.Failures || after.Step != before.Step || after.KeyNumber != before.KeyNumber {
					t.Fatalf("after refused answers: flow failures %d step %q key %q, before %d %q %q",
						after.Failures, after.Step, after.KeyNumber, before.Failures, before.Step, before.KeyNumber)
				}
				if got := env.citizen(t, c.UserID); got.Failures != 0 || got.Status != store.StatusActive {
					t.Fatalf("refused answers counted against the citizen: status %q failures %d", got.Status, got.Failures)
				}
				if n, m := env.inFlight(t, c.UserID, false), env.inFlight(t, unknown, true); n != 0 || m != 0 {
					t.Fatalf("refused answers left %d (citizen) and %d (unknown user ID) attempts in flight", n, m)
				}
				if before.KeyNumber != "" {
					if unused, err := env.s.KeyUnused(context.Background(), c.UserID, c.Serial, before.KeyNumber); err != nil || !unused {
						t.Fatalf("a refused answer used key %s (%v)", before.KeyNumber, err)
					}
				}
				env.mustAnswer(t, f.ID, tc.step, tc.right(before, c), boundTo("browser-a"), tc.want)
			})
		}
	})
}

// atCodeCard answers f's password step with c's right password.
func (env *env) atCodeCard(t *testing.T, f *flows.Flow, c *citizen) {
	t.Helper()
	env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
}

// TestAnswerToFlowThatCannotTakeItGivesBack: a password answer through Answer to a flow at
// another step, expired or failed is refused with the flow's own answer, after the round
// trip that reserved its attempts: they are given back (the citizen's in flight and failures,
// the flow's count). Sent max times, the citizen's next login still succeeds at once.
func TestAnswerToFlowThatCannotTakeItGivesBack(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		for _, tc := range []struct {
			name string
			// flow makes the flow the answers go to; last, since it may move the clock.
			flow func(t *testing.T, c *citizen) *flows.Flow
			code string
		}{
			{"at the code card", func(t *testing.T, c *citizen) *flows.Flow {
				f := env.begin(t, flows.Start{})
				env.atCodeCard(t, f, c)
				return f
			}, flows.CodeWrongStep},
			{"done", func(t *testing.T, c *citizen) *flows.Flow { return env.login(t, c) }, flows.CodeWrongStep},
			{"failed: too many wrong answers", func(t *testing.T, c *citizen) *flows.Flow {
				f := env.begin(t, flows.Start{})
				for range maxFailures {
					_ = env.submit(f, flows.StepPassword, flows.Answer{Username: storetest.NewCPR(), Password: "1397"})
				}
				if env.load(t, f.ID).Step != flows.StepFailed {
					t.Fatal("the flow did not fail")
				}
				return f
			}, flows.CodeTooManyAttempts},
			{"failed: denied in the key app", func(t *testing.T, c *citizen) *flows.Flow {
				other := env.issueWithPassword(t, "Hemmelig42")
				dev := env.withDevice(t, other)
				f := env.atKeyApp(t, other)
				env.decide(t, other, f, store.ApprovalDenied, f.Approval.Code, dev)
				if env.load(t, f.ID).Step != flows.StepFailed {
					t.Fatal("the flow did not fail")
				}
				return f
			}, flows.CodeKeyAppDenied},
			{"failed: ended by the front end", func(t *testing.T, c *citizen) *flows.Flow {
				f := env.begin(t, flows.Start{})
				if err := env.e.Fail(ctx, f, flows.Errorf(flows.CodeLoginRequired, "not logged in")); err != nil {
					t.Fatal(err)
				}
				return f
			}, flows.CodeLoginRequired},
			{"expired", func(t *testing.T, c *citizen) *flows.Flow {
				f := env.begin(t, flows.Start{})
				env.clock.Add(flowTTL + time.Second) // still stored: Redis keeps it for the way back
				return f
			}, flows.CodeFlowExpired},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := env.issueWithPassword(t, "Hemmelig42")
				f := tc.flow(t, c)
				before := env.load(t, f.ID)
				for range maxFailures {
					for _, pw := range []string{c.Password, "Forkert99"} {
						got, err := env.answer(f.ID, flows.StepPassword, flows.Answer{Username: c.UserID, Password: pw}, nil)
						wantCode(t, err, tc.code)
						if got == nil || got.ID != f.ID {
							t.Fatalf("Answer returned flow %+v, want the flow as loaded", got)
						}
					}
				}
				if n := env.inFlight(t, c.UserID, false); n != 0 {
					t.Fatalf("%d attempts left in flight", n)
				}
				if got := env.citizen(t, c.UserID); got.Failures != 0 || got.Status != store.StatusActive {
					t.Fatalf("the refused answers counted against the citizen: status %q failures %d", got.Status, got.Failures)
				}
				if after := env.load(t, f.ID); after.Failures != before.Failures || after.Step != before.Step {
					t.Fatalf("flow failures %d step %q, before %d %q", after.Failures, after.Step, before.Failures, before.Step)
				}
				env.login(t, c)
			})
		}
	})
}

// TestPasswordAnswerToGoneFlow: a password answer for a flow that is not (or no longer) in
// Redis is flow_expired, with no flow and no guard asked, and leaves no reservation behind:
// not for the citizen named, nor for an unknown user ID; no password is judged.
func TestPasswordAnswerToGoneFlow(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Hemmelig42")
		unknown := storetest.NewUserID()
		for _, tc := range []struct {
			name string
			id   func(t *testing.T) string
		}{
			{"never made", func(*testing.T) string { return flows.NewID() }},
			{"run out in Redis", func(t *testing.T) string {
				f := env.boundFlow(t, flows.Start{}, "browser-a")
				if err := env.s.Redis().Del(ctx, env.prefix+"flow:"+f.ID).Err(); err != nil {
					t.Fatal(err)
				}
				return f.ID
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				id := tc.id(t)
				for range maxFailures {
					for _, a := range []flows.Answer{
						{Username: c.UserID, Password: c.Password},
						{Username: c.UserID, Password: "Forkert99"},
						{Username: unknown, Password: "Forkert99"},
						{Username: c.CPR, Password: c.Password},
					} {
						guarded := false
						f, err := env.answer(id, flows.StepPassword, a, func(*flows.Flow) error { guarded = true; return nil })
						wantCode(t, err, flows.CodeFlowExpired)
						if f != nil || guarded {
							t.Fatalf("a gone flow: flow %+v, guard asked %v", f, guarded)
						}
					}
				}
				if n, m := env.inFlight(t, c.UserID, false), env.inFlight(t, unknown, true); n != 0 || m != 0 {
					t.Fatalf("answers to a gone flow left %d (citizen) and %d (unknown) attempts in flight", n, m)
				}
				if got := env.citizen(t, c.UserID); got.Failures != 0 {
					t.Fatalf("answers to a gone flow counted %d failures", got.Failures)
				}
				if locked, err := env.s.UnknownLocked(ctx, unknown, "", 1); err != nil || locked {
					t.Fatalf("answers to a gone flow counted against the unknown user ID (%v)", err)
				}
				env.login(t, c)
			})
		}
	})
}

// TestAnswerInvalidPassword: a malformed password answer through Answer is invalid_request
// with the flow loaded (the page is shown again) and nothing reserved; the guard and the
// flow's own state are answered first, as for any answer.
func TestAnswerInvalidPassword(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issueWithPassword(t, "Hemmelig42")
		f := env.boundFlow(t, flows.Start{}, "browser-a")
		atCard := env.boundFlow(t, flows.Start{}, "browser-a")
		env.atCodeCard(t, atCard, c)
		for _, tc := range []struct {
			name  string
			id    string
			a     flows.Answer
			guard func(*flows.Flow) error
			code  string // "" : the guard's error
		}{
			{"empty password", f.ID, flows.Answer{Username: c.UserID}, boundTo("browser-a"), flows.CodeInvalidRequest},
			{"empty user ID", f.ID, flows.Answer{Password: c.Password}, boundTo("browser-a"), flows.CodeInvalidRequest},
			{"blank user ID", f.ID, flows.Answer{Username: "  ", Password: c.Password}, nil, flows.CodeInvalidRequest},
			{"password too long", f.ID, flows.Answer{Username: c.UserID, Password: strings.Repeat("x", 257)}, nil, flows.CodeInvalidRequest},
			{"empty password, other browser", f.ID, flows.Answer{Username: c.UserID}, boundTo("browser-b"), ""},
			{"empty password, at the code card", atCard.ID, flows.Answer{Username: c.UserID}, boundTo("browser-a"), flows.CodeWrongStep},
			{"empty password, gone flow", flows.NewID(), flows.Answer{Username: c.UserID}, boundTo("browser-a"), flows.CodeFlowExpired},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := env.answer(tc.id, flows.StepPassword, tc.a, tc.guard)
				if tc.code == "" {
					if !errors.Is(err, errOtherBrowser) {
						t.Fatalf("err = %v, want the guard's", err)
					}
				} else {
					wantCode(t, err, tc.code)
				}
				if tc.code == flows.CodeFlowExpired {
					if got != nil {
						t.Fatalf("a gone flow returned %+v", got)
					}
					return
				}
				if got == nil || got.ID != tc.id {
					t.Fatalf("Answer returned flow %+v, want flow %s as loaded", got, tc.id)
				}
			})
		}
		for _, id := range []string{f.ID, atCard.ID} {
			if got := env.load(t, id); got.Failures != 0 {
				t.Fatalf("malformed answers counted %d wrong answers against flow %s", got.Failures, id)
			}
		}
		if n := env.inFlight(t, c.UserID, false); n != 0 {
			t.Fatalf("malformed answers left %d attempts in flight", n)
		}
		if got := env.citizen(t, c.UserID); got.Failures != 0 {
			t.Fatalf("malformed answers counted %d failures", got.Failures)
		}
		env.mustAnswer(t, f.ID, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, boundTo("browser-a"), flows.StepCodeCard)
	})
}

// TestAnswerKDFQueueFull: with the KDF queue full, a password answer through Answer is
// "try again" (unavailable, a *flows.Error with a readable message) with its flow loaded, and
// counts nothing; the guard and the flow's state are still answered first.
func TestAnswerKDFQueueFull(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		env.e.Passwords = password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, Concurrency: 1, Queue: 1})
		c := env.issueWithPassword(t, "Hemmelig42")
		f := env.boundFlow(t, flows.Start{}, "browser-a")
		atCard := env.boundFlow(t, flows.Start{}, "browser-a")
		env.atCodeCard(t, atCard, c)
		var held []*password.Ticket
		for range 2 { // the one slot and the one queue place
			tk, err := env.e.Passwords.Admit()
			if err != nil {
				t.Fatal(err)
			}
			held = append(held, tk)
		}
		right := flows.Answer{Username: c.UserID, Password: c.Password}
		for _, tc := range []struct {
			name  string
			id    string
			a     flows.Answer
			guard func(*flows.Flow) error
			code  string // "": the guard's error
		}{
			{"right password", f.ID, right, boundTo("browser-a"), flows.CodeUnavailable},
			{"wrong password", f.ID, flows.Answer{Username: c.UserID, Password: "Forkert99"}, nil, flows.CodeUnavailable},
			{"unknown user ID", f.ID, flows.Answer{Username: storetest.NewUserID(), Password: "Forkert99"}, nil, flows.CodeUnavailable},
			{"other browser", f.ID, right, boundTo("browser-b"), ""},
			{"at the code card", atCard.ID, right, nil, flows.CodeWrongStep},
			{"gone flow", flows.NewID(), right, nil, flows.CodeFlowExpired},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := env.answer(tc.id, flows.StepPassword, tc.a, tc.guard)
				if err != nil && strings.Contains(err.Error(), "%!") {
					t.Fatalf("error %q: a nil error was wrapped", err)
				}
				switch tc.code {
				case "":
					if !errors.Is(err, errOtherBrowser) {
						t.Fatalf("err = %v, want the guard's", err)
					}
				case flows.CodeUnavailable:
					if fe := wantCode(t, err, tc.code); fe.Message == "" || fe.Failed() {
						t.Fatalf("busy: %+v, want a message and no failed answer", fe)
					}
				default:
					wantCode(t, err, tc.code)
				}
				if tc.code == flows.CodeFlowExpired {
					if got != nil {
						t.Fatalf("a gone flow returned %+v", got)
					}
					return
				}
				if got == nil || got.ID != tc.id {
					t.Fatalf("Answer returned flow %+v, want flow %s as loaded", got, tc.id)
				}
			})
		}
		if got := env.load(t, f.ID); got.Failures != 0 || got.Step != flows.StepPassword {
			t.Fatalf("shed answers: flow failures %d step %q", got.Failures, got.Step)
		}
		if n := env.inFlight(t, c.UserID, false); n != 0 {
			t.Fatalf("shed answers left %d attempts in flight", n)
		}
		for _, tk := range held {
			tk.Release()
		}
		env.mustAnswer(t, f.ID, flows.StepPassword, right, boundTo("browser-a"), flows.StepCodeCard)
	})
}

// TestDuplicateAnswersRace: the right answer sent several times at once through Answer (a
// double click, a retry), released together at a barrier: exactly one moves the login on,
// every other is wrong_step; nothing is counted (the flow's wrong answers, the citizen's
// failures, attempts in flight), and of the card keys exactly the one that completed the
// login hands back an SSO session.
func TestDuplicateAnswersRace(t *testing.T) {
	t.Parallel()
	const racers = maxFailures - 1 // within both budgets: every duplicate is judged
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issueWithPassword(t, "Hemmelig42")
		f := env.boundFlow(t, flows.Start{}, "browser-a")
		race := func(step flows.Step, a flows.Answer) ([]*flows.Flow, []error) {
			got, errs := make([]*flows.Flow, racers), make([]error, racers)
			var ready, done sync.WaitGroup
			start := make(chan struct{})
			ready.Add(racers)
			for i := range racers {
				done.Go(func() {
					ready.Done()
					<-start
					got[i], errs[i] = env.answer(f.ID, step, a, boundTo("browser-a"))
				})
			}
			ready.Wait()
			close(start)
			done.Wait()
			return got, errs
		}
		winner := func(t *testing.T, errs []error) int {
			t.Helper()
			won := -1
			for i, err := range errs {
				if err == nil {
					if won >= 0 {
						t.Fatalf("answers %d and %d both won", won, i)
					}
					won = i
					continue
				}
				wantCode(t, err, flows.CodeWrongStep)
			}
			if won < 0 {
				t.Fatalf("no answer won: %v", errs)
			}
			return won
		}
		_, errs := race(flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password})
		winner(t, errs)
		stored := env.load(t, f.ID)
		if stored.Step != flows.StepCodeCard || stored.Failures != 0 {
			t.Fatalf("after duplicate passwords: step %q, %d wrong answers", stored.Step, stored.Failures)
		}
		if n := env.inFlight(t, c.UserID, false); n != 0 {
			t.Fatalf("duplicate passwords left %d attempts in flight", n)
		}
		got, errs := race(flows.StepCodeCard, flows.Answer{Key: c.key(stored.KeyNumber)})
		w := winner(t, errs)
		for i, g := range got {
			if cookie := g.SessionCookie(); (cookie != "") != (i == w) {
				t.Fatalf("answer %d (winner %d) has SessionCookie %q", i, w, cookie)
			}
		}
		if s, err := env.e.Session(context.Background(), got[w].SessionCookie()); err != nil || s == nil || s.CitizenID != c.UserID {
			t.Fatalf("the winner's cookie names session %+v (%v)", s, err)
		}
		if stored := env.load(t, f.ID); stored.Step != flows.StepDone || stored.Failures != 0 {
			t.Fatalf("after duplicate keys: step %q, %d wrong answers", stored.Step, stored.Failures)
		}
		if got := env.citizen(t, c.UserID); got.Failures != 0 || got.Status != store.StatusActive {
			t.Fatalf("duplicates counted against the citizen: status %q failures %d", got.Status, got.Failures)
		}
	})
}
