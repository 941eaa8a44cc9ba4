package flows_test

import (
	"context"
	"testing"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
)

// BenchmarkCompleteLogin is one whole login (Begin, password, code-card key) against a real
// Redis with the production KDF (argon2id m=19 MiB, t=2, p=1).
func BenchmarkCompleteLogin(b *testing.B) { benchmarkLogin(b, password.Params{}) }

// BenchmarkCompleteLoginNoKDF is the same login with a trivial KDF: the difference between
// the two is the KDF's share of a login.
func BenchmarkCompleteLoginNoKDF(b *testing.B) { benchmarkLogin(b, password.TestParams) }

func benchmarkLogin(b *testing.B, kdf password.Params) {
	env := newEnv(b, storetest.Real(), kdf)
	ctx := context.Background()
	// Each login uses one key; citizens (one KDF hash each) are issued before the timer runs.
	const perCitizen = codecard.KeysPerCard
	citizens := make([]*citizen, b.N/perCitizen+1)
	for i := range citizens {
		citizens[i] = env.issueWithPassword(b, "Hemmelig42")
	}
	start := flows.Start{ClientID: "netbank", ReturnURL: func(id string) string { return "https://rp.example/cb?flow=" + id }}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := citizens[i/perCitizen]
		f, err := env.e.Begin(ctx, start)
		if err != nil {
			b.Fatal(err)
		}
		if err := env.e.Submit(ctx, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}); err != nil {
			b.Fatal(err)
		}
		if err := env.e.Submit(ctx, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}); err != nil {
			b.Fatal(err)
		}
		if !f.Done() {
			b.Fatalf("login ended at %s", f.Step)
		}
	}
}
