package storetest

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nemidp/nemidp/idp/store"
)

// outboxStore is a store on the suite's backend under a fresh prefix of its own, so its outbox
// holds only the subtest's entries (the suite's other subtests write the shared one).
func (h *harness) outboxStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	prefix := RandomPrefix()
	t.Cleanup(func() { deletePrefix(h.s.Redis(), prefix) })
	return store.New(h.s.Redis(), prefix, Pepper), prefix
}

func newCitizenIn(t *testing.T, s *store.Store) *store.Citizen {
	t.Helper()
	c := newCitizen()
	noErr(t, "CreateCitizen", s.CreateCitizen(t.Context(), c, newCard(1).rec))
	return c
}

// rawEvent writes an event into the citizen's stream the way an event script does, without
// the relay: what a process that died between its write and its relay leaves.
func rawEvent(t *testing.T, rdb redis.UniversalClient, prefix, uid, id string, fields ...string) string {
	t.Helper()
	if id == "" {
		id = "*"
	}
	got, err := rdb.XAdd(t.Context(), &redis.XAddArgs{Stream: prefix + "{c:" + uid + "}:events", ID: id, Values: fields}).Result()
	noErr(t, "XADD citizen event", err)
	return got
}

func readOutbox(t *testing.T, s *store.Store) []store.OutboxEvent {
	t.Helper()
	evs, err := s.Outbox(t.Context(), "", store.MaxOutboxLimit)
	noErr(t, "Outbox", err)
	return evs
}

func typesOf(evs []store.OutboxEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type+"/"+e.UserID)
	}
	return out
}

func pendingMembers(t *testing.T, rdb redis.UniversalClient, prefix string) []string {
	t.Helper()
	m, err := rdb.ZRange(t.Context(), prefix+"{outbox}:pending", 0, -1).Result()
	noErr(t, "pending", err)
	return m
}

// testOutboxOrder: the writers' events reach the outbox at once, in the order they were
// written, within one citizen and across citizens, with the citizen's user id, the instant and
// the event's fields, never a password; a refused write adds nothing and leaves no trace.
func testOutboxOrder(t *testing.T, h *harness) {
	ctx := t.Context()
	s, prefix := h.outboxStore(t)
	a, b := newCitizenIn(t, s), newCitizenIn(t, s)
	now := time.Now()
	dev := newDevice(b.UserID, "Telefon", now.UTC().Truncate(time.Second))
	_, err := s.Block(ctx, a.UserID, store.BlockMisuse, "borgerservice", now)
	noErr(t, "Block a", err)
	noErr(t, "AddDevice b", s.AddDevice(ctx, b.UserID, dev, MaxDevices))
	_, err = s.Unblock(ctx, a.UserID, "borgerservice", now)
	noErr(t, "Unblock a", err)
	_, err = s.Block(ctx, b.UserID, store.BlockLostCard, "self", now)
	noErr(t, "Block b", err)
	noErr(t, "RemoveDevice b", s.RemoveDevice(ctx, b.UserID, dev.ID, "operator"))
	_, err = s.SetTemporaryPassword(ctx, a.UserID, "$argon2id$secret-hash", "bank.dk", now)
	noErr(t, "SetTemporaryPassword a", err)
	// Refused writes: no event, nothing in the outbox.
	_, err = s.Unblock(ctx, a.UserID, "x", now)
	wantErr(t, "Unblock active", err, store.ErrNotBlocked)
	_, err = s.Block(ctx, NewUserID(), store.BlockMisuse, "x", now)
	wantErr(t, "Block unknown", err, store.ErrNotFound)

	evs := readOutbox(t, s)
	want := []string{"nemid_blocked/" + a.UserID, "device_added/" + b.UserID, "nemid_unblocked/" + a.UserID,
		"nemid_blocked/" + b.UserID, "device_removed/" + b.UserID, "temporary_password/" + a.UserID}
	if got := typesOf(evs); !slices.Equal(got, want) {
		t.Fatalf("outbox %v\nwant   %v", got, want)
	}
	wantData := []map[string]string{
		{"reason": store.BlockMisuse, "by": "borgerservice"},
		{"device_id": dev.ID, "name": "Telefon"},
		{"reason": store.BlockMisuse, "by": "borgerservice"},
		{"reason": store.BlockLostCard, "by": "self"},
		{"device_id": dev.ID, "by": "operator"},
		{"by": "bank.dk"},
	}
	for i, e := range evs {
		if at, err := time.Parse(time.RFC3339, e.At); err != nil || at.Sub(now).Abs() > time.Minute {
			t.Errorf("%s: at %q: %v", e.Type, e.At, err)
		}
		if e.Address != a.Address || e.ID == "" {
			t.Errorf("%s: id %q, address %q, want %q", e.Type, e.ID, e.Address, a.Address)
		}
		for k, v := range wantData[i] {
			if e.Data[k] != v {
				t.Errorf("%s: data %v, want %s=%s", e.Type, e.Data, k, v)
			}
		}
		for k, v := range e.Data {
			if k == "password" || k == "cpr" || v == a.CPR || v == b.CPR || v == "$argon2id$secret-hash" {
				t.Errorf("%s: data holds a secret: %v", e.Type, e.Data)
			}
		}
	}
	if m := pendingMembers(t, s.Redis(), prefix); len(m) != 0 {
		t.Fatalf("traces left in pending after relayed writes: %v", m)
	}
}

