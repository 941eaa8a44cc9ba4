package flows_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
)

// renewalDay is the renewal tests' today: 1 May 2026, noon in Denmark.
var renewalDay = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

// at sets the engine's clock to t.
func (env *env) at(t time.Time) { env.clock.Add(t.Sub(env.clock.Now())) }

// issueExpiring issues a NemID (with its own password) that expires daysLeft days after
// renewalDay: issued 3 years before that.
func (env *env) issueExpiring(t testing.TB, daysLeft int) *citizen {
	t.Helper()
	expiry := renewalDay.AddDate(0, 0, daysLeft)
	exp, issued := expiry.Format(time.DateOnly), expiry.AddDate(-3, 0, 0).Format(time.DateOnly)
	cpr := storetest.NewCPR()
	r, err := env.is.IssueWithPassword(context.Background(), issuance.Request{CPR: cpr, Name: "Jens Hansen", IssuedAt: issued}, "Hemmelig42")
	if err != nil {
		t.Fatalf("IssueWithPassword: %v", err)
	}
	if got := env.citizen(t, r.UserID).ExpiresAt; got != exp {
		t.Fatalf("issued to expire %s, want %s", got, exp)
	}
	return fromResult(cpr, "Hemmelig42", r)
}

// wantExpired asserts the refusal of an expired NemID, with its date and the instructions.
func wantExpired(t testing.TB, err error, expiresAt string) {
	t.Helper()
	fe := wantCode(t, err, flows.CodeExpired)
	d, _ := time.Parse(time.DateOnly, expiresAt)
	for _, want := range []string{"expired on " + d.Format("2 January 2006"), "borgerservice", "bank", "embassy", "photo ID", "cannot be renewed online"} {
		if !strings.Contains(fe.Message, want) {
			t.Errorf("expired refusal %q does not say %q", fe.Message, want)
		}
	}
	if fe.ExpiresAt != expiresAt {
		t.Errorf("expired refusal carries expires_at %q, want %q", fe.ExpiresAt, expiresAt)
	}
}

// TestExpiredByDate: a NemID is valid through its expires_at day; from the next Danish day its
// right password is refused with expired and the instructions, by the card and the key-app
// path alike and for a key-app activation; a wrong password is answered as any wrong one.
func TestExpiredByDate(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		env.at(renewalDay)
		for _, tc := range []struct {
			name     string
			daysLeft int
			device   bool
			activate bool
			want     flows.Step // "": refused expired
		}{
			{"last valid day", 0, false, false, flows.StepCodeCard},
			{"last valid day, key app", 0, true, false, flows.StepKeyApp},
			{"expired yesterday", -1, false, false, ""},
			{"expired yesterday, key app", -1, true, false, ""},
			{"expired yesterday, key-app activation", -1, true, true, ""},
			{"expired long ago", -400, false, false, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := env.issueExpiring(t, tc.daysLeft)
				if tc.device {
					env.withDevice(t, c)
				}
				f := env.begin(t, flows.Start{})
				if tc.activate {
					var err error
					if f, err = env.e.BeginActivation(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
				right := flows.Answer{Username: c.UserID, Password: c.Password}
				if tc.want != "" {
					env.mustSubmit(t, f, flows.StepPassword, right, tc.want)
					return
				}
				// A wrong password first: the answer of any wrong password, counted as one.
				wantAttempts(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: "Forkert99"}),
					flows.CodeInvalidCredentials, maxFailures-1)
				exp := env.citizen(t, c.UserID).ExpiresAt
				wantExpired(t, env.submit(f, flows.StepPassword, right), exp)
				if stored := env.load(t, f.ID); stored.Step != flows.StepPassword || stored.CitizenID != "" {
					t.Fatalf("refused login moved on: step %s, citizen %q", stored.Step, stored.CitizenID)
				}
				// By CPR number too.
				g := env.begin(t, flows.Start{})
				wantExpired(t, env.submit(g, flows.StepPassword, flows.Answer{Username: c.CPR, Password: c.Password}), exp)
			})
		}
	})
}

