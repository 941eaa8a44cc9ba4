package storetest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nemidp/nemidp/idp/store"
)

// The login answer's part of the contract: a password answer's first round trip
// (BeginPasswordAnswer) finds the citizen the user ID names, or none, and reserves one
// password attempt on the record that counts for what was typed; its reservation is settled
// by FailReserved or AcceptPasswordSaving, or given back by Release. A code-card answer uses
// its key with the pairwise subject in one round trip (UseCardKey), and the save that finishes
// a login stores its SSO session (FlowSave.Session).

// attemptHold is how long the answers' reservations are held (none runs out during a test).
const attemptHold = time.Minute

func (h *harness) begin(t *testing.T, flow string, load bool, username, cpr string, max int) store.PasswordAnswer {
	t.Helper()
	pa, err := h.s.BeginPasswordAnswer(t.Context(), flow, load, username, cpr, max, time.Now(), attemptHold)
	noErr(t, fmt.Sprintf("BeginPasswordAnswer(%q, %q)", username, cpr), err)
	return pa
}

// attemptsKey, unknownIDKeys, unknownHashedKeys and flowKey mirror the store's key layout,
// so the tests see on which record a reservation or a failure landed.
func (h *harness) attemptsKey(uid string) string { return h.prefix + "{c:" + uid + "}:att" }

// unknownIDKeys: an unknown user ID of the shape of one (9 or 10 digits, not a CPR number)
// counts in that user ID's slot.
func (h *harness) unknownIDKeys(uid string) (rec, att string) {
	tag := h.prefix + "{c:" + uid + "}"
	return tag + ":unknown", tag + ":unknown:att"
}

// unknownHashedKeys: a CPR number (normalised) or anything else typed counts under an HMAC.
func (h *harness) unknownHashedKeys(typed string) (rec, att string) {
	m := hmac.New(sha256.New, Pepper)
	m.Write([]byte("user\x00" + strings.ToLower(typed)))
	tag := h.prefix + "{u:" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)) + "}"
	return tag, tag + ":att"
}

func (h *harness) flowKey(id string) string { return h.prefix + "flow:" + id }

// inFlight counts the reservations in an attempt set.
func (h *harness) inFlight(t *testing.T, att string) int64 {
	t.Helper()
	n, err := h.s.Redis().ZCard(t.Context(), att).Result()
	noErr(t, "ZCARD "+att, err)
	return n
}

// failures reads a record's settled failures.
func (h *harness) failures(t *testing.T, rec string) int {
	t.Helper()
	n, err := h.s.Redis().HGet(t.Context(), rec, "failures").Int()
	if errors.Is(err, redis.Nil) {
		return 0
	}
	noErr(t, "HGET failures "+rec, err)
	return n
}

func (h *harness) exists(t *testing.T, key string) bool {
	t.Helper()
	n, err := h.s.Redis().Exists(t.Context(), key).Result()
	noErr(t, "EXISTS "+key, err)
	return n > 0
}

func dashed(cpr string) string { return cpr[:6] + "-" + cpr[6:] }

// answerCase is one shape of what is typed as user ID, with the citizen it names and the
// record its password attempts count on.
type answerCase struct {
	name          string
	username, cpr string
	citizen       *store.Citizen // nil: no NemID
	rec, att      string
}

// answerCases makes fresh records for every branch of BeginPasswordAnswer.
func (h *harness) answerCases(t *testing.T) []answerCase {
	t.Helper()
	known := func(c *store.Citizen) (*store.Citizen, string, string) {
		return c, h.citizenKey(c.UserID), h.attemptsKey(c.UserID)
	}
	var cs []answerCase
	add := func(name, username, cpr string, c *store.Citizen, rec, att string) {
		cs = append(cs, answerCase{name, username, cpr, c, rec, att})
	}
	byID, _ := h.citizen(t, 2)
	c, rec, att := known(byID)
	add("user ID", byID.UserID, "", c, rec, att)
	byCPR, _ := h.citizen(t, 2)
	c, rec, att = known(byCPR)
	add("CPR number", byCPR.CPR, byCPR.CPR, c, rec, att)
	byDashed, _ := h.citizen(t, 2)
	c, rec, att = known(byDashed)
	add("CPR number with a dash", dashed(byDashed.CPR), byDashed.CPR, c, rec, att)
	// A 10-digit user ID that is also a CPR number (nobody's): the user ID's citizen.
	ten := newCitizen()
	ten.UserID = NewCPR()
	noErr(t, "CreateCitizen(10-digit user ID)", h.s.CreateCitizen(t.Context(), ten, newCard(2).rec))
	c, rec, att = known(ten)
	add("10-digit user ID that is also a CPR number", ten.UserID, ten.UserID, c, rec, att)

	u := NewUserID()
	rec, att = h.unknownIDKeys(u)
	add("unknown user ID", u, "", nil, rec, att)
	// 10 digits that are no CPR number (no 99th day): a user ID's shape, its slot.
	u10 := fmt.Sprint("99", NewUserID()[1:])
	rec, att = h.unknownIDKeys(u10)
	add("unknown 10-digit user ID", u10, "", nil, rec, att)
	x := NewCPR()
	rec, att = h.unknownHashedKeys(x)
	add("unknown CPR number (a 10-digit user ID too)", x, x, nil, rec, att)
	xd := NewCPR()
	rec, att = h.unknownHashedKeys(xd)
	add("unknown CPR number with a dash", dashed(xd), xd, nil, rec, att)
	u8 := NewUserID()[1:]
	rec, att = h.unknownHashedKeys(u8)
	add("8-digit user ID", u8, "", nil, rec, att)
	alias := "Alias-" + NewUserID()
	rec, att = h.unknownHashedKeys(alias)
	add("non-digit user ID", alias, "", nil, rec, att)
	// A CPR claim left by an issuance that crashed names a citizen that was never written.
	stale := NewCPR()
	ghost := NewUserID()
	noErr(t, "plant claim", h.s.Redis().Set(t.Context(), cprIndexKey(h.prefix, stale), ghost+"|1", 0).Err())
	rec, att = h.unknownHashedKeys(stale)
	add("CPR number claimed, no citizen", stale, stale, nil, rec, att)
	return cs
}

