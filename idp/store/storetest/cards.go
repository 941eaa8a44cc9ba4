package storetest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/codecard"
)

// Redis's default limits of its compact encodings (redis.conf): a hash stays a listpack while
// it has at most 512 fields and no field or value is longer than 64 bytes; a set stays an
// intset while it has at most 512 members, all integers in canonical form.
const (
	listpackEntries = 512
	listpackValue   = 64
	intsetEntries   = 512
)

// newFlowID is shaped like a flow id of the flow engine (16 random bytes, base64url: 22
// characters), the longest one a used-key marker has to stand for.
func newFlowID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// newCodeCard is a full-size printed card (codecard.KeysPerCard keys) with its keys hashed as
// issuance hashes them.
func newCodeCard(t *testing.T) testCard {
	t.Helper()
	cc, err := codecard.Generate()
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := codecard.NewHasher([]byte("storetest-card-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	c := testCard{rec: store.CardRecord{Serial: cc.Serial, Status: store.CardActive, Hashes: map[string]string{}}, keys: map[string]string{}}
	for _, k := range cc.Keys {
		h := hasher.Hash(cc.Serial, k.Number, k.Key)
		c.rec.Hashes[k.Number], c.keys[k.Number] = h, h
	}
	return c
}

// checkCompact checks that a card is stored in Redis's compact encodings: on every backend by
// what they depend on (short enough fields and values, integer members), and on a real Redis
// by OBJECT ENCODING itself.
func (h *harness) checkCompact(t *testing.T, uid, serial, when string) {
	t.Helper()
	ctx := t.Context()
	rdb := h.s.Redis()
	card := h.cardKey(uid, serial)
	unused := card + ":unused"
	fields, err := rdb.HGetAll(ctx, card).Result()
	noErr(t, when+": HGETALL card", err)
	if len(fields) == 0 || len(fields) > listpackEntries {
		t.Fatalf("%s: card hash has %d fields, want 1..%d", when, len(fields), listpackEntries)
	}
	for f, v := range fields {
		if len(f) > listpackValue || len(v) > listpackValue {
			t.Fatalf("%s: card field %q = %q (%d bytes) is over %d bytes: the hash is no listpack", when, f, v, len(v), listpackValue)
		}
	}
	members, err := rdb.SMembers(ctx, unused).Result()
	noErr(t, when+": SMEMBERS unused", err)
	if len(members) > intsetEntries {
		t.Fatalf("%s: %d unused keys, over %d", when, len(members), intsetEntries)
	}
	for _, m := range members {
		if n, err := strconv.ParseInt(m, 10, 64); err != nil || strconv.FormatInt(n, 10) != m {
			t.Fatalf("%s: unused-set member %q is not a canonical integer: the set is no intset", when, m)
		}
	}
	if !h.b.Encodings {
		return
	}
	if enc, err := rdb.ObjectEncoding(ctx, card).Result(); err != nil || enc != "listpack" {
		t.Fatalf("%s: OBJECT ENCODING card = %q, %v; want listpack", when, enc, err)
	}
	if len(members) == 0 {
		return // an empty set is no key
	}
	if enc, err := rdb.ObjectEncoding(ctx, unused).Result(); err != nil || enc != "intset" {
		t.Fatalf("%s: OBJECT ENCODING unused = %q, %v; want intset", when, enc, err)
	}
}

// testCardEncoding: a full-size card stays in the compact encodings as issued, after a key
// is used by a login flow (a used key's marker is short) and when every key is used; the
// numbers the store hands out are still the card's 4-digit ones.
func testCardEncoding(t *testing.T, h *harness) {
	ctx := t.Context()
	c, card := newCitizen(), newCodeCard(t)
	noErr(t, "CreateCitizen", h.s.CreateCitizen(ctx, c, card.rec))
	serial := card.rec.Serial
	h.checkCompact(t, c.UserID, serial, "as issued")

	flow := newFlowID()
	n, err := h.s.PendingKey(ctx, c.UserID, serial)
	noErr(t, "PendingKey", err)
	if _, ok := card.keys[n]; !ok || !codecard.ValidNumber(n) {
		t.Fatalf("PendingKey = %q, not a key number of the card", n)
	}
	if ok, err := h.s.KeyUnused(ctx, c.UserID, serial, n); err != nil || !ok {
		t.Fatalf("KeyUnused(pending %s) = %v, %v; want true", n, ok, err)
	}
	r, _, err := h.s.UseCardKeyInFlow(ctx, flow, c.UserID, serial, n, card.keys[n], MaxFailures)
	noErr(t, "UseCardKeyInFlow", err)
	if r.Outcome != store.KeyOK || r.KeysLeft != codecard.KeysPerCard-1 {
		t.Fatalf("UseCardKeyInFlow = %+v, want ok with %d left", r, codecard.KeysPerCard-1)
	}
	if v, _ := h.s.Redis().HGet(ctx, h.cardKey(c.UserID, serial), "k:"+n).Result(); !strings.HasPrefix(v, "u:") || strings.Contains(v, flow) {
		t.Fatalf("used key stored as %q, want a marker that does not spell out the flow id", v)
	}
	h.checkCompact(t, c.UserID, serial, "after one login")
	if ok, err := h.s.KeyUnused(ctx, c.UserID, serial, n); err != nil || ok {
		t.Fatalf("KeyUnused(used %s) = %v, %v; want false", n, ok, err)
	}
	// The marker still tells the login that used the key from any other.
	for _, tc := range []struct {
		name, flow, hash string
		want             store.KeyOutcome
	}{
		{"same login again", flow, card.keys[n], store.KeyRepeat},
		{"another login, right key", newFlowID(), card.keys[n], store.KeyUsedRight},
		{"no login, right key", "", card.keys[n], store.KeyUsedRight},
		{"same login, wrong key", flow, card.keys[card.numbers()[0]] + "x", store.KeyUsed},
	} {
		r, _, err := h.s.UseCardKeyInFlow(ctx, tc.flow, c.UserID, serial, n, tc.hash, 100)
		noErr(t, tc.name, err)
		if r.Outcome != tc.want {
			t.Fatalf("%s: %+v, want %s", tc.name, r, tc.want)
		}
	}

	for num, hash := range card.keys {
		if num == n {
			continue
		}
		r, _, err := h.s.UseCardKeyInFlow(ctx, newFlowID(), c.UserID, serial, num, hash, 100)
		noErr(t, "UseCardKeyInFlow", err)
		if r.Outcome != store.KeyOK {
			t.Fatalf("key %s: %+v, want ok", num, r)
		}
	}
	h.checkCompact(t, c.UserID, serial, "used up")
	if st, left, err := h.s.CardStatus(ctx, c.UserID, serial); err != nil || st != store.CardActive || left != 0 {
		t.Fatalf("CardStatus = %q, %d, %v; want active, 0", st, left, err)
	}
	_, err = h.s.PendingKey(ctx, c.UserID, serial)
	wantErr(t, "PendingKey(used up)", err, store.ErrNotFound)
}

// WriteOldFormatCard rewrites a card the way cards were stored before the compact encodings
// (see "Stored card format" in idp/store/cards.go), as live data written by an earlier release
// is: the unused set holds the 4-digit strings ("0042") instead of integers, and each key
// number in usedBy is marked used by that flow as the earlier release marked it,
// "u:<flow id>|<stored hash>". Meant for a card no key of which is used yet.
func WriteOldFormatCard(ctx context.Context, rdb redis.UniversalClient, prefix, uid, serial string, usedBy map[string]string) error {
	card := prefix + "{c:" + uid + "}:card:" + serial
	unused := card + ":unused"
	fields, err := rdb.HGetAll(ctx, card).Result()
	if err != nil {
		return err
	}
	if len(fields) == 0 {
		return fmt.Errorf("card %s of %s: %w", serial, uid, store.ErrNotFound)
	}
	var numbers, marks []any
	for f, v := range fields {
		n, ok := strings.CutPrefix(f, "k:")
		if !ok || strings.HasPrefix(v, "u:") {
			continue
		}
		if flow, used := usedBy[n]; used {
			marks = append(marks, f, "u:"+flow+"|"+v)
			continue
		}
		numbers = append(numbers, n)
	}
	_, err = rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, unused)
		if len(numbers) > 0 {
			p.SAdd(ctx, unused, numbers...)
		}
		if len(marks) > 0 {
			p.HSet(ctx, card, marks...)
		}
		return nil
	})
	return err
}

