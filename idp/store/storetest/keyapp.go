package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nemidp/nemidp/idp/store"
)

// The key app's part of the contract: devices (capped, in the citizen's slot, with their
// events), device-JWT jti replay markers, approval requests (each decided exactly once) and the
// waiters that wake long-polls on any instance.

// MaxDevices is the device cap the suite uses (DESIGN §3: up to 3 devices per citizen).
const MaxDevices = 3

// testJWK is an EC P-256 public JWK (the example key of RFC 9449 §6.1), compact as the store
// keeps JSON.
var testJWK = json.RawMessage(`{"kty":"EC","crv":"P-256","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}`)

func newDevice(uid, name string, at time.Time) store.Device {
	return store.Device{ID: store.NewDeviceID(uid), Name: name, PublicKey: testJWK, CreatedAt: at}
}

// instance is another store on the same backend, with a client (and connections) of its own:
// what another nemidp instance sees. prefix "" means the suite's prefix.
func (h *harness) instance(t *testing.T, prefix string) *store.Store {
	t.Helper()
	if prefix == "" {
		prefix = h.prefix
	}
	var c redis.UniversalClient
	switch rc := h.s.Redis().(type) {
	case *redis.ClusterClient:
		o := rc.Options()
		c = redis.NewClusterClient(&redis.ClusterOptions{Addrs: o.Addrs, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig})
	case *redis.Client:
		o := rc.Options()
		c = redis.NewClient(&redis.Options{Network: o.Network, Addr: o.Addr, DB: o.DB, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig})
	default:
		t.Fatalf("no second instance for a %T", rc)
	}
	t.Cleanup(func() { _ = c.Close() })
	return store.New(c, prefix, Pepper)
}

func (h *harness) addDevices(t *testing.T, uid string, n int) []store.Device {
	t.Helper()
	base := time.Now().UTC().Truncate(time.Millisecond)
	var out []store.Device
	for i := range n {
		d := newDevice(uid, fmt.Sprintf("Telefon %d", i), base.Add(time.Duration(i)*time.Second))
		noErr(t, "AddDevice", h.s.AddDevice(t.Context(), uid, d, MaxDevices))
		out = append(out, d)
	}
	return out
}

func (h *harness) block(t *testing.T, uid string) {
	t.Helper()
	noErr(t, "block", h.s.Redis().HSet(t.Context(), h.citizenKey(uid), "status", store.StatusBlocked, "block_reason", "operator").Err())
}

func (h *harness) unblock(t *testing.T, uid string) {
	t.Helper()
	noErr(t, "unblock", h.s.Redis().HSet(t.Context(), h.citizenKey(uid), "status", store.StatusActive, "block_reason", "").Err())
}

func sameDevice(got, want store.Device) bool {
	return got.ID == want.ID && got.Name == want.Name && bytes.Equal(got.PublicKey, want.PublicKey) &&
		got.CreatedAt.Equal(want.CreatedAt)
}

func deviceIDs(ds []store.Device) []string {
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return ids
}

// ---- devices ----

func testDevicesAddAndList(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	ds, err := h.s.Devices(ctx, c.UserID)
	noErr(t, "Devices(none)", err)
	if ds == nil || len(ds) != 0 {
		t.Fatalf("Devices of a citizen without any = %#v, want an empty list", ds)
	}
	base := time.Now().UTC().Truncate(time.Millisecond)
	// Added out of order: the list is ordered by when each was made, not by when it was stored.
	newest, oldest, middle := newDevice(c.UserID, "Telefon", base.Add(2*time.Second)),
		newDevice(c.UserID, "Tablet æøå", base), newDevice(c.UserID, "Ur", base.Add(time.Second))
	// What the caller says of Active and RemovedAt is not stored: a new device is active.
	gone := base.Add(-time.Hour)
	newest.RemovedAt = &gone
	for _, d := range []store.Device{newest, oldest, middle} {
		noErr(t, "AddDevice", h.s.AddDevice(ctx, c.UserID, d, MaxDevices))
	}
	for _, d := range []store.Device{newest, oldest, middle} {
		got, err := h.s.Device(ctx, c.UserID, d.ID)
		noErr(t, "Device", err)
		if !sameDevice(*got, d) || !got.Active || got.RemovedAt != nil {
			t.Errorf("Device = %+v\nwant      %+v, active", *got, d)
		}
		uid, ok := store.DeviceCitizen(d.ID)
		if !ok || uid != c.UserID {
			t.Errorf("DeviceCitizen(%s) = %q, %v; want %s", d.ID, uid, ok, c.UserID)
		}
	}
	ds, err = h.s.Devices(ctx, c.UserID)
	noErr(t, "Devices", err)
	if got, want := deviceIDs(ds), deviceIDs([]store.Device{oldest, middle, newest}); !slices.Equal(got, want) {
		t.Fatalf("Devices order %v, want oldest first %v", got, want)
	}
	for _, d := range ds {
		if !d.Active || d.RemovedAt != nil {
			t.Errorf("listed device %s: active %v removed %v, want active", d.ID, d.Active, d.RemovedAt)
		}
	}
	if n, err := h.s.ActiveDevices(ctx, c.UserID); err != nil || n != 3 {
		t.Fatalf("ActiveDevices = %d, %v; want 3", n, err)
	}
	// Active ones first, then the removed, each oldest first.
	noErr(t, "RemoveDevice", h.s.RemoveDevice(ctx, c.UserID, oldest.ID, "citizen"))
	ds, err = h.s.Devices(ctx, c.UserID)
	noErr(t, "Devices", err)
	if got, want := deviceIDs(ds), deviceIDs([]store.Device{middle, newest, oldest}); !slices.Equal(got, want) {
		t.Fatalf("Devices order after a removal %v, want %v", got, want)
	}
	if !sameDevice(ds[2], oldest) || ds[2].Active || ds[2].RemovedAt == nil {
		t.Errorf("removed device listed as %+v", ds[2])
	}

	// Another citizen sees none of them; an unknown citizen gets no device.
	other, _ := h.citizen(t, 1)
	if ds, err := h.s.Devices(ctx, other.UserID); err != nil || len(ds) != 0 {
		t.Fatalf("another citizen's Devices = %v, %v", ds, err)
	}
	_, err = h.s.Device(ctx, other.UserID, middle.ID)
	wantErr(t, "Device(under another citizen)", err, store.ErrNotFound)
	_, err = h.s.Device(ctx, c.UserID, store.NewDeviceID(c.UserID))
	wantErr(t, "Device(unknown)", err, store.ErrNotFound)
	nobody := NewUserID()
	err = h.s.AddDevice(ctx, nobody, newDevice(nobody, "x", base), MaxDevices)
	wantErr(t, "AddDevice(unknown citizen)", err, store.ErrNotFound)
	if n, err := h.s.ActiveDevices(ctx, nobody); err != nil || n != 0 {
		t.Fatalf("ActiveDevices(unknown citizen) = %d, %v", n, err)
	}

	for _, bad := range []string{"", c.UserID, c.UserID + ".", c.UserID + ".short", "12345678." + store.RandomToken(),
		"abcdefghi." + store.RandomToken(), "12345678901." + store.RandomToken()} {
		if uid, ok := store.DeviceCitizen(bad); ok {
			t.Errorf("DeviceCitizen(%q) = %q, true", bad, uid)
		}
	}
}

