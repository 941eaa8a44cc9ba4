package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The outbox. Every event the citizen must hear of (a letter to send: OutboxTypes) is written,
// in the same script as the state change, into the citizen's own stream {c:<uid>}:events. A
// citizen-slot script cannot write a global key on Redis Cluster, so a relay copies those
// events into the one global, durable stream {outbox}:stream, which the print and letter
// services read (Outbox, GET /admin/v1/outbox, `nemidp outbox`).
//
// Keys of the outbox share the hash tag {outbox}:
//   - {outbox}:stream, the outbox; entries older than OutboxRetention are trimmed by the
//     sweeper (so a reader must come at least that often).
//   - {outbox}:pending, a sorted set of "<uid>|<token>", one member per write that may have
//     left events not yet relayed, scored by when it was announced (Unix ms). A writer adds
//     its own member before the write and removes only that one once it has relayed, so two
//     writers of one citizen never take each other's trace away; a member left behind (the
//     process died between the write and its relay, or the relay failed) is relayed by the
//     sweeper and removed once older than outboxGrace.
//   - {outbox}:seen:<uid>:<event id>, a marker per relayed event (outboxSeenTTL), set in the
//     same script as the outbox entry: two relays racing over one event add it once.
//
// Each citizen's relay cursor, {c:<uid>}:outbox_cursor, is the id of the last event of the
// citizen's stream that was relayed (or skipped).

// Outbox event types: the events a citizen is sent a letter (or a message) about. Other types
// in the citizen's stream stay there.
var OutboxTypes = map[string]bool{
	"card_sent": true, "card_blocked": true, "renewal_due": true, "device_added": true, "address_changed": true,
	"device_removed": true, "nemid_blocked": true, "nemid_unblocked": true, "temporary_password": true,
}

const (
	// OutboxRetention is how long the outbox keeps an entry (XTRIM MINID in the sweeper).
	OutboxRetention = 90 * 24 * time.Hour
	// OutboxSweepInterval is how often `nemidp serve` relays the pending citizens.
	OutboxSweepInterval = 10 * time.Second
	// outboxSeenTTL is how long a relayed event's marker lives. An event older than it
	// (less a day's margin) is not relayed any more: its marker may be gone, so it might be
	// a second copy; an event that old found unrelayed means the relay was broken for a month.
	outboxSeenTTL = 30 * 24 * time.Hour
	// outboxGrace is how long a pending member is left to its writer: far longer than one
	// write takes, so the sweeper removes only traces of writers that are gone.
	outboxGrace = 30 * time.Second
	// relayBatch is how many citizen events one round trip of a relay reads.
	relayBatch = 100
	// MaxOutboxLimit is the most entries one Outbox read returns.
	MaxOutboxLimit = 1000
)

// ErrBadOutboxID: an outbox position that is not a stream id ("<ms>-<seq>").
var ErrBadOutboxID = errors.New("not an outbox event id")

// OutboxEvent is one entry of the outbox: a letter (or message) to send to a citizen.
type OutboxEvent struct {
	ID      string `json:"id"`      // the outbox stream's entry id; pass it as after to read on
	Type    string `json:"type"`    // one of OutboxTypes
	UserID  string `json:"user_id"` // the NemID number, never a CPR number
	Address string `json:"address"` // where to send it (see relay)
	At      string `json:"at"`      // when it happened (RFC 3339)
	// Data are the event's other fields (reason, serial, device_id, expires_at, by, …);
	// never a password, a key or a CPR number (secretFields).
	Data map[string]string `json:"data"`
}

func (s *Store) outboxKey() string  { return s.key("{outbox}", "stream") }
func (s *Store) pendingKey() string { return s.key("{outbox}", "pending") }
func (s *Store) seenKey(uid, id string) string {
	return s.key("{outbox}", "seen", uid, id)
}
func (s *Store) cursorKey(uid string) string { return s.key("{c:"+uid+"}", "outbox_cursor") }

// secretFields are never copied into the outbox, whatever an event writer put in its event.
var secretFields = map[string]bool{
	"password": true, "activation_password": true, "key": true, "keys": true, "cpr": true,
	"token": true, "secret": true, "hash": true,
}

// withOutbox runs write, a change in uid's slot that may add events to the citizen's event
// stream ({c:<uid>}:events), so that those events reach the outbox: every writer of an event
// the citizen must hear of goes through it. The trace in pending comes first, so a crash after
// the write leaves it for the sweeper. A failed relay does not fail the caller: the change
// happened, and the sweeper relays later.
func (s *Store) withOutbox(ctx context.Context, uid string, write func() error) error {
	member := uid + "|" + RandomToken()
	if err := s.rdb.ZAdd(ctx, s.pendingKey(), redis.Z{Score: float64(time.Now().UnixMilli()), Member: member}).Err(); err != nil {
		return wrap("outbox: announce", err) // nothing written yet
	}
	err := write()
	// Relayed even when write failed: a script may have written before its error, and a
	// refusal writes nothing, which costs one read. A cancelled request still relays.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, rerr := s.Relay(rctx, uid); rerr != nil {
		slog.WarnContext(ctx, "outbox relay failed; the sweeper relays later", "user_id", uid, "err", rerr)
		return err
	}
	if rerr := s.rdb.ZRem(rctx, s.pendingKey(), member).Err(); rerr != nil {
		slog.WarnContext(ctx, "outbox: pending trace not removed; the sweeper removes it", "user_id", uid, "err", rerr)
	}
	return err
}