// testAnswerRecords: for every shape of user ID, BeginPasswordAnswer names the right citizen
// (or none, without an error) and reserves on the record that counts for it; FailReserved,
// Release and AcceptPasswordSaving settle there; the limit locks there and refuses the next.
func testAnswerRecords(t *testing.T, h *harness) {
	ctx := t.Context()
	for _, tc := range h.answerCases(t) {
		check := func(what string, pa store.PasswordAnswer) {
			t.Helper()
			switch {
			case tc.citizen == nil && pa.Citizen != nil:
				t.Fatalf("%s: %s: Citizen %+v, want none", tc.name, what, pa.Citizen)
			case tc.citizen != nil && (pa.Citizen == nil || pa.Citizen.UserID != tc.citizen.UserID):
				t.Fatalf("%s: %s: Citizen %+v, want %s", tc.name, what, pa.Citizen, tc.citizen.UserID)
			case pa.Reserved.ID == "" || pa.Reserved.Refused || pa.Reserved.Busy:
				t.Fatalf("%s: %s: Reserved %+v, want a reservation", tc.name, what, pa.Reserved)
			case pa.FlowAttempt != 0:
				t.Fatalf("%s: %s: FlowAttempt %d with no flow named", tc.name, what, pa.FlowAttempt)
			}
			if n := h.inFlight(t, tc.att); n != 1 {
				t.Fatalf("%s: %s: %d reservations on %s, want 1", tc.name, what, n, tc.att)
			}
		}
		begin := func() store.PasswordAnswer {
			t.Helper()
			return h.begin(t, "", false, tc.username, tc.cpr, MaxFailures)
		}

		pa := begin()
		check("begin", pa)
		r, err := h.s.FailReserved(ctx, pa.Reserved, MaxFailures, time.Now())
		noErr(t, tc.name+": FailReserved", err)
		if want := (store.FailureResult{AttemptsLeft: MaxFailures - 1}); r != want {
			t.Fatalf("%s: FailReserved = %+v, want %+v", tc.name, r, want)
		}
		if n, left := h.failures(t, tc.rec), h.inFlight(t, tc.att); n != 1 || left != 0 {
			t.Fatalf("%s: after FailReserved: %d failures, %d in flight on its record; want 1, 0", tc.name, n, left)
		}

		pa = begin()
		check("begin again", pa)
		noErr(t, tc.name+": Release", h.s.Release(ctx, "", false, pa.Reserved))
		if n, left := h.failures(t, tc.rec), h.inFlight(t, tc.att); n != 1 || left != 0 {
			t.Fatalf("%s: after Release: %d failures, %d in flight; want 1, 0", tc.name, n, left)
		}

		pa = begin()
		check("begin a third time", pa)
		status, _, _, err := h.s.AcceptPasswordSaving(ctx, pa.Reserved, store.FlowSave{})
		noErr(t, tc.name+": AcceptPasswordSaving", err)
		if n := h.inFlight(t, tc.att); n != 0 {
			t.Fatalf("%s: after AcceptPasswordSaving: %d in flight, want 0", tc.name, n)
		}
		if tc.citizen != nil && status != store.StatusActive {
			t.Fatalf("%s: AcceptPasswordSaving status %q, want active", tc.name, status)
		}

		for i := 2; i <= MaxFailures; i++ {
			pa := begin()
			r, err := h.s.FailReserved(ctx, pa.Reserved, MaxFailures, time.Now())
			noErr(t, tc.name+": FailReserved", err)
			if want := (store.FailureResult{AttemptsLeft: MaxFailures - i, Locked: i == MaxFailures}); r != want {
				t.Fatalf("%s: failure %d: %+v, want %+v", tc.name, i, r, want)
			}
		}
		pa, err = h.s.BeginPasswordAnswer(ctx, "", false, tc.username, tc.cpr, MaxFailures, time.Now(), attemptHold)
		noErr(t, tc.name+": BeginPasswordAnswer(locked)", err)
		if !pa.Reserved.Refused || pa.Reserved.Busy || pa.Reserved.ID != "" || h.inFlight(t, tc.att) != 0 {
			t.Fatalf("%s: locked: Reserved %+v, want refused, nothing reserved", tc.name, pa.Reserved)
		}
		if tc.citizen == nil {
			locked, err := h.s.UnknownLocked(ctx, tc.username, tc.cpr, MaxFailures)
			noErr(t, tc.name+": UnknownLocked", err)
			if !locked {
				t.Fatalf("%s: UnknownLocked = false after %d failures", tc.name, MaxFailures)
			}
			if pa.Citizen != nil {
				t.Fatalf("%s: locked: Citizen %+v, want none", tc.name, pa.Citizen)
			}
			// The unknown's count made no citizen of what was typed.
			_, err = h.s.Citizen(ctx, tc.username)
			wantErr(t, tc.name+": Citizen(typed)", err, store.ErrNotFound)
			continue
		}
		if pa.Citizen == nil || pa.Citizen.UserID != tc.citizen.UserID {
			t.Fatalf("%s: locked: Citizen %+v, want it read still", tc.name, pa.Citizen)
		}
		if got := h.load(t, tc.citizen.UserID); got.Status != store.StatusBlocked || got.BlockReason != store.BlockFailures || got.Failures != MaxFailures {
			t.Fatalf("%s: status %q (%s), %d failures; want blocked for failures, %d", tc.name, got.Status, got.BlockReason, got.Failures, MaxFailures)
		}
	}
}

// testAnswerUnknownThenCitizen: a user ID or CPR number locked while it had no NemID does not
// lock the NemID it gets later, nor does its count show in the citizen's record.
func testAnswerUnknownThenCitizen(t *testing.T, h *harness) {
	ctx := t.Context()
	u, x := NewUserID(), NewCPR()
	for _, typed := range [][2]string{{u, ""}, {x, x}, {dashed(x), x}} {
		for range MaxFailures {
			pa := h.begin(t, "", false, typed[0], typed[1], 100)
			_, err := h.s.FailReserved(ctx, pa.Reserved, MaxFailures, time.Now())
			noErr(t, "FailReserved", err)
		}
	}
	if rec, _ := h.unknownHashedKeys(x); h.failures(t, rec) != 2*MaxFailures {
		t.Fatalf("a CPR number typed with and without a dash: %d failures on its record, want %d", h.failures(t, rec), 2*MaxFailures)
	}
	if _, err := h.s.Citizen(ctx, u); !errors.Is(err, store.ErrNotFound) || h.exists(t, h.citizenKey(u)) {
		t.Fatalf("an unknown user ID's failures made a citizen record: %v", err)
	}
	c := newCitizen()
	c.UserID, c.CPR = u, x
	noErr(t, "CreateCitizen", h.s.CreateCitizen(ctx, c, newCard(2).rec))
	for _, typed := range [][2]string{{u, ""}, {x, x}} {
		pa := h.begin(t, "", false, typed[0], typed[1], MaxFailures)
		if pa.Citizen == nil || pa.Citizen.UserID != u || pa.Citizen.Failures != 0 || pa.Reserved.ID == "" {
			t.Fatalf("%s once it is a NemID: Citizen %+v, Reserved %+v; want the citizen, no failures, reserved", typed[0], pa.Citizen, pa.Reserved)
		}
	}
	if n := h.inFlight(t, h.attemptsKey(u)); n != 2 {
		t.Fatalf("%d reservations on the new citizen, want 2", n)
	}
	locked, err := h.s.UnknownLocked(ctx, u, "", MaxFailures)
	noErr(t, "UnknownLocked", err)
	if !locked {
		t.Fatal("the unknown user ID's count was reset")
	}
}

