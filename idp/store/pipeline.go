package store

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// scriptCall is a Lua script queued in a pipeline by its SHA (no script text on the wire). A
// Redis that does not know the script (restarted, SCRIPT FLUSH) answers NOSCRIPT without
// running it; rerun then runs it once more on its own, which loads it.
type scriptCall struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

func queueScript(ctx context.Context, p redis.Pipeliner, s *redis.Script, keys []string, args ...any) *scriptCall {
	return &scriptCall{script: s, keys: keys, args: args, cmd: s.EvalSha(ctx, p, keys, args...)}
}

// rerun runs the script again when the pipeline's attempt was refused as NOSCRIPT; it reports
// whether it did.
func (c *scriptCall) rerun(ctx context.Context, rdb redis.Scripter) bool {
	if c.cmd.Err() == nil || !strings.HasPrefix(c.cmd.Err().Error(), "NOSCRIPT") {
		return false
	}
	c.cmd = c.script.Run(ctx, rdb, c.keys, c.args...)
	return true
}

// pipelined runs queue's commands in one round trip, then reruns any script Redis did not
// know (once per process and Redis, after a restart). The error is the first command error
// that remains, as Pipelined reports it.
func (s *Store) pipelined(ctx context.Context, queue func(p redis.Pipeliner) []*scriptCall) error {
	var calls []*scriptCall
	cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, c := range queue(p) {
			if c != nil {
				calls = append(calls, c)
			}
		}
		return nil
	})
	rerun := false
	for _, c := range calls {
		rerun = c.rerun(ctx, s.rdb) || rerun
	}
	if !rerun {
		return err
	}
	for _, c := range cmds {
		if e := c.Err(); e != nil && !strings.HasPrefix(e.Error(), "NOSCRIPT") {
			return e
		}
	}
	for _, c := range calls {
		if e := c.cmd.Err(); e != nil {
			return e
		}
	}
	return nil
}
