package flows_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
)

const (
	maxFailures = 5
	flowTTL     = 10 * time.Minute
)

// clock is the engine's time, moved by the tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is an engine on a fresh store, with an issuer for its citizens.
type env struct {
	e      *flows.Engine
	is     *issuance.Issuer
	s      *store.Store
	prefix string
	clock  *clock
}

// backends are the stores the engine tests run on: embedded always, a real Redis when one
// answers (or always, with CI set).
func backends() []storetest.Backend {
	return []storetest.Backend{storetest.Embedded(), storetest.Real()}
}

// eachBackend runs fn against a fresh engine on every backend.
func eachBackend(t *testing.T, fn func(t *testing.T, env *env)) {
	t.Helper()
	for _, b := range backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, b, password.TestParams))
		})
	}
}

func newEnv(t testing.TB, b storetest.Backend, kdf password.Params) *env {
	t.Helper()
	s, prefix := storetest.NewStorePrefixed(t, b.Client(t))
	cards, err := codecard.NewHasher([]byte("card-secret-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	pw := password.NewHasher(kdf)
	c := &clock{t: time.Now().UTC()}
	return &env{
		e: &flows.Engine{
			Store: s, Passwords: pw, Cards: cards, MaxFailures: maxFailures,
			FlowTTL: flowTTL, SessionTTL: 8 * time.Hour, Grace: time.Hour, Now: c.Now,
		},
		is:     &issuance.Issuer{Store: s, Passwords: pw, Cards: cards, Now: c.Now},
		s:      s,
		prefix: prefix,
		clock:  c,
	}
}

// citizen is an issued NemID as the citizen holds it: user id, password, printed card.
type citizen struct {
	UserID   string
	CPR      string
	Password string
	Serial   string
	Keys     map[string]string // key number → key
}

func (c *citizen) key(number string) string { return c.Keys[number] }

// wrongKey is a well-formed key that is not the one printed beside number.
func (c *citizen) wrongKey(number string) string {
	k := []byte(c.Keys[number])
	k[0] = '0' + (k[0]-'0'+1)%10
	return string(k)
}

func fromResult(cpr, pw string, r *issuance.Result) *citizen {
	c := &citizen{UserID: r.UserID, CPR: cpr, Password: pw, Serial: r.Card.Serial, Keys: map[string]string{}}
	if r.ActivationPassword != "" {
		c.Password = r.ActivationPassword
	}
	for _, k := range r.Card.Keys {
		c.Keys[k.Number] = k.Key
	}
	return c
}

// issue makes a NemID with a temporary activation password.
func (env *env) issue(t testing.TB) *citizen {
	t.Helper()
	return env.issueCPR(t, storetest.NewCPR())
}

func (env *env) issueCPR(t testing.TB, cpr string) *citizen {
	t.Helper()
	r, err := env.is.Issue(context.Background(), issuance.Request{CPR: cpr, Name: "Jens Hansen"})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return fromResult(cpr, "", r)
}

// issueWithPassword makes a NemID whose password is already chosen.
func (env *env) issueWithPassword(t testing.TB, pw string) *citizen {
	t.Helper()
	cpr := storetest.NewCPR()
	r, err := env.is.IssueWithPassword(context.Background(), issuance.Request{CPR: cpr, Name: "Jens Hansen"}, pw)
	if err != nil {
		t.Fatalf("IssueWithPassword: %v", err)
	}
	return fromResult(cpr, pw, r)
}

func (env *env) begin(t testing.TB, s flows.Start) *flows.Flow {
	t.Helper()
	if s.ReturnURL == nil {
		s.ReturnURL = func(id string) string { return "https://rp.example/cb?flow=" + id }
	}
	if s.ClientID == "" {
		s.ClientID = "netbank"
	}
	f, err := env.e.Begin(context.Background(), s)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	return f
}

func (env *env) load(t testing.TB, id string) *flows.Flow {
	t.Helper()
	f, err := env.e.Load(context.Background(), id)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return f
}

func (env *env) citizen(t testing.TB, uid string) *store.Citizen {
	t.Helper()
	c, err := env.s.Citizen(context.Background(), uid)
	if err != nil {
		t.Fatalf("Citizen: %v", err)
	}
	return c
}

// block blocks a NemID as an operator would (no store API for it yet).
func (env *env) block(t testing.TB, uid, reason string) {
	t.Helper()
	err := env.s.Redis().HSet(context.Background(), storetest.CitizenKey(env.prefix, uid),
		"status", store.StatusBlocked, "block_reason", reason).Err()
	if err != nil {
		t.Fatal(err)
	}
}

func (env *env) submit(f *flows.Flow, step flows.Step, a flows.Answer) error {
	return env.e.Submit(context.Background(), f, step, a)
}

// mustSubmit submits an answer that must succeed and moves the flow to want.
func (env *env) mustSubmit(t testing.TB, f *flows.Flow, step flows.Step, a flows.Answer, want flows.Step) {
	t.Helper()
	if err := env.submit(f, step, a); err != nil {
		t.Fatalf("Submit(%s): %v", step, err)
	}
	if f.Step != want {
		t.Fatalf("after %s: step %q, want %q", step, f.Step, want)
	}
	if stored := env.load(t, f.ID); stored.Step != want {
		t.Fatalf("after %s: stored step %q, want %q", step, stored.Step, want)
	}
}

// login runs a whole login of c and returns the finished flow.
func (env *env) login(t testing.TB, c *citizen) *flows.Flow {
	t.Helper()
	f := env.begin(t, flows.Start{})
	env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
	env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, flows.StepDone)
	return f
}

// wantCode asserts err is a *flows.Error with code, and returns it.
func wantCode(t testing.TB, err error, code string) *flows.Error {
	t.Helper()
	var fe *flows.Error
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want a *flows.Error %q", err, err, code)
	}
	if fe.Code != code {
		t.Fatalf("error code %q (%s), want %q", fe.Code, fe.Message, code)
	}
	return fe
}