// relayLater relays uid's events soon, off the caller's path: a lockout writes its letter in the
// login's own script, and the login's answer must not wait for (nor, by its timing, tell of)
// the relay. It goes through withOutbox, so a failed relay leaves its trace for the sweeper; a
// crash before it leaves the letter for the citizen's next outbox write.
func (s *Store) relayLater(ctx context.Context, uid string) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = s.withOutbox(rctx, uid, func() error { return nil })
	}()
}

// KEYS: seen marker, outbox stream. ARGV: 1 marker TTL (s), 2 type, 3 user id, 4 address,
// 5 at, 6 data (JSON). The marker and the entry are one step: a relay that loses the race for
// an event adds nothing.
var relayScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return false end
return redis.call('XADD', KEYS[2], '*', 'type', ARGV[2], 'user_id', ARGV[3], 'address', ARGV[4], 'at', ARGV[5], 'data', ARGV[6])
`)

// KEYS: cursor. ARGV: 1 event id. The cursor only moves forward, so a slow relay racing a
// quicker one does not take it back (which would only cost a rerun, skipped by the markers).
var cursorScript = redis.NewScript(`
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local cur = redis.call('GET', KEYS[1])
if cur then
  local cm, cs = parse(cur)
  local nm, ns = parse(ARGV[1])
  if cm and (nm < cm or (nm == cm and ns <= cs)) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
