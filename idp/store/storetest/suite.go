package storetest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nemidp/nemidp/idp/store"
)

// MaxFailures is the lockout limit the suite uses unless a subtest says otherwise.
const MaxFailures = 5

// Racers is how many goroutines the race subtests start at once.
const Racers = 24

// Run runs the whole conformance suite against b. Subtests run in parallel with each other;
// they share one store under one fresh key prefix and keep apart by fresh ids.
func Run(t *testing.T, b Backend) {
	// Made first on the top-level t, so a backend started lazily lives as long as the suite
	// (and a missing real Redis skips the whole backend here).
	s, prefix := NewStorePrefixed(t, b.Client(t))
	h := &harness{b: b, s: s, prefix: prefix}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *harness)
	}{
		{"Citizens/CreateAndLoad", testCreateAndLoad},
		{"Citizens/DuplicateCPR", testDuplicateCPR},
		{"Citizens/DuplicateCPRRace", testDuplicateCPRRace},
		{"Citizens/StaleCPRClaim", testStaleCPRClaim},
		{"Citizens/UserIDTaken", testUserIDTaken},
		{"Citizens/SetPassword", testSetPassword},
		{"Citizens/RehashPassword", testRehashPassword},
		{"Citizens/RehashPasswordRace", testRehashPasswordRace},
		{"Cards/UseKeyOutcomes", testUseKeyOutcomes},
		{"Cards/LockAtMaxFailures", testLockAtMaxFailures},
		{"Cards/BlockedCitizen", testKeyBlockedCitizen},
		{"Cards/SuccessResetsFailures", testSuccessResetsFailures},
		{"Cards/ExactlyOnce", testKeyExactlyOnce},
		{"Cards/ParallelWrongKeys", testParallelWrongKeys},
		{"Cards/PendingKey", testPendingKey},
		{"Cards/OldUsedKeyRecords", testOldUsedKeyRecords},
		{"Cards/CompactEncoding", testCardEncoding},
		{"Cards/OldFormatCard", testOldFormatCard},
		{"Cards/KeyNumbers", testCardKeyNumbers},
		{"Failures/AttemptDeadline", testAttemptDeadline},
		{"Flows/Attempts", testFlowAttempts},
		{"Scripts/AfterFlush", testScriptsAfterFlush},
		{"Failures/Count", testRecordFailure},
		{"Failures/Parallel", testRecordFailureParallel},
		{"Failures/OperatorBlocked", testRecordFailureOperatorBlocked},
		{"Failures/Unknown", testUnknownFailure},
		{"Failures/UnknownParallel", testUnknownFailureParallel},
		{"Failures/UnknownPersists", testUnknownFailurePersists},
		{"Flows/CAS", testFlowCAS},
		{"Flows/RaceSameVersion", testFlowRace},
		{"Flows/RaceCreate", testFlowRaceCreate},
		{"Flows/TTL", testFlowTTL},
		{"Sessions/PutGetDelete", testSessions},
		{"Sessions/TTL", testSessionTTL},
		{"Sessions/Participants", testSessionParticipants},
		{"Codes/OnePerGrant", testCodeOnePerGrant},
		{"Codes/ConsumeOnce", testConsumeCode},
		{"Codes/ConsumeRace", testConsumeCodeRace},
		{"Codes/TTL", testCodeTTL},
		{"Codes/StoredBefore", testCodeStoredBefore},
		{"Tokens/Rotation", testTokenRotation},
		{"Tokens/ReuseRevokes", testRefreshReuse},
		{"Tokens/UnknownRefresh", testUnknownRefresh},
		{"Tokens/RotationRace", testRotationRace},
		{"Tokens/RevokeGrant", testRevokeGrant},
		{"Tokens/TTL", testTokenTTL},
		{"Pairwise/Stable", testPairwise},
		{"Pairwise/Race", testPairwiseRace},
		{"Pairwise/Lookups", testPairwiseLookups},
		{"Meta/Race", testMetaRace},
		{"Clients/CreatePut", testClients},
		{"Devices/AddAndList", testDevicesAddAndList},
		{"Devices/Cap", testDevicesCap},
		{"Devices/CapRace", testDevicesCapRace},
		{"Devices/NotActive", testDevicesNotActive},
		{"Devices/Remove", testDevicesRemove},
		{"Devices/Event", testDevicesEvent},
		{"Devices/JTI", testDevicesJTI},
		{"Flows/SaveWaking", testSaveFlowWaking},
		{"Approvals/Lifecycle", testApprovalsLifecycle},
		{"Approvals/Race", testApprovalsRace},
		{"Approvals/WrongCode", testApprovalsWrongCode},
		{"Approvals/Expiry", testApprovalsExpiry},
		{"Approvals/Replace", testApprovalsReplace},
		{"Approvals/NotActive", testApprovalsNotActive},
		{"Approvals/OtherCitizen", testApprovalsOtherCitizen},
		{"Approvals/CancelBeforeCreate", testApprovalsCancelBeforeCreate},
		{"Approvals/InactiveDevice", testApprovalsInactiveDevice},
		{"Waiters/Wake", testWaitersWake},
		{"Answers/Devices", testPasswordAnswerDevices},
		{"Answers/Records", testAnswerRecords},
		{"Answers/UnknownThenCitizen", testAnswerUnknownThenCitizen},
		{"Answers/Citizen", testAnswerCitizen},
		{"Answers/Flow", testAnswerFlow},
		{"Answers/RefusedBusy", testAnswerRefusedBusy},
		{"Answers/Race", testAnswerRace},
		{"Answers/FailRace", testAnswerFailRace},
		{"Answers/AcceptPasswordSaving", testAcceptPasswordSaving},
		{"Answers/Release", testAnswerRelease},
		{"Answers/RecordWithoutUserID", testAnswerRecordWithoutUserID},
		{"Answers/RoundTrips", testAnswerRoundTrips},
		{"Cards/UseKeyWithSubject", testUseCardKeySubject},
		{"Cards/AutoOrderOnce", testAutoOrderOnce},
		{"Cards/SentCardActivation", testSentCardActivation},
		{"Cards/PasswordAnswerCards", testPasswordAnswerCards},
		{"Cards/UsedUpPrefersActiveCard", testUsedUpPrefersActiveCard},
		{"Cards/LostCard", testLostCard},
		{"Cards/ExtraLimits", testExtraLimits},
		{"Cards/ExtraLimitRace", testExtraLimitRace},
		{"Blocks/BlockUnblock", testBlockUnblock},
		{"Blocks/Refusals", testBlockRefusals},
		{"Blocks/TemporaryPassword", testTemporaryPassword},
		{"Blocks/OverLockout", testBlockOverLockout},
		{"Blocks/UnblockRenewed", testUnblockRenewed},
		{"Blocks/Race", testBlockRace},
		{"Flows/SaveWithSession", testSaveFlowSession},
		{"Outbox/Order", testOutboxOrder},
		{"Outbox/Addresses", testOutboxAddresses},
		{"Outbox/SkipsOthers", testOutboxSkipsOthers},
		{"Outbox/Crash", testOutboxCrash},
		{"Outbox/RelayRace", testOutboxRelayRace},
		{"Outbox/Paging", testOutboxPaging},
		{"Outbox/Sweeper", testOutboxSweeper},
		{"Renewal/Due", testRenewalDue},
		{"Renewal/DueRace", testRenewalDueRace},
		{"Renewal/ExpiryOf", testExpiryOf},
		{"Citizens/AltAddress", testAltAddress},
		{"Unavailable/ClosedClient", testClosedClient},
		{"SAML/ServiceProviders", testServiceProviders}, {"SAML/RequestIDs", testSAMLRequestIDs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, h)
		})
	}
}

type harness struct {
	b      Backend
	s      *store.Store
	prefix string
	// clock is held by the subtests that rely on short TTLs or move the backend's clock
	// (Advance): on a backend whose clock is one for all (miniredis's FastForward), one
	// subtest's jump would expire another's short-lived key in the middle of its check.
	clock sync.Mutex
}

// ownClock keeps the backend's clock to this subtest until it ends (see harness.clock).
func (h *harness) ownClock(t *testing.T) {
	h.clock.Lock()
	t.Cleanup(h.clock.Unlock)
}

// ---- fixtures ----

func randInt(n int64) int64 {
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		panic(err)
	}
	return v.Int64()
}

// NewUserID draws a random 9-digit NemID number.
func NewUserID() string { return fmt.Sprint(100_000_000 + randInt(900_000_000)) }

// NewCPR draws a random, well-formed 10-digit CPR number.
func NewCPR() string {
	return fmt.Sprintf("%02d%02d%02d%04d", 1+randInt(28), 1+randInt(12), randInt(100), randInt(10000))
}

// testCard is a card with its keys in clear, as the tests need to answer.
type testCard struct {
	rec  store.CardRecord
	keys map[string]string // number → the hash the right key has
}