// wantAttempts asserts an attempts-left error.
func wantAttempts(t testing.TB, err error, code string, left int) {
	t.Helper()
	fe := wantCode(t, err, code)
	if fe.AttemptsLeft == nil || *fe.AttemptsLeft != left {
		got := "none"
		if fe.AttemptsLeft != nil {
			got = fmt.Sprint(*fe.AttemptsLeft)
		}
		t.Fatalf("%s: attempts left %s, want %d", code, got, left)
	}
}

// ---- the step order ----

func TestStepOrder(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		for _, tc := range []struct {
			name       string
			activation bool
			byCPR      bool
			want       []flows.Step
		}{
			{"activation password", true, false, []flows.Step{flows.StepCodeCard, flows.StepNewPassword, flows.StepDone}},
			{"chosen password", false, false, []flows.Step{flows.StepCodeCard, flows.StepDone}},
			{"CPR number as user id", false, true, []flows.Step{flows.StepCodeCard, flows.StepDone}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var c *citizen
				if tc.activation {
					c = env.issue(t)
				} else {
					c = env.issueWithPassword(t, "Hemmelig42")
				}
				username := c.UserID
				if tc.byCPR {
					username = c.CPR[:6] + "-" + c.CPR[6:]
				}
				f := env.begin(t, flows.Start{})
				if f.Step != flows.StepPassword || len(f.ID) != 22 {
					t.Fatalf("Begin: step %q id %q", f.Step, f.ID)
				}
				var got []flows.Step
				env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: username, Password: c.Password}, tc.want[0])
				got = append(got, f.Step)
				if f.CardSerial != c.Serial || c.key(f.KeyNumber) == "" {
					t.Fatalf("codecard step asks key %q of card %q, not a key of the citizen's card %s", f.KeyNumber, f.CardSerial, c.Serial)
				}
				env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, tc.want[1])
				got = append(got, f.Step)
				if f.Step == flows.StepNewPassword {
					env.mustSubmit(t, f, flows.StepNewPassword, flows.Answer{Password: "Hemmelig42"}, flows.StepDone)
					got = append(got, f.Step)
					c.Password = "Hemmelig42"
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("steps %v, want %v", got, tc.want)
				}
				stored := env.load(t, f.ID)
				if !stored.Done() || stored.Result.CitizenID != c.UserID || stored.Result.ACR != flows.ACRSubstantial ||
					fmt.Sprint(stored.Result.AMR) != "[pwd otp]" || stored.Result.FromSession {
					t.Fatalf("result %+v", stored.Result)
				}
				if !stored.Result.AuthTime.Equal(env.clock.Now()) {
					t.Errorf("auth time %v, want the engine's clock %v", stored.Result.AuthTime, env.clock.Now())
				}
				if env.citizen(t, c.UserID).MustChange {
					t.Error("citizen must still change the password")
				}
				// The next login skips new_password; after it the card has two keys fewer.
				env.login(t, c)
				if _, left, _ := env.s.CardStatus(context.Background(), c.UserID, c.Serial); left != codecard.KeysPerCard-2 {
					t.Errorf("%d keys left, want %d", left, codecard.KeysPerCard-2)
				}
			})
		}
	})
}

