package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// CitizenByUsername resolves what a citizen types as user ID: the NemID number or the CPR
// number (aliases come later). The CPR number must be given already normalised (10 digits).
func (s *Store) CitizenByUsername(ctx context.Context, username, cpr string) (*Citizen, error) {
	c, _, err := s.lookup(ctx, "", username, cpr)
	return c, err
}

// LookupLogin resolves a user ID as CitizenByUsername does and, in the same round trip,
// reserves one of the flow's attempts (ReserveFlowAttempt's count, returned as attempt: the
// n-th answer of the flow). A CPR number costs one more round trip (index, then citizen).
// attempt is -1 when the flow no longer exists.
func (s *Store) LookupLogin(ctx context.Context, flow, username, cpr string) (c *Citizen, attempt int, err error) {
	return s.lookup(ctx, flow, username, cpr)
}

func (s *Store) lookup(ctx context.Context, flow, username, cpr string) (*Citizen, int, error) {
	var reserve *scriptCall
	var byID *redis.MapStringStringCmd
	var byCPR *redis.StringCmd
	err := s.pipelined(ctx, func(p redis.Pipeliner) []*scriptCall {
		if flow != "" {
			reserve = queueScript(ctx, p, reserveFlowScript, []string{s.flowKey(flow)})
		}
		if isDigits(username) && (len(username) == 9 || len(username) == 10) {
			byID = p.HGetAll(ctx, s.citizenKey(username))
		}
		if cpr != "" {
			byCPR = p.Get(ctx, s.cprIndexKey(cpr))
		}
		return []*scriptCall{reserve}
	})
	if err != nil && err != redis.Nil {
		return nil, 0, wrap("citizen by username", err)
	}
	attempt := 0
	if reserve != nil {
		attempt, _ = reserve.cmd.Int()
	}
	if byID != nil {
		if m := byID.Val(); len(m) > 0 && m["user_id"] != "" {
			return citizenFrom(m), attempt, nil
		}
	}
	if byCPR != nil {
		claim, err := byCPR.Result()
		if err != nil {
			return nil, attempt, wrap("citizen by cpr", err)
		}
		uid, _, _ := strings.Cut(claim, "|")
		c, err := s.Citizen(ctx, uid)
		return c, attempt, err
	}
	return nil, attempt, fmt.Errorf("store: citizen by username: %w", ErrNotFound)
}