// testOutboxAddresses: the address of an entry is the event's own, else the alternative
// address, else the postal address, else the register address.
func testOutboxAddresses(t *testing.T, h *harness) {
	ctx := t.Context()
	s, prefix := h.outboxStore(t)
	for _, tc := range []struct {
		name        string
		alt, postal string
		own         string // the event's own address field
		want        string // "" = the register address
	}{
		{"register address", "", "", "", ""},
		{"postal address (no fixed address)", "", "Poste restante, 1000 København K", "", "Poste restante, 1000 København K"},
		{"alternative address over postal", "Sommerhusvej 3, 4500 Nykøbing Sj", "Poste restante", "", "Sommerhusvej 3, 4500 Nykøbing Sj"},
		{"alternative address", "Sommerhusvej 3, 4500 Nykøbing Sj", "", "", "Sommerhusvej 3, 4500 Nykøbing Sj"},
		{"the event's own address over all", "Sommerhusvej 3", "Poste restante", "Ambassaden, Berlin", "Ambassaden, Berlin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCitizenIn(t, s)
			noErr(t, "set addresses", s.Redis().HSet(ctx, CitizenKey(prefix, c.UserID), "alt_address", tc.alt, "postal_address", tc.postal).Err())
			want := tc.want
			if want == "" {
				want = c.Address
			}
			if tc.own != "" {
				rawEvent(t, s.Redis(), prefix, c.UserID, "", "type", "card_sent", "serial", "G123456789", "address", tc.own, "at", time.Now().UTC().Format(time.RFC3339))
				n, err := s.Relay(ctx, c.UserID)
				if err != nil || n != 1 {
					t.Fatalf("Relay = %d, %v; want 1", n, err)
				}
			} else {
				_, err := s.Block(ctx, c.UserID, store.BlockOperator, "operator", time.Now())
				noErr(t, "Block", err)
			}
			var got *store.OutboxEvent
			for _, e := range readOutbox(t, s) {
				if e.UserID == c.UserID {
					got = &e
				}
			}
			if got == nil || got.Address != want {
				t.Fatalf("entry %+v, want address %q", got, want)
			}
			if _, ok := got.Data["address"]; ok {
				t.Fatalf("the address is also in data: %v", got.Data)
			}
		})
	}
}

