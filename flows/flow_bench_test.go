package flows_test

import (
	"context"
	"testing"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/password"
)

// BenchmarkFlowLoadSave: one op is one Engine.Load of a login waiting at its code-card step
// (HMGET + JSON decode) and one save of it (JSON encode + compare-and-set script), the save
// being a Claim that moves the flow to another browser: what every step of a login pays for
// its flow on a real Redis, without the step's own work.
func BenchmarkFlowLoadSave(b *testing.B) {
	env := newEnv(b, storetest.Real(), password.TestParams)
	ctx := context.Background()
	c := env.issueWithPassword(b, "Hemmelig42")
	start := flows.Start{ClientID: "netbank", ReturnURL: func(id string) string { return "https://rp.example/cb?flow=" + id }}
	f, err := env.e.Begin(ctx, start)
	if err != nil {
		b.Fatal(err)
	}
	if err := env.e.Submit(ctx, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}); err != nil {
		b.Fatal(err)
	}
	if f.Step != flows.StepCodeCard {
		b.Fatalf("flow at %s, want the code-card step", f.Step)
	}
	if err := env.e.Bind(ctx, f, "browser-a"); err != nil {
		b.Fatal(err)
	}
	browsers := [2]string{"browser-a", "browser-b"}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		g, err := env.e.Load(ctx, f.ID)
		if err != nil {
			b.Fatal(err)
		}
		if err := env.e.Claim(ctx, g, browsers[i%2], browsers[(i+1)%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