func testDevicesCap(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	ds := h.addDevices(t, c.UserID, MaxDevices)
	fourth := newDevice(c.UserID, "fourth", time.Now().UTC())
	err := h.s.AddDevice(ctx, c.UserID, fourth, MaxDevices)
	wantErr(t, "AddDevice(fourth)", err, store.ErrTooManyDevices)
	wantErr(t, "AddDevice(fourth)", err, store.ErrConflict)
	_, err = h.s.Device(ctx, c.UserID, fourth.ID)
	wantErr(t, "Device(refused)", err, store.ErrNotFound)
	if n, err := h.s.ActiveDevices(ctx, c.UserID); err != nil || n != MaxDevices {
		t.Fatalf("ActiveDevices = %d, %v; want %d", n, err, MaxDevices)
	}
	// A removed device frees its place; the removed one still counts nowhere.
	noErr(t, "RemoveDevice", h.s.RemoveDevice(ctx, c.UserID, ds[1].ID, "operator"))
	noErr(t, "AddDevice(after a removal)", h.s.AddDevice(ctx, c.UserID, fourth, MaxDevices))
	if n, err := h.s.ActiveDevices(ctx, c.UserID); err != nil || n != MaxDevices {
		t.Fatalf("ActiveDevices = %d, %v; want %d", n, err, MaxDevices)
	}
	fifth := newDevice(c.UserID, "fifth", time.Now().UTC())
	wantErr(t, "AddDevice(fifth)", h.s.AddDevice(ctx, c.UserID, fifth, MaxDevices), store.ErrTooManyDevices)
	all, err := h.s.Devices(ctx, c.UserID)
	noErr(t, "Devices", err)
	if len(all) != MaxDevices+1 {
		t.Fatalf("Devices lists %d, want %d active and 1 removed", len(all), MaxDevices)
	}
}

// testDevicesCapRace: activations racing for the places left get exactly the places left.
func testDevicesCapRace(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	errs := race(Racers, func(i int) error {
		return h.s.AddDevice(t.Context(), c.UserID, newDevice(c.UserID, fmt.Sprint("racer ", i), time.Now().UTC()), MaxDevices)
	})
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrTooManyDevices):
			t.Fatalf("racer %d: %v, want nil or ErrTooManyDevices", i, err)
		}
	}
	if won != MaxDevices {
		t.Fatalf("%d of %d racers added a device, want exactly %d", won, Racers, MaxDevices)
	}
	if n, err := h.s.ActiveDevices(ctx, c.UserID); err != nil || n != MaxDevices {
		t.Fatalf("ActiveDevices = %d, %v; want %d", n, err, MaxDevices)
	}
	ds, err := h.s.Devices(ctx, c.UserID)
	noErr(t, "Devices", err)
	if len(ds) != MaxDevices {
		t.Fatalf("Devices lists %d, want %d", len(ds), MaxDevices)
	}
	evs, err := h.s.Events(ctx, c.UserID, 100)
	noErr(t, "Events", err)
	if len(evs) != MaxDevices {
		t.Fatalf("%d events, want one device_added per device (%d)", len(evs), MaxDevices)
	}
}

func testDevicesNotActive(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	for _, st := range []string{store.StatusBlocked, store.StatusExpired} {
		noErr(t, "status", h.s.Redis().HSet(ctx, h.citizenKey(c.UserID), "status", st).Err())
		d := newDevice(c.UserID, "phone", time.Now().UTC())
		err := h.s.AddDevice(ctx, c.UserID, d, MaxDevices)
		wantErr(t, "AddDevice(NemID "+st+")", err, store.ErrNotActive)
		_, err = h.s.Device(ctx, c.UserID, d.ID)
		wantErr(t, "Device(refused)", err, store.ErrNotFound)
	}
	if n, err := h.s.ActiveDevices(ctx, c.UserID); err != nil || n != 0 {
		t.Fatalf("ActiveDevices = %d, %v; want 0", n, err)
	}
	if evs, err := h.s.Events(ctx, c.UserID, 10); err != nil || len(evs) != 0 {
		t.Fatalf("a refused device left events %v, %v", evs, err)
	}
	h.unblock(t, c.UserID)
	noErr(t, "AddDevice(active again)", h.s.AddDevice(ctx, c.UserID, newDevice(c.UserID, "phone", time.Now().UTC()), MaxDevices))
}

