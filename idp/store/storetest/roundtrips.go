package storetest

import (
	"context"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// RoundTrips is a go-redis hook that counts what a client sends Redis: a command or a pipeline
// is one round trip. Tests pin the budgets of requests with it (AddHook on the server's
// client, then Take per request).
type RoundTrips struct {
	mu   sync.Mutex
	n    int
	cmds []string
}

var _ redis.Hook = (*RoundTrips)(nil)

// DialHook counts nothing.
func (r *RoundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook counts one command.
func (r *RoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.add(cmd.Name())
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook counts a pipeline as one round trip, named by its commands.
func (r *RoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		var names []string
		for _, c := range cmds {
			names = append(names, c.Name())
		}
		r.add("pipeline(" + strings.Join(names, ",") + ")")
		return next(ctx, cmds)
	}
}

func (r *RoundTrips) add(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	r.cmds = append(r.cmds, name)
}

// Take answers the round trips since the last Take, and what they were, and starts again.
func (r *RoundTrips) Take() (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, c := r.n, r.cmds
	r.n, r.cmds = 0, nil
	return n, c
}