func (c testCard) numbers() []string {
	var ns []string
	for n := range c.keys {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

func newCard(n int) testCard {
	serial := fmt.Sprintf("G%09d", randInt(1_000_000_000))
	c := testCard{rec: store.CardRecord{Serial: serial, Status: store.CardActive, Hashes: map[string]string{}}, keys: map[string]string{}}
	for len(c.keys) < n {
		num := fmt.Sprintf("%04d", 1+randInt(9999))
		h := fmt.Sprintf("hash-%s-%s-%06d", serial, num, randInt(1_000_000))
		c.rec.Hashes[num], c.keys[num] = h, h
	}
	return c
}

func newCitizen() *store.Citizen {
	return &store.Citizen{
		UserID: NewUserID(), CPR: NewCPR(), Name: "Test Testesen", GivenName: "Test", FamilyName: "Testesen",
		Kind: "oces", Status: store.StatusActive, Password: "$argon2id$placeholder", MustChange: true,
		IssuedAt: "2024-01-02", CreatedAt: time.Now().UTC().Truncate(time.Second), Address: "Gade 1, 1000 København K",
	}
}

// citizen creates a fresh citizen with a card of n keys.
func (h *harness) citizen(t *testing.T, n int) (*store.Citizen, testCard) {
	t.Helper()
	c, card := newCitizen(), newCard(n)
	if err := h.s.CreateCitizen(t.Context(), c, card.rec); err != nil {
		t.Fatalf("CreateCitizen: %v", err)
	}
	return c, card
}

func (h *harness) load(t *testing.T, uid string) *store.Citizen {
	t.Helper()
	c, err := h.s.Citizen(t.Context(), uid)
	if err != nil {
		t.Fatalf("Citizen(%s): %v", uid, err)
	}
	return c
}

// race runs fn in n goroutines released at once and returns their results in order.
func race[R any](n int, fn func(i int) R) []R {
	out := make([]R, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return out
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// ---- citizens ----

func testCreateAndLoad(t *testing.T, h *harness) {
	ctx := t.Context()
	c, card := newCitizen(), newCard(7)
	want := *c
	noErr(t, "CreateCitizen", h.s.CreateCitizen(ctx, c, card.rec))
	want.ActiveCard = card.rec.Serial

	got := h.load(t, c.UserID)
	if *got != want {
		t.Errorf("Citizen = %+v\nwant      %+v", *got, want)
	}
	byID, err := h.s.CitizenByUsername(ctx, c.UserID, "")
	noErr(t, "CitizenByUsername(user id)", err)
	if byID.UserID != c.UserID {
		t.Errorf("CitizenByUsername(user id) = %s, want %s", byID.UserID, c.UserID)
	}
	byCPR, err := h.s.CitizenByUsername(ctx, c.CPR, c.CPR)
	noErr(t, "CitizenByUsername(cpr)", err)
	if byCPR.UserID != c.UserID {
		t.Errorf("CitizenByUsername(cpr) = %s, want %s", byCPR.UserID, c.UserID)
	}
	// The CPR index is kept for good.
	idx := cprIndexKey(h.prefix, c.CPR)
	if ttl, err := h.s.Redis().PTTL(ctx, idx).Result(); err != nil || ttl != -1 {
		t.Errorf("CPR index PTTL = %v, %v; want -1 (no expiry)", ttl, err)
	}
	st, left, err := h.s.CardStatus(ctx, c.UserID, card.rec.Serial)
	noErr(t, "CardStatus", err)
	if st != store.CardActive || left != 7 {
		t.Errorf("CardStatus = %q, %d keys; want active, 7", st, left)
	}
	for _, n := range card.numbers() {
		ok, err := h.s.KeyUnused(ctx, c.UserID, card.rec.Serial, n)
		noErr(t, "KeyUnused", err)
		if !ok {
			t.Errorf("key %s of a new card is not unused", n)
		}
	}

	_, err = h.s.Citizen(ctx, NewUserID())
	wantErr(t, "Citizen(unknown)", err, store.ErrNotFound)
	_, err = h.s.CitizenByUsername(ctx, NewUserID(), "")
	wantErr(t, "CitizenByUsername(unknown user id)", err, store.ErrNotFound)
	other := NewCPR()
	_, err = h.s.CitizenByUsername(ctx, other, other)
	wantErr(t, "CitizenByUsername(unknown cpr)", err, store.ErrNotFound)
	_, err = h.s.CitizenByUsername(ctx, "alias-nobody", "")
	wantErr(t, "CitizenByUsername(alias)", err, store.ErrNotFound)
}

func testDuplicateCPR(t *testing.T, h *harness) {
	ctx := t.Context()
	a, cardA := h.citizen(t, 5)
	b, cardB := newCitizen(), newCard(5)
	b.CPR, b.Name = a.CPR, "Second Person"
	err := h.s.CreateCitizen(ctx, b, cardB.rec)
	wantErr(t, "CreateCitizen(same cpr)", err, store.ErrConflict)

	_, err = h.s.Citizen(ctx, b.UserID)
	wantErr(t, "Citizen(second)", err, store.ErrNotFound)
	if st, left, err := h.s.CardStatus(ctx, b.UserID, cardB.rec.Serial); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second citizen's card: status %q, %d keys, err %v; want ErrNotFound", st, left, err)
	}
	got := h.load(t, a.UserID)
	if got.Name != a.Name || got.CPR != a.CPR || got.ActiveCard != cardA.rec.Serial {
		t.Errorf("first citizen changed: %+v", got)
	}
	byCPR, err := h.s.CitizenByUsername(ctx, a.CPR, a.CPR)
	noErr(t, "CitizenByUsername(cpr)", err)
	if byCPR.UserID != a.UserID {
		t.Errorf("CPR now resolves to %s, want the first citizen %s", byCPR.UserID, a.UserID)
	}
}

// cprIndexKey is idp/store's CPR index key (HMAC of the CPR number under the pepper).
func cprIndexKey(prefix, cpr string) string {
	m := hmac.New(sha256.New, Pepper)
	m.Write([]byte("cpr\x00" + cpr))
	return prefix + "idx:cpr:" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// testStaleCPRClaim: a claim left by an issuance that crashed before writing its citizen
// blocks the CPR number only for a while, then a new issuance takes it over; a fresh claim
// (an issuance in progress) is respected.
func testStaleCPRClaim(t *testing.T, h *harness) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		age  time.Duration
		want error
	}{
		{"stale", 2 * time.Minute, nil},
		{"in progress", time.Second, store.ErrConflict},
	} {
		c, card := newCitizen(), newCard(3)
		ghost := fmt.Sprintf("%s|%d", NewUserID(), time.Now().Add(-tc.age).UnixMilli())
		noErr(t, "plant claim", h.s.Redis().Set(ctx, cprIndexKey(h.prefix, c.CPR), ghost, 0).Err())
		_, err := h.s.CitizenByUsername(ctx, c.CPR, c.CPR)
		wantErr(t, tc.name+": login by a claimed CPR without a citizen", err, store.ErrNotFound)
		err = h.s.CreateCitizen(ctx, c, card.rec)
		if tc.want != nil {
			wantErr(t, tc.name+": CreateCitizen", err, tc.want)
			continue
		}
		noErr(t, tc.name+": CreateCitizen", err)
		got, err := h.s.CitizenByUsername(ctx, c.CPR, c.CPR)
		noErr(t, tc.name+": CitizenByUsername", err)
		if got.UserID != c.UserID {
			t.Fatalf("%s: CPR resolves to %s, want %s", tc.name, got.UserID, c.UserID)
		}
	}
}

func testDuplicateCPRRace(t *testing.T, h *harness) {
	cpr := NewCPR()
	errs := race(Racers, func(int) error {
		c := newCitizen()
		c.CPR = cpr
		return h.s.CreateCitizen(t.Context(), c, newCard(3).rec)
	})
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("CreateCitizen: %v, want nil or ErrConflict", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d NemIDs created for one CPR number, want 1", won)
	}
}

func testUserIDTaken(t *testing.T, h *harness) {
	ctx := t.Context()
	a, cardA := h.citizen(t, 5)
	c, cardC := newCitizen(), newCard(5)
	c.UserID, c.Name = a.UserID, "Other Person"
	err := h.s.CreateCitizen(ctx, c, cardC.rec)
	wantErr(t, "CreateCitizen(taken user id)", err, store.ErrUserIDTaken)

	got := h.load(t, a.UserID)
	if got.CPR != a.CPR || got.Name != a.Name || got.ActiveCard != cardA.rec.Serial {
		t.Errorf("existing citizen overwritten: %+v", got)
	}
	if st, _, err := h.s.CardStatus(ctx, a.UserID, cardC.rec.Serial); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused citizen's card under the existing user id: status %q, err %v; want ErrNotFound", st, err)
	}
	// The CPR claim was released: the CPR resolves to nobody, and a retry with a fresh user
	// id (what issuance does) succeeds.
	_, err = h.s.CitizenByUsername(ctx, c.CPR, c.CPR)
	wantErr(t, "CitizenByUsername(refused cpr)", err, store.ErrNotFound)
	c.UserID = NewUserID()
	noErr(t, "CreateCitizen(retry)", h.s.CreateCitizen(ctx, c, cardC.rec))
}

func testSetPassword(t *testing.T, h *harness) {
	c, _ := h.citizen(t, 1)
	noErr(t, "SetPassword", h.s.SetPassword(t.Context(), c.UserID, "$argon2id$new"))
	got := h.load(t, c.UserID)
	if got.Password != "$argon2id$new" || got.MustChange {
		t.Errorf("after SetPassword: password %q, must change %v", got.Password, got.MustChange)
	}
}

// testRehashPassword: a rehash replaces the hash only while it is still the one it names,
// keeps the activation-password mark, and never creates a citizen.
func testRehashPassword(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	noErr(t, "SetPassword", h.s.SetPassword(ctx, c.UserID, "$argon2id$old"))
	noErr(t, "mark must_change", h.s.Redis().HSet(ctx, h.citizenKey(c.UserID), "must_change", "1").Err())
	ok, err := h.s.RehashPassword(ctx, c.UserID, "$argon2id$other", "$argon2id$rehashed")
	noErr(t, "RehashPassword(stale)", err)
	if got := h.load(t, c.UserID); ok || got.Password != "$argon2id$old" {
		t.Fatalf("RehashPassword naming another hash: replaced %v, password %q", ok, got.Password)
	}
	ok, err = h.s.RehashPassword(ctx, c.UserID, "$argon2id$old", "$argon2id$rehashed")
	noErr(t, "RehashPassword", err)
	if got := h.load(t, c.UserID); !ok || got.Password != "$argon2id$rehashed" || !got.MustChange {
		t.Fatalf("RehashPassword: replaced %v, password %q, must change %v; want true, rehashed, true", ok, got.Password, got.MustChange)
	}
	ok, err = h.s.RehashPassword(ctx, c.UserID, "$argon2id$old", "$argon2id$again")
	noErr(t, "RehashPassword(twice)", err)
	if got := h.load(t, c.UserID); ok || got.Password != "$argon2id$rehashed" {
		t.Fatalf("a second rehash of the same old hash: replaced %v, password %q", ok, got.Password)
	}
	missing := NewUserID()
	ok, err = h.s.RehashPassword(ctx, missing, "", "$argon2id$ghost")
	noErr(t, "RehashPassword(missing citizen)", err)
	if n, _ := h.s.Redis().Exists(ctx, h.citizenKey(missing)).Result(); ok || n != 0 {
		t.Fatalf("RehashPassword of a missing citizen: replaced %v, key exists %d", ok, n)
	}
}

// testRehashPasswordRace: rehashes racing a password change never overwrite the new password,
// and of racing rehashes of one hash exactly one wins.
func testRehashPasswordRace(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	noErr(t, "SetPassword", h.s.SetPassword(ctx, c.UserID, "$argon2id$old"))
	results := race(Racers, func(i int) error {
		if i == 0 {
			return h.s.SetPassword(ctx, c.UserID, "$argon2id$chosen")
		}
		_, err := h.s.RehashPassword(ctx, c.UserID, "$argon2id$old", fmt.Sprint("$argon2id$rehash-", i))
		return err
	})
	for i, err := range results {
		noErr(t, fmt.Sprint("racer ", i), err)
	}
	if got := h.load(t, c.UserID); got.Password != "$argon2id$chosen" {
		t.Fatalf("after a password change raced rehashes: password %q, want the chosen one", got.Password)
	}

	noErr(t, "SetPassword", h.s.SetPassword(ctx, c.UserID, "$argon2id$old"))
	won := race(Racers, func(i int) bool {
		ok, err := h.s.RehashPassword(ctx, c.UserID, "$argon2id$old", fmt.Sprint("$argon2id$rehash-", i))
		return ok && err == nil
	})
	if n := len(slices.DeleteFunc(won, func(ok bool) bool { return !ok })); n != 1 {
		t.Fatalf("%d of %d racing rehashes of one hash replaced it, want exactly 1", n, Racers)
	}
}

// ---- cards ----

func (h *harness) use(t *testing.T, c *store.Citizen, serial, number, hash string, max int) store.KeyResult {
	t.Helper()
	r, _, err := h.s.UseCardKeyInFlow(t.Context(), "", c.UserID, serial, number, hash, max)
	if err != nil {
		t.Fatalf("UseCardKey(%s): %v", number, err)
	}
	return r
}

func testUseKeyOutcomes(t *testing.T, h *harness) {
	h.checkKeyOutcomes(t, func(uid, serial, number, hash string) (store.KeyResult, error) {
		r, _, err := h.s.UseCardKeyInFlow(t.Context(), "", uid, serial, number, hash, MaxFailures)
		return r, err
	})
}

// checkKeyOutcomes runs one card's keys through use (a key's use, outside a login flow, with
// MaxFailures) and checks each outcome and which keys are left unused.
func (h *harness) checkKeyOutcomes(t *testing.T, use func(uid, serial, number, hash string) (store.KeyResult, error)) {
	t.Helper()
	ctx := t.Context()
	c, card := h.citizen(t, 4)
	ns := card.numbers()
	serial := card.rec.Serial

	type step struct {
		name         string
		uid, serial  string
		number, hash string
		want         store.KeyResult
	}
	for _, s := range []step{
		{"right key", c.UserID, serial, ns[0], card.keys[ns[0]], store.KeyResult{Outcome: store.KeyOK, KeysLeft: 3}},
		// Another login typing the used key right holds the card: not counted.
		{"used key, right answer", c.UserID, serial, ns[0], card.keys[ns[0]], store.KeyResult{Outcome: store.KeyUsedRight}},
		{"used key, wrong answer", c.UserID, serial, ns[0], "wrong", store.KeyResult{Outcome: store.KeyUsed, AttemptsLeft: MaxFailures - 1}},
		{"wrong key", c.UserID, serial, ns[1], "wrong", store.KeyResult{Outcome: store.KeyWrong, AttemptsLeft: MaxFailures - 2}},
		{"key from another slot", c.UserID, serial, ns[1], card.keys[ns[2]], store.KeyResult{Outcome: store.KeyWrong, AttemptsLeft: MaxFailures - 3}},
		{"unknown key number", c.UserID, serial, "0000", "x", store.KeyResult{Outcome: store.KeyNoKey}},
		{"unknown card", c.UserID, "G000000000", ns[1], card.keys[ns[1]], store.KeyResult{Outcome: store.KeyBadCard}},
		{"unknown citizen", NewUserID(), serial, ns[1], card.keys[ns[1]], store.KeyResult{Outcome: store.KeyNoPerson}},
		{"right key again", c.UserID, serial, ns[1], card.keys[ns[1]], store.KeyResult{Outcome: store.KeyOK, KeysLeft: 2}},
	} {
		got, err := use(s.uid, s.serial, s.number, s.hash)
		noErr(t, s.name, err)
		got.OrderClaim = "" // a small card is past the threshold: Cards/AutoOrder tests the claim
		if got != s.want {
			t.Fatalf("%s: UseCardKey = %+v, want %+v", s.name, got, s.want)
		}
	}
	for i, n := range ns {
		unused, err := h.s.KeyUnused(ctx, c.UserID, serial, n)
		noErr(t, "KeyUnused", err)
		if unused != (i >= 2) {
			t.Errorf("KeyUnused(%s) = %v, want %v", n, unused, i >= 2)
		}
	}
}

func testLockAtMaxFailures(t *testing.T, h *harness) {
	c, card := h.citizen(t, 3)
	ns := card.numbers()
	for i := 1; i < MaxFailures; i++ {
		r := h.use(t, c, card.rec.Serial, ns[0], "wrong", MaxFailures)
		if r.Outcome != store.KeyWrong || r.AttemptsLeft != MaxFailures-i {
			t.Fatalf("failure %d: %+v, want wrong with %d left", i, r, MaxFailures-i)
		}
	}
	if r := h.use(t, c, card.rec.Serial, ns[0], "wrong", MaxFailures); r.Outcome != store.KeyLocked {
		t.Fatalf("failure %d: %+v, want locked", MaxFailures, r)
	}
	got := h.load(t, c.UserID)
	if got.Status != store.StatusBlocked || got.BlockReason != store.BlockFailures || got.Failures != MaxFailures {
		t.Fatalf("after lock: status %q reason %q failures %d; want blocked, failures, %d", got.Status, got.BlockReason, got.Failures, MaxFailures)
	}
	// Locked: even the right key is refused and stays unused.
	if r := h.use(t, c, card.rec.Serial, ns[1], card.keys[ns[1]], MaxFailures); r.Outcome != store.KeyBlocked {
		t.Fatalf("right key after lock: %+v, want blocked", r)
	}
	unused, err := h.s.KeyUnused(t.Context(), c.UserID, card.rec.Serial, ns[1])
	noErr(t, "KeyUnused", err)
	if !unused {
		t.Error("a key offered while locked was consumed")
	}
}

func testKeyBlockedCitizen(t *testing.T, h *harness) {
	ctx := t.Context()
	c, card := h.citizen(t, 2)
	ns := card.numbers()
	// Blocked by an operator (there is no store API for it yet): the status field alone.
	noErr(t, "block", h.s.Redis().HSet(ctx, h.citizenKey(c.UserID), "status", store.StatusBlocked, "block_reason", "operator").Err())
	if r := h.use(t, c, card.rec.Serial, ns[0], card.keys[ns[0]], MaxFailures); r.Outcome != store.KeyBlocked {
		t.Fatalf("right key of a blocked citizen: %+v, want blocked", r)
	}
	if r := h.use(t, c, card.rec.Serial, ns[0], "wrong", MaxFailures); r.Outcome != store.KeyBlocked {
		t.Fatalf("wrong key of a blocked citizen: %+v, want blocked", r)
	}
	got := h.load(t, c.UserID)
	if got.BlockReason != "operator" || got.Failures != 0 {
		t.Errorf("blocked citizen changed: reason %q failures %d", got.BlockReason, got.Failures)
	}
	noErr(t, "retire card", h.s.Redis().HSet(ctx, h.cardKey(c.UserID, card.rec.Serial), "status", store.CardRetired).Err())
	noErr(t, "unblock", h.s.Redis().HSet(ctx, h.citizenKey(c.UserID), "status", store.StatusActive).Err())
	if r := h.use(t, c, card.rec.Serial, ns[0], card.keys[ns[0]], MaxFailures); r.Outcome != store.KeyRetired {
		t.Fatalf("key of a retired card: %+v, want retired", r)
	}
}

// citizenKey and cardKey mirror the key layout of the store (package doc of idp/store), for
// the few states that have no API yet.
func (h *harness) citizenKey(uid string) string { return CitizenKey(h.prefix, uid) }

func (h *harness) cardKey(uid, serial string) string {
	return h.prefix + "{c:" + uid + "}:card:" + serial
}

func testSuccessResetsFailures(t *testing.T, h *harness) {
	c, card := h.citizen(t, 3)
	ns := card.numbers()
	h.use(t, c, card.rec.Serial, ns[0], "wrong", MaxFailures)
	if _, err := h.s.RecordFailure(t.Context(), c.UserID, MaxFailures); err != nil {
		t.Fatal(err)
	}
	if got := h.load(t, c.UserID).Failures; got != 2 {
		t.Fatalf("failures = %d, want 2", got)
	}
	if r := h.use(t, c, card.rec.Serial, ns[1], card.keys[ns[1]], MaxFailures); r.Outcome != store.KeyOK {
		t.Fatalf("right key: %+v", r)
	}
	if got := h.load(t, c.UserID).Failures; got != 0 {
		t.Fatalf("failures after success = %d, want 0", got)
	}
	if r := h.use(t, c, card.rec.Serial, ns[2], "wrong", MaxFailures); r.AttemptsLeft != MaxFailures-1 {
		t.Fatalf("first failure after success: %+v, want %d left", r, MaxFailures-1)
	}
}

func testKeyExactlyOnce(t *testing.T, h *harness) {
	c, card := h.citizen(t, 2)
	n := card.numbers()[0]
	const max = 1000 // no lockout in the way
	results := race(Racers, func(int) store.KeyResult {
		r, _, err := h.s.UseCardKeyInFlow(t.Context(), "", c.UserID, card.rec.Serial, n, card.keys[n], max)
		if err != nil {
			t.Errorf("UseCardKey: %v", err)
		}
		return r
	})
	ok := 0
	for _, r := range results {
		switch r.Outcome {
		case store.KeyOK:
			ok++
			if r.KeysLeft != 1 {
				t.Errorf("KeysLeft = %d, want 1", r.KeysLeft)
			}
		case store.KeyUsedRight: // the key was right, but another racer used it first
		default:
			t.Errorf("outcome %+v, want ok or used_right", r)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d racers used the same key, want exactly 1", ok, Racers)
	}
	if got := h.load(t, c.UserID); got.Failures != 0 {
		t.Fatalf("the losing racers, who typed the key right, counted %d failures", got.Failures)
	}
}

func testParallelWrongKeys(t *testing.T, h *harness) {
	c, card := h.citizen(t, 2)
	n := card.numbers()[0]
	results := race(Racers, func(int) store.KeyResult {
		r, _, err := h.s.UseCardKeyInFlow(t.Context(), "", c.UserID, card.rec.Serial, n, "wrong", MaxFailures)
		if err != nil {
			t.Errorf("UseCardKey: %v", err)
		}
		return r
	})
	count := map[store.KeyOutcome]int{}
	var lefts []int
	for _, r := range results {
		count[r.Outcome]++
		if r.Outcome == store.KeyWrong {
			lefts = append(lefts, r.AttemptsLeft)
		}
	}
	slices.Sort(lefts)
	if count[store.KeyWrong] != MaxFailures-1 || count[store.KeyLocked] != 1 || count[store.KeyBlocked] != Racers-MaxFailures {
		t.Fatalf("outcomes %v, want %d wrong, 1 locked, %d blocked", count, MaxFailures-1, Racers-MaxFailures)
	}
	if !slices.Equal(lefts, []int{1, 2, 3, 4}) {
		t.Fatalf("attempts left %v, want each of 1..4 once", lefts)
	}
	if got := h.load(t, c.UserID); got.Status != store.StatusBlocked || got.Failures != MaxFailures {
		t.Fatalf("after the race: status %q failures %d", got.Status, got.Failures)
	}
}

// testOldUsedKeyRecords: a key used before used keys kept their hash ("u:<flow>") is still
// its own login's repeat, and another login typing it is counted as a used key (the safe
// side: the record cannot tell a right answer).
func testOldUsedKeyRecords(t *testing.T, h *harness) {
	ctx := t.Context()
	c, card := h.citizen(t, 2)
	n := card.numbers()[0]
	noErr(t, "write an old-format used key", h.s.Redis().HSet(ctx, h.cardKey(c.UserID, card.rec.Serial), "k:"+n, "u:flow-old").Err())
	noErr(t, "SREM", h.s.Redis().SRem(ctx, h.cardKey(c.UserID, card.rec.Serial)+":unused", n).Err())
	r, _, err := h.s.UseCardKeyInFlow(ctx, "flow-old", c.UserID, card.rec.Serial, n, card.keys[n], MaxFailures)
	noErr(t, "UseCardKeyInFlow(same flow)", err)
	if r.Outcome != store.KeyRepeat {
		t.Fatalf("the login that used the key, again: %+v, want repeat", r)
	}
	r, _, err = h.s.UseCardKeyInFlow(ctx, "flow-other", c.UserID, card.rec.Serial, n, card.keys[n], MaxFailures)
	noErr(t, "UseCardKeyInFlow(other flow)", err)
	if r.Outcome != store.KeyUsed || r.AttemptsLeft != MaxFailures-1 {
		t.Fatalf("another login with an old used key: %+v, want used, counted", r)
	}
}

// testPendingKey: a card has one pending key number, the same for every caller (and every
// racer) until its key is used; then another unused one.
func testPendingKey(t *testing.T, h *harness) {
	ctx := t.Context()
	c, card := h.citizen(t, 6)
	used := map[string]bool{}
	for len(used) < len(card.keys) {
		first := race(Racers, func(int) string {
			n, err := h.s.PendingKey(t.Context(), c.UserID, card.rec.Serial)
			if err != nil {
				return "error: " + err.Error()
			}
			return n
		})
		n := first[0]
		for i, got := range first {
			if got != n {
				t.Fatalf("racer %d got pending %q, racer 0 %q", i, got, n)
			}
		}
		if _, ok := card.keys[n]; !ok || used[n] {
			t.Fatalf("PendingKey = %q (on card: %v, used: %v)", n, ok, used[n])
		}
		// A wrong key keeps the number.
		h.use(t, c, card.rec.Serial, n, "wrong", 100)
		again, err := h.s.PendingKey(ctx, c.UserID, card.rec.Serial)
		noErr(t, "PendingKey", err)
		if again != n {
			t.Fatalf("after a wrong key: pending %q, want %q", again, n)
		}
		r := h.use(t, c, card.rec.Serial, n, card.keys[n], 100)
		used[n] = true
		if r.Outcome != store.KeyOK || r.KeysLeft != len(card.keys)-len(used) {
			t.Fatalf("UseCardKey(%s) = %+v, want ok with %d left", n, r, len(card.keys)-len(used))
		}
	}
	_, err := h.s.PendingKey(ctx, c.UserID, card.rec.Serial)
	wantErr(t, "PendingKey(used up card)", err, store.ErrNotFound)
	_, err = h.s.PendingKey(ctx, c.UserID, "G000000000")
	wantErr(t, "PendingKey(unknown card)", err, store.ErrNotFound)
}

// testAttemptDeadline: a reservation that is never settled stops counting at its deadline,
// and one taken back costs nothing; settled failures lock at the limit, in the stored status.
func testAttemptDeadline(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	now := time.Now()
	for i := range MaxFailures {
		a, err := h.s.BeginAttempt(ctx, c.UserID, MaxFailures, now, time.Minute)
		noErr(t, "BeginAttempt", err)
		if a.Refused || a.Busy || a.ID == "" {
			t.Fatalf("attempt %d: %+v", i, a)
		}
	}
	a, err := h.s.BeginAttempt(ctx, c.UserID, MaxFailures, now, time.Minute)
	noErr(t, "BeginAttempt", err)
	if !a.Busy || a.Refused {
		t.Fatalf("with %d in flight: %+v, want busy", MaxFailures, a)
	}
	if got := h.load(t, c.UserID); got.Status != store.StatusActive || got.Failures != 0 {
		t.Fatalf("in flight: status %q failures %d, want active 0", got.Status, got.Failures)
	}
	// Past the deadline the abandoned reservations no longer count.
	later := now.Add(time.Minute + time.Second) // a margin for the round trip: Redis judges by its own clock
	a, err = h.s.BeginAttempt(ctx, c.UserID, MaxFailures, later, time.Minute)
	noErr(t, "BeginAttempt", err)
	if a.Busy || a.Refused {
		t.Fatalf("after the deadline: %+v", a)
	}
	noErr(t, "CancelAttempt", h.s.CancelAttempt(ctx, c.UserID, a))
	for i := 1; i <= MaxFailures; i++ {
		a, err := h.s.BeginAttempt(ctx, c.UserID, MaxFailures, later, time.Minute)
		noErr(t, "BeginAttempt", err)
		r, err := h.s.FailAttempt(ctx, c.UserID, MaxFailures, a, later)
		noErr(t, "FailAttempt", err)
		if want := (store.FailureResult{AttemptsLeft: MaxFailures - i, Locked: i == MaxFailures}); r != want {
			t.Fatalf("failure %d: %+v, want %+v", i, r, want)
		}
	}
	if got := h.load(t, c.UserID); got.Status != store.StatusBlocked || got.BlockReason != store.BlockFailures {
		t.Fatalf("at the limit: status %q (%s), want blocked for failures", got.Status, got.BlockReason)
	}
	a, err = h.s.BeginAttempt(ctx, c.UserID, MaxFailures, later, time.Minute)
	noErr(t, "BeginAttempt", err)
	if !a.Refused {
		t.Fatalf("locked: %+v, want refused", a)
	}
}

// testScriptsAfterFlush: scripts queued in a pipeline by SHA still run after Redis forgot
// them (a restart, SCRIPT FLUSH), each exactly once.
func testScriptsAfterFlush(t *testing.T, h *harness) {
	if h.b.Shared {
		t.Skip("SCRIPT FLUSH would disturb the other tests on a shared Redis; the cluster backend runs this on real Redis")
	}
	ctx := t.Context()
	c, card := h.citizen(t, 3)
	id := newID()
	_, err := h.s.SaveFlow(ctx, id, 0, []byte("x"), time.Hour, false)
	noErr(t, "SaveFlow", err)
	flush := func() {
		t.Helper()
		if cc, ok := h.s.Redis().(*redis.ClusterClient); ok {
			noErr(t, "SCRIPT FLUSH", cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
				return m.ScriptFlush(ctx).Err()
			}))
			return
		}
		noErr(t, "SCRIPT FLUSH", h.s.Redis().ScriptFlush(ctx).Err())
	}
	flush()
	pa, err := h.s.BeginPasswordAnswer(ctx, id, false, c.UserID, "", MaxFailures, time.Now(), attemptHold)
	noErr(t, "BeginPasswordAnswer after SCRIPT FLUSH", err)
	if pa.Citizen == nil || pa.Citizen.UserID != c.UserID || pa.FlowAttempt != 1 || h.inFlight(t, h.attemptsKey(c.UserID)) != 1 {
		t.Fatalf("BeginPasswordAnswer after SCRIPT FLUSH: %+v, attempt %d, %d in flight; want %s, 1, 1", pa.Citizen, pa.FlowAttempt, h.inFlight(t, h.attemptsKey(c.UserID)), c.UserID)
	}
	flush()
	_, _, v, err := h.s.AcceptPasswordSaving(ctx, pa.Reserved, store.FlowSave{ID: id, Prev: 1, Data: []byte("y"), TTL: time.Hour})
	noErr(t, "AcceptPasswordSaving after SCRIPT FLUSH", err)
	if v != 2 || h.inFlight(t, h.attemptsKey(c.UserID)) != 0 {
		t.Fatalf("AcceptPasswordSaving after SCRIPT FLUSH: v%d, %d in flight; want v2, 0", v, h.inFlight(t, h.attemptsKey(c.UserID)))
	}
	flush()
	// Typed with a dash: the first round trip only reads the index, the second runs the script.
	pa, err = h.s.BeginPasswordAnswer(ctx, id, true, dashed(c.CPR), c.CPR, MaxFailures, time.Now(), attemptHold)
	noErr(t, "BeginPasswordAnswer(cpr) after SCRIPT FLUSH", err)
	if pa.Citizen == nil || pa.Citizen.UserID != c.UserID || pa.FlowAttempt != 2 || pa.Flow.Version != 2 || h.inFlight(t, h.attemptsKey(c.UserID)) != 1 {
		t.Fatalf("BeginPasswordAnswer(cpr) after SCRIPT FLUSH: %+v, attempt %d, flow v%d; want %s, 2, v2, 1 in flight", pa.Citizen, pa.FlowAttempt, pa.Flow.Version, c.UserID)
	}
	flush()
	noErr(t, "Release after SCRIPT FLUSH", h.s.Release(ctx, id, true, pa.Reserved))
	flush()
	var number string
	for k := range card.keys {
		number = k
		break
	}
	r, n, err := h.s.UseCardKeyInFlow(ctx, id, c.UserID, card.rec.Serial, number, card.keys[number], MaxFailures)
	noErr(t, "UseCardKeyInFlow after SCRIPT FLUSH", err)
	if r.Outcome != store.KeyOK || n != 2 {
		t.Fatalf("UseCardKeyInFlow after SCRIPT FLUSH: %+v, attempt %d; want ok, 2", r, n)
	}
}