func TestActivationPasswordGoneAfterChange(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issue(t)
		activation := c.Password
		f := env.begin(t, flows.Start{})
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: activation}, flows.StepCodeCard)
		env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, flows.StepNewPassword)
		env.mustSubmit(t, f, flows.StepNewPassword, flows.Answer{NewPassword: "Nyt4kodeord"}, flows.StepDone)
		g := env.begin(t, flows.Start{})
		wantAttempts(t, env.submit(g, flows.StepPassword, flows.Answer{Username: c.UserID, Password: activation}), flows.CodeInvalidCredentials, maxFailures-1)
		env.mustSubmit(t, g, flows.StepPassword, flows.Answer{Username: c.UserID, Password: "Nyt4kodeord"}, flows.StepCodeCard)
	})
}

// An activation-password login left before the new password must not count as having
// chosen one: the next login asks again.
func TestNewPasswordAskedUntilChosen(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issue(t)
		for range 2 {
			f := env.begin(t, flows.Start{})
			env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
			if !f.MustChange {
				t.Fatal("flow does not know the password is temporary")
			}
			env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, flows.StepNewPassword)
		}
	})
}

func TestKeyNumberStableUntilUsed(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Hemmelig42")
		f := env.begin(t, flows.Start{})
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		first := f.KeyNumber
		for i := range 5 {
			g := env.load(t, f.ID)
			if err := env.e.Prepare(ctx, g); err != nil {
				t.Fatalf("Prepare %d: %v", i, err)
			}
			if g.KeyNumber != first || env.load(t, f.ID).KeyNumber != first {
				t.Fatalf("Prepare %d changed the key number %s → %s", i, first, g.KeyNumber)
			}
		}
		// A wrong answer does not change it either: no fresh number to guess at.
		wantAttempts(t, env.submit(f, flows.StepCodeCard, flows.Answer{Key: c.wrongKey(first)}), flows.CodeWrongKey, maxFailures-1)
		if err := env.e.Prepare(ctx, f); err != nil || f.KeyNumber != first {
			t.Fatalf("after a wrong key: Prepare = %v, key number %s, want %s", err, f.KeyNumber, first)
		}
		// Used meanwhile (another login in another window): the next Prepare asks another key.
		if _, _, err := env.s.UseCardKeyInFlow(ctx, "", c.UserID, c.Serial, first, env.e.Cards.Hash(c.Serial, first, c.key(first)), maxFailures); err != nil {
			t.Fatal(err)
		}
		if err := env.e.Prepare(ctx, f); err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		if f.KeyNumber == first || c.key(f.KeyNumber) == "" {
			t.Fatalf("after the key was used: key number %s (first %s)", f.KeyNumber, first)
		}
		if env.load(t, f.ID).KeyNumber != f.KeyNumber {
			t.Fatal("the new key number was not saved")
		}
		env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, flows.StepDone)
	})
}

// TestOnePendingKeyNumberPerCard: someone with the password and a photo of part of the card
// cannot re-roll the key number until it lands on a key they hold. New flows, abandoned flows,
// reloads and wrong keys all ask the card's one pending number, until its key is used.
func TestOnePendingKeyNumberPerCard(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Hemmelig42")
		atCard := func() *flows.Flow {
			f := env.begin(t, flows.Start{})
			env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
			return f
		}
		first := atCard()
		for i := range 8 {
			f := atCard() // a new flow; the one before it abandoned
			if f.KeyNumber != first.KeyNumber {
				t.Fatalf("flow %d asks key number %s, the first asked %s: the number was re-rolled", i, f.KeyNumber, first.KeyNumber)
			}
			if i%2 == 0 { // some of them also answer wrong (a guess at a key the attacker lacks)
				wantCode(t, env.submit(f, flows.StepCodeCard, flows.Answer{Key: c.wrongKey(f.KeyNumber)}), flows.CodeWrongKey)
			}
			g := env.load(t, f.ID) // a reload
			if err := env.e.Prepare(ctx, g); err != nil || g.KeyNumber != first.KeyNumber {
				t.Fatalf("reload of flow %d: %v, key number %s, want %s", i, err, g.KeyNumber, first.KeyNumber)
			}
			if i == 3 { // a right login in between resets the lockout counter
				env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, flows.StepDone)
				next := atCard()
				if next.KeyNumber == first.KeyNumber {
					t.Fatal("the used key's number is asked again")
				}
				// The old flows now learn the new pending number on their next view.
				if err := env.e.Prepare(ctx, first); err != nil || first.KeyNumber != next.KeyNumber {
					t.Fatalf("old flow after the key was used: %v, key number %s, want %s", err, first.KeyNumber, next.KeyNumber)
				}
			}
		}
	})
}

