package flows_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/password"
)

// oldKDF is a cost other than the engine's (password.TestParams), as a hash made before
// NEMIDP_PASSWORD_KDF changed would carry.
var oldKDF = password.Params{MemoryKiB: 128, Time: 2, Threads: 1}

// withOldHash gives c a password hash made with oldKDF and returns it.
func (env *env) withOldHash(t *testing.T, c *citizen) string {
	t.Helper()
	old, err := password.NewHasher(oldKDF).Hash(context.Background(), c.Password)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.s.SetPassword(context.Background(), c.UserID, old); err != nil {
		t.Fatal(err)
	}
	if !env.e.Passwords.NeedsRehash(old) {
		t.Fatal("a hash made with another cost does not need a rehash")
	}
	return old
}

// TestRehashAtRightLogin: a stored hash made with another cost is rehashed with the engine's
// once a right password moved the login on, and the password still verifies; a wrong password
// or a right one of a blocked NemID leaves it as it is; a hash of the current cost is kept.
func TestRehashAtRightLogin(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Hemmelig42")
		old := env.withOldHash(t, c)

		f := env.begin(t, flows.Start{})
		wantAttempts(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: "Forkert99"}),
			flows.CodeInvalidCredentials, maxFailures-1)
		if got := env.citizen(t, c.UserID).Password; got != old {
			t.Fatalf("a wrong password changed the stored hash to %q", got)
		}

		env.block(t, c.UserID, "misuse")
		wantCode(t, env.submit(f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}), flows.CodeBlocked)
		if got := env.citizen(t, c.UserID).Password; got != old {
			t.Fatalf("the right password of a blocked NemID changed the stored hash to %q", got)
		}
		if err := env.s.Redis().HSet(ctx, storetest.CitizenKey(env.prefix, c.UserID), "status", "active", "block_reason", "").Err(); err != nil {
			t.Fatal(err)
		}

		env.login(t, c)
		rehashed := env.citizen(t, c.UserID).Password
		if !strings.HasPrefix(rehashed, "$argon2id$v=19$m=64,t=1,p=1$") || env.e.Passwords.NeedsRehash(rehashed) {
			t.Fatalf("after a right login the stored hash is %q, want the engine's cost m=64,t=1,p=1", rehashed)
		}
		if ok, err := env.e.Passwords.Verify(ctx, rehashed, c.Password); err != nil || !ok {
			t.Fatalf("the rehashed password does not verify: %v, %v", ok, err)
		}
		env.login(t, c) // the new hash verifies in a login, and is kept
		if got := env.citizen(t, c.UserID).Password; got != rehashed {
			t.Fatalf("a hash of the current cost was rehashed: %q → %q", rehashed, got)
		}
	})
}

// TestRehashKeepsActivationPassword: a temporary activation password is rehashed like any
// other and still has to be replaced by a chosen one, which verifies afterwards.
func TestRehashKeepsActivationPassword(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		c := env.issue(t)
		old, err := password.NewHasher(oldKDF).Hash(context.Background(), c.Password)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.s.Redis().HSet(context.Background(), storetest.CitizenKey(env.prefix, c.UserID), "password", old).Err(); err != nil {
			t.Fatal(err)
		}
		f := env.begin(t, flows.Start{})
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		got := env.citizen(t, c.UserID)
		if got.Password == old || !got.MustChange {
			t.Fatalf("after the activation password: rehashed %v, must change %v; want true, true", got.Password != old, got.MustChange)
		}
		env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, flows.StepNewPassword)
		env.mustSubmit(t, f, flows.StepNewPassword, flows.Answer{NewPassword: "Valgt2026nemid"}, flows.StepDone)
		c.Password = "Valgt2026nemid"
		env.login(t, c)
	})
}

// rehashRacer changes the citizen's password just before the rehash's compare-and-set
// reaches Redis (the command that names the verified hash), as a login choosing a new
// password between the verification and the rehash would.
type rehashRacer struct {
	old, chosen string
	set         func(ctx context.Context) error
	fired       atomic.Bool
}

func (r *rehashRacer) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *rehashRacer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (r *rehashRacer) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			for _, a := range cmd.Args() {
				if s, ok := a.(string); ok && s == r.old && r.fired.CompareAndSwap(false, true) {
					if err := r.set(ctx); err != nil {
						return err
					}
				}
			}
		}
		return next(ctx, cmd)
	}
}

// TestRehashDoesNotOverwriteAChangedPassword: a password set between a login's verification
// and its rehash stays; the login still moves on.
func TestRehashDoesNotOverwriteAChangedPassword(t *testing.T) {
	eachBackend(t, func(t *testing.T, env *env) {
		ctx := context.Background()
		c := env.issueWithPassword(t, "Hemmelig42")
		old := env.withOldHash(t, c)
		chosen, err := env.e.Passwords.Hash(ctx, "Valgt2026nemid")
		if err != nil {
			t.Fatal(err)
		}
		r := &rehashRacer{old: old, chosen: chosen, set: func(ctx context.Context) error {
			return env.s.Redis().HSet(ctx, storetest.CitizenKey(env.prefix, c.UserID), "password", chosen).Err()
		}}
		env.s.Redis().AddHook(r)
		f := env.begin(t, flows.Start{})
		env.mustSubmit(t, f, flows.StepPassword, flows.Answer{Username: c.UserID, Password: c.Password}, flows.StepCodeCard)
		if !r.fired.Load() {
			t.Fatal("no rehash of the verified hash reached Redis")
		}
		if got := env.citizen(t, c.UserID).Password; got != chosen {
			t.Fatalf("the rehash overwrote the password chosen meanwhile: %q", got)
		}
		env.mustSubmit(t, f, flows.StepCodeCard, flows.Answer{Key: c.key(f.KeyNumber)}, flows.StepDone)
		c.Password = "Valgt2026nemid"
		env.login(t, c)
	})
}