func testDevicesRemove(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	ds := h.addDevices(t, c.UserID, 2)
	before := time.Now().Add(-time.Second)
	noErr(t, "RemoveDevice", h.s.RemoveDevice(ctx, c.UserID, ds[0].ID, "operator:borgerservice"))
	after := time.Now().Add(time.Second)
	got, err := h.s.Device(ctx, c.UserID, ds[0].ID)
	noErr(t, "Device(removed)", err)
	if !sameDevice(*got, ds[0]) || got.Active {
		t.Fatalf("removed Device = %+v, want %+v inactive", *got, ds[0])
	}
	if got.RemovedAt == nil || got.RemovedAt.Before(before) || got.RemovedAt.After(after) {
		t.Fatalf("removed Device RemovedAt = %v, want about now", got.RemovedAt)
	}
	first := *got.RemovedAt
	// Removing it again changes nothing and is no error.
	noErr(t, "RemoveDevice(again)", h.s.RemoveDevice(ctx, c.UserID, ds[0].ID, "citizen"))
	list, err := h.s.Devices(ctx, c.UserID)
	noErr(t, "Devices", err)
	if len(list) != 2 || list[0].ID != ds[1].ID || !list[0].Active || list[0].RemovedAt != nil ||
		list[1].ID != ds[0].ID || list[1].Active || list[1].RemovedAt == nil || !list[1].RemovedAt.Equal(first) {
		t.Fatalf("Devices after removing %s: %+v", ds[0].ID, list)
	}
	other, err := h.s.Device(ctx, c.UserID, ds[1].ID)
	noErr(t, "Device(kept)", err)
	if !other.Active || other.RemovedAt != nil {
		t.Fatalf("the other device changed: %+v", other)
	}
	if n, err := h.s.ActiveDevices(ctx, c.UserID); err != nil || n != 1 {
		t.Fatalf("ActiveDevices = %d, %v; want 1", n, err)
	}
	err = h.s.RemoveDevice(ctx, c.UserID, store.NewDeviceID(c.UserID), "citizen")
	wantErr(t, "RemoveDevice(unknown)", err, store.ErrNotFound)
	stranger, _ := h.citizen(t, 1)
	err = h.s.RemoveDevice(ctx, stranger.UserID, ds[1].ID, "citizen")
	wantErr(t, "RemoveDevice(under another citizen)", err, store.ErrNotFound)
	// One device_removed event, naming who removed it, newest first.
	evs, err := h.s.Events(ctx, c.UserID, 10)
	noErr(t, "Events", err)
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if want := []string{"device_removed", "device_added", "device_added"}; !slices.Equal(types, want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	if e := evs[0]; e.Fields["device_id"] != ds[0].ID || e.Fields["by"] != "operator:borgerservice" {
		t.Fatalf("device_removed event %+v", e)
	}
}

func testDevicesEvent(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	d := newDevice(c.UserID, "Mormors iPad", time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC))
	noErr(t, "AddDevice", h.s.AddDevice(ctx, c.UserID, d, MaxDevices))
	evs, err := h.s.Events(ctx, c.UserID, 10)
	noErr(t, "Events", err)
	if len(evs) != 1 {
		t.Fatalf("events %+v, want one", evs)
	}
	e := evs[0]
	if e.ID == "" || e.Type != "device_added" || e.Fields["device_id"] != d.ID || e.Fields["name"] != d.Name ||
		e.Fields["at"] != "2025-03-04T05:06:07Z" {
		t.Fatalf("event %+v, want device_added of %s", e, d.ID)
	}
	if _, ok := e.Fields["type"]; ok {
		t.Errorf("type repeated among the fields: %+v", e.Fields)
	}
	d2 := newDevice(c.UserID, "Telefon", time.Now().UTC())
	noErr(t, "AddDevice", h.s.AddDevice(ctx, c.UserID, d2, MaxDevices))
	evs, err = h.s.Events(ctx, c.UserID, 1)
	noErr(t, "Events(limit 1)", err)
	if len(evs) != 1 || evs[0].Fields["device_id"] != d2.ID {
		t.Fatalf("Events(limit 1) = %+v, want the newest (%s)", evs, d2.ID)
	}
	other, _ := h.citizen(t, 1)
	if evs, err := h.s.Events(ctx, other.UserID, 10); err != nil || len(evs) != 0 {
		t.Fatalf("another citizen's events %+v, %v", evs, err)
	}
}