func TestWrongStep(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issueWithPassword(t, "Hemmelig42")
		atPassword := env.begin(t, flows.Start{})
		atCard := env.begin(t, flows.Start{})
		env.mustSubmit(t, atCard, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		done := env.login(t, c)
		right := flows.Answer{Username: c.UserID, Password: c.Password, Key: "123456", NewPassword: "Andet9kode"}
		for _, tc := range []struct {
			name string
			f    *flows.Flow
			step flows.Step
		}{
			{"codecard at password", atPassword, flows.StepCodeCard},
			{"new_password at password", atPassword, flows.StepNewPassword},
			{"done at password", atPassword, flows.StepDone},
			{"failed at password", atPassword, flows.StepFailed},
			{"unknown step", atPassword, "keyapp"},
			{"empty step", atPassword, ""},
			{"password at codecard", atCard, flows.StepPassword},
			{"new_password at codecard", atCard, flows.StepNewPassword},
			{"password when done", done, flows.StepPassword},
			{"codecard when done", done, flows.StepCodeCard},
			{"done when done", done, flows.StepDone},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := tc.f.Step
				wantCode(t, env.submit(tc.f, tc.step, right), flows.CodeWrongStep)
				if tc.f.Step != before || env.load(t, tc.f.ID).Step != before {
					t.Fatalf("a wrong-step answer moved the flow from %s", before)
				}
			})
		}
		if got := env.citizen(t, c.UserID).Failures; got != 0 {
			t.Errorf("wrong-step answers counted %d failures", got)
		}
	})
}

func TestFlowExpired(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Hemmelig42")
		done := env.login(t, c) // first: its key is then never the one atCard asks for
		fresh := env.begin(t, flows.Start{})
		atCard := env.begin(t, flows.Start{})
		env.mustSubmit(t, atCard, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)

		env.clock.Add(flowTTL - time.Second)
		if err := env.e.Prepare(ctx, fresh); err != nil {
			t.Fatalf("Prepare just before expiry: %v", err)
		}
		env.clock.Add(2 * time.Second)
		for _, tc := range []struct {
			name string
			f    *flows.Flow
			step flows.Step
			a    flows.Answer
		}{
			{"password", fresh, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}},
			{"codecard", atCard, flows.StepCodeCard, flows.Answer{Key: c.key(atCard.KeyNumber)}},
			{"wrong step", fresh, flows.StepCodeCard, flows.Answer{Key: "123456"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := env.load(t, tc.f.ID) // still stored: the grace period keeps it
				wantCode(t, env.e.Prepare(ctx, f), flows.CodeFlowExpired)
				wantCode(t, env.submit(f, tc.step, tc.a), flows.CodeFlowExpired)
			})
		}
		if unused, _ := env.s.KeyUnused(ctx, c.UserID, c.Serial, atCard.KeyNumber); !unused {
			t.Error("an expired flow consumed a key")
		}
		// A finished flow does not expire in the engine.
		if err := env.e.Prepare(ctx, env.load(t, done.ID)); err != nil {
			t.Errorf("Prepare(done, later): %v", err)
		}
		// Unknown and malformed ids read as expired.
		for _, id := range []string{flows.NewID(), "short", strings.Repeat("!", 22), ""} {
			_, err := env.e.Load(ctx, id)
			wantCode(t, err, flows.CodeFlowExpired)
		}
	})
}

