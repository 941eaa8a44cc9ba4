package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/store"
)

// Cards beyond the first (issue 15 point 2): the automatic order at the threshold, sent
// cards, lost and extra cards, the printed form kept once.

// sentCard is a card ordered by post with a printed form.
func sentCard(n int) testCard {
	c := newCard(n)
	c.rec.Status = store.CardSent
	c.rec.Print = []byte("sealed-" + c.rec.Serial)
	return c
}

func (h *harness) setThreshold(t *testing.T, uid string, n int) {
	t.Helper()
	noErr(t, "set threshold", h.s.Redis().HSet(t.Context(), h.citizenKey(uid), "card_threshold", n).Err())
}

func (h *harness) cardInfo(t *testing.T, uid string) map[string]store.CardInfo {
	t.Helper()
	cs, err := h.s.Cards(t.Context(), uid)
	noErr(t, "Cards", err)
	out := map[string]store.CardInfo{}
	for _, c := range cs {
		out[c.Serial] = c
	}
	return out
}

func (h *harness) eventsOf(t *testing.T, uid, typ string) []store.Event {
	t.Helper()
	evs, err := h.s.Events(t.Context(), uid, 50)
	noErr(t, "Events", err)
	var out []store.Event
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// testAutoOrderOnce: key uses at the threshold, racing, claim the order of the successor
// exactly once; the claim writes the card (sent, printable once, card_sent) and no later key
// use claims again; a released claim is claimed by the next key use; a stale claim's write is
// refused.
func testAutoOrderOnce(t *testing.T, h *harness) {
	ctx := t.Context()
	c, card := h.citizen(t, Racers+4)
	ns := card.numbers()
	// Above the threshold: no claim.
	h.setThreshold(t, c.UserID, 1)
	if r := h.use(t, c, card.rec.Serial, ns[0], card.keys[ns[0]], MaxFailures); r.Outcome != store.KeyOK || r.OrderClaim != "" {
		t.Fatalf("key use above the threshold: %+v, want ok without a claim", r)
	}
	h.setThreshold(t, c.UserID, 1000)
	claims := race(Racers, func(i int) string {
		n := ns[1+i]
		r, _, err := h.s.UseCardKeyInFlow(ctx, "", c.UserID, card.rec.Serial, n, card.keys[n], MaxFailures)
		if err != nil || r.Outcome != store.KeyOK {
			t.Errorf("key %s: %+v %v", n, r, err)
		}
		return r.OrderClaim
	})
	var claim string
	for _, cl := range claims {
		if cl != "" {
			if claim != "" {
				t.Fatalf("two key uses claimed the order: %q and %q", claim, cl)
			}
			claim = cl
		}
	}
	if claim == "" {
		t.Fatal("no key use at the threshold claimed the order")
	}
	next := sentCard(5)
	_, err := h.s.WriteCardOrder(ctx, c.UserID, store.CardOrder{Mode: store.OriginAuto, Card: next.rec, By: "system",
		Claim: "pending:1:forged", Post: true}, time.Now())
	wantErr(t, "auto order with another claim", err, store.ErrConflict)
	next = sentCard(5) // the failed write released its serial claim; a fresh card all the same
	_, err = h.s.WriteCardOrder(ctx, c.UserID, store.CardOrder{Mode: store.OriginAuto, Card: next.rec, By: "system", Claim: claim, Post: true}, time.Now())
	noErr(t, "auto order", err)
	_, err = h.s.WriteCardOrder(ctx, c.UserID, store.CardOrder{Mode: store.OriginAuto, Card: sentCard(5).rec, By: "system", Claim: claim, Post: true}, time.Now())
	wantErr(t, "second auto order with the same claim", err, store.ErrConflict)
	n := ns[Racers+1]
	if r := h.use(t, c, card.rec.Serial, n, card.keys[n], MaxFailures); r.Outcome != store.KeyOK || r.OrderClaim != "" {
		t.Fatalf("key use after the order: %+v, want no claim", r)
	}
	info := h.cardInfo(t, c.UserID)
	if got := info[next.rec.Serial]; got.Status != store.CardSent || got.Origin != store.OriginAuto || got.Replaces != card.rec.Serial ||
		got.OrderedBy != "system" || !got.Printable || got.KeysLeft != 5 || len(info) != 2 {
		t.Fatalf("cards after the order: %+v", info)
	}
	if got := h.load(t, c.UserID); got.ActiveCard != card.rec.Serial {
		t.Fatalf("default card %s, want still %s until the new one is used", got.ActiveCard, card.rec.Serial)
	}
	if evs := h.eventsOf(t, c.UserID, "card_sent"); len(evs) != 1 || evs[0].Fields["serial"] != next.rec.Serial || evs[0].Fields["by"] != "system" {
		t.Fatalf("card_sent events: %+v", evs)
	}
	// Printable once, racing.
	got := race(Racers, func(int) error { _, err := h.s.TakeCardPrint(ctx, c.UserID, next.rec.Serial); return err })
	took := 0
	for _, err := range got {
		if err == nil {
			took++
		} else if !errors.Is(err, store.ErrPrintTaken) {
			t.Fatalf("racing print take: %v", err)
		}
	}
	if took != 1 {
		t.Fatalf("%d racing print takes got the card, want exactly one", took)
	}
	_, err = h.s.TakeCardPrint(ctx, c.UserID, next.rec.Serial)
	wantErr(t, "print taken again", err, store.ErrPrintTaken)
	_, err = h.s.TakeCardPrint(ctx, c.UserID, card.rec.Serial)
	wantErr(t, "print of a card handed over", err, store.ErrPrintTaken)
	_, err = h.s.TakeCardPrint(ctx, c.UserID, "G000000000")
	wantErr(t, "print of no card", err, store.ErrNotFound)

	// A released claim: the next key use claims again.
	c2, card2 := h.citizen(t, 4)
	h.setThreshold(t, c2.UserID, 1000)
	ns2 := card2.numbers()
	r := h.use(t, c2, card2.rec.Serial, ns2[0], card2.keys[ns2[0]], MaxFailures)
	if r.OrderClaim == "" {
		t.Fatalf("first key use at the threshold: %+v, want a claim", r)
	}
	if r2 := h.use(t, c2, card2.rec.Serial, ns2[1], card2.keys[ns2[1]], MaxFailures); r2.OrderClaim != "" {
		t.Fatalf("key use while the order is claimed: %+v, want no claim", r2)
	}
	noErr(t, "ReleaseCardOrder", h.s.ReleaseCardOrder(ctx, c2.UserID, card2.rec.Serial, r.OrderClaim))
	if r3 := h.use(t, c2, card2.rec.Serial, ns2[2], card2.keys[ns2[2]], MaxFailures); r3.OrderClaim == "" || r3.OrderClaim == r.OrderClaim {
		t.Fatalf("key use after the release: %+v, want a new claim", r3)
	}
	// A claim left by a crash goes stale, and the next key use takes it over.
	noErr(t, "stale claim", h.s.Redis().HSet(ctx, h.cardKey(c2.UserID, card2.rec.Serial), "successor", "pending:1000:crashed").Err())
	if r4 := h.use(t, c2, card2.rec.Serial, ns2[3], card2.keys[ns2[3]], MaxFailures); r4.OrderClaim == "" {
		t.Fatalf("key use over a stale claim: %+v, want a claim", r4)
	}
}

// testSentCardActivation: a sent card's first right key makes it active and the default
// card and retires the card it replaces, in the same step; the retired card's keys, right or
// wrong, are refused and not counted; a retired or blocked card cannot be switched to.
func testSentCardActivation(t *testing.T, h *harness) {
	ctx := t.Context()
	c, old := h.citizen(t, 6)
	h.setThreshold(t, c.UserID, 1000)
	ns := old.numbers()
	r := h.use(t, c, old.rec.Serial, ns[0], old.keys[ns[0]], MaxFailures)
	next := sentCard(4)
	_, err := h.s.WriteCardOrder(ctx, c.UserID, store.CardOrder{Mode: store.OriginAuto, Card: next.rec, By: "system", Claim: r.OrderClaim, Post: true}, time.Now())
	noErr(t, "auto order", err)
	// The old card still works until the new one is used.
	if r := h.use(t, c, old.rec.Serial, ns[1], old.keys[ns[1]], MaxFailures); r.Outcome != store.KeyOK {
		t.Fatalf("old card before the new one is used: %+v", r)
	}
	if st, n, err := h.s.UsableCardKey(ctx, c.UserID, next.rec.Serial); err != nil || st != store.CardSent || n == "" {
		t.Fatalf("UsableCardKey(sent card) = %q %q %v", st, n, err)
	}
	nn := next.numbers()
	// A wrong key of the sent card activates nothing.
	if r := h.use(t, c, next.rec.Serial, nn[0], "wrong", MaxFailures); r.Outcome != store.KeyWrong || r.Activated {
		t.Fatalf("wrong key of the sent card: %+v", r)
	}
	if r := h.use(t, c, next.rec.Serial, nn[0], next.keys[nn[0]], MaxFailures); r.Outcome != store.KeyOK || !r.Activated {
		t.Fatalf("first right key of the sent card: %+v, want ok, activated", r)
	}
	info := h.cardInfo(t, c.UserID)
	if info[next.rec.Serial].Status != store.CardActive || info[old.rec.Serial].Status != store.CardRetired {
		t.Fatalf("after activation: %+v", info)
	}
	if got := h.load(t, c.UserID); got.ActiveCard != next.rec.Serial || got.Failures != 0 {
		t.Fatalf("citizen after activation: active %s failures %d", got.ActiveCard, got.Failures)
	}
	for _, k := range []string{old.keys[ns[2]], "wrong"} {
		if r := h.use(t, c, old.rec.Serial, ns[2], k, MaxFailures); r.Outcome != store.KeyRetired {
			t.Fatalf("key of the retired card: %+v, want retired", r)
		}
	}
	if got := h.load(t, c.UserID); got.Failures != 0 || got.Status != store.StatusActive {
		t.Fatalf("retired card's keys counted: failures %d status %s", got.Failures, got.Status)
	}
	if unused, err := h.s.KeyUnused(ctx, c.UserID, old.rec.Serial, ns[2]); err != nil || !unused {
		t.Fatalf("a retired card's refused key was used up: %v %v", unused, err)
	}
	if _, _, err := h.s.UsableCardKey(ctx, c.UserID, old.rec.Serial); !errors.Is(err, store.ErrCardNotUsable) {
		t.Fatalf("UsableCardKey(retired) = %v, want ErrCardNotUsable", err)
	}
	other, _ := h.citizen(t, 2)
	if _, _, err := h.s.UsableCardKey(ctx, other.UserID, next.rec.Serial); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UsableCardKey(another citizen's card) = %v, want ErrNotFound", err)
	}
	// The password answer asks the new default card and knows no card is waiting any more.
	pa := h.begin(t, "", false, c.UserID, "", MaxFailures)
	noErr(t, "Release", h.s.Release(ctx, "", false, pa.Reserved))
	if pa.CardSerial != next.rec.Serial || pa.CardSent || !slices.Equal(pa.Cards, []string{next.rec.Serial}) {
		t.Fatalf("password answer after activation: serial %s sent %v cards %v", pa.CardSerial, pa.CardSent, pa.Cards)
	}
}

// testPasswordAnswerCards: the password answer names the usable cards, says one was sent,
// and asks another usable card when the default one is used up.
func testPasswordAnswerCards(t *testing.T, h *harness) {
	ctx := t.Context()
	c, card := h.citizen(t, 1)
	extra := sentCard(3)
	_, err := h.s.WriteCardOrder(ctx, c.UserID, store.CardOrder{Mode: store.OriginExtra, Card: extra.rec, By: "self", Limit: store.SelfExtraCards, Post: true}, time.Now())
	noErr(t, "extra card", err)
	pa := h.begin(t, "", false, c.UserID, "", MaxFailures)
	noErr(t, "Release", h.s.Release(ctx, "", false, pa.Reserved))
	want := []string{card.rec.Serial, extra.rec.Serial}
	slices.Sort(want)
	if pa.CardSerial != card.rec.Serial || !pa.CardSent || !slices.Equal(pa.Cards, want) || pa.KeyNumber == "" {
		t.Fatalf("password answer with a sent extra card: %+v", pa)
	}
	n := card.numbers()[0]
	h.use(t, c, card.rec.Serial, n, card.keys[n], MaxFailures) // the default card is used up
	pa = h.begin(t, "", false, c.UserID, "", MaxFailures)
	noErr(t, "Release", h.s.Release(ctx, "", false, pa.Reserved))
	if pa.CardSerial != extra.rec.Serial || pa.KeyNumber == "" || !slices.Contains(extra.numbers(), pa.KeyNumber) {
		t.Fatalf("password answer with the default card used up: %+v, want a key of %s", pa, extra.rec.Serial)
	}
}

// testLostCard: a lost-card order blocks every usable card at once with the new card, with a
// card_blocked event each and card_sent when posted; the blocked cards' keys are refused and
// not counted, and their printed forms are gone.
func testLostCard(t *testing.T, h *harness) {
	ctx := t.Context()
	c, card := h.citizen(t, 4)
	extra := sentCard(3)
	_, err := h.s.WriteCardOrder(ctx, c.UserID, store.CardOrder{Mode: store.OriginExtra, Card: extra.rec, By: "op", Limit: store.OperatorExtraCards, Post: true}, time.Now())
	noErr(t, "extra card", err)
	lost := sentCard(5)
	blocked, err := h.s.WriteCardOrder(ctx, c.UserID, store.CardOrder{Mode: store.OriginLost, Card: lost.rec, By: "op", Post: true, Address: "Poste restante, 1000 København K"}, time.Now())
	noErr(t, "lost card", err)
	slices.Sort(blocked)
	want := []string{card.rec.Serial, extra.rec.Serial}
	slices.Sort(want)
	if !slices.Equal(blocked, want) {
		t.Fatalf("blocked %v, want %v", blocked, want)
	}
	info := h.cardInfo(t, c.UserID)
	if info[card.rec.Serial].Status != store.CardBlocked || info[extra.rec.Serial].Status != store.CardBlocked ||
		info[lost.rec.Serial].Status != store.CardSent || info[lost.rec.Serial].Origin != store.OriginLost ||
		info[lost.rec.Serial].Replaces != card.rec.Serial || info[extra.rec.Serial].Printable {
		t.Fatalf("cards after the lost order: %+v", info)
	}
	if got := h.load(t, c.UserID); got.ActiveCard != lost.rec.Serial {
		t.Fatalf("default card %s, want %s", got.ActiveCard, lost.rec.Serial)
	}
	if evs := h.eventsOf(t, c.UserID, "card_blocked"); len(evs) != 2 {
		t.Fatalf("card_blocked events: %+v", evs)
	}
	sent := h.eventsOf(t, c.UserID, "card_sent")
	if len(sent) != 2 || sent[0].Fields["serial"] != lost.rec.Serial || sent[0].Fields["address"] != "Poste restante, 1000 København K" {
		t.Fatalf("card_sent events (newest first): %+v", sent)
	}
	n := card.numbers()[0]
	for _, k := range []string{card.keys[n], "wrong"} {
		if r := h.use(t, c, card.rec.Serial, n, k, MaxFailures); r.Outcome != store.KeyCardBlocked {
			t.Fatalf("key of the lost card: %+v, want card_blocked", r)
		}
	}
	if got := h.load(t, c.UserID); got.Failures != 0 {
		t.Fatalf("blocked card's keys counted: %d", got.Failures)
	}
	// The new card's first key activates it; nothing is unblocked by it.
	ln := lost.numbers()[0]
	if r := h.use(t, c, lost.rec.Serial, ln, lost.keys[ln], MaxFailures); r.Outcome != store.KeyOK || !r.Activated {
		t.Fatalf("first key of the new card: %+v", r)
	}
	if info := h.cardInfo(t, c.UserID); info[card.rec.Serial].Status != store.CardBlocked {
		t.Fatalf("the lost card is %s after the new card's first key, want blocked", info[card.rec.Serial].Status)
	}
	_, err = h.s.WriteCardOrder(ctx, NewUserID(), store.CardOrder{Mode: store.OriginLost, Card: sentCard(2).rec, By: "op"}, time.Now())
	wantErr(t, "lost card of no citizen", err, store.ErrNotFound)
}

// testExtraLimits: a self-service order is refused at 3 usable extra cards, an operator's at
// 10; cards that are no longer usable do not count.
func testExtraLimits(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 2)
	order := func(limit int) error {
		_, err := h.s.WriteCardOrder(ctx, c.UserID, store.CardOrder{Mode: store.OriginExtra, Card: sentCard(2).rec, By: "x", Limit: limit, Post: true}, time.Now())
		return err
	}
	for i := range store.SelfExtraCards {
		noErr(t, fmt.Sprintf("self-service extra card %d", i+1), order(store.SelfExtraCards))
	}
	wantErr(t, "4th self-service extra card", order(store.SelfExtraCards), store.ErrCardLimit)
	for i := store.SelfExtraCards; i < store.OperatorExtraCards; i++ {
		noErr(t, fmt.Sprintf("operator extra card %d", i+1), order(store.OperatorExtraCards))
	}
	wantErr(t, "11th operator extra card", order(store.OperatorExtraCards), store.ErrCardLimit)
	if n := len(h.cardInfo(t, c.UserID)); n != 1+store.OperatorExtraCards {
		t.Fatalf("%d cards, want %d (a refused order writes nothing)", n, 1+store.OperatorExtraCards)
	}
	// A retired extra card no longer counts.
	for s, info := range h.cardInfo(t, c.UserID) {
		if info.Origin == store.OriginExtra {
			noErr(t, "retire", h.s.Redis().HSet(ctx, h.cardKey(c.UserID, s), "status", store.CardRetired).Err())
			break
		}
	}
	noErr(t, "operator extra card after one retired", order(store.OperatorExtraCards))
}

