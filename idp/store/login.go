package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// CitizenByUsername resolves what a citizen types as user ID: the NemID number or the CPR
// number (aliases come later). The CPR number must be given already normalised (10 digits).
// A login's password answer resolves it with BeginPasswordAnswer instead.
func (s *Store) CitizenByUsername(ctx context.Context, username, cpr string) (*Citizen, error) {
	var byID *redis.MapStringStringCmd
	var byCPR *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if idShaped(username) {
			byID = p.HGetAll(ctx, s.citizenKey(username))
		}
		if cpr != "" {
			byCPR = p.Get(ctx, s.cprIndexKey(cpr))
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, wrap("citizen by username", err)
	}
	if byID != nil {
		if m := byID.Val(); len(m) > 0 && m["user_id"] != "" {
			return citizenFrom(m), nil
		}
	}
	if byCPR != nil {
		claim, err := byCPR.Result()
		if err != nil {
			return nil, wrap("citizen by cpr", err)
		}
		uid, _, _ := strings.Cut(claim, "|")
		return s.Citizen(ctx, uid)
	}
	return nil, fmt.Errorf("store: citizen by username: %w", ErrNotFound)
}