// TestExpiredAtMidnight: the same NemID logs in at 23:59 on its last day and is refused at
// 00:00 the next Danish day (22:00 UTC in summer).
func TestExpiredAtMidnight(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		env.at(renewalDay)
		c := env.issueExpiring(t, 0)
		env.at(time.Date(2026, 5, 1, 21, 59, 0, 0, time.UTC)) // 23:59 in Denmark
		f := env.begin(t, flows.Start{})
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		env.at(time.Date(2026, 5, 1, 22, 0, 0, 0, time.UTC)) // 00:00 on 2 May in Denmark
		g := env.begin(t, flows.Start{})
		wantExpired(t, env.submit(g, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}), "2026-05-01")
	})
}

// TestExpiredSessionNotResumed: an SSO session started on the NemID's last valid day completes
// logins that day and none after it; the login asked instead refuses the password with expired.
// A stored status expired is refused with the instructions too.
func TestExpiredSessionNotResumed(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		env.at(renewalDay)
		c := env.issueExpiring(t, 0)
		sid, err := env.e.StartSession(ctx, env.login(t, c).Result)
		if err != nil {
			t.Fatal(err)
		}
		sess, err := env.e.Session(ctx, sid)
		if err != nil || sess == nil {
			t.Fatalf("Session: %+v, %v", sess, err)
		}
		f := env.begin(t, flows.Start{})
		if ok, err := env.e.Resume(ctx, f, sess); !ok || err != nil {
			t.Fatalf("Resume on the last valid day = %v, %v", ok, err)
		}
		env.clock.Add(24 * time.Hour)
		for _, prompt := range [][]string{nil, {"none"}} {
			f := env.begin(t, flows.Start{Prompt: prompt})
			if ok, err := env.e.Resume(ctx, f, sess); ok || err != nil {
				t.Fatalf("Resume (prompt %v) the day after expiry = %v, %v; want not resumed", prompt, ok, err)
			}
			if stored := env.load(t, f.ID); stored.Step != flows.StepPassword || stored.Done() {
				t.Fatalf("not resumed, but stored at %s", stored.Step)
			}
			wantExpired(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}), "2026-05-01")
		}
		// A NemID stored as expired (by an operator), whatever its date: the same instructions.
		d := env.issueExpiring(t, 400)
		if err := env.s.Redis().HSet(ctx, storetest.CitizenKey(env.prefix, d.UserID), "status", store.StatusExpired).Err(); err != nil {
			t.Fatal(err)
		}
		g := env.begin(t, flows.Start{})
		fe := wantCode(t, env.submit(g, flows.StepPassword, flows.Answer{Username: d.UserID, Password: d.Password}), flows.CodeExpired)
		if !strings.Contains(fe.Message, "borgerservice") {
			t.Fatalf("stored expired: %q without the instructions", fe.Message)
		}
	})
}

// TestRenewalDueNotice: a login with 60 days or fewer left carries renewal_due first among its
// notices, one with 61 does not; an activation carries none (nobody sees it).
func TestRenewalDueNotice(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		env.at(renewalDay)
		for _, tc := range []struct {
			name     string
			daysLeft int
			activate bool
			want     bool
		}{
			{"61 days left", 61, false, false},
			{"60 days left", 60, false, true},
			{"last day", 0, false, true},
			{"60 days left, activation", 60, true, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := env.issueExpiring(t, tc.daysLeft)
				f := env.begin(t, flows.Start{})
				if tc.activate {
					var err error
					if f, err = env.e.BeginActivation(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
				env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
				stored := env.load(t, f.ID)
				got := len(stored.Notices) > 0 && stored.Notices[0] == flows.NoticeRenewalDue
				if got != tc.want || len(stored.Notices) > 1 {
					t.Fatalf("notices %v, want renewal_due first: %v", stored.Notices, tc.want)
				}
				if tc.activate {
					return
				}
				// It stays through the login's next step.
				env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, flows.StepDone)
				if got := env.load(t, f.ID).Notices; (len(got) > 0) != tc.want {
					t.Fatalf("after the key: notices %v", got)
				}
			})
		}
		// Before a notice the login already carries: renewal_due is the most urgent.
		t.Run("first of two", func(t *testing.T) {
			c := env.issueExpiring(t, 5)
			f := env.begin(t, flows.Start{})
			f.AddNotice(flows.NoticeNewCardSent) // saved with the password's save
			env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
			if got := env.load(t, f.ID).Notices; len(got) != 2 || got[0] != flows.NoticeRenewalDue || got[1] != flows.NoticeNewCardSent {
				t.Fatalf("notices %v, want [renewal_due new_card_sent]", got)
			}
		})
	})
}