// testFlowAttempts: BeginPasswordAnswer reserves a flow attempt in its round trip, whoever the
// user ID names; a save with release gives it back; a missing flow reserves nothing (and
// creates no key).
func testFlowAttempts(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	id := newID()
	_, err := h.s.SaveFlow(ctx, id, 0, []byte("x"), time.Hour, false)
	noErr(t, "SaveFlow", err)
	for i := 1; i <= 3; i++ {
		pa := h.begin(t, id, false, c.UserID, "", MaxFailures)
		if pa.Citizen == nil || pa.Citizen.UserID != c.UserID || pa.FlowAttempt != i {
			t.Fatalf("BeginPasswordAnswer = %+v, %d; want %s, %d", pa.Citizen, pa.FlowAttempt, c.UserID, i)
		}
	}
	if pa := h.begin(t, id, false, NewUserID(), "", MaxFailures); pa.Citizen != nil || pa.FlowAttempt != 4 {
		t.Fatalf("unknown user: %+v, attempt %d; want no citizen, 4", pa.Citizen, pa.FlowAttempt)
	}
	_, err = h.s.SaveFlow(ctx, id, 1, []byte("y"), time.Hour, true)
	noErr(t, "SaveFlow(release)", err)
	noErr(t, "ReleaseFlowAttempt", h.s.ReleaseFlowAttempt(ctx, id))
	rec, err := h.s.LoadFlow(ctx, id)
	noErr(t, "LoadFlow", err)
	if rec.Failures != 2 || rec.Version != 2 {
		t.Fatalf("LoadFlow: failures %d v%d, want 2 v2", rec.Failures, rec.Version)
	}
	gone := newID()
	if pa := h.begin(t, gone, false, c.UserID, "", MaxFailures); pa.FlowAttempt != -1 {
		t.Fatalf("missing flow: attempt %d, want -1", pa.FlowAttempt)
	}
	_, err = h.s.LoadFlow(ctx, gone)
	wantErr(t, "LoadFlow(missing flow after BeginPasswordAnswer)", err, store.ErrNotFound)
	if h.exists(t, h.flowKey(gone)) {
		t.Fatal("BeginPasswordAnswer made a key for a missing flow")
	}
}