// testOutboxSkipsOthers: events of other types stay in the citizen's stream, and so do
// events too old to relay safely; the cursor moves past them, and the secret fields of an
// event never reach the outbox.
func testOutboxSkipsOthers(t *testing.T, h *harness) {
	ctx := t.Context()
	s, prefix := h.outboxStore(t)
	c := newCitizenIn(t, s)
	at := time.Now().UTC().Format(time.RFC3339)
	rawEvent(t, s.Redis(), prefix, c.UserID, "1000-0", "type", "card_sent", "at", at) // 1970: past the markers' life
	rawEvent(t, s.Redis(), prefix, c.UserID, "", "type", "login_succeeded", "at", at)
	rawEvent(t, s.Redis(), prefix, c.UserID, "", "type", "renewal_due", "expires_at", "2027-01-31", "at", at,
		"password", "1234", "key", "123456", "cpr", c.CPR)
	rawEvent(t, s.Redis(), prefix, c.UserID, "", "type", "password_changed", "at", at)
	n, err := s.Relay(ctx, c.UserID)
	if err != nil || n != 1 {
		t.Fatalf("Relay = %d, %v; want 1", n, err)
	}
	evs := readOutbox(t, s)
	if len(evs) != 1 || evs[0].Type != "renewal_due" || evs[0].Data["expires_at"] != "2027-01-31" || len(evs[0].Data) != 1 {
		t.Fatalf("outbox %+v, want the renewal_due alone, with expires_at alone", evs)
	}
	if n, err := s.Relay(ctx, c.UserID); err != nil || n != 0 {
		t.Fatalf("second Relay = %d, %v; want 0", n, err)
	}
}

// testOutboxCrash: a write whose process died before its relay leaves its trace in pending;
// the sweeper relays it (and a trace past the grace is removed, a young one left to its
// writer), and a second sweep adds nothing. An event with no trace waits for the citizen's
// next relay.
func testOutboxCrash(t *testing.T, h *harness) {
	ctx := t.Context()
	s, prefix := h.outboxStore(t)
	old, young, untraced := newCitizenIn(t, s), newCitizenIn(t, s), newCitizenIn(t, s)
	at := time.Now().UTC().Format(time.RFC3339)
	pending := prefix + "{outbox}:pending"
	rdb := s.Redis()
	crash := func(c *store.Citizen, announced time.Time) string {
		member := c.UserID + "|crashed"
		noErr(t, "announce", rdb.ZAdd(ctx, pending, redis.Z{Score: float64(announced.UnixMilli()), Member: member}).Err())
		rawEvent(t, rdb, prefix, c.UserID, "", "type", "nemid_blocked", "reason", "misuse", "by", "operator", "at", at)
		return member
	}
	crash(old, time.Now().Add(-time.Hour))
	youngMember := crash(young, time.Now())
	rawEvent(t, rdb, prefix, untraced.UserID, "", "type", "nemid_blocked", "reason", "misuse", "by", "operator", "at", at)
	if evs := readOutbox(t, s); len(evs) != 0 {
		t.Fatalf("outbox before the sweep: %+v", evs)
	}

	n, err := s.RelayPending(ctx)
	if err != nil || n != 2 {
		t.Fatalf("RelayPending = %d, %v; want 2", n, err)
	}
	got := typesOf(readOutbox(t, s))
	slices.Sort(got)
	want := []string{"nemid_blocked/" + old.UserID, "nemid_blocked/" + young.UserID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("outbox after the sweep %v, want %v", got, want)
	}
	if m := pendingMembers(t, rdb, prefix); !slices.Equal(m, []string{youngMember}) {
		t.Fatalf("pending after the sweep %v, want the young trace alone %v", m, youngMember)
	}
	if n, err := s.RelayPending(ctx); err != nil || n != 0 {
		t.Fatalf("second RelayPending = %d, %v; want 0", n, err)
	}
	// The untraced event goes out with the citizen's next write.
	_, err = s.Unblock(ctx, untraced.UserID, "operator", time.Now())
	wantErr(t, "Unblock", err, store.ErrNotBlocked) // the raw event changed no state: refused, still relayed
	if got := typesOf(readOutbox(t, s)); len(got) != 3 || got[2] != "nemid_blocked/"+untraced.UserID {
		t.Fatalf("outbox after the untraced citizen's write %v", got)
	}
}

