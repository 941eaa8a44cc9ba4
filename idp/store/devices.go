package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Key-app devices. A citizen's devices live in the citizen's slot: {c:<id>}:devices holds each
// device's record (static: name, public key, when added), {c:<id>}:devact the ids of the active
// ones, so the count that caps them and the password step's "has the app" are one SCARD. A
// removed device keeps its record (the citizen's history) with a removal time.

// Device is a key-app device as stored.
type Device struct {
	ID        string          `json:"device_id"`
	Name      string          `json:"name"`
	PublicKey json.RawMessage `json:"public_key"` // EC P-256 JWK
	CreatedAt time.Time       `json:"created_at"`
	// RemovedAt is set once the device was deactivated (by the citizen or an operator).
	RemovedAt *time.Time `json:"removed_at,omitempty"`
	Active    bool       `json:"active"`
}

// DeviceCitizen is the user id a device id belongs to: device ids are "<user id>.<random>",
// so a device call finds the citizen's slot without an index lookup.
func DeviceCitizen(deviceID string) (string, bool) {
	uid, rnd, ok := strings.Cut(deviceID, ".")
	if !ok || !isDigits(uid) || len(uid) < 9 || len(uid) > 10 || len(rnd) != 22 {
		return "", false
	}
	return uid, true
}

// NewDeviceID makes a device id for a citizen.
func NewDeviceID(uid string) string { return uid + "." + RandomToken() }

// RandomToken is 128 random bits, base64url (22 characters).
func RandomToken() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // unrecoverable: no randomness
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *Store) devicesKey(uid string) string { return s.key("{c:"+uid+"}", "devices") }
func (s *Store) devActKey(uid string) string  { return s.key("{c:"+uid+"}", "devact") }
func (s *Store) eventsKey(uid string) string  { return s.key("{c:"+uid+"}", "events") }
func (s *Store) jtiKey(uid, jti string) string {
	return s.key("{c:"+uid+"}", "jti", digest(jti))
}

// Device-add outcomes.
var (
	// ErrTooManyDevices: the citizen has the most active devices allowed.
	ErrTooManyDevices = fmt.Errorf("too many devices: %w", ErrConflict)
	// ErrNotActive: the NemID is blocked or expired.
	ErrNotActive = fmt.Errorf("nemid not active: %w", ErrConflict)
)

// The check of the cap and the write are one step, so two activations racing for the last
// place cannot both get it; the device_added event is written in the same step.
var addDeviceScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 'no_person' end
if st ~= 'active' then return 'not_active' end
if redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[3]) then return 'full' end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', '200', '*', 'type', 'device_added', 'device_id', ARGV[1], 'name', ARGV[4], 'at', ARGV[5])
return 'ok'
`)

// AddDevice stores an active device unless the citizen already has max active ones or the
// NemID is not active, and records a device_added event for the citizen's notices.
func (s *Store) AddDevice(ctx context.Context, uid string, d Device, max int) error {
	d.Active, d.RemovedAt = false, nil // derived from devact, never stored
	raw, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("store: add device: %w", err)
	}
	keys := []string{s.citizenKey(uid), s.devicesKey(uid), s.devActKey(uid), s.eventsKey(uid)}
	var res string
	err = s.withOutbox(ctx, uid, func() (err error) {
		res, err = addDeviceScript.Run(ctx, s.rdb, keys, d.ID, raw, max, d.Name, d.CreatedAt.UTC().Format(time.RFC3339)).Text()
		return err
	})
	if err != nil {
		return wrap("add device", err)
	}
	switch res {
	case "ok":
		return nil
	case "full":
		return fmt.Errorf("store: add device: %w", ErrTooManyDevices)
	case "not_active":
		return fmt.Errorf("store: add device: %w", ErrNotActive)
	}
	return fmt.Errorf("store: add device: citizen %s: %w", uid, ErrNotFound)
}

// Device returns one device of a citizen (active or removed); ErrNotFound when there is none.
func (s *Store) Device(ctx context.Context, uid, id string) (*Device, error) {
	d, _, err := s.DeviceCall(ctx, uid, id, "", 0)
	return d, err
}

// Devices lists a citizen's devices, active ones first, oldest first within each.
func (s *Store) Devices(ctx context.Context, uid string) ([]Device, error) {
	var recs *redis.MapStringStringCmd
	var act *redis.StringSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		recs = p.HGetAll(ctx, s.devicesKey(uid))
		act = p.SMembers(ctx, s.devActKey(uid))
		return nil
	})
	if err != nil {
		return nil, wrap("devices", err)
	}
	out := []Device{}
	removed := map[string]time.Time{}
	for id, raw := range recs.Val() {
		if rid, ok := strings.CutSuffix(id, ":removed"); ok {
			t, _ := time.Parse(time.RFC3339, raw)
			removed[rid] = t
			continue
		}
		var d Device
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			return nil, fmt.Errorf("store: devices: decode %s: %w", id, err)
		}
		d.Active = slices.Contains(act.Val(), id)
		out = append(out, d)
	}
	for i := range out {
		if t, ok := removed[out[i].ID]; ok && !out[i].Active {
			out[i].RemovedAt = &t
		}
	}
	slices.SortFunc(out, func(a, b Device) int {
		if a.Active != b.Active {
			if a.Active {
				return -1
			}
			return 1
		}
		return a.CreatedAt.Compare(b.CreatedAt)
	})
	return out, nil
}

// DeviceCall reads a device and, for a jti (not ""), marks a device JWT's jti seen for ttl,
// in one round trip: fresh is false when the jti was seen before (a replay). The jti is marked
// before the caller checks the token's signature: a forged token spends only its own random
// jti, and a real token's jti is unknown until its device sends it. ErrNotFound when there is
// no such device.
func (s *Store) DeviceCall(ctx context.Context, uid, id, jti string, ttl time.Duration) (d *Device, fresh bool, err error) {
	var rec *redis.SliceCmd
	var act, mark *redis.BoolCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		// The record and its removal time (as Devices reads them).
		rec = p.HMGet(ctx, s.devicesKey(uid), id, id+":removed")
		act = p.SIsMember(ctx, s.devActKey(uid), id)
		if jti != "" {
			mark = p.SetNX(ctx, s.jtiKey(uid, jti), "1", max(ttl, time.Second))
		}
		return nil
	})
	if err != nil {
		return nil, false, wrap("device", err)
	}
	raw, ok := rec.Val()[0].(string)
	if !ok {
		return nil, false, fmt.Errorf("store: device %s: %w", id, ErrNotFound)
	}
	var dev Device
	if err := json.Unmarshal([]byte(raw), &dev); err != nil {
		return nil, false, fmt.Errorf("store: device %s: decode: %w", id, err)
	}
	dev.Active = act.Val()
	if removed, ok := rec.Val()[1].(string); ok && !dev.Active {
		t, _ := time.Parse(time.RFC3339, removed)
		dev.RemovedAt = &t
	}
	return &dev, mark != nil && mark.Val(), nil
}

// ActiveDevices counts a citizen's active devices.
func (s *Store) ActiveDevices(ctx context.Context, uid string) (int, error) {
	n, err := s.rdb.SCard(ctx, s.devActKey(uid)).Result()
	return int(n), wrap("active devices", err)
}

var removeDeviceScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 'not_found' end
if redis.call('SREM', KEYS[2], ARGV[1]) == 0 then return 'removed' end
redis.call('HSET', KEYS[1], ARGV[1] .. ':removed', ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', '200', '*', 'type', 'device_removed', 'device_id', ARGV[1], 'by', ARGV[3], 'at', ARGV[2])
return 'ok'
`)