func TestResume(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Hemmelig42")
		first := env.login(t, c)
		sid, err := env.e.StartSession(ctx, first.Result)
		if err != nil {
			t.Fatal(err)
		}
		sess, err := env.e.Session(ctx, sid)
		if err != nil || sess == nil || sess.CitizenID != c.UserID {
			t.Fatalf("Session = %+v, %v", sess, err)
		}
		if none, err := env.e.Session(ctx, flows.NewID()); none != nil || err != nil {
			t.Fatalf("Session(unknown) = %+v, %v; want nil, nil", none, err)
		}
		age := func(s int64) *int64 { return &s }
		start := env.clock.Now()
		for _, tc := range []struct {
			name   string
			start  flows.Start
			later  time.Duration
			nilSes bool
			want   bool
		}{
			{"plain", flows.Start{}, time.Minute, false, true},
			{"prompt=login", flows.Start{Prompt: []string{"login"}}, 0, false, false},
			{"prompt=consent login", flows.Start{Prompt: []string{"consent", "login"}}, 0, false, false},
			{"prompt=select_account", flows.Start{Prompt: []string{"select_account"}}, 0, false, false},
			{"prompt=none", flows.Start{Prompt: []string{"none"}}, 0, false, true},
			{"max_age not reached", flows.Start{MaxAge: age(600)}, 2 * time.Minute, false, true},
			{"max_age passed", flows.Start{MaxAge: age(60)}, 2 * time.Minute, false, false},
			{"max_age=0", flows.Start{MaxAge: age(0)}, time.Second, false, false},
			{"no session", flows.Start{}, 0, true, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				env.clock.Add(start.Add(tc.later).Sub(env.clock.Now()))
				f := env.begin(t, tc.start)
				s := sess
				if tc.nilSes {
					s = nil
				}
				ok, err := env.e.Resume(ctx, f, s)
				if err != nil {
					t.Fatalf("Resume: %v", err)
				}
				stored := env.load(t, f.ID)
				if ok != tc.want || stored.Done() != tc.want || f.Done() != tc.want {
					t.Fatalf("Resume = %v (stored done %v), want %v", ok, stored.Done(), tc.want)
				}
				if !tc.want {
					if stored.Step != flows.StepPassword {
						t.Fatalf("not resumed, but step %q", stored.Step)
					}
					return
				}
				r := stored.Result
				if !r.FromSession || r.CitizenID != c.UserID || !r.AuthTime.Equal(first.Result.AuthTime) ||
					fmt.Sprint(r.AMR) != "[pwd otp]" || r.ACR != flows.ACRSubstantial {
					t.Fatalf("resumed result %+v", r)
				}
			})
		}
		// A blocked citizen's session completes nothing.
		env.block(t, c.UserID, "operator")
		f := env.begin(t, flows.Start{})
		if ok, err := env.e.Resume(ctx, f, sess); ok || err != nil {
			t.Fatalf("Resume for a blocked citizen = %v, %v", ok, err)
		}
		// An ended session is gone.
		if err := env.e.EndSession(ctx, sid); err != nil {
			t.Fatal(err)
		}
		if s, err := env.e.Session(ctx, sid); s != nil || err != nil {
			t.Fatalf("Session after EndSession = %+v, %v", s, err)
		}
	})
}

func TestBind(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		f := env.begin(t, flows.Start{})
		stale := env.load(t, f.ID)
		if err := env.e.Bind(ctx, f, "browser-a"); err != nil {
			t.Fatalf("Bind(a): %v", err)
		}
		if err := env.e.Bind(ctx, f, "browser-a"); err != nil {
			t.Fatalf("Bind(a) again: %v", err)
		}
		wantCode(t, env.e.Bind(ctx, f, "browser-b"), flows.CodeWrongBrowser)
		if got := env.load(t, f.ID).Browser; got != "browser-a" {
			t.Fatalf("stored browser %q", got)
		}
		// A copy loaded before the first Bind finds out on saving.
		wantCode(t, env.e.Bind(ctx, stale, "browser-b"), flows.CodeWrongBrowser)
		if got := env.load(t, f.ID).Browser; got != "browser-a" {
			t.Fatalf("stored browser %q after the stale bind", got)
		}

		// Two browsers racing for a fresh flow: exactly one gets it.
		g := env.begin(t, flows.Start{})
		copies := []*flows.Flow{env.load(t, g.ID), env.load(t, g.ID)}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() { errs[i] = env.e.Bind(ctx, copies[i], fmt.Sprint("browser-", i)) })
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("racing binds: %v, %v; want exactly one to win", errs[0], errs[1])
		}
		for _, err := range errs {
			if err != nil {
				wantCode(t, err, flows.CodeWrongBrowser)
			}
		}
	})
}