// testAnswerCitizen: a known citizen's answer brings the whole record, the card's pending
// key number (PendingKey's, the same on every call until its key is used) and its devices.
func testAnswerCitizen(t *testing.T, h *harness) {
	ctx := t.Context()
	c, card := h.citizen(t, 3)
	serial := card.rec.Serial
	const max = 100 // many answers in flight, none busy
	pa := h.begin(t, "", false, c.UserID, "", max)
	if pa.Citizen == nil || *pa.Citizen != *h.load(t, c.UserID) {
		t.Fatalf("Citizen = %+v\nwant       %+v", pa.Citizen, h.load(t, c.UserID))
	}
	pending, err := h.s.PendingKey(ctx, c.UserID, serial)
	noErr(t, "PendingKey", err)
	if _, ok := card.keys[pa.KeyNumber]; !ok || pa.KeyNumber != pending || pa.Devices != 0 {
		t.Fatalf("KeyNumber %q, Devices %d; want the pending %s, 0", pa.KeyNumber, pa.Devices, pending)
	}
	for _, typed := range [][2]string{{c.UserID, ""}, {c.CPR, c.CPR}, {dashed(c.CPR), c.CPR}, {c.UserID, ""}} {
		if got := h.begin(t, "", false, typed[0], typed[1], max).KeyNumber; got != pending {
			t.Fatalf("BeginPasswordAnswer(%s) asks %q, want the pending %s", typed[0], got, pending)
		}
	}
	for left := len(card.keys); left > 0; left-- {
		h.use(t, c, serial, pending, card.keys[pending], max)
		pa = h.begin(t, "", false, c.UserID, "", max)
		if left == 1 {
			if pa.KeyNumber != "" {
				t.Fatalf("a used-up card: KeyNumber %q, want none", pa.KeyNumber)
			}
			break
		}
		next, err := h.s.PendingKey(ctx, c.UserID, serial)
		noErr(t, "PendingKey", err)
		if _, ok := card.keys[pa.KeyNumber]; !ok || pa.KeyNumber == pending || pa.KeyNumber != next {
			t.Fatalf("after key %s was used: KeyNumber %q, want another unused one, PendingKey's %s", pending, pa.KeyNumber, next)
		}
		pending = next
	}
}

// testAnswerFlow: the flow named rides in the answer's first round trip: one of its attempts
// reserved (the n-th answer), with its record when asked to load it; a flow that is gone
// reserves nothing of its own, but the citizen's attempt is reserved all the same and
// Release gives it back.
func testAnswerFlow(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	id := newID()
	_, err := h.s.SaveFlow(ctx, id, 0, []byte("password step"), time.Hour, false)
	noErr(t, "SaveFlow", err)
	alias, unknownCPR := "alias-"+NewUserID(), NewCPR()
	_, aliasAtt := h.unknownHashedKeys(alias)
	_, cprAtt := h.unknownHashedKeys(unknownCPR)
	typed := []struct {
		username, cpr string
		citizen       bool
		att           string
	}{
		{c.UserID, "", true, h.attemptsKey(c.UserID)},
		{c.CPR, c.CPR, true, h.attemptsKey(c.UserID)},
		{alias, "", false, aliasAtt},
		{unknownCPR, unknownCPR, false, cprAtt},
	}
	for i, u := range typed {
		pa := h.begin(t, id, true, u.username, u.cpr, 100)
		if pa.FlowAttempt != i+1 || string(pa.Flow.Data) != "password step" || pa.Flow.Version != 1 || pa.Flow.Failures != i {
			t.Fatalf("answer %d (%s): FlowAttempt %d, Flow %q v%d failures %d; want %d, \"password step\" v1 failures %d", i+1, u.username,
				pa.FlowAttempt, pa.Flow.Data, pa.Flow.Version, pa.Flow.Failures, i+1, i)
		}
		if pa.Reserved.ID == "" || (pa.Citizen != nil) != u.citizen {
			t.Fatalf("answer %d (%s): Reserved %+v, Citizen %+v", i+1, u.username, pa.Reserved, pa.Citizen)
		}
	}
	pa := h.begin(t, id, false, c.UserID, "", 100)
	if pa.FlowAttempt != len(typed)+1 || pa.Flow.Data != nil || pa.Flow.Version != 0 || pa.Flow.Failures != 0 {
		t.Fatalf("load=false: FlowAttempt %d, Flow %+v; want %d and no record", pa.FlowAttempt, pa.Flow, len(typed)+1)
	}
	v, err := h.s.SaveFlow(ctx, id, 1, []byte("still password"), time.Hour, false)
	noErr(t, "SaveFlow", err)
	pa = h.begin(t, id, true, c.UserID, "", 100)
	if pa.FlowAttempt != len(typed)+2 || string(pa.Flow.Data) != "still password" || pa.Flow.Version != v || pa.Flow.Failures != len(typed)+1 {
		t.Fatalf("after a save: FlowAttempt %d, Flow %q v%d failures %d", pa.FlowAttempt, pa.Flow.Data, pa.Flow.Version, pa.Flow.Failures)
	}
	if rec, err := h.s.LoadFlow(ctx, id); err != nil || rec.Failures != len(typed)+2 {
		t.Fatalf("LoadFlow: %+v, %v; want %d failures", rec, err, len(typed)+2)
	}
	if pa := h.begin(t, "", true, c.UserID, "", 100); pa.FlowAttempt != 0 || pa.Flow.Data != nil {
		t.Fatalf("no flow named: FlowAttempt %d, Flow %+v", pa.FlowAttempt, pa.Flow)
	}

	gone := newID()
	for _, u := range typed {
		before := h.inFlight(t, u.att)
		pa := h.begin(t, gone, true, u.username, u.cpr, 100)
		if pa.FlowAttempt != -1 || pa.Flow.Data != nil || pa.Reserved.ID == "" || h.inFlight(t, u.att) != before+1 {
			t.Fatalf("flow gone (%s): FlowAttempt %d, Flow %+v, Reserved %+v; want -1, none, reserved", u.username, pa.FlowAttempt, pa.Flow, pa.Reserved)
		}
		if (pa.Citizen != nil) != u.citizen {
			t.Fatalf("flow gone (%s): Citizen %+v", u.username, pa.Citizen)
		}
		noErr(t, "Release", h.s.Release(ctx, gone, false, pa.Reserved))
		if n := h.inFlight(t, u.att); n != before {
			t.Fatalf("flow gone (%s): %d in flight after Release, want %d", u.username, n, before)
		}
	}
	// Giving back an attempt of a flow that is gone makes no flow.
	noErr(t, "Release(gone flow)", h.s.Release(ctx, gone, true, store.Attempt{}))
	if h.exists(t, h.flowKey(gone)) {
		t.Fatal("the answers of a flow that is gone made a flow record")
	}
}

