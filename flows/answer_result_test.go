package flows_test

import (
	"context"
	"fmt"
	"regexp"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/password"
)

// TestRightPasswordBlockedDuringKDF: a NemID blocked by an operator, or locked by wrong keys
// of another login, while the KDF checks its right password: the status read before the KDF
// said active, the one read with the settling does not. The answer is the block (or lock),
// and the login the save already moved on ends failed with it, for every later look; a
// key-app request it made is cancelled, so no device offers it. The KDF is held busy (one
// slot, taken by the test) until the block is in place: the answer waits in the KDF queue
// with its reservation made and the citizen read.
func TestRightPasswordBlockedDuringKDF(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		env.e.Passwords = password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, Concurrency: 1, Queue: 8})
		for _, tc := range []struct {
			name   string
			keyApp bool
			// meanwhile runs while the answer waits for the KDF; other is a login of c at its
			// code card, made before.
			meanwhile func(t *testing.T, c *citizen, f, other *flows.Flow)
			code      string
		}{
			{name: "blocked by an operator", code: flows.CodeBlocked,
				meanwhile: func(t *testing.T, c *citizen, _, _ *flows.Flow) { env.block(t, c.UserID, "misuse") }},
			{name: "locked by wrong keys of another login", code: flows.CodeLocked,
				meanwhile: func(t *testing.T, c *citizen, _, other *flows.Flow) {
					for range maxFailures {
						_ = env.submit(other, flows.StepCodeCard, flows.Answer{Key: c.wrongKey(other.KeyNumber)})
					}
					if got := env.citizen(t, c.UserID); got.Status != store.StatusBlocked || got.BlockReason != store.BlockFailures {
						t.Fatalf("after %d wrong keys: status %q (%s), want locked", maxFailures, got.Status, got.BlockReason)
					}
				}},
			{name: "key app, blocked by an operator", keyApp: true, code: flows.CodeBlocked,
				meanwhile: func(t *testing.T, c *citizen, _, _ *flows.Flow) { env.block(t, c.UserID, "operator") }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := env.issueWithPassword(t, "Hemmelig42")
				if tc.keyApp {
					env.withDevice(t, c)
				}
				other := env.begin(t, flows.Start{})
				if tc.keyApp { // the other login goes to the key app: back to the card
					env.mustSubmit(t, other, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepKeyApp)
					if err := env.e.SwitchMethod(ctx, other, flows.MethodCodeCard); err != nil {
						t.Fatal(err)
					}
				} else {
					env.atCodeCard(t, other, c)
				}
				f := env.begin(t, flows.Start{})
				release, err := env.e.Passwords.Hold(ctx)
				if err != nil {
					t.Fatal(err)
				}
				type result struct {
					f   *flows.Flow
					err error
				}
				done := make(chan result, 1)
				go func() {
					g, err := env.answer(f.ID, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, nil)
					done <- result{g, err}
				}()
				waitQueued(t, env.e.Passwords, 1) // read and reserved, waiting for the KDF
				tc.meanwhile(t, c, f, other)
				release()
				r := <-done
				wantCode(t, r.err, tc.code)
				if r.f == nil || r.f.Step != flows.StepFailed || r.f.Failure == nil || r.f.Failure.Code != tc.code {
					t.Fatalf("answered flow at %q (failure %+v), want failed with %s", r.f.Step, r.f.Failure, tc.code)
				}
				stored := env.load(t, f.ID)
				if stored.Step != flows.StepFailed || stored.Failure == nil || stored.Failure.Code != tc.code {
					t.Fatalf("stored flow at %q (failure %+v), want failed with %s", stored.Step, stored.Failure, tc.code)
				}
				for _, step := range []flows.Step{flows.StepCodeCard, flows.StepPassword} {
					_, err := env.answer(f.ID, step, flows.Answer{Username: c.UserID, Password: c.Password, Key: "123456"}, nil)
					wantCode(t, err, tc.code)
				}
				if n := env.inFlight(t, c.UserID, false); n != 0 {
					t.Fatalf("%d attempts left in flight", n)
				}
				if tc.keyApp {
					if r.f.Approval == nil {
						t.Fatal("the key-app login made no request")
					}
					if st, err := env.s.ApprovalState(ctx, c.UserID, r.f.Approval.ID); err != nil || st != store.ApprovalCancelled {
						t.Fatalf("the failed login's request is %q (%v), want cancelled", st, err)
					}
					if p, err := env.s.PendingApprovals(ctx, c.UserID, env.clock.Now()); err != nil || len(p) != 0 {
						t.Fatalf("pending requests of the blocked citizen: %+v (%v)", p, err)
					}
				}
			})
		}
	})
}

