package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Copenhagen in a scratch container

	"github.com/redis/go-redis/v9"
)

// Guardianship kinds (værgemål).
const (
	GuardianshipFull    = "full"
	GuardianshipPartial = "partial"
)

// Guardianship lets a guardian act for a ward at relying parties that allow it. Its validity
// is a range of whole Danish days: from 00:00 Europe/Copenhagen on ValidFrom to the end of
// ValidTo (inclusive), open-ended on either side when empty. An ended guardianship stays
// stored (for the operator's record) and is never current again.
type Guardianship struct {
	ID       string `json:"id"`
	Guardian string `json:"guardian"` // user id
	Ward     string `json:"ward"`     // user id
	// WardName is the ward's name when the guardianship was registered: what the guardian is
	// shown when choosing, without reading every ward's record at each login.
	WardName  string    `json:"ward_name,omitempty"`
	Kind      string    `json:"kind"`
	ValidFrom string    `json:"valid_from,omitempty"` // YYYY-MM-DD, Danish time
	ValidTo   string    `json:"valid_to,omitempty"`   // YYYY-MM-DD, Danish time, inclusive
	CreatedAt time.Time `json:"created_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
}

// copenhagen is where a guardianship's days begin and end.
var copenhagen = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Copenhagen")
	if err != nil {
		panic("store: load Europe/Copenhagen: " + err.Error())
	}
	return loc
}()

// ParseDanishDate parses YYYY-MM-DD as the instant that day begins in Denmark.
func ParseDanishDate(s string) (time.Time, error) {
	d, err := time.ParseInLocation(time.DateOnly, s, copenhagen)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %q: want YYYY-MM-DD: %w", s, err)
	}
	return d, nil
}

// CurrentAt reports whether the guardianship lets the guardian act for the ward at now.
func (g *Guardianship) CurrentAt(now time.Time) bool {
	if !g.EndedAt.IsZero() && !now.Before(g.EndedAt) {
		return false
	}
	if g.ValidFrom != "" {
		from, err := ParseDanishDate(g.ValidFrom)
		if err != nil || now.Before(from) {
			return false
		}
	}
	if g.ValidTo != "" {
		to, err := ParseDanishDate(g.ValidTo)
		if err != nil {
			return false
		}
		// The day after ValidTo begins at Danish midnight (AddDate keeps the wall clock
		// across a DST change).
		if !now.Before(to.AddDate(0, 0, 1)) {
			return false
		}
	}
	return true
}

func (s *Store) guardianshipsKey(guardian string) string {
	return s.key("{c:"+guardian+"}", "guardianships")
}

func (s *Store) guardianshipIndexKey(id string) string { return s.key("guardianship", id) }

// CreateGuardianship stores g (its ID, Guardian, Ward and Kind set by the caller) under the
// guardian's hash tag, with an index from its id to the guardian for ending it. ErrConflict
// when the id is taken.
func (s *Store) CreateGuardianship(ctx context.Context, g *Guardianship) error {
	raw, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("store: create guardianship: %w", err)
	}
	ok, err := s.rdb.SetNX(ctx, s.guardianshipIndexKey(g.ID), g.Guardian, 0).Result()
	if err != nil {
		return wrap("create guardianship", err)
	}
	if !ok {
		return fmt.Errorf("store: create guardianship %s: %w", g.ID, ErrConflict)
	}
	if err := s.rdb.HSet(ctx, s.guardianshipsKey(g.Guardian), g.ID, raw).Err(); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		s.rdb.Del(cctx, s.guardianshipIndexKey(g.ID))
		return wrap("create guardianship", err)
	}
	return nil
}

// Guardianships lists a guardian's guardianships (ended ones too), oldest first, in one round
// trip.
func (s *Store) Guardianships(ctx context.Context, guardian string) ([]Guardianship, error) {
	m, err := s.rdb.HGetAll(ctx, s.guardianshipsKey(guardian)).Result()
	if err != nil {
		return nil, wrap("guardianships", err)
	}
	out := make([]Guardianship, 0, len(m))
	for id, raw := range m {
		var g Guardianship
		if err := json.Unmarshal([]byte(raw), &g); err != nil {
			return nil, fmt.Errorf("store: guardianship %s: decode: %w", id, err)
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Guardianship) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// CurrentWards is the guardian's guardianships current at now.
func (s *Store) CurrentWards(ctx context.Context, guardian string, now time.Time) ([]Guardianship, error) {
	all, err := s.Guardianships(ctx, guardian)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(g Guardianship) bool { return !g.CurrentAt(now) }), nil
}

// Guardianship loads one of a guardian's guardianships (ErrNotFound when the guardian has no
// guardianship with that id).
func (s *Store) Guardianship(ctx context.Context, guardian, id string) (*Guardianship, error) {
	raw, err := s.rdb.HGet(ctx, s.guardianshipsKey(guardian), id).Bytes()
	if err != nil {
		return nil, wrap("guardianship", err)
	}
	var g Guardianship
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, fmt.Errorf("store: guardianship %s: decode: %w", id, err)
	}
	return &g, nil
}

// GuardianshipByID finds a guardianship by its id alone (operator calls).
func (s *Store) GuardianshipByID(ctx context.Context, id string) (*Guardianship, error) {
	guardian, err := s.rdb.Get(ctx, s.guardianshipIndexKey(id)).Result()
	if err != nil {
		return nil, wrap("guardianship by id", err)
	}
	return s.Guardianship(ctx, guardian, id)
}

// EndGuardianship ends a guardianship at now: from then on it is never current, and grants
// made with it stop at their next refresh. Ending an ended guardianship keeps its first end.
func (s *Store) EndGuardianship(ctx context.Context, id string, now time.Time) (*Guardianship, error) {
	g, err := s.GuardianshipByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if !g.EndedAt.IsZero() {
		return g, nil
	}
	g.EndedAt = now.UTC()
	raw, err := json.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("store: end guardianship: %w", err)
	}
	// Only while the field still exists: an end never resurrects a record.
	ok, err := endScript.Run(ctx, s.rdb, []string{s.guardianshipsKey(g.Guardian)}, id, raw).Int()
	if errors.Is(err, redis.Nil) || (err == nil && ok == 0) {
		return nil, fmt.Errorf("store: end guardianship %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, wrap("end guardianship", err)
	}
	return g, nil
}

var endScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`)