// testAnswerRefusedBusy: a NemID locked, or one whose failures reach the limit, is refused;
// failures and attempts in flight that use up the limit make an answer busy. Neither
// reserves anything (no reservation ID), and the citizen is read all the same. A NemID an
// operator blocked still reserves (the answer is the same as for any NemID).
func testAnswerRefusedBusy(t *testing.T, h *harness) {
	ctx := t.Context()
	const max = 3
	c, _ := h.citizen(t, 1)
	att := h.attemptsKey(c.UserID)
	noMore := func(what, username, cpr string, busy bool) {
		t.Helper()
		before := h.inFlight(t, att)
		pa := h.begin(t, "", false, username, cpr, max)
		if pa.Reserved.ID != "" || pa.Reserved.Busy != busy || pa.Reserved.Refused == busy {
			t.Fatalf("%s: Reserved %+v, want busy %v, refused %v, no ID", what, pa.Reserved, busy, !busy)
		}
		if pa.Citizen == nil || pa.Citizen.UserID != c.UserID {
			t.Fatalf("%s: Citizen %+v, want it read", what, pa.Citizen)
		}
		if n := h.inFlight(t, att); n != before {
			t.Fatalf("%s: %d in flight, want %d: a refused answer reserved", what, n, before)
		}
	}
	var held []store.Attempt
	for range max {
		held = append(held, h.begin(t, "", false, c.UserID, "", max).Reserved)
	}
	noMore("max in flight", c.UserID, "", true)
	noMore("max in flight, by CPR number", c.CPR, c.CPR, true)
	_, err := h.s.FailReserved(ctx, held[0], max, time.Now())
	noErr(t, "FailReserved", err)
	noMore("a failure and the rest in flight", c.UserID, "", true)
	noErr(t, "Release", h.s.Release(ctx, "", false, held[1]))
	held[1] = h.begin(t, "", false, c.UserID, "", max).Reserved
	if held[1].ID == "" {
		t.Fatalf("after one was given back: %+v, want a reservation", held[1])
	}
	noMore("in flight again", c.UserID, "", true)
	for _, a := range held[1:] {
		_, err := h.s.FailReserved(ctx, a, max, time.Now())
		noErr(t, "FailReserved", err)
	}
	noMore("locked", c.UserID, "", false)
	noMore("locked, by CPR number", dashed(c.CPR), c.CPR, false)

	// Failures at the limit refuse even while the status says active (a lower limit now).
	c2, _ := h.citizen(t, 1)
	noErr(t, "set failures", h.s.Redis().HSet(ctx, h.citizenKey(c2.UserID), "failures", 2).Err())
	if pa := h.begin(t, "", false, c2.UserID, "", 2); !pa.Reserved.Refused || pa.Reserved.ID != "" {
		t.Fatalf("2 failures, max 2, active: %+v, want refused", pa.Reserved)
	}
	if pa := h.begin(t, "", false, c2.UserID, "", 3); pa.Reserved.ID == "" {
		t.Fatalf("2 failures, max 3: %+v, want a reservation", pa.Reserved)
	}
	// Blocked for failures is locked, whatever the counter says.
	c3, _ := h.citizen(t, 1)
	noErr(t, "lock", h.s.Redis().HSet(ctx, h.citizenKey(c3.UserID), "status", store.StatusBlocked, "block_reason", store.BlockFailures).Err())
	if pa := h.begin(t, "", false, c3.UserID, "", max); !pa.Reserved.Refused || pa.Reserved.ID != "" {
		t.Fatalf("blocked for failures, counter 0: %+v, want refused", pa.Reserved)
	}
	// Blocked by an operator: reserved, the status read with it.
	c4, _ := h.citizen(t, 1)
	h.block(t, c4.UserID)
	pa := h.begin(t, "", false, c4.UserID, "", max)
	if pa.Reserved.ID == "" || pa.Citizen == nil || pa.Citizen.Status != store.StatusBlocked || pa.Citizen.BlockReason != "operator" {
		t.Fatalf("operator-blocked: Reserved %+v, Citizen %+v; want reserved, status blocked (operator)", pa.Reserved, pa.Citizen)
	}
	if n := h.inFlight(t, h.attemptsKey(c4.UserID)); n != 1 {
		t.Fatalf("operator-blocked: %d in flight, want 1", n)
	}

	// An unknown user ID is busy the same way, on its own record.
	x := NewCPR()
	for _, typed := range [][2]string{{NewUserID(), ""}, {"alias-" + NewUserID(), ""}, {x, x}, {dashed(x), x}} {
		first := h.begin(t, "", false, typed[0], typed[1], 1)
		second := h.begin(t, "", false, typed[0], typed[1], 1)
		if first.Reserved.ID == "" || !second.Reserved.Busy || second.Reserved.ID != "" || second.Citizen != nil {
			t.Fatalf("unknown %s, max 1: %+v then %+v; want a reservation, then busy", typed[0], first.Reserved, second.Reserved)
		}
		noErr(t, "Release", h.s.Release(ctx, "", false, first.Reserved))
	}
}