// ---- lockout ----

func TestLockoutAcrossPasswordAndKey(t *testing.T) {
	type event struct {
		what string // "pw-wrong", "pw-right", "key-wrong"
		code string // "" for success
		left int
	}
	for _, tc := range []struct {
		name   string
		events []event
	}{
		{"passwords then keys", []event{
			{"pw-wrong", flows.CodeInvalidCredentials, 4},
			{"pw-wrong", flows.CodeInvalidCredentials, 3},
			{"pw-right", "", 0}, // a right password alone does not reset the count
			{"key-wrong", flows.CodeWrongKey, 2},
			{"key-wrong", flows.CodeWrongKey, 1},
			{"key-wrong", flows.CodeLocked, 0},
		}},
		{"keys then passwords", []event{
			{"pw-right", "", 0},
			{"key-wrong", flows.CodeWrongKey, 4},
			{"key-wrong", flows.CodeWrongKey, 3},
			{"key-wrong", flows.CodeWrongKey, 2},
			{"pw-wrong", flows.CodeInvalidCredentials, 1},
			{"pw-wrong", flows.CodeLocked, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, env *env) {
				c := env.issueWithPassword(t, "Hemmelig42")
				f := env.begin(t, flows.Start{})
				for i, ev := range tc.events {
					var err error
					switch ev.what {
					case "pw-wrong", "pw-right":
						if f.Step != flows.StepPassword {
							f = env.begin(t, flows.Start{})
						}
						pw := c.Password
						if ev.what == "pw-wrong" {
							pw = "Forkert99"
						}
						err = env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: pw})
					case "key-wrong":
						err = env.submit(f, flows.StepCodeCard, flows.Answer{Key: c.wrongKey(f.KeyNumber)})
					}
					switch {
					case ev.code == "" && err != nil:
						t.Fatalf("event %d %s: %v", i, ev.what, err)
					case ev.code == flows.CodeLocked:
						wantCode(t, err, flows.CodeLocked)
					case ev.code != "":
						wantAttempts(t, err, ev.code, ev.left)
					}
				}
				got := env.citizen(t, c.UserID)
				if got.Status != store.StatusBlocked || got.BlockReason != store.BlockFailures {
					t.Fatalf("status %q reason %q, want blocked for failures", got.Status, got.BlockReason)
				}
				// Locked: the right password (and then nothing else) is refused.
				g := env.begin(t, flows.Start{})
				wantCode(t, env.submit(g, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}), flows.CodeLocked)
				if g.Step != flows.StepPassword {
					t.Fatalf("locked citizen moved on to %s", g.Step)
				}
			})
		})
	}
}

func TestSuccessfulLoginResetsFailures(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issueWithPassword(t, "Hemmelig42")
		f := env.begin(t, flows.Start{})
		for i := range maxFailures - 1 {
			wantAttempts(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: "Forkert99"}),
				flows.CodeInvalidCredentials, maxFailures-1-i)
		}
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, flows.StepDone)
		g := env.begin(t, flows.Start{})
		wantAttempts(t, env.submit(g, flows.StepPassword, flows.Answer{Username: c.UserID, Password: "Forkert99"}),
			flows.CodeInvalidCredentials, maxFailures-1)
	})
}