// TestRightPasswordBlockedDuringKDFAfterConflictingSave: as TestRightPasswordBlockedDuringKDF,
// when another request also saved the flow while the KDF ran (here: bound its browser), so
// that the answer's save — the one whose round trip settles the reservation and reads the
// status — conflicts and is applied again on the fresh flow. The status that round trip read
// (blocked) must still end the login: the answer is "blocked", the flow failed.
func TestRightPasswordBlockedDuringKDFAfterConflictingSave(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		env.e.Passwords = password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, Concurrency: 1, Queue: 8})
		c := env.issueWithPassword(t, "Hemmelig42")
		f := env.begin(t, flows.Start{})
		release, err := env.e.Passwords.Hold(ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		var got *flows.Flow
		go func() {
			var err error
			got, err = env.answer(f.ID, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, nil)
			done <- err
		}()
		waitQueued(t, env.e.Passwords, 1)
		if err := env.e.Bind(ctx, env.load(t, f.ID), "browser-a"); err != nil { // another request's save
			t.Fatal(err)
		}
		env.block(t, c.UserID, "misuse")
		release()
		err = <-done
		stored := env.load(t, f.ID)
		if stored.Browser != "browser-a" {
			t.Fatalf("the other request's save was lost: browser %q", stored.Browser)
		}
		wantCode(t, err, flows.CodeBlocked)
		if got == nil || got.Step != flows.StepFailed || stored.Step != flows.StepFailed || stored.Failure == nil || stored.Failure.Code != flows.CodeBlocked {
			t.Fatalf("flow at %q, stored at %q (failure %+v), want failed with blocked", got.Step, stored.Step, stored.Failure)
		}
	})
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestResultSubject: the key that completes a code-card login brings the citizen's pairwise
// subject at the flow's sector (SubjectSector, else the client id): the one the store keeps
// there, made at the first login and the same at every later one, and another at another
// sector. An SSO Resume brings the subject the citizen already has at the flow's sector, and
// none ("": the front end makes it) where they have none yet.
func TestResultSubject(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Hemmelig42")
		login := func(t *testing.T, s flows.Start) *flows.Flow {
			t.Helper()
			f := env.begin(t, s)
			env.mustAnswer(t, f.ID, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, nil, flows.StepCodeCard)
			return env.mustAnswer(t, f.ID, flows.StepCodeCard, flows.Answer{Key: c.key(env.load(t, f.ID).KeyNumber)}, nil, flows.StepDone)
		}
		known := func(t *testing.T, sector string) string {
			t.Helper()
			sub, err := env.s.KnownPairwiseSubject(ctx, c.UserID, sector)
			if err != nil {
				t.Fatal(err)
			}
			return sub
		}
		seen := map[string]string{} // sector → subject
		for _, tc := range []struct {
			name   string
			start  flows.Start
			sector string
		}{
			{"client as sector", flows.Start{ClientID: "netbank"}, "netbank"},
			{"same client again", flows.Start{ClientID: "netbank"}, "netbank"},
			{"another client", flows.Start{ClientID: "shop"}, "shop"},
			{"a sector", flows.Start{ClientID: "app", SubjectSector: "bank.example"}, "bank.example"},
			{"another client of the sector", flows.Start{ClientID: "web", SubjectSector: "bank.example"}, "bank.example"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := login(t, tc.start)
				sub := f.Result.Subject
				if !uuidRE.MatchString(sub) || sub != known(t, tc.sector) {
					t.Fatalf("Result.Subject %q, the store's subject at %s %q", sub, tc.sector, known(t, tc.sector))
				}
				if stored := env.load(t, f.ID).Result.Subject; stored != sub {
					t.Fatalf("stored Result.Subject %q, answered %q", stored, sub)
				}
				if prev, ok := seen[tc.sector]; ok && prev != sub {
					t.Fatalf("a second login at %s: subject %q, first %q", tc.sector, sub, prev)
				}
				for sector, other := range seen {
					if sector != tc.sector && other == sub {
						t.Fatalf("sectors %s and %s share subject %q", sector, tc.sector, sub)
					}
				}
				seen[tc.sector] = sub
			})
		}
		cookie, err := env.e.StartSession(ctx, env.login(t, c).Result)
		if err != nil {
			t.Fatal(err)
		}
		sess, err := env.e.Session(ctx, cookie)
		if err != nil || sess == nil {
			t.Fatalf("Session: %+v %v", sess, err)
		}
		for _, tc := range []struct {
			name  string
			start flows.Start
			want  string
		}{
			{"resume at a client with a subject", flows.Start{ClientID: "shop"}, seen["shop"]},
			{"resume at a sector with a subject", flows.Start{ClientID: "other", SubjectSector: "bank.example"}, seen["bank.example"]},
			{"resume where there is none yet", flows.Start{ClientID: "new-client"}, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := env.begin(t, tc.start)
				if ok, err := env.e.Resume(ctx, f, sess); !ok || err != nil {
					t.Fatalf("Resume = %v, %v", ok, err)
				}
				if f.Result.Subject != tc.want || env.load(t, f.ID).Result.Subject != tc.want {
					t.Fatalf("resumed Result.Subject %q (stored %q), want %q", f.Result.Subject, env.load(t, f.ID).Result.Subject, tc.want)
				}
			})
		}
	})
}