// testAnswerRace: racing answers for one citizen, by user ID and by CPR number at once,
// reserve at most max attempts between them (the rest are busy); so do racing answers for
// one unknown user ID.
func testAnswerRace(t *testing.T, h *harness) {
	c, _ := h.citizen(t, 1)
	x := NewCPR()
	u := NewUserID()
	_, uatt := h.unknownIDKeys(u)
	_, xatt := h.unknownHashedKeys(x)
	for _, tc := range []struct {
		name  string
		typed [][2]string
		att   string
	}{
		{"citizen", [][2]string{{c.UserID, ""}, {c.CPR, c.CPR}, {dashed(c.CPR), c.CPR}}, h.attemptsKey(c.UserID)},
		{"unknown user ID", [][2]string{{u, ""}}, uatt},
		{"unknown CPR number", [][2]string{{x, x}, {dashed(x), x}}, xatt},
	} {
		results := race(Racers, func(i int) store.PasswordAnswer {
			typed := tc.typed[i%len(tc.typed)]
			pa, err := h.s.BeginPasswordAnswer(t.Context(), "", false, typed[0], typed[1], MaxFailures, time.Now(), attemptHold)
			if err != nil {
				t.Errorf("BeginPasswordAnswer: %v", err)
			}
			return pa
		})
		ids := map[string]bool{}
		busy := 0
		for _, pa := range results {
			switch {
			case pa.Reserved.ID != "":
				ids[pa.Reserved.ID] = true
			case pa.Reserved.Busy:
				busy++
			default:
				t.Errorf("%s: %+v, want reserved or busy", tc.name, pa.Reserved)
			}
		}
		if len(ids) != MaxFailures || busy != Racers-MaxFailures {
			t.Fatalf("%s: %d of %d racers reserved (%d distinct), %d busy; want %d reserved", tc.name, Racers-busy, Racers, len(ids), busy, MaxFailures)
		}
		if n := h.inFlight(t, tc.att); n != MaxFailures {
			t.Fatalf("%s: %d in flight, want %d", tc.name, n, MaxFailures)
		}
	}
}

// answerFailure settles one wrong password the way the password step does (begin, then
// FailReserved), retrying while other racers' attempts are in flight.
func (h *harness) answerFailure(ctx context.Context, username, cpr string) (store.FailureResult, error) {
	for range 1000 {
		pa, err := h.s.BeginPasswordAnswer(ctx, "", false, username, cpr, MaxFailures, time.Now(), attemptHold)
		switch {
		case err != nil:
			return store.FailureResult{}, err
		case pa.Reserved.Refused:
			return store.FailureResult{Locked: true}, nil
		case pa.Reserved.Busy:
			time.Sleep(time.Millisecond)
			continue
		}
		return h.s.FailReserved(ctx, pa.Reserved, MaxFailures, time.Now())
	}
	return store.FailureResult{}, errors.New("still busy after 1000 tries")
}

// testAnswerFailRace: racing wrong passwords for one citizen (by user ID and CPR number) or
// one unknown user ID count each once, on one record: exactly max-1 are answered "not
// locked", each with another count.
func testAnswerFailRace(t *testing.T, h *harness) {
	c, _ := h.citizen(t, 1)
	u := NewUserID()
	for _, typed := range [][][2]string{{{c.UserID, ""}, {c.CPR, c.CPR}}, {{u, ""}}} {
		results := race(Racers, func(i int) store.FailureResult {
			ty := typed[i%len(typed)]
			r, err := h.answerFailure(t.Context(), ty[0], ty[1])
			if err != nil {
				t.Errorf("answer failure: %v", err)
			}
			return r
		})
		checkParallelFailures(t, results, MaxFailures)
	}
	if got := h.load(t, c.UserID); got.Status != store.StatusBlocked || got.Failures != MaxFailures {
		t.Fatalf("citizen after the race: status %q, %d failures; want blocked, %d", got.Status, got.Failures, MaxFailures)
	}
	if rec, _ := h.unknownIDKeys(u); h.failures(t, rec) != MaxFailures {
		t.Fatalf("unknown user ID after the race: %d failures, want %d", h.failures(t, rec), MaxFailures)
	}
}

// testAcceptPasswordSaving: a right password's settling gives the reservation back (the
// citizen can reserve up to max again), tells the status as it is now, and saves the flow in
// the same call: a save that loses (stale version) is ErrConflict, the settling and the status
// all the same, and gives no flow attempt back.
func testAcceptPasswordSaving(t *testing.T, h *harness) {
	ctx := t.Context()
	const max = 2
	c, _ := h.citizen(t, 1)
	a1 := h.begin(t, "", false, c.UserID, "", max).Reserved
	a2 := h.begin(t, "", false, c.UserID, "", max).Reserved
	if pa := h.begin(t, "", false, c.UserID, "", max); !pa.Reserved.Busy {
		t.Fatalf("max in flight: %+v, want busy", pa.Reserved)
	}
	status, reason, v, err := h.s.AcceptPasswordSaving(ctx, a1, store.FlowSave{})
	noErr(t, "AcceptPasswordSaving", err)
	if status != store.StatusActive || reason != "" || v != 0 {
		t.Fatalf("AcceptPasswordSaving = %q, %q, v%d; want active, no reason, no save", status, reason, v)
	}
	if pa := h.begin(t, "", false, c.UserID, "", max); pa.Reserved.ID == "" {
		t.Fatalf("after the settling: %+v, want a reservation again", pa.Reserved)
	} else if pa := h.begin(t, "", false, c.UserID, "", max); !pa.Reserved.Busy {
		t.Fatalf("max in flight again: %+v, want busy", pa.Reserved)
	}
	if got := h.load(t, c.UserID); got.Failures != 0 {
		t.Fatalf("a right password counted: %d failures", got.Failures)
	}
	// Blocked between the answer's begin and its settling.
	h.block(t, c.UserID)
	status, reason, _, err = h.s.AcceptPasswordSaving(ctx, a2, store.FlowSave{})
	noErr(t, "AcceptPasswordSaving(blocked)", err)
	if status != store.StatusBlocked || reason != "operator" {
		t.Fatalf("blocked meanwhile: %q, %q; want blocked, operator", status, reason)
	}
	// Locked by a parallel wrong guess meanwhile.
	c2, _ := h.citizen(t, 1)
	right := h.begin(t, "", false, c2.UserID, "", MaxFailures).Reserved
	wrong := h.begin(t, "", false, c2.UserID, "", MaxFailures).Reserved
	if r, err := h.s.FailReserved(ctx, wrong, 1, time.Now()); err != nil || !r.Locked {
		t.Fatalf("FailReserved(limit 1) = %+v, %v; want locked", r, err)
	}
	status, reason, _, err = h.s.AcceptPasswordSaving(ctx, right, store.FlowSave{})
	noErr(t, "AcceptPasswordSaving(locked)", err)
	if status != store.StatusBlocked || reason != store.BlockFailures {
		t.Fatalf("locked meanwhile: %q, %q; want blocked, failures", status, reason)
	}

	// With the flow's save.
	c3, _ := h.citizen(t, 1)
	id := newID()
	_, err = h.s.SaveFlow(ctx, id, 0, []byte("password step"), time.Hour, false)
	noErr(t, "SaveFlow", err)
	pa := h.begin(t, id, true, c3.UserID, "", 1)
	status, _, v, err = h.s.AcceptPasswordSaving(ctx, pa.Reserved, store.FlowSave{ID: id, Prev: pa.Flow.Version, Data: []byte("card step"), TTL: time.Hour, Release: true})
	noErr(t, "AcceptPasswordSaving(save)", err)
	rec, err := h.s.LoadFlow(ctx, id)
	noErr(t, "LoadFlow", err)
	if status != store.StatusActive || v != 2 || rec.Version != 2 || string(rec.Data) != "card step" || rec.Failures != 0 {
		t.Fatalf("saved: %q, v%d; flow %q v%d failures %d; want active, v2, card step v2, 0", status, v, rec.Data, rec.Version, rec.Failures)
	}
	if n := h.inFlight(t, h.attemptsKey(c3.UserID)); n != 0 {
		t.Fatalf("after the save: %d in flight, want 0", n)
	}
	// A stale version loses the save, not the settling; the status is told with the conflict.
	pa = h.begin(t, id, true, c3.UserID, "", 1)
	h.block(t, c3.UserID)
	status, reason, v, err = h.s.AcceptPasswordSaving(ctx, pa.Reserved, store.FlowSave{ID: id, Prev: 1, Data: []byte("lost"), TTL: time.Hour, Release: true})
	wantErr(t, "AcceptPasswordSaving(stale)", err, store.ErrConflict)
	if status != store.StatusBlocked || reason != "operator" || v != 0 {
		t.Fatalf("stale save: %q, %q, v%d; want the status blocked (operator) told, no version", status, reason, v)
	}
	rec, err = h.s.LoadFlow(ctx, id)
	noErr(t, "LoadFlow", err)
	if rec.Version != 2 || string(rec.Data) != "card step" || rec.Failures != 1 {
		t.Fatalf("after the lost save: flow %q v%d failures %d; want card step v2, 1 (nothing given back)", rec.Data, rec.Version, rec.Failures)
	}
	if n := h.inFlight(t, h.attemptsKey(c3.UserID)); n != 0 {
		t.Fatalf("after the lost save: %d in flight, want 0 (settled all the same)", n)
	}
	// Without Release the flow keeps the attempt; a session rides along.
	h.unblock(t, c3.UserID)
	pa = h.begin(t, id, true, c3.UserID, "", 1)
	sid := newID()
	_, _, v, err = h.s.AcceptPasswordSaving(ctx, pa.Reserved, store.FlowSave{ID: id, Prev: 2, Data: []byte("done"), TTL: time.Hour,
		Session: &store.SessionWrite{ID: sid, Data: []byte("sso"), TTL: time.Hour}})
	noErr(t, "AcceptPasswordSaving(no release)", err)
	rec, err = h.s.LoadFlow(ctx, id)
	noErr(t, "LoadFlow", err)
	if v != 3 || rec.Failures != 2 {
		t.Fatalf("save without release: v%d, %d failures; want v3, 2", v, rec.Failures)
	}
	if got, err := h.s.Session(ctx, sid); err != nil || string(got) != "sso" {
		t.Fatalf("Session = %q, %v; want the one saved with the flow", got, err)
	}
}