// TestUnknownUserLooksLikeWrongPassword: a user id with no NemID gets exactly the answers a
// wrong password gets (code, message, attempts left, JSON shape), locked after max attempts.
func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		for _, unknown := range []string{storetest.NewUserID(), storetest.NewCPR(), "hansen-alias"} {
			t.Run(unknown, func(t *testing.T) {
				c := env.issueWithPassword(t, "Hemmelig42") // a fresh known citizen per round
				for i := 1; i <= maxFailures+1; i++ {
					// A flow per answer: one flow's own limit is not what is compared here.
					known, other := env.begin(t, flows.Start{}), env.begin(t, flows.Start{})
					errKnown := env.submit(known, flows.StepPassword, flows.Answer{Username: c.UserID, Password: "Forkert99"})
					errUnknown := env.submit(other, flows.StepPassword, flows.Answer{Username: unknown, Password: "Forkert99"})
					code := flows.CodeInvalidCredentials
					if i >= maxFailures {
						code = flows.CodeLocked
					}
					a, b := wantCode(t, errKnown, code), wantCode(t, errUnknown, code)
					ja, _ := json.Marshal(a)
					jb, _ := json.Marshal(b)
					if string(ja) != string(jb) {
						t.Fatalf("attempt %d: known user id answers %s, unknown %s", i, ja, jb)
					}
					if i < maxFailures && (a.AttemptsLeft == nil || *a.AttemptsLeft != maxFailures-i) {
						t.Fatalf("attempt %d: %s", i, ja)
					}
				}
				// The right password changes nothing for the locked citizen's answer shape.
				known, other := env.begin(t, flows.Start{}), env.begin(t, flows.Start{})
				errKnown := env.submit(known, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password})
				errUnknown := env.submit(other, flows.StepPassword, flows.Answer{Username: unknown, Password: c.Password})
				a, b := wantCode(t, errKnown, flows.CodeLocked), wantCode(t, errUnknown, flows.CodeLocked)
				// What the browser gets is the same (the NemID the engine counted against is
				// for the audit trail only, never sent).
				ja, _ := json.Marshal(a)
				jb, _ := json.Marshal(b)
				if string(ja) != string(jb) {
					t.Fatalf("locked: known %s, unknown %s", ja, jb)
				}
			})
		}
	})
}

// TestBlockedByOperator: a NemID blocked by an operator says "blocked" only to someone who
// knows the password; a wrong password is answered like any other wrong password.
func TestBlockedByOperator(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issueWithPassword(t, "Hemmelig42")
		unknown := storetest.NewUserID()
		env.block(t, c.UserID, "misuse")
		f := env.begin(t, flows.Start{})
		g := env.begin(t, flows.Start{})
		errKnown := env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: "Forkert99"})
		errUnknown := env.submit(g, flows.StepPassword, flows.Answer{Username: unknown, Password: "Forkert99"})
		wantAttempts(t, errKnown, flows.CodeInvalidCredentials, maxFailures-1)
		if a, b := wantCode(t, errKnown, flows.CodeInvalidCredentials), wantCode(t, errUnknown, flows.CodeInvalidCredentials); a.Message != b.Message {
			t.Fatalf("wrong password of a blocked NemID: %+v; unknown user: %+v", a, b)
		}
		wantCode(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}), flows.CodeBlocked)
		if f.Step != flows.StepPassword {
			t.Fatalf("blocked citizen moved on to %s", f.Step)
		}
	})
}

// TestBlockedDuringCodecard: blocked between the password and the key.
func TestBlockedDuringCodecard(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issueWithPassword(t, "Hemmelig42")
		f := env.begin(t, flows.Start{})
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		env.block(t, c.UserID, "lost_card")
		wantCode(t, env.submit(f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}), flows.CodeBlocked)
		if unused, _ := env.s.KeyUnused(context.Background(), c.UserID, c.Serial, f.KeyNumber); !unused {
			t.Error("a blocked citizen's key was consumed")
		}
	})
}

func TestInvalidAnswers(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issueWithPassword(t, "Hemmelig42")
		f := env.begin(t, flows.Start{})
		for _, a := range []flows.Answer{
			{},
			{Username: c.UserID},
			{Password: c.Password},
			{Username: "   ", Password: c.Password},
			{Username: strings.Repeat("1", 65), Password: c.Password},
			{Username: c.UserID, Password: strings.Repeat("x", 257)},
		} {
			wantCode(t, env.submit(f, flows.StepPassword, a), flows.CodeInvalidRequest)
		}
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: " " + c.UserID + " ", Password: c.Password}, flows.StepCodeCard)
		for _, key := range []string{"", "12345", "1234567", "12345a", "１２３４５６"} {
			wantCode(t, env.submit(f, flows.StepCodeCard, flows.Answer{Key: key}), flows.CodeInvalidRequest)
		}
		if got := env.citizen(t, c.UserID).Failures; got != 0 {
			t.Errorf("malformed answers counted %d failures", got)
		}
		env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: " " + c.key(f.KeyNumber) + " "}, flows.StepDone)
	})
}

