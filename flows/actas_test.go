package flows_test

import (
	"context"
	"testing"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store"
)

// policies is a ClientPolicy from a map.
type policies map[string]flows.Policy

func (p policies) Policy(_ context.Context, id string) (flows.Policy, error) { return p[id], nil }

// guardianEnv is an engine whose client "kommune" allows acting for others and "netbank"
// does not, with a guardian who has one current ward, one ended and one not yet valid.
type guardianEnv struct {
	*env
	guardian, ward, ended, future *citizen
}

func newGuardianEnv(t *testing.T, env *env) *guardianEnv {
	t.Helper()
	env.e.Policy = policies{"kommune": {AllowOnBehalfOf: true}}
	g := &guardianEnv{env: env, guardian: env.issueWithPassword(t, "Værge2026x"),
		ward: env.issueWithPassword(t, "Myndling26x"), ended: env.issueWithPassword(t, "Tidligere26x"),
		future: env.issueWithPassword(t, "Senere2026x")}
	ctx := context.Background()
	now := env.clock.Now()
	tomorrow := now.In(time.FixedZone("", 0)).AddDate(0, 0, 2).Format(time.DateOnly)
	for _, gs := range []*store.Guardianship{
		{ID: "gs-" + g.ward.UserID, Guardian: g.guardian.UserID, Ward: g.ward.UserID, WardName: "Mads Myndling", Kind: store.GuardianshipFull, CreatedAt: now},
		{ID: "gs-" + g.ended.UserID, Guardian: g.guardian.UserID, Ward: g.ended.UserID, WardName: "Ended Ward", Kind: store.GuardianshipFull, CreatedAt: now},
		{ID: "gs-" + g.future.UserID, Guardian: g.guardian.UserID, Ward: g.future.UserID, WardName: "Future Ward", Kind: store.GuardianshipPartial,
			ValidFrom: tomorrow, CreatedAt: now},
	} {
		if err := env.s.CreateGuardianship(ctx, gs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.s.EndGuardianship(ctx, "gs-"+g.ended.UserID, now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	return g
}

// authenticate runs password and key of c at client and expects step want afterwards.
func (g *guardianEnv) authenticate(t *testing.T, c *citizen, client string, want flows.Step) *flows.Flow {
	t.Helper()
	f := g.begin(t, flows.Start{ClientID: client})
	g.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
	g.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, want)
	return f
}

// TestActAsOfferedOnlyWithPolicyAndCurrentWard: the act_as step comes after the card key
// only at a client that allows acting for others and only to a citizen with a current ward;
// it lists just the current ward, by a random ref and name (no user id), and other clients,
// citizens without wards, and an engine without a policy go straight to done.
func TestActAsOfferedOnlyWithPolicyAndCurrentWard(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		g := newGuardianEnv(t, env)
		f := g.authenticate(t, g.guardian, "kommune", flows.StepActAs)
		if len(f.Wards) != 1 || f.Wards[0].Name != "Mads Myndling" || f.Wards[0].CitizenID != g.ward.UserID {
			t.Fatalf("wards offered = %+v, want only the current ward", f.Wards)
		}
		if ref := f.Wards[0].Ref; ref == g.ward.UserID || ref == g.ward.CPR || len(ref) < 22 {
			t.Fatalf("ward ref %q is not an opaque random ref", ref)
		}
		if f.Done() {
			t.Fatal("flow is done before the guardian chose")
		}
		g.authenticate(t, g.guardian, "netbank", flows.StepDone)
		g.authenticate(t, g.ward, "kommune", flows.StepDone) // no wards of their own
		env.e.Policy = nil
		g.authenticate(t, g.guardian, "kommune", flows.StepDone)
	})
}

