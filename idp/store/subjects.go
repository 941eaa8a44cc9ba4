package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// CitizenWithSubject loads a citizen and its pairwise subject at sector ("" when none was
// made yet) in one round trip (both keys share the citizen's hash slot).
func (s *Store) CitizenWithSubject(ctx context.Context, uid, sector string) (*Citizen, string, error) {
	pipe := s.rdb.Pipeline()
	all := pipe.HGetAll(ctx, s.citizenKey(uid))
	sub := pipe.HGet(ctx, s.pairwiseKey(uid), sector)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, "", wrap("citizen with subject", err)
	}
	m, err := all.Result()
	if err != nil {
		return nil, "", wrap("citizen with subject", err)
	}
	if len(m) == 0 || m["user_id"] == "" {
		return nil, "", fmt.Errorf("store: citizen with subject: %w", ErrNotFound)
	}
	return citizenFrom(m), sub.Val(), nil
}

// KnownPairwiseSubject returns the citizen's pairwise subject at sector without making one
// ("" when there is none).
func (s *Store) KnownPairwiseSubject(ctx context.Context, uid, sector string) (string, error) {
	v, err := s.rdb.HGet(ctx, s.pairwiseKey(uid), sector).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, wrap("known pairwise subject", err)
}