// testDevicesJTI: a device call reads the device and marks its device JWT's jti in one step.
// A jti passes once per citizen (also under a race), is kept for at least its ttl, and is
// forgotten after it; an unknown device is ErrNotFound.
func testDevicesJTI(t *testing.T, h *harness) {
	h.ownClock(t)
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	other, _ := h.citizen(t, 1)
	devs := map[string]store.Device{c.UserID: h.addDevices(t, c.UserID, 1)[0], other.UserID: h.addDevices(t, other.UserID, 1)[0]}
	use := func(uid, jti string, ttl time.Duration) bool {
		t.Helper()
		d, fresh, err := h.s.DeviceCall(ctx, uid, devs[uid].ID, jti, ttl)
		noErr(t, "DeviceCall", err)
		if d.ID != devs[uid].ID || !d.Active {
			t.Fatalf("DeviceCall read %+v, want the active device %s", d, devs[uid].ID)
		}
		return fresh
	}
	if !use(c.UserID, "jti-1", time.Minute) {
		t.Fatal("first use of a jti refused")
	}
	if use(c.UserID, "jti-1", time.Minute) {
		t.Fatal("second use of a jti accepted")
	}
	if !use(c.UserID, "jti-2", time.Minute) {
		t.Fatal("another jti refused")
	}
	if !use(other.UserID, "jti-1", time.Minute) {
		t.Fatal("another citizen's device's jti refused")
	}
	if use(c.UserID, "", time.Minute) {
		t.Fatal("no jti counts as fresh")
	}

	results := race(Racers, func(int) bool {
		_, fresh, err := h.s.DeviceCall(t.Context(), c.UserID, devs[c.UserID].ID, "jti-race", time.Minute)
		if err != nil {
			t.Errorf("DeviceCall: %v", err)
		}
		return fresh
	})
	if n := countTrue(results); n != 1 {
		t.Fatalf("%d of %d racers used one jti, want exactly 1", n, Racers)
	}

	// A marker is kept for at least a second.
	ttl := max(h.b.TTL, time.Second)
	if !use(c.UserID, "jti-ttl", ttl) {
		t.Fatal("first use of jti-ttl refused")
	}
	h.b.Advance(t, ttl)
	if !use(c.UserID, "jti-ttl", ttl) {
		t.Fatal("jti still remembered after its ttl")
	}
	if use(c.UserID, "jti-1", time.Minute) {
		t.Fatal("jti with a long ttl forgotten")
	}
	if _, _, err := h.s.DeviceCall(ctx, c.UserID, c.UserID+".AAAAAAAAAAAAAAAAAAAAAA", "jti-3", time.Minute); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown device: %v, want ErrNotFound", err)
	}
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// testPasswordAnswerDevices: the password answer learns the active device count in its first
// round trip (BeginPasswordAnswer), with the card's pending key number; the settling
// (AcceptPasswordSaving) tells the status.
func testPasswordAnswerDevices(t *testing.T, h *harness) {
	ctx := t.Context()
	c, card := h.citizen(t, 2)
	type answer struct {
		status, keyNumber string
		devices           int
	}
	accept := func() answer {
		t.Helper()
		pa := h.begin(t, "", false, c.UserID, "", MaxFailures)
		status, _, _, err := h.s.AcceptPasswordSaving(ctx, pa.Reserved, store.FlowSave{})
		noErr(t, "AcceptPasswordSaving", err)
		return answer{status, pa.KeyNumber, pa.Devices}
	}
	if acc := accept(); acc.devices != 0 || acc.status != store.StatusActive || acc.keyNumber == "" {
		t.Fatalf("no devices: %+v", acc)
	}
	ds := h.addDevices(t, c.UserID, 2)
	if acc := accept(); acc.devices != 2 || acc.keyNumber == "" {
		t.Fatalf("two devices: %+v, want devices 2", acc)
	}
	// No usable card: without a default card the answer would ask any other usable one.
	noErr(t, "no active card", h.s.Redis().HDel(ctx, h.citizenKey(c.UserID), "active_card").Err())
	noErr(t, "card retired", h.s.Redis().HSet(ctx, h.cardKey(c.UserID, card.rec.Serial), "status", store.CardRetired).Err())
	if acc := accept(); acc.devices != 2 || acc.keyNumber != "" {
		t.Fatalf("two devices, no card: %+v, want devices 2, no key number", acc)
	}
	noErr(t, "active card again", h.s.Redis().HSet(ctx, h.citizenKey(c.UserID), "active_card", card.rec.Serial).Err())
	noErr(t, "card active again", h.s.Redis().HSet(ctx, h.cardKey(c.UserID, card.rec.Serial), "status", store.CardActive).Err())
	noErr(t, "RemoveDevice", h.s.RemoveDevice(ctx, c.UserID, ds[0].ID, "citizen"))
	if acc := accept(); acc.devices != 1 || acc.keyNumber == "" {
		t.Fatalf("one device removed: %+v, want devices 1", acc)
	}
}

// ---- approvals ----

var approvalCodes = []string{"12", "47", "85"}

// newApproval is a pending request for uid, made now and running for d; the browser shows 47.
func newApproval(uid string, now time.Time, d time.Duration) *store.Approval {
	now = now.UTC().Truncate(time.Millisecond)
	return &store.Approval{ID: newID(), CitizenID: uid, Flow: newID(), ClientName: "Netbank", Text: "Log på hos Netbank",
		Code: "47", Codes: slices.Clone(approvalCodes), CreatedAt: now, ExpiresAt: now.Add(d)}
}

func (h *harness) createApproval(t *testing.T, a *store.Approval, replaces string) {
	t.Helper()
	noErr(t, "CreateApproval", h.s.CreateApproval(t.Context(), a, replaces))
	h.activeDevices(t, a.CitizenID)
}

// activeDevices marks the device ids the approval tests decide with ("device-1" and the
// racers' "device-<i>") active for uid, past the cap: a decision is only taken from an active
// device, and the cap is not what these tests are about.
func (h *harness) activeDevices(t *testing.T, uid string) {
	t.Helper()
	ids := []any{"device-1"}
	for i := range Racers {
		ids = append(ids, fmt.Sprint("device-", i))
	}
	noErr(t, "SADD devact", h.s.Redis().SAdd(t.Context(), CitizenKey(h.prefix, uid)+":devact", ids...).Err())
}

type decision struct{ outcome, state, flow string }