// TestSessionCookieOnlyFromCompletingAnswer: Flow.SessionCookie is set exactly by an Answer
// that completed the login — the card key, the new password or the act_as choice that made
// it done — and names a stored SSO session of that login. An answer that did not complete
// it, a login completed through Submit (the front end starts the session itself), from an SSO
// session, or by a key-app decision (applied by whichever instance got it; the browser gets
// its session from the next look), an answer refused, and the OCES gate get none.
func TestSessionCookieOnlyFromCompletingAnswer(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		g := newGuardianEnv(t, env)
		env.e.Policy = guardianAndOCES{g.e.Policy}
		type answered struct {
			f          *flows.Flow
			err        error
			completing bool // the answer that made the login done
		}
		// cookieOf checks the cookie of every answer a login gave: set by the completing one
		// only, naming a session of that login.
		check := func(t *testing.T, c *citizen, answers []answered) {
			t.Helper()
			for i, a := range answers {
				got := ""
				if a.f != nil {
					got = a.f.SessionCookie()
				}
				if !a.completing {
					if got != "" {
						t.Fatalf("answer %d (err %v, step %q) set SessionCookie", i, a.err, a.f.Step)
					}
					continue
				}
				if a.err != nil || got == "" || !a.f.Done() {
					t.Fatalf("completing answer %d: err %v, cookie %q", i, a.err, got)
				}
				s, err := env.e.Session(ctx, got)
				if err != nil || s == nil {
					t.Fatalf("the cookie names no session: %+v %v", s, err)
				}
				r := a.f.Result
				if s.CitizenID != c.UserID || s.SID != r.SessionID || !s.AuthTime.Equal(r.AuthTime) || fmt.Sprint(s.AMR) != fmt.Sprint(r.AMR) {
					t.Fatalf("session %+v, login result %+v", s, r)
				}
			}
		}
		step := func(f *flows.Flow, name flows.Step, a flows.Answer, completing bool) answered {
			g, err := env.answer(f.ID, name, a, nil)
			return answered{g, err, completing}
		}
		for _, tc := range []struct {
			name string
			run  func(t *testing.T) (*citizen, []answered)
		}{
			{"code card", func(t *testing.T) (*citizen, []answered) {
				c := env.issueWithPassword(t, "Hemmelig42")
				f := env.begin(t, flows.Start{})
				pw := step(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, false)
				wrong := step(f, flows.StepCodeCard, flows.Answer{Key: c.wrongKey(pw.f.KeyNumber)}, false)
				key := step(f, flows.StepCodeCard, flows.Answer{Key: c.key(pw.f.KeyNumber)}, true)
				again := step(f, flows.StepCodeCard, flows.Answer{Key: c.key(pw.f.KeyNumber)}, false)
				return c, []answered{pw, wrong, key, again}
			}},
			{"new password", func(t *testing.T) (*citizen, []answered) {
				c := env.issue(t)
				f := env.begin(t, flows.Start{})
				pw := step(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, false)
				key := step(f, flows.StepCodeCard, flows.Answer{Key: c.key(pw.f.KeyNumber)}, false)
				weak := step(f, flows.StepNewPassword, flows.Answer{NewPassword: "1234"}, false)
				chosen := step(f, flows.StepNewPassword, flows.Answer{NewPassword: "Valgt2026kode"}, true)
				return c, []answered{pw, key, weak, chosen}
			}},
			{"act as", func(t *testing.T) (*citizen, []answered) {
				c := g.guardian
				f := env.begin(t, flows.Start{ClientID: "kommune"})
				pw := step(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, false)
				key := step(f, flows.StepCodeCard, flows.Answer{Key: c.key(pw.f.KeyNumber)}, false)
				if key.f.Step != flows.StepActAs {
					t.Fatalf("guardian at %q, want act_as", key.f.Step)
				}
				bad := step(f, flows.StepActAs, flows.Answer{Principal: "no-such-ward"}, false)
				self := step(f, flows.StepActAs, flows.Answer{Principal: flows.PrincipalSelf}, true)
				return c, []answered{pw, key, bad, self}
			}},
			{"key app, then act as", func(t *testing.T) (*citizen, []answered) {
				c := env.issueWithPassword(t, "Værge2026y")
				if err := env.s.CreateGuardianship(ctx, &store.Guardianship{ID: "gs2-" + g.ward.UserID, Guardian: c.UserID, Ward: g.ward.UserID,
					WardName: "Mads Myndling", Kind: store.GuardianshipFull, CreatedAt: env.clock.Now()}); err != nil {
					t.Fatal(err)
				}
				dev := env.withDevice(t, c)
				f := env.begin(t, flows.Start{ClientID: "kommune"})
				pw := step(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, false)
				env.decide(t, c, pw.f, store.ApprovalApproved, pw.f.Approval.Code, dev)
				look := env.load(t, f.ID)
				if err := env.e.PollKeyApp(ctx, look, 0); err != nil || look.Step != flows.StepActAs {
					t.Fatalf("poll after the approval: %v, step %q", err, look.Step)
				}
				self := step(f, flows.StepActAs, flows.Answer{Principal: flows.PrincipalSelf}, true)
				return c, []answered{pw, {f: look}, self}
			}},
			{"OCES gate", func(t *testing.T) (*citizen, []answered) {
				cpr := storetest.NewCPR()
				r, err := env.is.IssueWithPassword(ctx, issuance.Request{CPR: cpr, Name: "Jens Hansen", Kind: "bank"}, "Hemmelig42")
				if err != nil {
					t.Fatal(err)
				}
				c := fromResult(cpr, "Hemmelig42", r)
				f := env.begin(t, flows.Start{ClientID: "gov"})
				pw := step(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, false)
				key := step(f, flows.StepCodeCard, flows.Answer{Key: c.key(pw.f.KeyNumber)}, false)
				wantCode(t, key.err, flows.CodeOCESRequired)
				return c, []answered{pw, key}
			}},
			{"Submit", func(t *testing.T) (*citizen, []answered) {
				c := env.issueWithPassword(t, "Hemmelig42")
				f := env.login(t, c) // Submit throughout
				return c, []answered{{f: f}, {f: env.load(t, f.ID)}}
			}},
			{"key app", func(t *testing.T) (*citizen, []answered) {
				c := env.issueWithPassword(t, "Hemmelig42")
				dev := env.withDevice(t, c)
				f := env.begin(t, flows.Start{})
				pw := step(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, false)
				if pw.f.Step != flows.StepKeyApp {
					t.Fatalf("at %q, want keyapp", pw.f.Step)
				}
				env.decide(t, c, pw.f, store.ApprovalApproved, pw.f.Approval.Code, dev) // ApplyDecision
				look := env.load(t, f.ID)
				if err := env.e.PollKeyApp(ctx, look, 0); err != nil || !look.Done() || !look.Result.Deferred {
					t.Fatalf("poll after the approval: %v, flow %+v", err, look)
				}
				late := step(f, flows.StepCodeCard, flows.Answer{Key: "123456"}, false)
				return c, []answered{pw, {f: look}, late}
			}},
			{"SSO session", func(t *testing.T) (*citizen, []answered) {
				c := env.issueWithPassword(t, "Hemmelig42")
				cookie, err := env.e.StartSession(ctx, env.login(t, c).Result)
				if err != nil {
					t.Fatal(err)
				}
				sess, err := env.e.Session(ctx, cookie)
				if err != nil {
					t.Fatal(err)
				}
				f := env.begin(t, flows.Start{})
				if ok, err := env.e.Resume(ctx, f, sess); !ok || err != nil {
					t.Fatalf("Resume = %v %v", ok, err)
				}
				late := step(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, false)
				return c, []answered{{f: f}, late}
			}},
			{"SSO session, then act as", func(t *testing.T) (*citizen, []answered) {
				c := g.guardian
				sess := &flows.SessionInfo{CitizenID: c.UserID, AMR: []string{flows.AMRPassword, flows.AMROTP},
					ACR: flows.ACRSubstantial, AuthTime: env.clock.Now(), SID: flows.NewID()}
				f := env.begin(t, flows.Start{ClientID: "kommune"})
				if ok, err := env.e.Resume(ctx, f, sess); !ok || err != nil || f.Step != flows.StepActAs {
					t.Fatalf("Resume = %v %v, step %q", ok, err, f.Step)
				}
				// Completes the login, but the browser has its session already.
				self := step(f, flows.StepActAs, flows.Answer{Principal: flows.PrincipalSelf}, false)
				if self.err != nil || !self.f.Done() {
					t.Fatalf("act as self: %v", self.err)
				}
				return c, []answered{{f: f}, self}
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c, answers := tc.run(t)
				check(t, c, answers)
			})
		}
	})
}