// renewalDue counts the citizen's renewal_due events.
func (env *env) renewalDue(t testing.TB, uid string) []store.Event {
	t.Helper()
	evs, err := env.s.Events(context.Background(), uid, 50)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Event
	for _, ev := range evs {
		if ev.Type == "renewal_due" {
			out = append(out, ev)
		}
	}
	return out
}

// TestRenewalDueEvent: the first login in the window sends one renewal_due event, later ones
// (and logins at once) none; a login out of the window, or refused, sends nothing; the renewal
// opens a new window, which sends again.
func TestRenewalDueEvent(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		env.at(renewalDay)
		out := env.issueExpiring(t, 61)
		env.login(t, out)
		expired := env.issueExpiring(t, -1)
		f := env.begin(t, flows.Start{})
		wantCode(t, env.submit(f, flows.StepPassword, flows.Answer{Username: expired.UserID, Password: expired.Password}), flows.CodeExpired)
		if n := len(env.renewalDue(t, out.UserID)) + len(env.renewalDue(t, expired.UserID)); n != 0 {
			t.Fatalf("%d renewal_due events out of the window", n)
		}

		c := env.issueExpiring(t, 30)
		env.login(t, c)
		env.login(t, c)
		// Two at once: the password answers race; the store sends one at most (none here: sent).
		done := make(chan struct{}, 2)
		for range 2 {
			go func() {
				defer func() { done <- struct{}{} }()
				g, err := env.e.Begin(ctx, flows.Start{ClientID: "netbank", ReturnURL: func(string) string { return "https://rp.example/cb" }})
				if err == nil {
					err = env.e.Submit(ctx, g, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password})
				}
				if err != nil {
					t.Errorf("password: %v", err)
				}
			}()
		}
		<-done
		<-done
		evs := env.renewalDue(t, c.UserID)
		exp := env.citizen(t, c.UserID).ExpiresAt
		if len(evs) != 1 || evs[0].Fields["expires_at"] != exp || evs[0].Fields["by"] != "system" || evs[0].Fields["at"] != renewalDay.Format(time.RFC3339) {
			t.Fatalf("renewal_due events %+v, want one for %s", evs, exp)
		}
		// Renewed three years on; 20 days before the new expiry the next window sends again.
		if _, err := env.is.Renew(ctx, c.UserID); err != nil {
			t.Fatal(err)
		}
		env.at(renewalDay.AddDate(3, 0, -20))
		env.login(t, c)
		if evs := env.renewalDue(t, c.UserID); len(evs) != 2 || evs[0].Fields["expires_at"] != "2029-05-01" {
			t.Fatalf("after renewal: renewal_due events %+v", evs)
		}
	})
}

// TestRenewalDueRacingLogins: logins of one citizen racing in the window, none notified yet
// (each read the record before any sent), send one event.
func TestRenewalDueRacingLogins(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		env.at(renewalDay)
		c := env.issueExpiring(t, 10)
		const n = 4
		fs := make([]*flows.Flow, n)
		for i := range fs {
			fs[i] = env.begin(t, flows.Start{})
		}
		start := make(chan struct{})
		done := make(chan error, n)
		for _, f := range fs {
			go func() {
				<-start
				done <- env.e.Submit(ctx, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password})
			}()
		}
		close(start)
		ok := 0
		for range n {
			if err := <-done; err == nil {
				ok++
			} else if fe, isFE := err.(*flows.Error); !isFE || fe.Code != flows.CodeUnavailable {
				t.Errorf("password: %v", err) // only "another attempt is being checked" may refuse one
			}
		}
		if evs := env.renewalDue(t, c.UserID); ok == 0 || len(evs) != 1 {
			t.Fatalf("%d logins went on, %d renewal_due events; want one event", ok, len(evs))
		}
	})
}