// ---- failures ----

func testRecordFailure(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	for i := 1; i <= MaxFailures+1; i++ {
		r, err := h.s.RecordFailure(ctx, c.UserID, MaxFailures)
		noErr(t, "RecordFailure", err)
		want := store.FailureResult{AttemptsLeft: max(MaxFailures-i, 0), Locked: i >= MaxFailures}
		if r != want {
			t.Fatalf("failure %d: %+v, want %+v", i, r, want)
		}
	}
	got := h.load(t, c.UserID)
	if got.Status != store.StatusBlocked || got.BlockReason != store.BlockFailures {
		t.Fatalf("status %q reason %q, want blocked for failures", got.Status, got.BlockReason)
	}
	_, err := h.s.RecordFailure(ctx, NewUserID(), MaxFailures)
	wantErr(t, "RecordFailure(unknown)", err, store.ErrNotFound)
}

// checkParallelFailures: of n racing failures, exactly max-1 may be answered "not locked",
// each with a different number of attempts left.
func checkParallelFailures(t *testing.T, results []store.FailureResult, max int) {
	t.Helper()
	var lefts []int
	for _, r := range results {
		if !r.Locked {
			lefts = append(lefts, r.AttemptsLeft)
		} else if r.AttemptsLeft != 0 {
			t.Errorf("locked with %d attempts left", r.AttemptsLeft)
		}
	}
	slices.Sort(lefts)
	want := []int{}
	for i := 1; i < max; i++ {
		want = append(want, i)
	}
	if !slices.Equal(lefts, want) {
		t.Fatalf("unlocked answers with attempts left %v, want %v: parallel guesses slipped past the limit", lefts, want)
	}
}