func (h *harness) decide(t *testing.T, uid string, a *store.Approval, dec, code string, now time.Time) decision {
	t.Helper()
	o, st, flow, err := h.s.Decide(t.Context(), uid, a.ID, dec, code, "device-1", now)
	noErr(t, "Decide", err)
	return decision{o, st, flow}
}

func (h *harness) wantState(t *testing.T, uid, id, want string) {
	t.Helper()
	st, err := h.s.ApprovalState(t.Context(), uid, id)
	noErr(t, "ApprovalState", err)
	if st != want {
		t.Fatalf("ApprovalState(%s) = %q, want %q", id, st, want)
	}
}

func (h *harness) pendingIDs(t *testing.T, uid string, now time.Time) []string {
	t.Helper()
	ps, err := h.s.PendingApprovals(t.Context(), uid, now)
	noErr(t, "PendingApprovals", err)
	ids := []string{}
	for _, p := range ps {
		ids = append(ids, p.ID)
	}
	return ids
}

func testApprovalsLifecycle(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	now := time.Now()
	a := newApproval(c.UserID, now, 2*time.Minute)
	h.createApproval(t, a, "")
	h.wantState(t, c.UserID, a.ID, store.ApprovalPending)
	ps, err := h.s.PendingApprovals(ctx, c.UserID, now)
	noErr(t, "PendingApprovals", err)
	if len(ps) != 1 {
		t.Fatalf("PendingApprovals = %+v, want one", ps)
	}
	p := ps[0]
	if p.ID != a.ID || p.CitizenID != c.UserID || p.Flow != a.Flow || p.ClientName != a.ClientName || p.Text != a.Text ||
		!slices.Equal(p.Codes, approvalCodes) || !p.CreatedAt.Equal(a.CreatedAt) || !p.ExpiresAt.Equal(a.ExpiresAt) ||
		p.Status != store.ApprovalPending {
		t.Fatalf("pending request %+v\nwant             %+v", p, *a)
	}
	if p.Code != "" {
		t.Fatalf("the device is told which code is right: %q", p.Code)
	}

	if got := h.decide(t, c.UserID, a, store.ApprovalApproved, "47", now); got != (decision{store.DecideOK, store.ApprovalApproved, a.Flow}) {
		t.Fatalf("Decide(approve) = %+v", got)
	}
	h.wantState(t, c.UserID, a.ID, store.ApprovalApproved)
	if ids := h.pendingIDs(t, c.UserID, now); len(ids) != 0 {
		t.Fatalf("decided request still pending: %v", ids)
	}
	for _, dec := range []string{store.ApprovalApproved, store.ApprovalDenied} {
		if got := h.decide(t, c.UserID, a, dec, "47", now); got != (decision{store.DecideDecided, store.ApprovalApproved, a.Flow}) {
			t.Fatalf("second Decide(%s) = %+v, want decided", dec, got)
		}
	}
	if o, st, err := h.s.ExpireApproval(ctx, c.UserID, a.ID, a.ExpiresAt.Add(time.Minute)); err != nil || o != store.DecideDecided || st != store.ApprovalApproved {
		t.Fatalf("ExpireApproval(approved, later) = %s %s %v, want decided approve", o, st, err)
	}

	// A denial needs no code.
	b := newApproval(c.UserID, now, 2*time.Minute)
	h.createApproval(t, b, "")
	if got := h.decide(t, c.UserID, b, store.ApprovalDenied, "", now); got != (decision{store.DecideOK, store.ApprovalDenied, b.Flow}) {
		t.Fatalf("Decide(deny) = %+v", got)
	}
	h.wantState(t, c.UserID, b.ID, store.ApprovalDenied)

	// Cancelled (the login switched to the card): no device may decide it after.
	x := newApproval(c.UserID, now, 2*time.Minute)
	h.createApproval(t, x, "")
	noErr(t, "CancelApproval", h.s.CancelApproval(ctx, c.UserID, x.ID))
	h.wantState(t, c.UserID, x.ID, store.ApprovalCancelled)
	if got := h.decide(t, c.UserID, x, store.ApprovalApproved, "47", now); got.outcome != store.DecideDecided || got.state != store.ApprovalCancelled {
		t.Fatalf("Decide(cancelled) = %+v, want decided cancelled", got)
	}
	noErr(t, "CancelApproval(again)", h.s.CancelApproval(ctx, c.UserID, x.ID))
	noErr(t, "CancelApproval(decided)", h.s.CancelApproval(ctx, c.UserID, b.ID))
	h.wantState(t, c.UserID, b.ID, store.ApprovalDenied)

	// Several pending ones: oldest (first to run out) first.
	later := newApproval(c.UserID, now, 3*time.Minute)
	sooner := newApproval(c.UserID, now, time.Minute)
	h.createApproval(t, later, "")
	h.createApproval(t, sooner, "")
	if got, want := h.pendingIDs(t, c.UserID, now), []string{sooner.ID, later.ID}; !slices.Equal(got, want) {
		t.Fatalf("PendingApprovals = %v, want %v", got, want)
	}

	if got := h.decide(t, c.UserID, &store.Approval{ID: newID()}, store.ApprovalApproved, "47", now); got.outcome != store.DecideNotFound {
		t.Fatalf("Decide(unknown) = %+v, want not_found", got)
	}
	h.wantState(t, c.UserID, newID(), "")
	for _, bad := range []string{"", "pending", "expire", "cancelled", "mismatch"} {
		if o, st, _, err := h.s.Decide(ctx, c.UserID, later.ID, bad, "47", "device-1", now); err == nil {
			t.Fatalf("Decide(%q) = %s %s, want an error", bad, o, st)
		}
	}
	h.wantState(t, c.UserID, later.ID, store.ApprovalPending)
}