// RemoveDevice deactivates a device at once: its next call is refused. Removing one already
// removed is no error; an unknown one is ErrNotFound. by names who removed it (an operator
// label, or "citizen").
func (s *Store) RemoveDevice(ctx context.Context, uid, id, by string) error {
	keys := []string{s.devicesKey(uid), s.devActKey(uid), s.eventsKey(uid)}
	var res string
	err := s.withOutbox(ctx, uid, func() (err error) {
		res, err = removeDeviceScript.Run(ctx, s.rdb, keys, id, time.Now().UTC().Format(time.RFC3339), by).Text()
		return err
	})
	if err != nil {
		return wrap("remove device", err)
	}
	if res == "not_found" {
		return fmt.Errorf("store: remove device %s: %w", id, ErrNotFound)
	}
	return nil
}

// Event is one entry of a citizen's notices stream.
type Event struct {
	ID     string            `json:"id"`
	Type   string            `json:"type"`
	Fields map[string]string `json:"data"`
}

// Events returns the citizen's latest notices, newest first.
func (s *Store) Events(ctx context.Context, uid string, limit int) ([]Event, error) {
	msgs, err := s.rdb.XRevRangeN(ctx, s.eventsKey(uid), "+", "-", int64(limit)).Result()
	if err != nil {
		return nil, wrap("events", err)
	}
	out := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		e := Event{ID: m.ID, Fields: map[string]string{}}
		for k, v := range m.Values {
			sv, _ := v.(string)
			if k == "type" {
				e.Type = sv
				continue
			}
			e.Fields[k] = sv
		}
		out = append(out, e)
	}
	return out, nil
}

// ActivationState is what a key-app activation is judged by, read in one round trip.
type ActivationState struct {
	ExpiresAt string // the NemID's expiry (YYYY-MM-DD), "" when unknown
	KeysLeft  int    // unused keys on the card
	Devices   int    // active devices
}

// ActivationState reads the citizen's expiry, the card's unused keys and the active devices.
func (s *Store) ActivationState(ctx context.Context, uid, serial string) (ActivationState, error) {
	var exp *redis.StringCmd
	var keys, devs *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		exp = p.HGet(ctx, s.citizenKey(uid), "expires_at")
		keys = p.SCard(ctx, s.unusedKey(uid, serial))
		devs = p.SCard(ctx, s.devActKey(uid))
		return nil
	})
	if err != nil && err != redis.Nil {
		return ActivationState{}, wrap("activation state", err)
	}
	return ActivationState{ExpiresAt: exp.Val(), KeysLeft: int(keys.Val()), Devices: int(devs.Val())}, nil
}