func testRecordFailureParallel(t *testing.T, h *harness) {
	c, _ := h.citizen(t, 1)
	results := race(Racers, func(int) store.FailureResult {
		r, err := h.s.RecordFailure(t.Context(), c.UserID, MaxFailures)
		if err != nil {
			t.Errorf("RecordFailure: %v", err)
		}
		return r
	})
	checkParallelFailures(t, results, MaxFailures)
	// Attempts past the limit are refused, not counted: the counter stops at the limit.
	if got := h.load(t, c.UserID); got.Status != store.StatusBlocked || got.Failures != MaxFailures {
		t.Fatalf("status %q failures %d, want blocked after %d", got.Status, got.Failures, MaxFailures)
	}
}

// testRecordFailureOperatorBlocked: FailureResult.Locked means "this or an earlier failure
// blocked the NemID". A NemID an operator blocked was not locked by failures, so a wrong
// password must count down like any other (else a wrong password alone tells a guesser that
// the NemID is blocked, and the citizen reads "too many failed attempts").
func testRecordFailureOperatorBlocked(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	noErr(t, "block", h.s.Redis().HSet(ctx, h.citizenKey(c.UserID), "status", store.StatusBlocked, "block_reason", "operator").Err())
	for i := 1; i <= MaxFailures+1; i++ {
		r, err := h.s.RecordFailure(ctx, c.UserID, MaxFailures)
		noErr(t, "RecordFailure", err)
		want := store.FailureResult{AttemptsLeft: max(MaxFailures-i, 0), Locked: i >= MaxFailures}
		if r != want {
			t.Fatalf("failure %d of an operator-blocked citizen: %+v, want %+v", i, r, want)
		}
	}
	got := h.load(t, c.UserID)
	if got.Status != store.StatusBlocked || got.BlockReason != "operator" {
		t.Fatalf("status %q reason %q, want the operator's block kept", got.Status, got.BlockReason)
	}
}

// unknownFailure settles one wrong answer for an unknown user ID the way the password step
// does it (reserve, then fail); like a client told "try again", it retries while attempts of
// other racers are in flight.
func (h *harness) unknownFailure(ctx context.Context, username string) (store.FailureResult, error) {
	for range 1000 {
		now := time.Now()
		a, err := h.s.BeginUnknownAttempt(ctx, username, MaxFailures, now, time.Minute)
		switch {
		case err != nil:
			return store.FailureResult{}, err
		case a.Refused:
			return store.FailureResult{Locked: true}, nil
		case a.Busy:
			time.Sleep(time.Millisecond)
			continue
		}
		return h.s.FailUnknownAttempt(ctx, username, MaxFailures, a, now)
	}
	return store.FailureResult{}, errors.New("still busy after 1000 tries")
}

func testUnknownFailure(t *testing.T, h *harness) {
	ctx := t.Context()
	name := "Nobody-" + NewUserID()
	for i := 1; i <= MaxFailures+1; i++ {
		locked, err := h.s.UnknownLocked(ctx, name, "", MaxFailures)
		noErr(t, "UnknownLocked", err)
		if locked != (i > MaxFailures) {
			t.Fatalf("before failure %d: UnknownLocked = %v", i, locked)
		}
		// Case does not matter, as it does not for user ids.
		u := name
		if i%2 == 0 {
			u = "nobody-" + name[len("Nobody-"):]
		}
		r, err := h.unknownFailure(ctx, u)
		noErr(t, "unknown failure", err)
		want := store.FailureResult{AttemptsLeft: max(MaxFailures-i, 0), Locked: i >= MaxFailures}
		if r != want {
			t.Fatalf("failure %d: %+v, want %+v", i, r, want)
		}
	}
	locked, err := h.s.UnknownLocked(ctx, "someone-else-"+NewUserID(), "", MaxFailures)
	noErr(t, "UnknownLocked", err)
	if locked {
		t.Fatal("another unknown user id is locked too")
	}
}

func testUnknownFailureParallel(t *testing.T, h *harness) {
	name := "racer-" + NewUserID()
	results := race(Racers, func(int) store.FailureResult {
		r, err := h.unknownFailure(t.Context(), name)
		if err != nil {
			t.Errorf("unknown failure: %v", err)
		}
		return r
	})
	checkParallelFailures(t, results, MaxFailures)
}

// testUnknownFailurePersists: an unknown user ID's counter lives as long as a real
// citizen's (no time resets either), so waiting between guesses tells nothing.
func testUnknownFailurePersists(t *testing.T, h *harness) {
	h.ownClock(t)
	ctx := t.Context()
	name := "ttl-" + NewUserID()
	for range MaxFailures {
		_, err := h.unknownFailure(ctx, name)
		noErr(t, "unknown failure", err)
	}
	h.b.Advance(t, h.b.TTL)
	locked, err := h.s.UnknownLocked(ctx, name, "", MaxFailures)
	noErr(t, "UnknownLocked", err)
	if !locked {
		t.Fatal("no longer locked after time passed: an unknown user ID would tell itself apart")
	}
	r, err := h.unknownFailure(ctx, name)
	noErr(t, "unknown failure", err)
	if !r.Locked || r.AttemptsLeft != 0 {
		t.Fatalf("after time passed: %+v, want still locked", r)
	}
}

// ---- flows ----

func newID() string { return fmt.Sprint("flow-", NewUserID(), NewUserID()) }

func testFlowCAS(t *testing.T, h *harness) {
	ctx := t.Context()
	id := newID()
	_, err := h.s.LoadFlow(ctx, id)
	wantErr(t, "LoadFlow(new)", err, store.ErrNotFound)
	_, err = h.s.SaveFlow(ctx, id, 1, []byte("x"), time.Hour, false)
	wantErr(t, "SaveFlow(missing, prev 1)", err, store.ErrConflict)

	v, err := h.s.SaveFlow(ctx, id, 0, []byte("one"), time.Hour, false)
	noErr(t, "SaveFlow(create)", err)
	if v != 1 {
		t.Fatalf("version = %d, want 1", v)
	}
	for _, prev := range []int64{0, 2, -1} {
		_, err = h.s.SaveFlow(ctx, id, prev, []byte("stale"), time.Hour, false)
		wantErr(t, fmt.Sprintf("SaveFlow(prev %d)", prev), err, store.ErrConflict)
	}
	v, err = h.s.SaveFlow(ctx, id, 1, []byte("two"), time.Hour, false)
	noErr(t, "SaveFlow(update)", err)
	if v != 2 {
		t.Fatalf("version = %d, want 2", v)
	}
	rec, err := h.s.LoadFlow(ctx, id)
	noErr(t, "LoadFlow", err)
	if d, v := rec.Data, rec.Version; string(d) != "two" || v != 2 {
		t.Fatalf("LoadFlow = %q v%d, want two v2", d, v)
	}
	// Binary data survives.
	bin := []byte{0, 1, 2, 0xff, '\n'}
	_, err = h.s.SaveFlow(ctx, id, 2, bin, time.Hour, false)
	noErr(t, "SaveFlow(binary)", err)
	rec, err = h.s.LoadFlow(ctx, id)
	noErr(t, "LoadFlow", err)
	if !bytes.Equal(rec.Data, bin) {
		t.Fatalf("LoadFlow = %v, want %v", rec.Data, bin)
	}
}