// testApprovalsRace: of many devices deciding one request at once, exactly one decides it.
func testApprovalsRace(t *testing.T, h *harness) {
	c, _ := h.citizen(t, 1)
	now := time.Now()
	a := newApproval(c.UserID, now, 2*time.Minute)
	h.createApproval(t, a, "")
	results := race(Racers, func(i int) decision {
		dec := store.ApprovalApproved
		if i%2 == 1 {
			dec = store.ApprovalDenied
		}
		o, st, flow, err := h.s.Decide(t.Context(), c.UserID, a.ID, dec, "47", fmt.Sprint("device-", i), now)
		if err != nil {
			t.Errorf("Decide: %v", err)
		}
		return decision{o, st, flow}
	})
	winner := ""
	for _, r := range results {
		if r.outcome == store.DecideOK {
			if winner != "" {
				t.Fatalf("two decisions won: %v", results)
			}
			winner = r.state
		}
	}
	if winner == "" {
		t.Fatalf("no decision won: %v", results)
	}
	for _, r := range results {
		if r.outcome != store.DecideOK && (r.outcome != store.DecideDecided || r.state != winner || r.flow != a.Flow) {
			t.Fatalf("loser %+v, want decided %s", r, winner)
		}
	}
	h.wantState(t, c.UserID, a.ID, winner)
}

// testApprovalsWrongCode: a wrong binding code spends the request.
func testApprovalsWrongCode(t *testing.T, h *harness) {
	c, _ := h.citizen(t, 1)
	now := time.Now()
	a := newApproval(c.UserID, now, 2*time.Minute)
	h.createApproval(t, a, "")
	if got := h.decide(t, c.UserID, a, store.ApprovalApproved, "12", now); got != (decision{store.DecideMismatch, store.ApprovalMismatch, a.Flow}) {
		t.Fatalf("Decide(wrong code) = %+v, want mismatch", got)
	}
	h.wantState(t, c.UserID, a.ID, store.ApprovalMismatch)
	if got := h.decide(t, c.UserID, a, store.ApprovalApproved, "47", now); got != (decision{store.DecideDecided, store.ApprovalMismatch, a.Flow}) {
		t.Fatalf("Decide(right code, after a wrong one) = %+v, want decided mismatch", got)
	}
	h.wantState(t, c.UserID, a.ID, store.ApprovalMismatch)
	if ids := h.pendingIDs(t, c.UserID, now); len(ids) != 0 {
		t.Fatalf("spent request still pending: %v", ids)
	}
	b := newApproval(c.UserID, now, 2*time.Minute)
	h.createApproval(t, b, "")
	if got := h.decide(t, c.UserID, b, store.ApprovalApproved, "", now); got.outcome != store.DecideMismatch {
		t.Fatalf("Decide(no code) = %+v, want mismatch", got)
	}
}

func testApprovalsExpiry(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	now := time.Now()
	a := newApproval(c.UserID, now, time.Minute)
	h.createApproval(t, a, "")
	// In time: ExpireApproval leaves it pending.
	for _, at := range []time.Time{now, a.ExpiresAt.Add(-time.Millisecond)} {
		o, st, err := h.s.ExpireApproval(ctx, c.UserID, a.ID, at)
		noErr(t, "ExpireApproval", err)
		if o != store.DecideDecided || st != store.ApprovalPending {
			t.Fatalf("ExpireApproval in time = %s %s, want decided pending", o, st)
		}
	}
	h.wantState(t, c.UserID, a.ID, store.ApprovalPending)
	if ids := h.pendingIDs(t, c.UserID, now); !slices.Equal(ids, []string{a.ID}) {
		t.Fatalf("PendingApprovals = %v, want %s", ids, a.ID)
	}
	// At its expiry a decision ends it as expired, once.
	if got := h.decide(t, c.UserID, a, store.ApprovalApproved, "47", a.ExpiresAt); got != (decision{store.DecideExpired, store.ApprovalExpired, a.Flow}) {
		t.Fatalf("Decide at expiry = %+v, want expired", got)
	}
	if got := h.decide(t, c.UserID, a, store.ApprovalApproved, "47", a.ExpiresAt); got != (decision{store.DecideDecided, store.ApprovalExpired, a.Flow}) {
		t.Fatalf("Decide after expiry = %+v, want decided expired", got)
	}
	// Even a decision that claims an earlier time cannot revive it.
	if got := h.decide(t, c.UserID, a, store.ApprovalApproved, "47", now); got.outcome != store.DecideDecided || got.state != store.ApprovalExpired {
		t.Fatalf("Decide with an earlier clock = %+v, want decided expired", got)
	}
	h.wantState(t, c.UserID, a.ID, store.ApprovalExpired)

	// ExpireApproval after expiry ends it once, too.
	b := newApproval(c.UserID, now, time.Minute)
	h.createApproval(t, b, "")
	if o, st, err := h.s.ExpireApproval(ctx, c.UserID, b.ID, b.ExpiresAt.Add(time.Second)); err != nil || o != store.DecideExpired || st != store.ApprovalExpired {
		t.Fatalf("ExpireApproval after expiry = %s %s %v, want expired", o, st, err)
	}
	if o, st, err := h.s.ExpireApproval(ctx, c.UserID, b.ID, b.ExpiresAt.Add(time.Second)); err != nil || o != store.DecideDecided || st != store.ApprovalExpired {
		t.Fatalf("ExpireApproval again = %s %s %v, want decided expired", o, st, err)
	}
	if got := h.decide(t, c.UserID, b, store.ApprovalApproved, "47", b.ExpiresAt.Add(time.Second)); got.outcome != store.DecideDecided || got.state != store.ApprovalExpired {
		t.Fatalf("Decide after ExpireApproval = %+v, want decided expired", got)
	}
	if o, _, err := h.s.ExpireApproval(ctx, c.UserID, newID(), now); err != nil || o != store.DecideNotFound {
		t.Fatalf("ExpireApproval(unknown) = %s %v, want not_found", o, err)
	}

	// A device listing requests after one ran out does not see it.
	x := newApproval(c.UserID, now, time.Minute)
	h.createApproval(t, x, "")
	if ids := h.pendingIDs(t, c.UserID, x.ExpiresAt); len(ids) != 0 {
		t.Fatalf("PendingApprovals after expiry = %v, want none", ids)
	}
}