// testAnswerRelease: Release gives back the flow attempt and the reservation in one call,
// each only when named; the flow's count never goes below zero.
func testAnswerRelease(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	att := h.attemptsKey(c.UserID)
	id := newID()
	_, err := h.s.SaveFlow(ctx, id, 0, []byte("x"), time.Hour, false)
	noErr(t, "SaveFlow", err)
	p1 := h.begin(t, id, false, c.UserID, "", MaxFailures)
	p2 := h.begin(t, id, false, c.UserID, "", MaxFailures)
	if p1.FlowAttempt != 1 || p2.FlowAttempt != 2 || h.inFlight(t, att) != 2 {
		t.Fatalf("two answers: attempts %d, %d, %d in flight", p1.FlowAttempt, p2.FlowAttempt, h.inFlight(t, att))
	}
	state := func(what string, failures int, inFlight int64) {
		t.Helper()
		rec, err := h.s.LoadFlow(ctx, id)
		noErr(t, "LoadFlow", err)
		if rec.Failures != failures || h.inFlight(t, att) != inFlight {
			t.Fatalf("%s: flow failures %d, %d in flight; want %d, %d", what, rec.Failures, h.inFlight(t, att), failures, inFlight)
		}
	}
	noErr(t, "Release(both)", h.s.Release(ctx, id, true, p1.Reserved))
	state("both given back", 1, 1)
	noErr(t, "Release(reservation)", h.s.Release(ctx, id, false, p2.Reserved))
	state("the reservation given back", 1, 0)
	noErr(t, "Release(flow attempt)", h.s.Release(ctx, id, true, store.Attempt{}))
	state("the flow attempt given back", 0, 0)
	noErr(t, "Release(flow attempt, none left)", h.s.Release(ctx, id, true, store.Attempt{}))
	state("nothing left to give back", 0, 0)
	noErr(t, "Release(nothing)", h.s.Release(ctx, id, false, store.Attempt{}))
}