// guardianAndOCES is the guardian env's policy, with client "gov" requiring OCES.
type guardianAndOCES struct{ flows.ClientPolicy }

func (p guardianAndOCES) Policy(ctx context.Context, id string) (flows.Policy, error) {
	if id == "gov" {
		return flows.Policy{RequiresOCES: true}, nil
	}
	return p.ClientPolicy.Policy(ctx, id)
}

// TestSessionCookieAfterConflictingSave: the card key that completes a login while another
// request of its browser saved the flow after the answer loaded it, leaving it at the same
// step and key number ("use the code card" chosen again in a second tab), is applied again on
// the fresh flow and completes it — and that answer still starts the login's SSO session and
// hands back its cookie, as every completing answer does.
func TestSessionCookieAfterConflictingSave(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Hemmelig42")
		f := env.boundFlow(t, flows.Start{}, "browser-a")
		env.atCodeCard(t, f, c)
		key := c.key(f.KeyNumber)
		racer := &flowRacer{flowKey: env.prefix + "flow:" + f.ID, run: func(ctx context.Context) error {
			// Between the answer's load and its key's use.
			other := env.load(t, f.ID)
			if err := env.e.SwitchMethod(ctx, other, flows.MethodCodeCard); err != nil {
				return err
			}
			if other.KeyNumber != f.KeyNumber || other.Step != flows.StepCodeCard {
				return fmt.Errorf("the method choice moved the flow to %q, key %s", other.Step, other.KeyNumber)
			}
			return nil
		}}
		env.s.Redis().AddHook(racer)
		got, err := env.answer(f.ID, flows.StepCodeCard, flows.Answer{Key: key}, boundTo("browser-a"))
		if !racer.fired.Load() {
			t.Fatal("the answer was not raced")
		}
		if err != nil || got == nil || !got.Done() {
			t.Fatalf("Answer: %v, flow %+v", err, got)
		}
		cookie := got.SessionCookie()
		if cookie == "" {
			t.Fatal("the answer that completed the login (its first save conflicted) started no SSO session")
		}
		if s, err := env.e.Session(ctx, cookie); err != nil || s == nil || s.CitizenID != c.UserID {
			t.Fatalf("the cookie names session %+v (%v)", s, err)
		}
	})
}

// flowRacer runs run once, just before the first script naming the flow stored at flowKey
// without its data (an answer's reservation of a flow attempt, which comes after its load)
// reaches Redis: another request's change between the answer's load and its save.
type flowRacer struct {
	flowKey string
	run     func(ctx context.Context) error
	fired   atomic.Bool
}

func (r *flowRacer) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *flowRacer) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := r.race(ctx, []redis.Cmder{cmd}); err != nil {
			return err
		}
		return next(ctx, cmd)
	}
}
func (r *flowRacer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if err := r.race(ctx, cmds); err != nil {
			return err
		}
		return next(ctx, cmds)
	}
}

func (r *flowRacer) race(ctx context.Context, cmds []redis.Cmder) error {
	for _, cmd := range cmds {
		if r.reserves(cmd) && r.fired.CompareAndSwap(false, true) {
			return r.run(ctx)
		}
	}
	return nil
}

func (r *flowRacer) reserves(cmd redis.Cmder) bool {
	if name := cmd.Name(); name != "evalsha" && name != "eval" {
		return false
	}
	key := false
	for _, a := range cmd.Args() {
		switch v := a.(type) {
		case string:
			key = key || v == r.flowKey
		case []byte:
			return false // a save
		}
	}
	return key
}