// testExtraLimitRace: orders racing at the limit: exactly one passes.
func testExtraLimitRace(t *testing.T, h *harness) {
	ctx := t.Context()
	for _, limit := range []int{store.SelfExtraCards, store.OperatorExtraCards} {
		c, _ := h.citizen(t, 2)
		for range limit - 1 {
			_, err := h.s.WriteCardOrder(ctx, c.UserID, store.CardOrder{Mode: store.OriginExtra, Card: sentCard(2).rec, By: "x", Limit: limit}, time.Now())
			noErr(t, "extra card", err)
		}
		cards := make([]testCard, Racers)
		for i := range cards {
			cards[i] = sentCard(2)
		}
		errs := race(Racers, func(i int) error {
			_, err := h.s.WriteCardOrder(ctx, c.UserID, store.CardOrder{Mode: store.OriginExtra, Card: cards[i].rec, By: "x", Limit: limit}, time.Now())
			return err
		})
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrCardLimit):
				t.Fatalf("racing order: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("limit %d: %d racing orders passed, want exactly 1", limit, ok)
		}
		if n := len(h.cardInfo(t, c.UserID)); n != 1+limit {
			t.Fatalf("limit %d: %d cards, want %d", limit, n, 1+limit)
		}
	}
}

// testUsedUpPrefersActiveCard: with the default card used up, a password answer asks an active
// card the citizen holds before one still in the post, whatever order the set gives them in.
func testUsedUpPrefersActiveCard(t *testing.T, h *harness) {
	ctx := t.Context()
	for i := range 6 { // several citizens: the card set's order varies
		c, card := h.citizen(t, 1)
		posted := sentCard(3)
		_, err := h.s.WriteCardOrder(ctx, c.UserID, store.CardOrder{Mode: store.OriginExtra, Card: posted.rec, By: "self", Limit: store.SelfExtraCards, Post: true}, time.Now())
		noErr(t, "posted extra card", err)
		held := newCard(3)
		_, err = h.s.WriteCardOrder(ctx, c.UserID, store.CardOrder{Mode: store.OriginExtra, Card: held.rec, By: "op", Limit: store.OperatorExtraCards}, time.Now())
		noErr(t, "handed-over extra card", err)
		n := card.numbers()[0]
		h.use(t, c, card.rec.Serial, n, card.keys[n], MaxFailures) // the default card is used up
		pa := h.begin(t, "", false, c.UserID, "", MaxFailures)
		noErr(t, "Release", h.s.Release(ctx, "", false, pa.Reserved))
		if pa.CardSerial != held.rec.Serial {
			t.Fatalf("citizen %d: asks %s, want the active extra card %s before the posted %s", i, pa.CardSerial, held.rec.Serial, posted.rec.Serial)
		}
	}
}