// testUseCardKeySubject: with a sector, the key's use brings the citizen's pairwise subject
// there (made from fresh on first use, the same afterwards, the one PairwiseSubject gives);
// with reserve, the flow's attempt count; the outcomes are UseCardKeyInFlow's.
func testUseCardKeySubject(t *testing.T, h *harness) {
	ctx := t.Context()
	c, card := h.citizen(t, 4)
	ns, serial := card.numbers(), card.rec.Serial
	id := newID()
	_, err := h.s.SaveFlow(ctx, id, 0, []byte("card step"), time.Hour, false)
	noErr(t, "SaveFlow", err)
	const sector, other = "https://rp.example/sector", "https://rp.example/other"
	for i, s := range []struct {
		name            string
		reserve         bool
		number, hash    string
		sector, fresh   string
		want            store.KeyResult
		attempt         int
		subject         string
		flowFailuresNow int
	}{
		{"first use in the sector", true, ns[0], card.keys[ns[0]], sector, "fresh-1", store.KeyResult{Outcome: store.KeyOK, KeysLeft: 3}, 1, "fresh-1", 1},
		{"the same sector again", true, ns[1], card.keys[ns[1]], sector, "fresh-2", store.KeyResult{Outcome: store.KeyOK, KeysLeft: 2}, 2, "fresh-1", 2},
		{"no reserve", false, ns[2], "wrong", sector, "fresh-3", store.KeyResult{Outcome: store.KeyWrong, AttemptsLeft: MaxFailures - 1}, 0, "fresh-1", 2},
		{"no sector", true, ns[2], card.keys[ns[2]], "", "fresh-4", store.KeyResult{Outcome: store.KeyOK, KeysLeft: 1}, 3, "", 3},
		{"another sector", true, ns[3], card.keys[ns[3]], other, "fresh-5", store.KeyResult{Outcome: store.KeyOK}, 4, "fresh-5", 4},
		{"the same login again", true, ns[3], card.keys[ns[3]], other, "fresh-6", store.KeyResult{Outcome: store.KeyRepeat}, 5, "fresh-5", 5},
	} {
		r, n, sub, err := h.s.UseCardKey(ctx, id, s.reserve, c.UserID, serial, s.number, s.hash, MaxFailures, s.sector, s.fresh)
		noErr(t, s.name, err)
		r.OrderClaim = "" // a small card is past the threshold: Cards/AutoOrder tests the claim
		if r != s.want || n != s.attempt || sub != s.subject {
			t.Fatalf("%d %s: %+v, attempt %d, subject %q; want %+v, %d, %q", i, s.name, r, n, sub, s.want, s.attempt, s.subject)
		}
		if rec, err := h.s.LoadFlow(ctx, id); err != nil || rec.Failures != s.flowFailuresNow {
			t.Fatalf("%s: flow %+v, %v; want %d failures", s.name, rec, err, s.flowFailuresNow)
		}
	}
	for sec, want := range map[string]string{sector: "fresh-1", other: "fresh-5"} {
		if got, err := h.s.PairwiseSubject(ctx, c.UserID, sec, "late"); err != nil || got != want {
			t.Fatalf("PairwiseSubject(%s) = %q, %v; want %q", sec, got, err, want)
		}
	}
	if _, n, _, err := h.s.UseCardKey(ctx, newID(), true, c.UserID, serial, ns[0], card.keys[ns[0]], MaxFailures, sector, "x"); err != nil || n != -1 {
		t.Fatalf("a flow that is gone: attempt %d, %v; want -1", n, err)
	}
	// The outcomes, as UseCardKeyInFlow's (testUseKeyOutcomes), with a subject for each.
	h.checkKeyOutcomes(t, func(uid, serial, number, hash string) (store.KeyResult, error) {
		r, n, sub, err := h.s.UseCardKey(ctx, "", true, uid, serial, number, hash, MaxFailures, sector, "fresh-"+uid)
		if err != nil || r.Outcome == store.KeyNoPerson {
			return r, err
		}
		if n != 0 || sub == "" {
			err = fmt.Errorf("attempt %d, subject %q; want 0 (no flow), a subject", n, sub)
		}
		if known, kerr := h.s.KnownPairwiseSubject(ctx, uid, sector); err == nil && (kerr != nil || known != sub || sub != "fresh-"+uid) {
			err = fmt.Errorf("subject %q, KnownPairwiseSubject %q, %v", sub, known, kerr)
		}
		return r, err
	})
}

// testSaveFlowSession: a save with a session stores it in the same call, with its own TTL,
// also when the save loses (ErrConflict).
func testSaveFlowSession(t *testing.T, h *harness) {
	h.ownClock(t)
	ctx := t.Context()
	f1, f2, short, long, lost := newID(), newID(), newID(), newID(), newID()
	v, err := h.s.SaveFlowWith(ctx, store.FlowSave{ID: f1, Data: []byte("done"), TTL: time.Hour, Done: true, Browser: "b1",
		Session: &store.SessionWrite{ID: short, Data: []byte("s1"), TTL: h.b.TTL}})
	noErr(t, "SaveFlowWith(session)", err)
	if got, err := h.s.Session(ctx, short); err != nil || string(got) != "s1" || v != 1 {
		t.Fatalf("Session = %q, %v (v%d); want s1 (v1)", got, err, v)
	}
	_, err = h.s.SaveFlowWith(ctx, store.FlowSave{ID: f2, Data: []byte("x"), TTL: h.b.TTL,
		Session: &store.SessionWrite{ID: long, Data: []byte("s2"), TTL: time.Hour}})
	noErr(t, "SaveFlowWith(session)", err)
	_, err = h.s.SaveFlowWith(ctx, store.FlowSave{ID: f1, Prev: 0, Data: []byte("lost"), TTL: time.Hour,
		Session: &store.SessionWrite{ID: lost, Data: []byte("s3"), TTL: time.Hour}})
	wantErr(t, "SaveFlowWith(stale, session)", err, store.ErrConflict)
	if got, err := h.s.Session(ctx, lost); err != nil || string(got) != "s3" {
		t.Fatalf("the losing save's session: %q, %v; want it stored (documented)", got, err)
	}
	if rec, err := h.s.LoadFlow(ctx, f1); err != nil || string(rec.Data) != "done" || rec.Version != 1 {
		t.Fatalf("after the losing save: %+v, %v", rec, err)
	}
	h.b.Advance(t, h.b.TTL)
	_, err = h.s.Session(ctx, short)
	wantErr(t, "Session(short TTL, expired)", err, store.ErrNotFound)
	if got, err := h.s.Session(ctx, long); err != nil || string(got) != "s2" {
		t.Fatalf("Session(long TTL) = %q, %v; its own TTL, not the flow's", got, err)
	}
	_, err = h.s.LoadFlow(ctx, f2)
	wantErr(t, "LoadFlow(short TTL, expired)", err, store.ErrNotFound)
	if _, c, err := h.s.LoadFlowClaiming(ctx, f1, "code", "b1", "1"); err != nil || !c.Claimed {
		t.Fatalf("LoadFlowClaiming after a save with a session: %+v, %v; want claimed", c, err)
	}
}

// ---- round trips ----

// roundTrips counts what a store sends Redis: a command or a pipeline is one round trip (a
// Redis Cluster pipeline split across nodes too: its parts go out at once). It notes a
// NOSCRIPT answer, after which a script is sent again.
type roundTrips struct {
	mu       sync.Mutex
	n        int
	noscript bool
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		r.add(err, cmd)
		return err
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		r.add(err, cmds...)
		return err
	}
}

// handshake names the commands a client sends on a new connection, not the store.
var handshake = map[string]bool{"hello": true, "client": true, "auth": true, "select": true, "readonly": true}

func (r *roundTrips) add(err error, cmds ...redis.Cmder) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if handshake[cmds[0].Name()] {
		return
	}
	r.n++
	for _, c := range cmds {
		if e := c.Err(); e != nil && isNoScript(e) {
			r.noscript = true
		}
	}
	if err != nil && isNoScript(err) {
		r.noscript = true
	}
}