func testApprovalsReplace(t *testing.T, h *harness) {
	c, _ := h.citizen(t, 1)
	now := time.Now()
	old := newApproval(c.UserID, now, 2*time.Minute)
	h.createApproval(t, old, "")
	repl := newApproval(c.UserID, now, 2*time.Minute)
	repl.Flow = old.Flow
	h.createApproval(t, repl, old.ID)
	h.wantState(t, c.UserID, old.ID, store.ApprovalCancelled)
	h.wantState(t, c.UserID, repl.ID, store.ApprovalPending)
	if ids := h.pendingIDs(t, c.UserID, now); !slices.Equal(ids, []string{repl.ID}) {
		t.Fatalf("PendingApprovals = %v, want only the new request %s", ids, repl.ID)
	}
	if got := h.decide(t, c.UserID, old, store.ApprovalApproved, "47", now); got.outcome != store.DecideDecided || got.state != store.ApprovalCancelled {
		t.Fatalf("Decide(replaced) = %+v, want decided cancelled", got)
	}
	// Replacing a request already decided leaves its decision.
	if got := h.decide(t, c.UserID, repl, store.ApprovalDenied, "", now); got.outcome != store.DecideOK {
		t.Fatalf("Decide = %+v", got)
	}
	third := newApproval(c.UserID, now, 2*time.Minute)
	h.createApproval(t, third, repl.ID)
	h.wantState(t, c.UserID, repl.ID, store.ApprovalDenied)
	if ids := h.pendingIDs(t, c.UserID, now); !slices.Equal(ids, []string{third.ID}) {
		t.Fatalf("PendingApprovals = %v, want %s", ids, third.ID)
	}
	// Replacing one that never existed is no error.
	fourth := newApproval(c.UserID, now, 2*time.Minute)
	h.createApproval(t, fourth, newID())
	h.wantState(t, c.UserID, fourth.ID, store.ApprovalPending)
}

// testApprovalsNotActive: a NemID blocked since the request was made cannot approve (nor deny)
// it; the request stays pending and runs out, or is decided once the NemID is active again.
func testApprovalsNotActive(t *testing.T, h *harness) {
	c, _ := h.citizen(t, 1)
	now := time.Now()
	a := newApproval(c.UserID, now, 2*time.Minute)
	h.createApproval(t, a, "")
	h.block(t, c.UserID)
	for _, dec := range []string{store.ApprovalApproved, store.ApprovalDenied} {
		if got := h.decide(t, c.UserID, a, dec, "47", now); got != (decision{store.DecideNotActive, store.ApprovalPending, a.Flow}) {
			t.Fatalf("Decide(%s) of a blocked NemID = %+v, want not_active pending", dec, got)
		}
	}
	h.wantState(t, c.UserID, a.ID, store.ApprovalPending)
	if ids := h.pendingIDs(t, c.UserID, now); !slices.Equal(ids, []string{a.ID}) {
		t.Fatalf("PendingApprovals = %v, want %s", ids, a.ID)
	}
	h.unblock(t, c.UserID)
	if got := h.decide(t, c.UserID, a, store.ApprovalApproved, "47", now); got.outcome != store.DecideOK {
		t.Fatalf("Decide once active again = %+v, want ok", got)
	}
}

// testApprovalsCancelBeforeCreate: a cancel that overtakes its request's create (two
// instances switching one login's method at once) wins: the create finds the tombstone and
// stores nothing, so no device ever offers a request its login no longer waits for.
func testApprovalsCancelBeforeCreate(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	now := time.Now()
	a := newApproval(c.UserID, now, 2*time.Minute)
	noErr(t, "CancelApproval", h.s.CancelApproval(ctx, c.UserID, a.ID))
	h.createApproval(t, a, "")
	h.wantState(t, c.UserID, a.ID, store.ApprovalCancelled)
	if ids := h.pendingIDs(t, c.UserID, now); len(ids) != 0 {
		t.Fatalf("a cancelled request is offered: %v", ids)
	}
	if got := h.decide(t, c.UserID, a, store.ApprovalApproved, "47", now); got.outcome != store.DecideDecided {
		t.Fatalf("deciding a cancelled request = %+v, want decided", got)
	}
}

// testApprovalsInactiveDevice: a device removed before its decision lands decides nothing,
// checked in the decision's own step.
func testApprovalsInactiveDevice(t *testing.T, h *harness) {
	c, _ := h.citizen(t, 1)
	now := time.Now()
	a := newApproval(c.UserID, now, 2*time.Minute)
	h.createApproval(t, a, "")
	o, _, _, err := h.s.Decide(t.Context(), c.UserID, a.ID, store.ApprovalApproved, "47", c.UserID+".not-a-device", now)
	noErr(t, "Decide", err)
	if o != store.DecideDeviceInactive {
		t.Fatalf("Decide by a device not active = %s, want %s", o, store.DecideDeviceInactive)
	}
	h.wantState(t, c.UserID, a.ID, store.ApprovalPending)
}