// testOutboxRelayRace: relays of one citizen racing (a barrier, from several instances) add
// each event exactly once, in order; so do writers racing the sweeper.
func testOutboxRelayRace(t *testing.T, h *harness) {
	ctx := t.Context()
	s, prefix := h.outboxStore(t)
	c := newCitizenIn(t, s)
	at := time.Now().UTC().Format(time.RFC3339)
	var want []string
	for i := range 2*relayBatchForTests + 3 {
		typ := "device_added"
		if i%4 == 3 {
			typ = "login_succeeded" // not relayed
		}
		id := rawEvent(t, s.Redis(), prefix, c.UserID, "", "type", typ, "device_id", fmt.Sprint(i), "at", at)
		if typ != "login_succeeded" {
			want = append(want, id)
		}
	}
	other := h.instance(t, prefix)
	added := race(Racers, func(i int) int {
		st := s
		if i%2 == 1 {
			st = other
		}
		n, err := st.Relay(ctx, c.UserID)
		if err != nil {
			t.Errorf("Relay: %v", err)
		}
		return n
	})
	total := 0
	for _, n := range added {
		total += n
	}
	evs := readOutbox(t, s)
	if total != len(want) || len(evs) != len(want) {
		t.Fatalf("racing relays added %d (outbox %d), want %d each once", total, len(evs), len(want))
	}
	for i, e := range evs {
		if e.Data["device_id"] == "" || (i > 0 && atoiOr(e.Data["device_id"]) <= atoiOr(evs[i-1].Data["device_id"])) {
			t.Fatalf("outbox out of order at %d: %+v", i, evs)
		}
	}

	// Writers of one citizen racing the sweeper: every event once, in the citizen's order.
	d := newCitizenIn(t, s)
	race(Racers, func(i int) error {
		if i%3 == 0 {
			_, err := s.RelayPending(ctx)
			return err
		}
		if i%2 == 0 {
			_, err := other.Block(ctx, d.UserID, store.BlockOperator, "operator", time.Now())
			return err
		}
		_, err := s.Unblock(ctx, d.UserID, "operator", time.Now())
		if errors.Is(err, store.ErrNotBlocked) {
			err = nil
		}
		return err
	})
	evsD, err := s.Events(ctx, d.UserID, 200)
	noErr(t, "Events", err)
	var wantD []string
	for i := len(evsD) - 1; i >= 0; i-- {
		wantD = append(wantD, evsD[i].Type+"/"+d.UserID)
	}
	var gotD []string
	for _, e := range readOutbox(t, s) {
		if e.UserID == d.UserID {
			gotD = append(gotD, e.Type+"/"+e.UserID)
		}
	}
	if len(wantD) == 0 || !slices.Equal(gotD, wantD) {
		t.Fatalf("outbox of racing writers %v\nwant the citizen's events %v", gotD, wantD)
	}
}

// relayBatchForTests is more than one relay round trip reads (store.relayBatch), so the race
// crosses a batch boundary.
const relayBatchForTests = 100

func atoiOr(s string) int {
	n := -1
	_, _ = fmt.Sscan(s, &n)
	return n
}