func isNoScript(err error) bool {
	return errors.Is(err, redis.ErrNoScript) || strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// count runs fn and returns its round trips; again when a script was unknown to Redis (the
// first use, or another subtest's SCRIPT FLUSH), which costs one more.
func (r *roundTrips) count(t *testing.T, what string, fn func() error) int {
	t.Helper()
	for range 20 {
		r.mu.Lock()
		r.n, r.noscript = 0, false
		r.mu.Unlock()
		err := fn()
		r.mu.Lock()
		n, noscript := r.n, r.noscript
		r.mu.Unlock()
		if !noscript {
			noErr(t, what, err)
			return n
		}
	}
	t.Fatalf("%s: NOSCRIPT on every try", what)
	return 0
}

var _ redis.Hook = (*roundTrips)(nil)

// testAnswerRoundTrips: a password answer costs one round trip for a user ID, known or not,
// two for a CPR number, known or not (so neither tells a NemID by its timing), the flow riding
// along; settling, giving back, a key's use with its subject and a save with its session one
// each.
func testAnswerRoundTrips(t *testing.T, h *harness) {
	ctx := t.Context()
	s := h.instance(t, "")
	rt := &roundTrips{}
	s.Redis().AddHook(rt)
	c, card := h.citizen(t, 3)
	ten := newCitizen()
	ten.UserID = NewCPR()
	noErr(t, "CreateCitizen(10-digit user ID)", h.s.CreateCitizen(ctx, ten, newCard(1).rec))
	id := newID()
	_, err := h.s.SaveFlow(ctx, id, 0, []byte("x"), time.Hour, false)
	noErr(t, "SaveFlow", err)
	x := NewCPR()
	for _, tc := range []struct {
		name          string
		username, cpr string
		want          int
	}{
		{"user ID", c.UserID, "", 1},
		{"unknown user ID", NewUserID(), "", 1},
		{"non-digit user ID", "alias-" + NewUserID(), "", 1},
		{"10-digit user ID, also a CPR number", ten.UserID, ten.UserID, 1},
		{"CPR number", c.CPR, c.CPR, 2},
		{"CPR number with a dash", dashed(c.CPR), c.CPR, 2},
		{"unknown CPR number", x, x, 2},
		{"unknown CPR number with a dash", dashed(x), x, 2},
	} {
		for _, flow := range []string{"", id} {
			var pa store.PasswordAnswer
			n := rt.count(t, tc.name, func() error {
				var err error
				pa, err = s.BeginPasswordAnswer(ctx, flow, true, tc.username, tc.cpr, 1000, time.Now(), attemptHold)
				return err
			})
			if n != tc.want || pa.Reserved.ID == "" {
				t.Errorf("BeginPasswordAnswer(%s, flow %q): %d round trips (reserved %+v), want %d", tc.name, flow, n, pa.Reserved, tc.want)
			}
		}
	}
	pa := h.begin(t, id, true, c.UserID, "", 1000)
	if n := rt.count(t, "Release", func() error { return s.Release(ctx, id, true, pa.Reserved) }); n != 1 {
		t.Errorf("Release: %d round trips, want 1", n)
	}
	pa = h.begin(t, id, true, c.UserID, "", 1000)
	if n := rt.count(t, "FailReserved", func() error {
		_, err := s.FailReserved(ctx, pa.Reserved, 1000, time.Now())
		return err
	}); n != 1 {
		t.Errorf("FailReserved: %d round trips, want 1", n)
	}
	pa = h.begin(t, id, true, c.UserID, "", 1000)
	if n := rt.count(t, "AcceptPasswordSaving", func() error {
		rec, err := h.s.LoadFlow(ctx, id) // h.s: not counted
		if err != nil {
			return err
		}
		_, _, _, err = s.AcceptPasswordSaving(ctx, pa.Reserved, store.FlowSave{ID: id, Prev: rec.Version, Data: []byte("y"), TTL: time.Hour, Release: true})
		return err
	}); n != 1 {
		t.Errorf("AcceptPasswordSaving with a save: %d round trips, want 1", n)
	}
	number := card.numbers()[0]
	if n := rt.count(t, "UseCardKey", func() error {
		_, _, _, err := s.UseCardKey(ctx, id, true, c.UserID, card.rec.Serial, number, card.keys[number], 1000, "sector", "fresh")
		return err
	}); n != 1 {
		t.Errorf("UseCardKey with a subject: %d round trips, want 1", n)
	}
	if n := rt.count(t, "SaveFlowWith", func() error {
		_, err := s.SaveFlowWith(ctx, store.FlowSave{ID: newID(), Data: []byte("z"), TTL: time.Hour, Done: true, Browser: "b",
			Wake: store.TopicFlow(id), Session: &store.SessionWrite{ID: newID(), Data: []byte("s"), TTL: time.Hour}})
		return err
	}); n != 1 {
		t.Errorf("SaveFlowWith with a session and a wake: %d round trips, want 1", n)
	}
}

// testAnswerRecordWithoutUserID: fields left on a user ID with no NemID (a password or a
// failure written there) make no citizen: the answer counts on the unknown user ID's record,
// and a key used for it makes no pairwise subject.
func testAnswerRecordWithoutUserID(t *testing.T, h *harness) {
	ctx := t.Context()
	uid := NewUserID()
	noErr(t, "SetPassword(no citizen)", h.s.SetPassword(ctx, uid, "$argon2id$stray"))
	pa := h.begin(t, "", false, uid, "", MaxFailures)
	if pa.Citizen != nil {
		t.Fatalf("a record without its user id answered as citizen %+v", pa.Citizen)
	}
	rec, att := h.unknownIDKeys(uid)
	if pa.Reserved.ID == "" || h.inFlight(t, att) != 1 {
		t.Fatalf("reservation %+v, %d in flight on the unknown record; want one", pa.Reserved, h.inFlight(t, att))
	}
	res, err := h.s.FailReserved(ctx, pa.Reserved, MaxFailures, time.Now())
	noErr(t, "FailReserved", err)
	if res.AttemptsLeft != MaxFailures-1 || h.failures(t, rec) != 1 {
		t.Fatalf("failure %+v, %d failures on the unknown record; want one counted there", res, h.failures(t, rec))
	}
	if h.exists(t, h.prefix) {
		t.Fatal("a key named by the bare prefix was written")
	}
	_, _, sub, err := h.s.UseCardKey(ctx, "", false, uid, "G000000001", "0001", "h", MaxFailures, "sector", "fresh")
	noErr(t, "UseCardKey(no citizen)", err)
	if sub != "" || h.exists(t, h.prefix+"{c:"+uid+"}:pairwise") {
		t.Fatalf("a key for no citizen made the pairwise subject %q", sub)
	}
}