// Two tabs answering the same key at once: one login, the key used once.
func TestConcurrentKeySubmit(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issueWithPassword(t, "Hemmelig42")
		f := env.begin(t, flows.Start{})
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		// Fewer racers than the lockout limit: each losing racer's "used key" counts as a failure.
		const n = maxFailures - 1
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			g := env.load(t, f.ID)
			wg.Go(func() { errs[i] = env.submit(g, flows.StepCodeCard, flows.Answer{Key: c.key(g.KeyNumber)}) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			var fe *flows.Error
			if !errors.As(err, &fe) || (fe.Code != flows.CodeUsedKey && fe.Code != flows.CodeWrongStep && fe.Code != flows.CodeLocked) {
				t.Errorf("racing submit: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d racing submits of one key succeeded, want 1", ok)
		}
		if !env.load(t, f.ID).Done() {
			t.Fatal("flow not done after the winning submit")
		}
	})
}

// ---- new password ----

func TestNewPasswordRules(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		const cpr = "0101904321" // holds the PIN 9043
		c := env.issueCPR(t, cpr)
		f := env.begin(t, flows.Start{})
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, flows.StepNewPassword)
		for _, tc := range []struct {
			name string
			a    flows.Answer
			code string
		}{
			{"empty", flows.Answer{}, flows.CodeInvalidRequest},
			{"run 1234", flows.Answer{Password: "1234"}, flows.CodeWeakPassword},
			{"run 9876", flows.Answer{NewPassword: "9876"}, flows.CodeWeakPassword},
			{"all alike", flows.Answer{Password: "7777"}, flows.CodeWeakPassword},
			{"PIN in CPR", flows.Answer{Password: "9043"}, flows.CodeWeakPassword},
			{"the activation password", flows.Answer{Password: c.Password}, flows.CodeWeakPassword},
			{"too short", flows.Answer{Password: "ab1"}, flows.CodeWeakPassword},
			{"no digit", flows.Answer{Password: "abcdefgh"}, flows.CodeWeakPassword},
			{"no letter", flows.Answer{Password: "12345678"}, flows.CodeWeakPassword},
			{"too long", flows.Answer{Password: strings.Repeat("a1", 21)}, flows.CodeWeakPassword},
			{"control character", flows.Answer{Password: "abc\x00def1"}, flows.CodeWeakPassword},
			{"far too long", flows.Answer{Password: strings.Repeat("a1", 200)}, flows.CodeInvalidRequest},
		} {
			t.Run(tc.name, func(t *testing.T) {
				fe := wantCode(t, env.submit(f, flows.StepNewPassword, tc.a), tc.code)
				if fe.Message == "" {
					t.Error("no message")
				}
				if f.Step != flows.StepNewPassword || env.load(t, f.ID).Step != flows.StepNewPassword {
					t.Fatalf("a refused password moved the flow to %s", f.Step)
				}
			})
		}
		// The activation password still works (nothing was changed), and a good PIN is taken.
		if !env.citizen(t, c.UserID).MustChange {
			t.Fatal("a refused new password cleared must_change")
		}
		env.mustSubmit(t, f, flows.StepNewPassword, flows.Answer{Password: "2580"}, flows.StepDone)
		c.Password = "2580"
		env.login(t, c)
	})
}

// TestNoPasswordOracleWhenNotActive: a NemID that is expired (or blocked by an operator)
// must still lock after max wrong passwords. Otherwise the right password keeps answering
// "expired"/"blocked" while wrong ones answer "invalid_credentials"/"locked": an unlimited
// online password oracle (10^4 guesses for a PIN).
func TestNoPasswordOracleWhenNotActive(t *testing.T) {
	for _, tc := range []struct{ status, reason, first string }{
		{store.StatusExpired, "", flows.CodeExpired},
		{store.StatusBlocked, "misuse", flows.CodeBlocked},
	} {
		t.Run(tc.status, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, env *env) {
				c := env.issueWithPassword(t, "Hemmelig42")
				err := env.s.Redis().HSet(context.Background(), storetest.CitizenKey(env.prefix, c.UserID),
					"status", tc.status, "block_reason", tc.reason).Err()
				if err != nil {
					t.Fatal(err)
				}
				f := env.begin(t, flows.Start{})
				// Before any failure the right password tells the citizen why they cannot log in.
				wantCode(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}), tc.first)
				for i := 1; i < maxFailures; i++ {
					wantAttempts(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: "Forkert99"}),
						flows.CodeInvalidCredentials, maxFailures-i)
				}
				wantCode(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: "Forkert99"}), flows.CodeLocked)
				// Past the limit, the right password answers like a wrong one (in a new login: this
				// one has had its max wrong answers).
				f = env.begin(t, flows.Start{})
				wantCode(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}), flows.CodeLocked)
			})
		})
	}
}