func testFlowRace(t *testing.T, h *harness) {
	ctx := t.Context()
	id := newID()
	_, err := h.s.SaveFlow(ctx, id, 0, []byte("start"), time.Hour, false)
	noErr(t, "SaveFlow", err)
	errs := race(Racers, func(i int) error {
		_, err := h.s.SaveFlow(t.Context(), id, 1, fmt.Appendf(nil, "writer %d", i), time.Hour, false)
		return err
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("writers %d and %d both saved at version 1", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("writer %d: %v, want ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no writer won")
	}
	rec, err := h.s.LoadFlow(ctx, id)
	noErr(t, "LoadFlow", err)
	if want := fmt.Sprintf("writer %d", winner); string(rec.Data) != want || rec.Version != 2 {
		t.Fatalf("LoadFlow = %q v%d, want %q v2", rec.Data, rec.Version, want)
	}
}

func testFlowRaceCreate(t *testing.T, h *harness) {
	id := newID()
	errs := race(Racers, func(i int) error {
		_, err := h.s.SaveFlow(t.Context(), id, 0, fmt.Appendf(nil, "writer %d", i), time.Hour, false)
		return err
	})
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("SaveFlow: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d writers created one flow, want 1", won)
	}
}

func testFlowTTL(t *testing.T, h *harness) {
	h.ownClock(t)
	ctx := t.Context()
	short, long := newID(), newID()
	_, err := h.s.SaveFlow(ctx, short, 0, []byte("x"), h.b.TTL, false)
	noErr(t, "SaveFlow", err)
	_, err = h.s.SaveFlow(ctx, long, 0, []byte("x"), time.Hour, false)
	noErr(t, "SaveFlow", err)
	// An update sets the TTL anew (here: from short to long).
	_, err = h.s.SaveFlow(ctx, long, 1, []byte("y"), time.Hour, false)
	noErr(t, "SaveFlow", err)
	_, err = h.s.LoadFlow(ctx, short)
	noErr(t, "LoadFlow before expiry", err)
	h.b.Advance(t, h.b.TTL)
	_, err = h.s.LoadFlow(ctx, short)
	wantErr(t, "LoadFlow after expiry", err, store.ErrNotFound)
	_, err = h.s.LoadFlow(ctx, long)
	noErr(t, "LoadFlow(long TTL)", err)
	// An expired flow starts over at version 0, not at its old version.
	_, err = h.s.SaveFlow(ctx, short, 1, []byte("z"), time.Hour, false)
	wantErr(t, "SaveFlow(expired, prev 1)", err, store.ErrConflict)
}

// ---- sessions ----

func testSessions(t *testing.T, h *harness) {
	ctx := t.Context()
	id, other := newID(), newID()
	_, err := h.s.Session(ctx, id)
	wantErr(t, "Session(missing)", err, store.ErrNotFound)
	noErr(t, "PutSession", h.s.PutSession(ctx, id, []byte(`{"a":1}`), time.Hour))
	noErr(t, "PutSession", h.s.PutSession(ctx, other, []byte(`{"b":2}`), time.Hour))
	got, err := h.s.Session(ctx, id)
	noErr(t, "Session", err)
	if string(got) != `{"a":1}` {
		t.Fatalf("Session = %s", got)
	}
	noErr(t, "PutSession(replace)", h.s.PutSession(ctx, id, []byte(`{"a":2}`), time.Hour))
	got, err = h.s.Session(ctx, id)
	noErr(t, "Session", err)
	if string(got) != `{"a":2}` {
		t.Fatalf("Session after replace = %s", got)
	}
	noErr(t, "DeleteSession", h.s.DeleteSession(ctx, id))
	_, err = h.s.Session(ctx, id)
	wantErr(t, "Session(deleted)", err, store.ErrNotFound)
	noErr(t, "DeleteSession(again)", h.s.DeleteSession(ctx, id))
	if _, err := h.s.Session(ctx, other); err != nil {
		t.Fatalf("deleting one session removed another: %v", err)
	}
}

func testSessionTTL(t *testing.T, h *harness) {
	h.ownClock(t)
	ctx := t.Context()
	id := newID()
	noErr(t, "PutSession", h.s.PutSession(ctx, id, []byte("s"), h.b.TTL))
	_, err := h.s.Session(ctx, id)
	noErr(t, "Session", err)
	h.b.Advance(t, h.b.TTL)
	_, err = h.s.Session(ctx, id)
	wantErr(t, "Session(expired)", err, store.ErrNotFound)
}

// ---- authorization codes ----

// codeFlow saves a finished flow bound to browser "b1", as the engine saves one.
func codeFlow(t *testing.T, h *harness, ttl time.Duration) string {
	id := newID()
	_, err := h.s.SaveFlowWith(t.Context(), store.FlowSave{ID: id, Data: []byte("done"), TTL: ttl, Done: true, Browser: "b1"})
	noErr(t, "SaveFlowWith(done)", err)
	return id
}

// testCodeOnePerGrant: a finished flow's code mark is claimed once, by its own browser, and
// only once the flow is done.
func testCodeOnePerGrant(t *testing.T, h *harness) {
	ctx := t.Context()
	open := newID()
	_, err := h.s.SaveFlowWith(ctx, store.FlowSave{ID: open, Data: []byte("open"), TTL: time.Minute, Browser: "b1"})
	noErr(t, "SaveFlowWith(open)", err)
	_, c, err := h.s.LoadFlowClaiming(ctx, open, "code", "b1", "1000")
	noErr(t, "LoadFlowClaiming(open)", err)
	if c.Claimed || c.Value != "" || !c.Judged {
		t.Fatalf("a flow not done: %+v, want nothing claimed", c)
	}
	id := codeFlow(t, h, time.Minute)
	if _, c, _ = h.s.LoadFlowClaiming(ctx, id, "code", "b2", "1000"); c.Claimed {
		t.Fatal("another browser claimed the flow's code mark")
	}
	rec, c, err := h.s.LoadFlowClaiming(ctx, id, "code", "b1", "1000")
	noErr(t, "LoadFlowClaiming", err)
	if !c.Claimed || c.Value != "1000" || string(rec.Data) != "done" {
		t.Fatalf("first claim: %+v %q, want claimed 1000", c, rec.Data)
	}
	if _, c, _ = h.s.LoadFlowClaiming(ctx, id, "code", "b1", "2000"); c.Claimed || c.Value != "1000" {
		t.Fatalf("second claim: %+v, want refused, value 1000", c)
	}
	_, _, err = h.s.LoadFlowClaiming(ctx, newID(), "code", "b1", "1000")
	wantErr(t, "LoadFlowClaiming(missing)", err, store.ErrNotFound)
	// A finished flow bound to no browser is claimed by no request without one either.
	unbound := newID()
	_, err = h.s.SaveFlowWith(ctx, store.FlowSave{ID: unbound, Data: []byte("done"), TTL: time.Minute, Done: true})
	noErr(t, "SaveFlowWith(done, unbound)", err)
	if _, c, _ = h.s.LoadFlowClaiming(ctx, unbound, "code", "", "1000"); c.Claimed {
		t.Fatal("a request without a browser claimed an unbound flow's code mark")
	}
	// A save by an earlier release writes the data and version only: the state kept beside
	// them is stale, and the claim is left to the caller's judging.
	old := codeFlow(t, h, time.Minute)
	noErr(t, "earlier release's save", h.s.Redis().HSet(ctx, h.prefix+"flow:"+old, "v", "2", "d", "open again").Err())
	if _, c, _ = h.s.LoadFlowClaiming(ctx, old, "code", "b1", "1000"); c.Claimed || c.Judged {
		t.Fatalf("after an earlier release's save: %+v, want not judged, not claimed", c)
	}
	// Racers for one mark: exactly one claims it.
	race2 := codeFlow(t, h, time.Minute)
	var mu sync.Mutex
	claimed := 0
	results := race(Racers, func(i int) error {
		_, c, err := h.s.LoadFlowClaiming(t.Context(), race2, "code", "b1", fmt.Sprint(i+1))
		if c.Claimed {
			mu.Lock()
			claimed++
			mu.Unlock()
		}
		return err
	})
	for _, err := range results {
		noErr(t, "LoadFlowClaiming(race)", err)
	}
	if claimed != 1 {
		t.Fatalf("%d racers claimed the code mark, want 1", claimed)
	}
}

// redeem issues tokens for a code made under its flow's mark, as the token endpoint does.
func redeem(ctx context.Context, h *harness, grant, code string) (string, error) {
	at := newID()
	t := issue(grant, at, "", "")
	t.Code, t.CodeMarked = code, true
	return at, h.s.IssueTokens(ctx, t)
}

func codeState(t *testing.T, h *harness, grant, code string) error {
	t.Helper()
	g, err := h.s.LoadCodeGrant(t.Context(), grant, code, "code", "")
	noErr(t, "LoadCodeGrant", err)
	return g.State
}

func testConsumeCode(t *testing.T, h *harness) {
	ctx := t.Context()
	grant, code := codeFlow(t, h, time.Minute), newID()
	wantErr(t, "code state (no mark)", codeState(t, h, grant, code), store.ErrNotFound)
	// A code not made under a mark, and not stored either, is refused by the issue too.
	u := issue(grant, newID(), "", "")
	u.Code = code
	err := h.s.IssueTokens(ctx, u)
	wantErr(t, "IssueTokens(unknown code)", err, store.ErrNotFound)
	if errors.Is(err, store.ErrReplay) {
		t.Fatal("an unknown code is reported as a replay")
	}
	_, c, err := h.s.LoadFlowClaiming(ctx, grant, "code", "b1", "1234")
	noErr(t, "LoadFlowClaiming", err)
	if !c.Claimed {
		t.Fatal("code mark not claimed")
	}
	who, _ := h.citizen(t, 1)
	g, err := h.s.LoadCodeGrant(ctx, grant, code, "code", who.UserID)
	noErr(t, "LoadCodeGrant", err)
	if g.State != nil || g.Made != "1234" || string(g.Flow.Data) != "done" || g.Citizen == nil || g.Citizen.UserID != who.UserID {
		t.Fatalf("LoadCodeGrant = %q %q %v %+v, want done 1234 nil and the citizen", g.Flow.Data, g.Made, g.State, g.Citizen)
	}
	if g, _ := h.s.LoadCodeGrant(ctx, grant, code, "code", NewUserID()); g.Citizen != nil {
		t.Fatal("LoadCodeGrant found a citizen that does not exist")
	}
	noErr(t, "code state twice (reading consumes nothing)", codeState(t, h, grant, code))
	at, err := redeem(ctx, h, grant, code)
	noErr(t, "redeem", err)
	h.wantAccess(t, grant, at, true)
	wantErr(t, "code state (after redeem)", codeState(t, h, grant, code), store.ErrReplay)
	_, err = redeem(ctx, h, grant, code)
	wantErr(t, "redeem(replay)", err, store.ErrReplay)
	// The replay revoked what the first redemption issued.
	h.wantAccess(t, grant, at, false)
	_, err = redeem(ctx, h, grant, code)
	wantErr(t, "redeem(after revocation)", err, store.ErrRevoked)
	_, err = h.s.LoadCodeGrant(ctx, newID(), code, "code", "")
	wantErr(t, "LoadCodeGrant(no flow)", err, store.ErrNotFound)
}

// testCodeStoredBefore: a code stored as its digest (made before codes were marked on their
// flow) is redeemed once, and another code of its grant not at all.
func testCodeStoredBefore(t *testing.T, h *harness) {
	ctx := t.Context()
	grant, code := codeFlow(t, h, time.Minute), newID()
	sum := sha256.Sum256([]byte(code))
	noErr(t, "SET old code", h.s.Redis().Set(ctx, h.prefix+"{g:"+grant+"}:code", base64.RawURLEncoding.EncodeToString(sum[:]), time.Minute).Err())
	noErr(t, "code state (old)", codeState(t, h, grant, code))
	wantErr(t, "code state (another code)", codeState(t, h, grant, newID()), store.ErrNotFound)
	u := issue(grant, newID(), "", "")
	u.Code = code // not marked: the stored digest is what is redeemed
	noErr(t, "redeem(old)", h.s.IssueTokens(ctx, u))
	wantErr(t, "code state (old, after redeem)", codeState(t, h, grant, code), store.ErrReplay)
}

func testConsumeCodeRace(t *testing.T, h *harness) {
	grant, code := codeFlow(t, h, time.Minute), newID()
	results := race(Racers, func(int) error {
		_, err := redeem(t.Context(), h, grant, code)
		return err
	})
	ok := 0
	for _, err := range results {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrReplay) && !errors.Is(err, store.ErrRevoked):
			t.Errorf("redeem: %v, want nil, ErrReplay or ErrRevoked", err)
		}
	}
	if ok != 1 {
		t.Fatalf("code redeemed %d times, want exactly once", ok)
	}
}

