package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrSerialTaken means a freshly drawn card serial is already some card's: draw another.
var ErrSerialTaken = errors.New("card serial taken")

// serialIndexKey claims a card serial for all citizens: serials are printed on cards and
// named in support calls, so two cards must never share one. The claim names the user id.
func (s *Store) serialIndexKey(serial string) string { return s.key("idx", "serial", serial) }

// releaseClaimScript deletes an index claim only if it is still the one that was made.
var releaseClaimScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// withSerial claims serial for uid (SETNX, like the CPR claim), runs write, and releases the
// claim if write fails, so a card that was not written leaves its serial free. A serial that
// is already claimed gives ErrSerialTaken without running write. A claim left behind by a
// crash only wastes one serial of 10⁹.
func (s *Store) withSerial(ctx context.Context, serial, uid string, write func() error) error {
	return s.withClaim(ctx, "card serial", s.serialIndexKey(serial), uid, fmt.Errorf("store: claim card serial %s: %w", serial, ErrSerialTaken), write)
}

// withClaim claims the unique index key idx (of what, for errors: never the value itself)
// for uid, runs write, and releases the claim if write fails. An index already claimed
// answers taken without running write.
func (s *Store) withClaim(ctx context.Context, what, idx, uid string, taken error, write func() error) error {
	ok, err := s.rdb.SetNX(ctx, idx, uid, 0).Result()
	if err != nil {
		return wrap("claim "+what, err)
	}
	if !ok {
		return taken
	}
	if err := write(); err != nil {
		// A fresh context, so a cancelled request still cleans up.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		releaseClaimScript.Run(cctx, s.rdb, []string{idx}, uid)
		return err
	}
	return nil
}
