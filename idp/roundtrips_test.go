package idp_test

import (
	"context"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// countingHook counts Redis round trips: one per command, one per pipeline.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// TestTokenRequestRoundTrips pins the Redis round trips of a code exchange (check the code,
// load the flow, the pairwise subject, the citizen, the one issuing script) and of a refresh
// (load the refresh token, the citizen, the issuing script).
func TestTokenRequestRoundTrips(t *testing.T) {
	t.Parallel()
	rp := newBenchRP(t)
	hook := &countingHook{}
	rp.s.Store.Redis().AddHook(hook)
	rp.exchange(t, rp.code(t)) // loads the scripts
	code := rp.code(t)
	hook.n.Store(0)
	tok := rp.exchange(t, code)
	if n := hook.n.Load(); n != 5 {
		t.Errorf("code exchange: %d Redis round trips, want 5", n)
	}
	hook.n.Store(0)
	rp.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
	if n := hook.n.Load(); n != 3 {
		t.Errorf("refresh: %d Redis round trips, want 3", n)
	}
}