// testOutboxPaging: after is exclusive, limit caps a page and is clamped, paging from each
// page's last id reads every entry once; a malformed after is ErrBadOutboxID; the sweeper
// trims entries past the retention.
func testOutboxPaging(t *testing.T, h *harness) {
	ctx := t.Context()
	s, prefix := h.outboxStore(t)
	// An entry from 1970, past any retention, first.
	noErr(t, "old entry", s.Redis().XAdd(ctx, &redis.XAddArgs{Stream: prefix + "{outbox}:stream", ID: "1000-0",
		Values: []string{"type", "card_sent", "user_id", "1", "address", "x", "at", "1970-01-01T00:00:01Z", "data", "{}"}}).Err())
	c := newCitizenIn(t, s)
	for range 4 {
		_, err := s.Block(ctx, c.UserID, store.BlockMisuse, "operator", time.Now())
		noErr(t, "Block", err)
		_, err = s.Unblock(ctx, c.UserID, "operator", time.Now())
		noErr(t, "Unblock", err)
	}
	all := readOutbox(t, s)
	if len(all) != 9 || all[0].ID != "1000-0" {
		t.Fatalf("outbox has %d entries (%v), want the old one and 8", len(all), typesOf(all))
	}
	for _, limit := range []int{1, 3, 8, 9, 50} {
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			page, err := s.Outbox(ctx, after, limit)
			noErr(t, "Outbox page", err)
			if len(page) > limit || pages > len(all) {
				t.Fatalf("limit %d: page of %d", limit, len(page))
			}
			if len(page) == 0 {
				break
			}
			for _, e := range page {
				got = append(got, e.ID)
			}
			after = page[len(page)-1].ID
		}
		var want []string
		for _, e := range all {
			want = append(want, e.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("limit %d: paged %v, want %v", limit, got, want)
		}
	}
	// After an id that is no entry: the entries after it.
	if page, err := s.Outbox(ctx, "1000-5", 2); err != nil || len(page) != 2 || page[0].ID != all[1].ID {
		t.Fatalf("after 1000-5: %+v, %v", page, err)
	}
	if page, err := s.Outbox(ctx, "18446744073709551615-18446744073709551615", 5); err != nil || len(page) != 0 {
		t.Fatalf("after the largest id: %+v, %v; want none", page, err)
	}
	for _, limit := range []int{0, -5} {
		if page, err := s.Outbox(ctx, "", limit); err != nil || len(page) != 1 {
			t.Fatalf("limit %d: %d entries, %v; want 1", limit, len(page), err)
		}
	}
	for _, bad := range []string{"x", "1-", "-1", "1-2-3", "(1-0", "1000", "+", "-", " 1-0", "99999999999999999999999-0", "18446744073709551616-0"} {
		_, err := s.Outbox(ctx, bad, 10)
		wantErr(t, "Outbox(after "+bad+")", err, store.ErrBadOutboxID)
	}

	if _, err := s.RelayPending(ctx); err != nil {
		t.Fatalf("RelayPending: %v", err)
	}
	if got := readOutbox(t, s); len(got) != 8 || got[0].ID == "1000-0" {
		t.Fatalf("after the sweep %d entries (first %s), want the old one trimmed", len(got), got[0].ID)
	}
}

// testOutboxSweeper: the sweeper relays a dead writer's event at once when started and a later
// one on its next round; once stopped it relays nothing more.
func testOutboxSweeper(t *testing.T, h *harness) {
	ctx := t.Context()
	s, prefix := h.outboxStore(t)
	rdb := s.Redis()
	at := time.Now().UTC().Format(time.RFC3339)
	crash := func(c *store.Citizen) {
		noErr(t, "announce", rdb.ZAdd(ctx, prefix+"{outbox}:pending", redis.Z{Score: float64(time.Now().Add(-time.Hour).UnixMilli()), Member: c.UserID + "|crashed"}).Err())
		rawEvent(t, rdb, prefix, c.UserID, "", "type", "card_blocked", "serial", "G000000001", "at", at)
	}
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for len(readOutbox(t, s)) < n {
			if time.Now().After(deadline) {
				t.Fatalf("the sweeper relayed %d entries in 5 s, want %d", len(readOutbox(t, s)), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	a, b, c := newCitizenIn(t, s), newCitizenIn(t, s), newCitizenIn(t, s)
	crash(a)
	stop := s.StartOutboxSweeper(20*time.Millisecond, slog.New(slog.DiscardHandler))
	waitFor(1)
	crash(b)
	waitFor(2)
	stop()
	crash(c)
	time.Sleep(100 * time.Millisecond)
	if got := typesOf(readOutbox(t, s)); !slices.Equal(got, []string{"card_blocked/" + a.UserID, "card_blocked/" + b.UserID}) {
		t.Fatalf("outbox %v, want a's and b's card_blocked and nothing after the stop", got)
	}
}