// testCodeTTL: a code lives no longer than its flow (the front end judges its own, shorter
// lifetime from the mark's time).
func testCodeTTL(t *testing.T, h *harness) {
	h.ownClock(t)
	ctx := t.Context()
	grant := codeFlow(t, h, h.b.TTL)
	_, c, err := h.s.LoadFlowClaiming(ctx, grant, "code", "b1", "1")
	noErr(t, "LoadFlowClaiming", err)
	if !c.Claimed {
		t.Fatal("not claimed")
	}
	h.b.Advance(t, h.b.TTL)
	_, err = h.s.LoadCodeGrant(ctx, grant, newID(), "code", "")
	wantErr(t, "LoadCodeGrant(flow expired)", err, store.ErrNotFound)
}

// ---- tokens ----

func issue(grant, access, refresh, old string) store.TokenIssue {
	t := store.TokenIssue{
		Grant: grant, AccessID: access, AccessData: []byte("at:" + access), AccessTTL: time.Hour,
		OldRefresh: old, RevokedRemains: time.Hour,
	}
	if refresh != "" {
		t.Refresh, t.RefreshData, t.RefreshTTL = refresh, []byte("rt:"+refresh), 2*time.Hour
	}
	return t
}

func (h *harness) wantAccess(t *testing.T, grant, id string, present bool) {
	t.Helper()
	d, err := h.s.AccessToken(t.Context(), grant, id)
	switch {
	case present && (err != nil || string(d) != "at:"+id):
		t.Fatalf("AccessToken(%s) = %q, %v; want it", id, d, err)
	case !present && !errors.Is(err, store.ErrNotFound):
		t.Fatalf("AccessToken(%s) = %q, %v; want ErrNotFound", id, d, err)
	}
}

func (h *harness) wantRefresh(t *testing.T, grant, token string, want error) {
	t.Helper()
	d, err := h.s.RefreshToken(t.Context(), grant, token)
	switch {
	case want == nil && (err != nil || string(d) != "rt:"+token):
		t.Fatalf("RefreshToken(%s) = %q, %v; want it", token, d, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("RefreshToken(%s) = %q, %v; want %v", token, d, err, want)
	}
}

func testTokenRotation(t *testing.T, h *harness) {
	ctx := t.Context()
	g := newID()
	noErr(t, "IssueTokens", h.s.IssueTokens(ctx, issue(g, "a1", "r1", "")))
	h.wantAccess(t, g, "a1", true)
	h.wantRefresh(t, g, "r1", nil)
	noErr(t, "IssueTokens(rotate)", h.s.IssueTokens(ctx, issue(g, "a2", "r2", "r1")))
	h.wantAccess(t, g, "a2", true)
	h.wantRefresh(t, g, "r2", nil)
	h.wantRefresh(t, g, "r1", store.ErrReplay)
	noErr(t, "IssueTokens(rotate again)", h.s.IssueTokens(ctx, issue(g, "a3", "r3", "r2")))
	h.wantRefresh(t, g, "r3", nil)
	// Access token only (no refresh token in the response).
	noErr(t, "IssueTokens(access only)", h.s.IssueTokens(ctx, issue(g, "a4", "", "")))
	h.wantAccess(t, g, "a4", true)
	noErr(t, "DeleteAccessToken", h.s.DeleteAccessToken(ctx, g, "a4"))
	h.wantAccess(t, g, "a4", false)
	h.wantAccess(t, g, "a3", true)
	// Tokens belong to their grant.
	h.wantAccess(t, newID(), "a3", false)
	h.wantRefresh(t, newID(), "r3", store.ErrNotFound)
	revoked, err := h.s.GrantRevoked(ctx, g)
	noErr(t, "GrantRevoked", err)
	if revoked {
		t.Fatal("rotation revoked the grant")
	}
}

func testRefreshReuse(t *testing.T, h *harness) {
	ctx := t.Context()
	g := newID()
	noErr(t, "IssueTokens", h.s.IssueTokens(ctx, issue(g, "a1", "r1", "")))
	noErr(t, "IssueTokens(rotate)", h.s.IssueTokens(ctx, issue(g, "a2", "r2", "r1")))
	err := h.s.IssueTokens(ctx, issue(g, "a3", "r3", "r1"))
	wantErr(t, "IssueTokens(reuse r1)", err, store.ErrReplay)
	for _, a := range []string{"a1", "a2", "a3"} {
		h.wantAccess(t, g, a, false)
	}
	h.wantRefresh(t, g, "r2", store.ErrNotFound)
	h.wantRefresh(t, g, "r3", store.ErrNotFound)
	revoked, err := h.s.GrantRevoked(ctx, g)
	noErr(t, "GrantRevoked", err)
	if !revoked {
		t.Fatal("reuse did not revoke the grant")
	}
	err = h.s.IssueTokens(ctx, issue(g, "a4", "r4", "r2"))
	wantErr(t, "IssueTokens(after revocation)", err, store.ErrRevoked)
	h.wantAccess(t, g, "a4", false)
}

func testUnknownRefresh(t *testing.T, h *harness) {
	ctx := t.Context()
	g := newID()
	noErr(t, "IssueTokens", h.s.IssueTokens(ctx, issue(g, "a1", "r1", "")))
	err := h.s.IssueTokens(ctx, issue(g, "a2", "r2", "nope"))
	wantErr(t, "IssueTokens(unknown refresh token)", err, store.ErrNotFound)
	if errors.Is(err, store.ErrReplay) || errors.Is(err, store.ErrRevoked) {
		t.Fatalf("unknown refresh token: %v, want plain not found", err)
	}
	h.wantAccess(t, g, "a2", false)
	h.wantRefresh(t, g, "r2", store.ErrNotFound)
	h.wantAccess(t, g, "a1", true)
	h.wantRefresh(t, g, "r1", nil)
}

func testRotationRace(t *testing.T, h *harness) {
	ctx := t.Context()
	g := newID()
	noErr(t, "IssueTokens", h.s.IssueTokens(ctx, issue(g, "a0", "r0", "")))
	errs := race(Racers, func(i int) error {
		return h.s.IssueTokens(t.Context(), issue(g, fmt.Sprint("a", i+1), fmt.Sprint("r", i+1), "r0"))
	})
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrReplay), errors.Is(err, store.ErrRevoked):
		default:
			t.Errorf("rotation %d: %v, want nil, ErrReplay or ErrRevoked", i, err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d concurrent rotations of one refresh token succeeded, want 1", ok, Racers)
	}
	// The losers' reuse revoked the grant: nothing of it is left.
	revoked, err := h.s.GrantRevoked(ctx, g)
	noErr(t, "GrantRevoked", err)
	if !revoked {
		t.Fatal("concurrent reuse did not revoke the grant")
	}
	for i := range Racers + 1 {
		h.wantAccess(t, g, fmt.Sprint("a", i), false)
		h.wantRefresh(t, g, fmt.Sprint("r", i), store.ErrNotFound)
	}
}

func testRevokeGrant(t *testing.T, h *harness) {
	ctx := t.Context()
	g, other := newID(), newID()
	noErr(t, "IssueTokens", h.s.IssueTokens(ctx, issue(g, "a1", "r1", "")))
	noErr(t, "IssueTokens", h.s.IssueTokens(ctx, issue(other, "a1", "r1", "")))
	noErr(t, "RevokeGrant", h.s.RevokeGrant(ctx, g, time.Hour))
	h.wantAccess(t, g, "a1", false)
	h.wantRefresh(t, g, "r1", store.ErrNotFound)
	err := h.s.IssueTokens(ctx, issue(g, "a2", "", ""))
	wantErr(t, "IssueTokens(revoked)", err, store.ErrRevoked)
	err = h.s.IssueTokens(ctx, issue(g, "a2", "r2", "r1"))
	wantErr(t, "IssueTokens(revoked, rotation)", err, store.ErrRevoked)
	h.wantAccess(t, g, "a2", false)
	revoked, err := h.s.GrantRevoked(ctx, g)
	noErr(t, "GrantRevoked", err)
	if !revoked {
		t.Fatal("GrantRevoked = false")
	}
	// Other grants are untouched.
	h.wantAccess(t, other, "a1", true)
	h.wantRefresh(t, other, "r1", nil)
	// Revoking a grant that never had tokens also refuses later ones.
	fresh := newID()
	noErr(t, "RevokeGrant(fresh)", h.s.RevokeGrant(ctx, fresh, time.Hour))
	wantErr(t, "IssueTokens(fresh revoked)", h.s.IssueTokens(ctx, issue(fresh, "a1", "", "")), store.ErrRevoked)
}

