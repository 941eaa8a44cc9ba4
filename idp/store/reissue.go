package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ReplaceActiveCard gives a citizen a new active card and retires every card of theirs that
// was active or sent, in one transaction: the citizen never has two active cards, or none.
// The new card's serial is claimed first (ErrSerialTaken: draw another card). ErrNotFound
// when the citizen does not exist.
func (s *Store) ReplaceActiveCard(ctx context.Context, uid string, card CardRecord) error {
	if err := card.check(); err != nil {
		return err
	}
	return s.withSerial(ctx, card.Serial, uid, func() error {
		return s.withOutbox(ctx, uid, func() error { return s.replaceActiveCard(ctx, uid, card) })
	})
}

func (s *Store) replaceActiveCard(ctx context.Context, uid string, card CardRecord) error {
	ck, cards := s.citizenKey(uid), s.cardsKey(uid)
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, ck).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		serials, err := tx.SMembers(ctx, cards).Result()
		if err != nil {
			return err
		}
		var retire []string
		for _, serial := range serials {
			st, err := tx.HGet(ctx, s.cardKey(uid, serial), "status").Result()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			if st == CardActive || st == CardSent {
				retire = append(retire, serial)
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			for _, serial := range retire {
				p.HSet(ctx, s.cardKey(uid, serial), "status", CardRetired)
				p.Del(ctx, s.printKey(uid, serial)) // a retired card is never printed
			}
			s.queueCard(ctx, p, uid, card)
			p.HSet(ctx, ck, "active_card", card.Serial)
			return nil
		})
		return err
	}, ck, cards)
	if errors.Is(err, redis.TxFailedErr) {
		return fmt.Errorf("store: replace active card: %w", ErrConflict)
	}
	return wrap("replace active card", err)
}

// resetLoginScript sets a citizen's password and makes the NemID usable again, only if the
// citizen exists (an HSET on a missing key would write half a record).
var resetLoginScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'password', ARGV[1], 'must_change', '0', 'status', 'active', 'block_reason', '', 'failures', 0)
redis.call('HDEL', KEYS[1], 'blocked_at')
return 1
`)

// ResetLogin gives a citizen the password hash (already chosen: no activation password) and
// makes the NemID active with no failed attempts, in one step. ErrNotFound when the citizen
// does not exist.
func (s *Store) ResetLogin(ctx context.Context, uid, passwordHash string) error {
	n, err := resetLoginScript.Run(ctx, s.rdb, []string{s.citizenKey(uid)}, passwordHash).Int()
	if err != nil {
		return wrap("reset login", err)
	}
	if n == 0 {
		return fmt.Errorf("store: reset login: %w", ErrNotFound)
	}
	return nil
}