// testApprovalsOtherCitizen: a device decides only its own citizen's requests.
func testApprovalsOtherCitizen(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	other, _ := h.citizen(t, 1)
	now := time.Now()
	a := newApproval(c.UserID, now, 2*time.Minute)
	h.createApproval(t, a, "")
	if got := h.decide(t, other.UserID, a, store.ApprovalApproved, "47", now); got.outcome != store.DecideNotFound {
		t.Fatalf("Decide under another citizen = %+v, want not_found", got)
	}
	if o, _, err := h.s.ExpireApproval(ctx, other.UserID, a.ID, a.ExpiresAt.Add(time.Second)); err != nil || o != store.DecideNotFound {
		t.Fatalf("ExpireApproval under another citizen = %s %v, want not_found", o, err)
	}
	noErr(t, "CancelApproval(other citizen)", h.s.CancelApproval(ctx, other.UserID, a.ID))
	// A cancel of an unknown request leaves a tombstone under the canceller's own slot (see
	// testApprovalsCancelBeforeCreate); the owner's request is untouched.
	h.wantState(t, other.UserID, a.ID, store.ApprovalCancelled)
	h.wantState(t, c.UserID, a.ID, store.ApprovalPending)
	if ids := h.pendingIDs(t, other.UserID, now); len(ids) != 0 {
		t.Fatalf("another citizen's device lists %v", ids)
	}
	if ids := h.pendingIDs(t, c.UserID, now); !slices.Equal(ids, []string{a.ID}) {
		t.Fatalf("PendingApprovals = %v, want %s", ids, a.ID)
	}
}

// ---- waiters ----

// testWaitersWake: a wake on one instance reaches the waiters of its topic on another, and no
// others. Messages of one subscription arrive in order, so once a later wake has been seen, an
// earlier one that should not have woken a waiter would have done so already.
func testWaitersWake(t *testing.T, h *harness) {
	ctx := t.Context()
	w := h.s.NewWaiters()
	t.Cleanup(func() { _ = w.Close() })
	other := h.instance(t, "")
	const timeout = 10 * time.Second
	fires := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(timeout):
			t.Fatalf("%s: not woken within %s", what, timeout)
		}
	}
	quiet := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
			t.Fatalf("%s: woken", what)
		default:
		}
	}
	watch := func(topic string) (<-chan struct{}, func()) {
		t.Helper()
		ch, stop, err := w.Watch(ctx, topic)
		noErr(t, "Watch", err)
		t.Cleanup(stop)
		return ch, stop
	}

	flowA, flowB := store.TopicFlow(newID()), store.TopicFlow(newID())
	a1, stopA1 := watch(flowA)
	a2, _ := watch(flowA)
	b, _ := watch(flowB)
	if n := w.Waiting(); n != 3 {
		t.Fatalf("Waiting = %d, want 3", n)
	}
	noErr(t, "Wake", other.Wake(ctx, flowA))
	fires("first waiter of the woken topic", a1)
	fires("second waiter of the woken topic", a2)
	quiet("waiter of another topic", b)
	noErr(t, "Wake", other.Wake(ctx, flowB))
	fires("waiter of the second topic", b)
	quiet("first waiter after the second wake", a1)

	// A new request wakes the citizen's devices.
	c, _ := h.citizen(t, 1)
	dev, _ := watch(store.TopicCitizen(c.UserID))
	noErr(t, "CreateApproval", other.CreateApproval(ctx, newApproval(c.UserID, time.Now(), time.Minute), ""))
	fires("device waiter on a new request", dev)

	// A waiter that stopped is not woken, and another prefix (another deployment on the same
	// Redis) wakes nobody here.
	stopA1()
	if n := w.Waiting(); n != 3 {
		t.Fatalf("Waiting after one stop = %d, want 3", n)
	}
	noErr(t, "Wake", other.Wake(ctx, flowA))
	fires("remaining waiter", a2)
	quiet("stopped waiter", a1)
	noErr(t, "Wake(other prefix)", h.instance(t, RandomPrefix()).Wake(ctx, flowA))
	noErr(t, "Wake", other.Wake(ctx, flowB))
	fires("waiter of the second topic", b)
	quiet("waiter woken by another prefix's wake", a2)

	noErr(t, "Close", w.Close())
	if _, _, err := w.Watch(ctx, flowA); err == nil {
		t.Fatal("Watch after Close: no error")
	}
}

// testSaveFlowWaking: a flow saved with a topic wakes that topic's waiters on another
// instance, in the save's round trip; the save itself keeps SaveFlow's rules.
func testSaveFlowWaking(t *testing.T, h *harness) {
	ctx := t.Context()
	w := h.s.NewWaiters()
	t.Cleanup(func() { _ = w.Close() })
	other := h.instance(t, "")
	id := newID()
	ch, stop, err := w.Watch(ctx, store.TopicFlow(id))
	noErr(t, "Watch", err)
	defer stop()
	v, err := other.SaveFlowWith(ctx, store.FlowSave{ID: id, Data: []byte("x"), TTL: time.Minute, Wake: store.TopicFlow(id)})
	noErr(t, "SaveFlowWith(Wake)", err)
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the save did not wake the flow's waiter")
	}
	rec, err := h.s.LoadFlow(ctx, id)
	noErr(t, "LoadFlow", err)
	if rec.Version != v || string(rec.Data) != "x" {
		t.Fatalf("saved %+v, want version %d data x", rec, v)
	}
	_, err = other.SaveFlowWith(ctx, store.FlowSave{ID: id, Data: []byte("y"), TTL: time.Minute, Wake: store.TopicFlow(id)})
	wantErr(t, "SaveFlowWith(Wake, stale version)", err, store.ErrConflict)
}