// TestActAsSelfOrWard: choosing "self" finishes as the guardian with no principal; choosing
// the ward's ref records the ward's user id and the guardianship's kind, the guardian staying
// the authenticated citizen.
func TestActAsSelfOrWard(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		g := newGuardianEnv(t, env)
		f := g.authenticate(t, g.guardian, "kommune", flows.StepActAs)
		g.mustSubmit(t, f, flows.StepActAs, flows.Answer{Principal: flows.PrincipalSelf}, flows.StepDone)
		if f.Result.CitizenID != g.guardian.UserID || f.Result.OnBehalfOf != nil {
			t.Fatalf("self: result %+v, want the guardian without principal", f.Result)
		}

		f = g.authenticate(t, g.guardian, "kommune", flows.StepActAs)
		g.mustSubmit(t, f, flows.StepActAs, flows.Answer{Principal: f.Wards[0].Ref}, flows.StepDone)
		stored := g.load(t, f.ID)
		r := stored.Result
		if r.CitizenID != g.guardian.UserID || r.OnBehalfOf == nil || r.OnBehalfOf.CitizenID != g.ward.UserID ||
			r.OnBehalfOf.Kind != store.GuardianshipFull || r.OnBehalfOf.Guardianship != "gs-"+g.ward.UserID {
			t.Fatalf("ward: result %+v (on behalf of %+v)", r, r.OnBehalfOf)
		}
		if len(stored.Wards) != 0 {
			t.Errorf("a finished flow still keeps its offered wards: %+v", stored.Wards)
		}
	})
}

// TestActAsRefusesBadRefs: a made-up ref, another flow's ref, the ward's user id and an empty
// answer are refused and leave the flow at act_as; a guardianship ended after the step was
// offered is refused too.
func TestActAsRefusesBadRefs(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		g := newGuardianEnv(t, env)
		other := g.authenticate(t, g.guardian, "kommune", flows.StepActAs)
		f := g.authenticate(t, g.guardian, "kommune", flows.StepActAs)
		for name, ref := range map[string]string{
			"made up": flows.NewID(), "another flow's": other.Wards[0].Ref, "the ward's user id": g.ward.UserID,
		} {
			wantCode(t, g.submit(f, flows.StepActAs, flows.Answer{Principal: ref}), flows.CodeUnknownWard)
			if f.Step != flows.StepActAs || f.Done() {
				t.Fatalf("%s ref: step %q, want act_as", name, f.Step)
			}
		}
		wantCode(t, g.submit(f, flows.StepActAs, flows.Answer{}), flows.CodeInvalidRequest)

		if _, err := env.s.EndGuardianship(context.Background(), "gs-"+g.ward.UserID, env.clock.Now()); err != nil {
			t.Fatal(err)
		}
		wantCode(t, g.submit(f, flows.StepActAs, flows.Answer{Principal: f.Wards[0].Ref}), flows.CodeUnknownWard)
		if g.load(t, f.ID).Done() {
			t.Fatal("flow done for an ended guardianship")
		}
		// Ended and not-yet-valid guardianships are never offered: no step at all now.
		g.authenticate(t, g.guardian, "kommune", flows.StepDone)
	})
}

// TestActAsAfterSSOSession: a guardian completed from the SSO session is asked too at a
// client that allows it (the choice belongs to each login), but not with prompt=none.
func TestActAsAfterSSOSession(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		g := newGuardianEnv(t, env)
		first := g.authenticate(t, g.guardian, "netbank", flows.StepDone)
		sess := &flows.SessionInfo{CitizenID: first.Result.CitizenID, AMR: first.Result.AMR, ACR: first.Result.ACR,
			AuthTime: first.Result.AuthTime, SID: first.Result.SessionID}
		f := g.begin(t, flows.Start{ClientID: "kommune"})
		if ok, err := env.e.Resume(context.Background(), f, sess); err != nil || !ok {
			t.Fatalf("Resume: %v %v", ok, err)
		}
		if f.Step != flows.StepActAs || len(f.Wards) != 1 {
			t.Fatalf("resumed at a client allowing it: step %q wards %d, want act_as with 1", f.Step, len(f.Wards))
		}
		none := g.begin(t, flows.Start{ClientID: "kommune", Prompt: []string{"none"}})
		if ok, err := env.e.Resume(context.Background(), none, sess); err != nil || !ok || none.Step != flows.StepDone {
			t.Fatalf("prompt=none: %v %v step %q, want done as self", ok, err, none.Step)
		}
	})
}
