package flows_test

import (
	"context"
	"testing"

	"github.com/nemidp/nemidp/flows"
)

// TestSessionIDAndSubjectHint: a completed login gets a random session id that its SSO session
// keeps (not the cookie value), logins completed from the session get it too, and a flow
// whose subject hint names someone else than the session's citizen is not completed from it.
func TestSessionIDAndSubjectHint(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Hemmelig42")
		first := env.login(t, c)
		if first.Result.SessionID == "" {
			t.Fatal("a completed login has no session id")
		}
		cookie, err := env.e.StartSession(ctx, first.Result)
		if err != nil {
			t.Fatal(err)
		}
		sess, err := env.e.Session(ctx, cookie)
		if err != nil || sess == nil || sess.SID != first.Result.SessionID || sess.SID == cookie {
			t.Fatalf("session %+v (%v), want sid %q", sess, err, first.Result.SessionID)
		}
		sub, err := env.s.PairwiseSubject(ctx, c.UserID, "netbank", "sub-at-netbank")
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, hint string
			want       bool
		}{
			{"no hint", "", true},
			{"the session's citizen", sub, true},
			{"another subject", "someone-else", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := env.begin(t, flows.Start{SubjectHint: tc.hint})
				ok, err := env.e.Resume(ctx, f, sess)
				if err != nil || ok != tc.want {
					t.Fatalf("Resume = %v, %v; want %v", ok, err, tc.want)
				}
				if ok && f.Result.SessionID != sess.SID {
					t.Errorf("resumed login's session id %q, want the session's %q", f.Result.SessionID, sess.SID)
				}
			})
		}
		if other := env.login(t, c); other.Result.SessionID == first.Result.SessionID {
			t.Errorf("two logins share the session id %q", first.Result.SessionID)
		}
	})
}
