package flows_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store/storetest"
)

// policy is a fake ClientPolicy: the clients that require OCES.
type policy map[string]bool

func (p policy) Policy(_ context.Context, id string) (flows.Policy, error) {
	if id == "broken" {
		return flows.Policy{}, errors.New("registration unreadable")
	}
	return flows.Policy{RequiresOCES: p[id]}, nil
}

// TestOCESGate: a client requiring OCES refuses a bank-only NemID only after the password and
// the key, ending the flow failed with oces_required; everyone else gets done, with the
// certificate snapshot in the result.
func TestOCESGate(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		env.e.Policy = policy{"gov": true}
		for _, tc := range []struct {
			name, client, kind string
			refused            bool
		}{
			{"oces at gov", "gov", "oces", false},
			{"bank-only at gov", "gov", "bank", true},
			{"bank-only at netbank", "netbank", "bank", false},
			{"oces at netbank", "netbank", "oces", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cpr := storetest.NewCPR()
				r, err := env.is.IssueWithPassword(context.Background(), issuance.Request{CPR: cpr, Name: "Jens Hansen", Kind: tc.kind}, "Hemmelig42")
				if err != nil {
					t.Fatal(err)
				}
				c := fromResult(cpr, "Hemmelig42", r)
				f := env.begin(t, flows.Start{ClientID: tc.client})
				env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
				err = env.submit(f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)})
				if tc.refused {
					wantCode(t, err, flows.CodeOCESRequired)
					if stored := env.load(t, f.ID); stored.Step != flows.StepFailed || stored.Failure == nil || stored.Failure.Code != flows.CodeOCESRequired || stored.Result != nil {
						t.Fatalf("stored flow: step %s failure %+v result %+v", stored.Step, stored.Failure, stored.Result)
					}
					return
				}
				if err != nil || !f.Done() {
					t.Fatalf("err %v, step %s", err, f.Step)
				}
				rec := env.citizen(t, c.UserID)
				if cert := f.Result.Cert; cert == nil || cert.OCES != (tc.kind == "oces") || cert.PID != rec.PID {
					t.Fatalf("result certificate %+v, record kind %s pid %s", cert, rec.Kind, rec.PID)
				}
			})
		}
		t.Run("policy unreadable", func(t *testing.T) {
			_, err := env.e.Begin(context.Background(), flows.Start{ClientID: "broken", ReturnURL: func(string) string { return "https://rp.example/" }})
			if err == nil {
				t.Fatal("Begin with an unreadable client policy succeeded")
			}
		})
	})
}

// TestResumeKeepsCertificate: a login completed from an SSO session carries the snapshot of
// the session's own login (renewal since then does not show), and a bank-only snapshot does
// not complete a flow of a client requiring OCES (the citizen logs in again instead).
func TestResumeKeepsCertificate(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		env.e.Policy = policy{"gov": true}
		r, err := env.is.IssueWithPassword(ctx, issuance.Request{CPR: "150608-4001", Name: "Ung Hansen", IssuedAt: "2024-06-01"}, "Hemmelig42")
		if err != nil {
			t.Fatal(err)
		}
		young := fromResult("1506084001", "Hemmelig42", r)
		first := env.login(t, young)
		if first.Result.Cert == nil || !first.Result.Cert.YouthCert {
			t.Fatalf("first login's certificate %+v, want the youth marker", first.Result.Cert)
		}
		sid, err := env.e.StartSession(ctx, first.Result)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.s.Renew(ctx, young.UserID, "2099-01-01", "2026-12-01", false); err != nil {
			t.Fatal(err)
		}
		sess, err := env.e.Session(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		f := env.begin(t, flows.Start{})
		if ok, err := env.e.Resume(ctx, f, sess); !ok || err != nil {
			t.Fatalf("Resume = %v, %v", ok, err)
		}
		if c := f.Result.Cert; c == nil || !c.YouthCert || !c.OCES {
			t.Fatalf("resumed certificate %+v, want the session's (youth marker kept)", c)
		}
		if fresh := env.login(t, young); fresh.Result.Cert.YouthCert {
			t.Fatalf("a fresh login after renewal kept the youth marker")
		}

		bank, err := env.is.IssueWithPassword(ctx, issuance.Request{CPR: storetest.NewCPR(), Name: "Bent Hansen", Kind: "bank"}, "Hemmelig42")
		if err != nil {
			t.Fatal(err)
		}
		bf := env.login(t, fromResult("", "Hemmelig42", bank))
		bsid, err := env.e.StartSession(ctx, bf.Result)
		if err != nil {
			t.Fatal(err)
		}
		bsess, _ := env.e.Session(ctx, bsid)
		gov := env.begin(t, flows.Start{ClientID: "gov"})
		if ok, err := env.e.Resume(ctx, gov, bsess); ok || err != nil || gov.Step != flows.StepPassword {
			t.Fatalf("bank-only session at gov: Resume = %v, %v, step %s; want a fresh login", ok, err, gov.Step)
		}
	})
}