// testOldFormatCard: a card stored by an earlier release (4-digit strings in its unused set,
// used keys marked "u:<flow id>|<hash>" or "u:<flow id>") keeps every behaviour: one pending
// number, the password step's pending number, each key outcome, and being used up.
func testOldFormatCard(t *testing.T, h *harness) {
	ctx := t.Context()
	rdb := h.s.Redis()
	c, card := newCitizen(), newCodeCard(t)
	noErr(t, "CreateCitizen", h.s.CreateCitizen(ctx, c, card.rec))
	serial, ns := card.rec.Serial, card.numbers()
	// ns[0] used by oldFlow with the hash in its marker; ns[1] by an older release without.
	oldFlow, oldestFlow := newFlowID(), newFlowID()
	noErr(t, "WriteOldFormatCard", WriteOldFormatCard(ctx, rdb, h.prefix, c.UserID, serial, map[string]string{ns[0]: oldFlow}))
	noErr(t, "mark a key used the oldest way", rdb.HSet(ctx, h.cardKey(c.UserID, serial), "k:"+ns[1], "u:"+oldestFlow).Err())
	noErr(t, "SREM", rdb.SRem(ctx, h.cardKey(c.UserID, serial)+":unused", ns[1]).Err())
	if h.b.Encodings {
		if enc, _ := rdb.ObjectEncoding(ctx, h.cardKey(c.UserID, serial)+":unused").Result(); enc != "hashtable" {
			t.Fatalf("the seeded old-format unused set is %q, want hashtable (4-digit strings)", enc)
		}
	}
	left := len(ns) - 2
	if st, n, err := h.s.CardStatus(ctx, c.UserID, serial); err != nil || st != store.CardActive || n != left {
		t.Fatalf("CardStatus = %q, %d, %v; want active, %d", st, n, err, left)
	}
	for _, tc := range []struct {
		n    string
		want bool
	}{{ns[0], false}, {ns[1], false}, {ns[2], true}, {ns[len(ns)-1], true}} {
		if ok, err := h.s.KeyUnused(ctx, c.UserID, serial, tc.n); err != nil || ok != tc.want {
			t.Fatalf("KeyUnused(%s) = %v, %v; want %v", tc.n, ok, err, tc.want)
		}
	}

	// The password step is asked the card's pending number, and so is every later login.
	pa := h.begin(t, "", false, c.UserID, "", MaxFailures)
	_, _, _, err := h.s.AcceptPasswordSaving(ctx, pa.Reserved, store.FlowSave{})
	noErr(t, "AcceptPasswordSaving", err)
	p := pa.KeyNumber
	if _, ok := card.keys[p]; !ok || p == ns[0] || p == ns[1] {
		t.Fatalf("BeginPasswordAnswer asks key number %q, want an unused one of the card", p)
	}
	if again, err := h.s.PendingKey(ctx, c.UserID, serial); err != nil || again != p {
		t.Fatalf("PendingKey = %q, %v; want the password step's %s", again, err, p)
	}

	flow, other := newFlowID(), newFlowID()
	wrongHash := "wrong-" + card.keys[p]
	for _, s := range []struct {
		name, flow, number, hash string
		want                     store.KeyResult
	}{
		{"wrong key", flow, p, wrongHash, store.KeyResult{Outcome: store.KeyWrong, AttemptsLeft: MaxFailures - 1}},
		{"right key", flow, p, card.keys[p], store.KeyResult{Outcome: store.KeyOK, KeysLeft: left - 1}},
		{"the same login again", flow, p, card.keys[p], store.KeyResult{Outcome: store.KeyRepeat}},
		{"another login, right key", other, p, card.keys[p], store.KeyResult{Outcome: store.KeyUsedRight}},
		{"another login, wrong key", other, p, wrongHash, store.KeyResult{Outcome: store.KeyUsed, AttemptsLeft: MaxFailures - 1}},
		{"old marker: its login again", oldFlow, ns[0], card.keys[ns[0]], store.KeyResult{Outcome: store.KeyRepeat}},
		{"old marker: another login, right key", other, ns[0], card.keys[ns[0]], store.KeyResult{Outcome: store.KeyUsedRight}},
		{"old marker: another login, wrong key", other, ns[0], wrongHash, store.KeyResult{Outcome: store.KeyUsed, AttemptsLeft: MaxFailures - 2}},
		{"oldest marker: its login again", oldestFlow, ns[1], card.keys[ns[1]], store.KeyResult{Outcome: store.KeyRepeat}},
		{"oldest marker: another login", other, ns[1], card.keys[ns[1]], store.KeyResult{Outcome: store.KeyUsed, AttemptsLeft: MaxFailures - 3}},
	} {
		got, _, err := h.s.UseCardKeyInFlow(ctx, s.flow, c.UserID, serial, s.number, s.hash, MaxFailures)
		noErr(t, s.name, err)
		if got != s.want {
			t.Fatalf("%s: %+v, want %+v", s.name, got, s.want)
		}
	}
	if ok, err := h.s.KeyUnused(ctx, c.UserID, serial, p); err != nil || ok {
		t.Fatalf("KeyUnused(%s) after its use = %v, %v; want false", p, ok, err)
	}
	left--

	// The rest of the card, one pending number at a time, as logins would use it.
	for left > 0 {
		n, err := h.s.PendingKey(ctx, c.UserID, serial)
		noErr(t, "PendingKey", err)
		if !codecard.ValidNumber(n) {
			t.Fatalf("PendingKey = %q, want 4 digits", n)
		}
		if again, _ := h.s.PendingKey(ctx, c.UserID, serial); again != n {
			t.Fatalf("PendingKey moved from %s to %s with its key unused", n, again)
		}
		r, _, err := h.s.UseCardKeyInFlow(ctx, newFlowID(), c.UserID, serial, n, card.keys[n], MaxFailures)
		noErr(t, "UseCardKeyInFlow", err)
		left--
		if r.Outcome != store.KeyOK || r.KeysLeft != left {
			t.Fatalf("key %s: %+v, want ok with %d left", n, r, left)
		}
	}
	_, err = h.s.PendingKey(ctx, c.UserID, serial)
	wantErr(t, "PendingKey(used up)", err, store.ErrNotFound)
	if got := h.load(t, c.UserID); got.Failures != 0 || got.Status != store.StatusActive {
		t.Fatalf("after the card: status %q, %d failures; want active, 0", got.Status, got.Failures)
	}
}

// testCardKeyNumbers: a card is stored only with 4-digit key numbers 0001–9999, the ones the
// unused set's integers give back.
func testCardKeyNumbers(t *testing.T, h *harness) {
	ctx := t.Context()
	for _, bad := range []string{"42", "00042", "0000", "12a4", ""} {
		c, card := newCitizen(), newCard(2)
		card.rec.Hashes[bad] = "hash"
		err := h.s.CreateCitizen(ctx, c, card.rec)
		if err == nil || errors.Is(err, store.ErrConflict) {
			t.Fatalf("CreateCitizen with key number %q: %v, want refused", bad, err)
		}
		if _, err := h.s.Citizen(ctx, c.UserID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("CreateCitizen with key number %q wrote the citizen: %v", bad, err)
		}
	}
	c, _ := h.citizen(t, 2)
	next := newCard(2)
	next.rec.Hashes["7"] = "hash"
	if err := h.s.ReplaceActiveCard(ctx, c.UserID, next.rec); err == nil {
		t.Fatal("ReplaceActiveCard with key number 7: accepted, want refused")
	}
	if got := h.load(t, c.UserID); got.ActiveCard == next.rec.Serial {
		t.Fatal("ReplaceActiveCard with a bad key number made the card active")
	}
}