`)

// Relay copies the citizen's events of an outbox type past the relay cursor into the outbox,
// in order, and moves the cursor past them; it returns how many entries it added. Safe to run
// concurrently, for one citizen as for many, from several instances: each event is added
// once (the seen markers).
//
// The address of an entry is the event's own address field when it has one (a card sent to a
// given postal address), else the citizen's alternative address (alt_address, set in
// self-service), else the postal address of a citizen with no fixed address
// (postal_address), else the register address (address): read when the event is relayed.
func (s *Store) Relay(ctx context.Context, uid string) (int, error) {
	added := 0
	for {
		var cur *redis.StringCmd
		var addr *redis.SliceCmd
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			cur = p.Get(ctx, s.cursorKey(uid))
			addr = p.HMGet(ctx, s.citizenKey(uid), "alt_address", "postal_address", "address")
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return added, wrap("outbox relay: read cursor", err)
		}
		// The pipeline's error is its first: a missing cursor's redis.Nil must not hide a
		// failed read of the addresses, which would relay letters with no address.
		if err := addr.Err(); err != nil {
			return added, wrap("outbox relay: read addresses", err)
		}
		if err := cur.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return added, wrap("outbox relay: read cursor", err)
		}
		start := "-"
		if c := cur.Val(); c != "" {
			start = "(" + c
		}
		msgs, err := s.rdb.XRangeN(ctx, s.eventsKey(uid), start, "+", relayBatch).Result()
		if err != nil {
			return added, wrap("outbox relay: read events", err)
		}
		if len(msgs) == 0 {
			return added, nil
		}
		fallback := ""
		for _, v := range addr.Val() {
			if sv, _ := v.(string); sv != "" {
				fallback = sv
				break
			}
		}
		oldest := time.Now().Add(-outboxSeenTTL + 24*time.Hour)
		for _, m := range msgs {
			n, err := s.relayOne(ctx, uid, m, fallback, oldest)
			added += n
			if err != nil {
				return added, err
			}
		}
		last := msgs[len(msgs)-1].ID
		if err := cursorScript.Run(ctx, s.rdb, []string{s.cursorKey(uid)}, last).Err(); err != nil {
			return added, wrap("outbox relay: move cursor", err)
		}
		if len(msgs) < relayBatch {
			return added, nil
		}
	}
}

func (s *Store) relayOne(ctx context.Context, uid string, m redis.XMessage, fallback string, oldest time.Time) (int, error) {
	typ, _ := m.Values["type"].(string)
	if !OutboxTypes[typ] {
		return 0, nil
	}
	ms, _, _ := strings.Cut(m.ID, "-")
	msn, _ := strconv.ParseInt(ms, 10, 64)
	if time.UnixMilli(msn).Before(oldest) {
		slog.WarnContext(ctx, "outbox: an event too old to relay safely is skipped", "user_id", uid, "event", m.ID, "type", typ)
		return 0, nil
	}
	address, at := fallback, ""
	data := map[string]string{}
	for k, v := range m.Values {
		sv := fmt.Sprint(v)
		switch {
		case k == "type":
		case k == "at":
			at = sv
		case k == "address":
			if sv != "" {
				address = sv
			}
		case secretFields[k]:
		default:
			data[k] = sv
		}
	}
	if at == "" {
		at = time.UnixMilli(msn).UTC().Format(time.RFC3339)
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return 0, fmt.Errorf("store: outbox relay: %w", err)
	}
	err = relayScript.Run(ctx, s.rdb, []string{s.seenKey(uid, m.ID), s.outboxKey()},
		int64(outboxSeenTTL/time.Second), typ, uid, address, at, raw).Err()
	switch {
	case errors.Is(err, redis.Nil):
		return 0, nil // relayed before (or by a relay racing this one)
	case err != nil:
		return 0, wrap("outbox relay: add", err)
	}
	return 1, nil
}

// RelayPending relays every citizen with a trace in pending and removes the traces older than
// outboxGrace (younger ones are their writers' to remove), then trims the outbox to
// OutboxRetention. It returns how many entries it added. Several instances may sweep at once:
// the markers keep each event single.
func (s *Store) RelayPending(ctx context.Context) (int, error) {
	members, err := s.rdb.ZRangeWithScores(ctx, s.pendingKey(), 0, -1).Result()
	if err != nil {
		return 0, wrap("outbox sweep: read pending", err)
	}
	stale := time.Now().Add(-outboxGrace).UnixMilli()
	done := map[string]bool{}
	added := 0
	var firstErr error
	for _, z := range members {
		member, _ := z.Member.(string)
		uid, _, _ := strings.Cut(member, "|")
		if !done[uid] {
			n, err := s.Relay(ctx, uid)
			added += n
			if err != nil {
				firstErr = cmpErr(firstErr, err)
				continue // its traces stay: the next sweep tries again
			}
			done[uid] = true
		}
		if int64(z.Score) <= stale {
			if err := s.rdb.ZRem(ctx, s.pendingKey(), member).Err(); err != nil {
				firstErr = cmpErr(firstErr, wrap("outbox sweep: remove trace", err))
			}
		}
	}
	// Retention: the outbox is durable, but not forever (its readers come far more often);
	// exact, not "~", which would keep old entries sharing a node with new ones.
	minID := strconv.FormatInt(time.Now().Add(-OutboxRetention).UnixMilli(), 10)
	if err := s.rdb.XTrimMinID(ctx, s.outboxKey(), minID).Err(); err != nil {
		firstErr = cmpErr(firstErr, wrap("outbox sweep: trim", err))
	}
	return added, firstErr
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// StartOutboxSweeper runs RelayPending at once and then every interval until the returned
// stop is called; stop waits for a sweep under way. Failures are logged (the next sweep
// tries again).
func (s *Store) StartOutboxSweeper(interval time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if n, err := s.RelayPending(ctx); err != nil && ctx.Err() == nil {
				log.Warn("outbox sweep failed; trying again", "relayed", n, "err", err)
			} else if n > 0 {
				log.Info("outbox sweep relayed events left by an earlier write", "relayed", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

const maxStreamID = "18446744073709551615-18446744073709551615"

var outboxIDRe = regexp.MustCompile(`^[0-9]{1,20}-[0-9]{1,20}$`)

// ValidOutboxID reports whether id is an outbox position ("" is the start).
func ValidOutboxID(id string) bool {
	if id == "" {
		return true
	}
	if !outboxIDRe.MatchString(id) {
		return false
	}
	ms, seq, _ := strings.Cut(id, "-")
	_, e1 := strconv.ParseUint(ms, 10, 64)
	_, e2 := strconv.ParseUint(seq, 10, 64)
	return e1 == nil && e2 == nil
}

// Outbox reads up to limit entries after the entry id after (exclusive; "" is the start), oldest
// first. ErrBadOutboxID for an after that is not an entry id; limit is clamped to
// 1..MaxOutboxLimit.
func (s *Store) Outbox(ctx context.Context, after string, limit int) ([]OutboxEvent, error) {
	if !ValidOutboxID(after) {
		return nil, fmt.Errorf("store: outbox: after %q: %w", after, ErrBadOutboxID)
	}
	limit = min(max(limit, 1), MaxOutboxLimit)
	if after == maxStreamID {
		return []OutboxEvent{}, nil // nothing can follow it, and Redis refuses the range
	}
	start := "-"
	if after != "" {
		start = "(" + after
	}
	msgs, err := s.rdb.XRangeN(ctx, s.outboxKey(), start, "+", int64(limit)).Result()
	if err != nil {
		return nil, wrap("outbox", err)
	}
	out := make([]OutboxEvent, 0, len(msgs))
	for _, m := range msgs {
		str := func(k string) string { v, _ := m.Values[k].(string); return v }
		e := OutboxEvent{ID: m.ID, Type: str("type"), UserID: str("user_id"), Address: str("address"), At: str("at"), Data: map[string]string{}}
		if raw := str("data"); raw != "" {
			if err := json.Unmarshal([]byte(raw), &e.Data); err != nil {
				return nil, fmt.Errorf("store: outbox: entry %s: decode data: %w", m.ID, err)
			}
		}
		out = append(out, e)
	}
	return out, nil
}