func testTokenTTL(t *testing.T, h *harness) {
	h.ownClock(t)
	ctx := t.Context()
	g := newID()
	ti := issue(g, "a1", "r1", "")
	ti.AccessTTL = h.b.TTL
	noErr(t, "IssueTokens", h.s.IssueTokens(ctx, ti))
	h.wantAccess(t, g, "a1", true)
	revoked := newID()
	noErr(t, "RevokeGrant", h.s.RevokeGrant(ctx, revoked, h.b.TTL))
	h.b.Advance(t, h.b.TTL)
	h.wantAccess(t, g, "a1", false)
	h.wantRefresh(t, g, "r1", nil) // its own, longer TTL
	// The revocation marker lasts as long as it was told.
	noErr(t, "IssueTokens(after the revocation ran out)", h.s.IssueTokens(ctx, issue(revoked, "a1", "", "")))
}

// ---- pairwise subjects, meta ----

func testPairwise(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	a1, err := h.s.PairwiseSubject(ctx, c.UserID, "https://rp.example/a", "fresh-1")
	noErr(t, "PairwiseSubject", err)
	a2, err := h.s.PairwiseSubject(ctx, c.UserID, "https://rp.example/a", "fresh-2")
	noErr(t, "PairwiseSubject", err)
	b, err := h.s.PairwiseSubject(ctx, c.UserID, "https://rp.example/b", "fresh-3")
	noErr(t, "PairwiseSubject", err)
	if a1 != "fresh-1" || a2 != a1 {
		t.Fatalf("sector a: %q then %q, want fresh-1 twice", a1, a2)
	}
	if b == a1 || b != "fresh-3" {
		t.Fatalf("sector b: %q, want fresh-3 (not sector a's %q)", b, a1)
	}
	other, _ := h.citizen(t, 1)
	o, err := h.s.PairwiseSubject(ctx, other.UserID, "https://rp.example/a", "fresh-4")
	noErr(t, "PairwiseSubject", err)
	if o != "fresh-4" {
		t.Fatalf("another citizen in sector a: %q, want fresh-4", o)
	}
}

// testPairwiseLookups: reading a pairwise subject never makes one; CitizenWithSubject reads
// the citizen and its subject together.
func testPairwiseLookups(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	sub, err := h.s.KnownPairwiseSubject(ctx, c.UserID, "rp-a")
	noErr(t, "KnownPairwiseSubject", err)
	got, none, err := h.s.CitizenWithSubject(ctx, c.UserID, "rp-a")
	noErr(t, "CitizenWithSubject", err)
	if sub != "" || none != "" || got.UserID != c.UserID {
		t.Fatalf("before any subject: %q, %q, citizen %q", sub, none, got.UserID)
	}
	made, err := h.s.PairwiseSubject(ctx, c.UserID, "rp-a", "fresh-1")
	noErr(t, "PairwiseSubject", err)
	sub, err = h.s.KnownPairwiseSubject(ctx, c.UserID, "rp-a")
	noErr(t, "KnownPairwiseSubject", err)
	_, with, err := h.s.CitizenWithSubject(ctx, c.UserID, "rp-a")
	noErr(t, "CitizenWithSubject", err)
	if sub != made || with != made {
		t.Fatalf("after PairwiseSubject %q: known %q, with citizen %q", made, sub, with)
	}
	if _, _, err := h.s.CitizenWithSubject(ctx, "no-such-citizen", "rp-a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CitizenWithSubject of nobody: %v, want ErrNotFound", err)
	}
}

func testPairwiseRace(t *testing.T, h *harness) {
	c, _ := h.citizen(t, 1)
	for _, sector := range []string{"sector-a", "sector-b"} {
		subs := race(Racers, func(i int) string {
			s, err := h.s.PairwiseSubject(t.Context(), c.UserID, sector, fmt.Sprintf("%s-%d", sector, i))
			if err != nil {
				t.Errorf("PairwiseSubject: %v", err)
			}
			return s
		})
		for _, s := range subs {
			if s != subs[0] {
				t.Fatalf("%s: racers got different subjects: %q", sector, subs)
			}
		}
	}
	a, _ := h.s.PairwiseSubject(t.Context(), c.UserID, "sector-a", "late")
	b, _ := h.s.PairwiseSubject(t.Context(), c.UserID, "sector-b", "late")
	if a == b {
		t.Fatalf("two sectors share subject %q", a)
	}
}

func testMetaRace(t *testing.T, h *harness) {
	name := "secret-" + NewUserID()
	type res struct {
		v       []byte
		created bool
	}
	results := race(Racers, func(i int) res {
		v, created, err := h.s.GetOrCreateMeta(t.Context(), name, fmt.Appendf(nil, "value-%d", i))
		if err != nil {
			t.Errorf("GetOrCreateMeta: %v", err)
		}
		return res{v, created}
	})
	created := 0
	for _, r := range results {
		if r.created {
			created++
		}
		if !bytes.Equal(r.v, results[0].v) {
			t.Fatalf("instances disagree: %q vs %q", r.v, results[0].v)
		}
	}
	if created != 1 {
		t.Fatalf("%d writers created the value, want 1", created)
	}
	v, created2, err := h.s.GetOrCreateMeta(t.Context(), name, []byte("late"))
	noErr(t, "GetOrCreateMeta", err)
	if created2 || !bytes.Equal(v, results[0].v) {
		t.Fatalf("later call: %q created=%v", v, created2)
	}
}

func testClients(t *testing.T, h *harness) {
	ctx := t.Context()
	c := &store.Client{ID: "client-" + NewUserID(), Name: "Netbank", RedirectURIs: []string{"https://bank.example/cb"}, Scopes: []string{"openid"}}
	noErr(t, "CreateClient", h.s.CreateClient(ctx, c))
	wantErr(t, "CreateClient(again)", h.s.CreateClient(ctx, c), store.ErrConflict)
	got, err := h.s.Client(ctx, c.ID)
	noErr(t, "Client", err)
	if got.Name != "Netbank" || !slices.Equal(got.RedirectURIs, c.RedirectURIs) {
		t.Fatalf("Client = %+v", got)
	}
	c.Name = "Netbank 2"
	noErr(t, "PutClient", h.s.PutClient(ctx, c))
	got, err = h.s.Client(ctx, c.ID)
	noErr(t, "Client", err)
	if got.Name != "Netbank 2" {
		t.Fatalf("after PutClient: %+v", got)
	}
	_, err = h.s.Client(ctx, "nobody")
	wantErr(t, "Client(unknown)", err, store.ErrNotFound)
}

// ---- unavailability ----

func testClosedClient(t *testing.T, h *harness) {
	client := h.b.Client(t)
	s := store.New(client, RandomPrefix(), Pepper)
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	CheckUnavailable(t, s)
}

// CheckUnavailable asserts that every kind of store call on s fails with ErrUnavailable.
func CheckUnavailable(t *testing.T, s *store.Store) {
	t.Helper()
	ctx := t.Context()
	calls := map[string]func() error{
		"Ping": func() error { return s.Ping(ctx) },
		"CreateCitizen": func() error {
			return s.CreateCitizen(ctx, newCitizen(), newCard(1).rec)
		},
		"Citizen": func() error { _, err := s.Citizen(ctx, NewUserID()); return err },
		"CitizenByUsername": func() error {
			cpr := NewCPR()
			_, err := s.CitizenByUsername(ctx, cpr, cpr)
			return err
		},
		"UseCardKey": func() error {
			_, _, err := s.UseCardKeyInFlow(ctx, "", NewUserID(), "G000000001", "0001", "h", MaxFailures)
			return err
		},
		"PendingKey":    func() error { _, err := s.PendingKey(ctx, NewUserID(), "G000000001"); return err },
		"RecordFailure": func() error { _, err := s.RecordFailure(ctx, NewUserID(), MaxFailures); return err },
		"BeginUnknownAttempt": func() error {
			_, err := s.BeginUnknownAttempt(ctx, "x", MaxFailures, time.Now(), time.Minute)
			return err
		},
		"SaveFlow": func() error { _, err := s.SaveFlow(ctx, "f", 0, []byte("x"), time.Hour, false); return err },
		"LoadFlow": func() error { _, err := s.LoadFlow(ctx, "f"); return err },
		"BeginAttempt": func() error {
			_, err := s.BeginAttempt(ctx, NewUserID(), MaxFailures, time.Now(), time.Minute)
			return err
		},
		"Session":          func() error { _, err := s.Session(ctx, "s"); return err },
		"LoadFlowClaiming": func() error { _, _, err := s.LoadFlowClaiming(ctx, "f", "code", "b", "1"); return err },
		"LoadCodeGrant":    func() error { _, err := s.LoadCodeGrant(ctx, "g", "c", "code", "1"); return err },
		"BeginPasswordAnswer": func() error {
			_, err := s.BeginPasswordAnswer(ctx, "f", true, "123456789", "", MaxFailures, time.Now(), time.Minute)
			return err
		},
		"BeginPasswordAnswer(cpr)": func() error {
			cpr := NewCPR()
			_, err := s.BeginPasswordAnswer(ctx, "", false, dashed(cpr), cpr, MaxFailures, time.Now(), time.Minute)
			return err
		},
		"BeginPasswordAnswer(alias)": func() error {
			_, err := s.BeginPasswordAnswer(ctx, "", false, "alias", "", MaxFailures, time.Now(), time.Minute)
			return err
		},
		"FailReserved": func() error {
			_, err := s.FailReserved(ctx, store.Attempt{ID: "a"}, MaxFailures, time.Now())
			return err
		},
		"Release": func() error { return s.Release(ctx, "f", true, store.Attempt{ID: "a"}) },
		"SaveFlowWith": func() error {
			_, err := s.SaveFlowWith(ctx, store.FlowSave{ID: "f", Data: []byte("x"), TTL: time.Minute,
				Session: &store.SessionWrite{ID: "s", Data: []byte("s"), TTL: time.Minute}})
			return err
		},
		"AcceptPasswordSaving": func() error {
			_, _, _, err := s.AcceptPasswordSaving(ctx, store.Attempt{ID: "a"}, store.FlowSave{ID: "f", Data: []byte("x"), TTL: time.Minute})
			return err
		},
		"UseCardKeyWithSubject": func() error {
			_, _, _, err := s.UseCardKey(ctx, "f", true, NewUserID(), "G000000001", "0001", "h", MaxFailures, "sector", "fresh")
			return err
		},
		"IssueTokens":     func() error { return s.IssueTokens(ctx, issue("g", "a", "r", "")) },
		"PairwiseSubject": func() error { _, err := s.PairwiseSubject(ctx, "1", "s", "f"); return err },
		"GetOrCreateMeta": func() error { _, _, err := s.GetOrCreateMeta(ctx, "m", []byte("v")); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := call(); !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("%s: err = %v, want ErrUnavailable", name, err)
			}
		})
	}
}
