package web

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/idp/throttle"
	"github.com/nemidp/nemidp/keys/codecard"
	keysecret "github.com/nemidp/nemidp/keys/secret"
)

// cardFixture is a fixture whose engine orders the new card at the threshold.
func cardFixture(t *testing.T) *fixture {
	f := newFixture(t)
	f.issuer.Secret = keysecret.Secret("card-print-secret-0123456789abcdef")
	f.engine.CardOrders = f.issuer
	return f
}

// cardCitizen issues a NemID whose threshold orders a new card at the first key used.
func (f *fixture) cardCitizen(t *testing.T) *issuance.Result {
	t.Helper()
	th := codecard.KeysPerCard
	res, err := f.issuer.IssueWithPassword(context.Background(), issuance.Request{CPR: storetest.NewCPR(), Name: "Karen Jensen",
		CardThreshold: &th}, appPassword)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// passwordView opens a login in a new browser and answers the password: the codecard view.
func (f *fixture) passwordView(t *testing.T, uid string) (*http.Client, string, View) {
	t.Helper()
	b, id, v := f.login(t, appCitizen{uid: uid})
	if v.Step != flows.StepCodeCard {
		t.Fatalf("after the password: %+v", v)
	}
	return b, id, v
}

func (f *fixture) switchCard(t *testing.T, b *http.Client, id, serial, csrf string) (int, View, string) {
	t.Helper()
	return do(t, b, "POST", f.srv.URL+"/login/"+id+"/card", "application/json", `{"serial":"`+serial+`"}`, jsonPost(csrf))
}

func (f *fixture) key(t *testing.T, b *http.Client, id, key, csrf string) (int, View, string) {
	t.Helper()
	return do(t, b, "POST", f.srv.URL+"/login/"+id+"/codecard", "application/json", `{"key":"`+key+`"}`, jsonPost(csrf))
}

func printedKey(c codecard.Card, number string) string {
	for _, k := range c.Keys {
		if k.Number == number {
			return k.Key
		}
	}
	return ""
}

// TestCardSwitch: a login past the threshold orders a card (sent, printable once); the next
// login carries new_card_sent and the usable cards and switches to the sent card, whose first
// key activates it and retires the old one; a card of another citizen, a retired or blocked
// card and a switch without CSRF are refused, and nothing of it is counted.
func TestCardSwitch(t *testing.T) {
	t.Parallel()
	f := cardFixture(t)
	ctx := context.Background()
	res := f.cardCitizen(t)
	old := res.Card.Serial

	b, id, v := f.passwordView(t, res.UserID)
	if v.Notice != nil || len(v.Cards) != 0 || v.CardSerial != old {
		t.Fatalf("first login's card view: %+v", v)
	}
	if code, v, raw := f.key(t, b, id, keyOf(res, v.KeyNumber), v.CSRFToken); code != 200 || v.Step != flows.StepDone {
		t.Fatalf("first key: %d %s", code, raw)
	}
	cards, err := f.st.Cards(ctx, res.UserID)
	if err != nil || len(cards) != 2 {
		t.Fatalf("cards after the threshold: %+v %v", cards, err)
	}
	var sent store.CardInfo
	for _, c := range cards {
		if c.Serial != old {
			sent = c
		}
	}
	if sent.Status != store.CardSent || sent.Origin != store.OriginAuto || sent.Replaces != old || !sent.Printable {
		t.Fatalf("the ordered card: %+v", sent)
	}
	// From here on the threshold is far away, so the new card's keys order nothing more.
	if err := f.st.Redis().HSet(ctx, storetest.CitizenKey(f.prefix, res.UserID), "card_threshold", 1).Err(); err != nil {
		t.Fatal(err)
	}
	sealed, err := f.st.TakeCardPrint(ctx, res.UserID, sent.Serial)
	if err != nil {
		t.Fatal(err)
	}
	printed, err := f.issuer.OpenPrint(sealed)
	if err != nil || printed.Serial != sent.Serial || len(printed.Keys) != codecard.KeysPerCard {
		t.Fatalf("printed card: %+v %v", printed.Serial, err)
	}

	// A login at the old card, left open (its key is answered after the switch elsewhere).
	ob, oid, ov := f.passwordView(t, res.UserID)

	b, id, v = f.passwordView(t, res.UserID)
	want := []string{old, sent.Serial}
	slices.Sort(want)
	if v.Notice == nil || v.Notice.Code != flows.NoticeNewCardSent || v.Notice.Message == "" || !slices.Equal(v.Cards, want) || v.CardSerial != old {
		t.Fatalf("login with a sent card: %+v", v)
	}
	other := f.cardCitizen(t)
	for _, tc := range []struct {
		name, serial string
		hdr          map[string]string
		status       int
		code         string
	}{
		{"another citizen's card", other.Card.Serial, jsonPost(v.CSRFToken), 400, flows.CodeInvalidRequest},
		{"no such card", "G000000000", jsonPost(v.CSRFToken), 400, flows.CodeInvalidRequest},
		{"not a serial", "12345", jsonPost(v.CSRFToken), 400, flows.CodeInvalidRequest},
		{"no CSRF token", sent.Serial, jsonAccept, 403, "csrf"},
		{"a wrong CSRF token", sent.Serial, jsonPost("x" + v.CSRFToken), 403, "csrf"},
	} {
		code, got, raw := do(t, b, "POST", f.srv.URL+"/login/"+id+"/card", "application/json", `{"serial":"`+tc.serial+`"}`, tc.hdr)
		if code != tc.status || got.Error == nil || got.Error.Code != tc.code {
			t.Fatalf("%s: %d %s, want %d %s", tc.name, code, raw, tc.status, tc.code)
		}
	}
	if fl, err := f.engine.Load(ctx, id); err != nil || fl.CardSerial != old || fl.Failures != 0 {
		t.Fatalf("refused switches changed the flow: %+v %v", fl, err)
	}
	code, v, raw := f.switchCard(t, b, id, sent.Serial, v.CSRFToken)
	if code != 200 || v.Step != flows.StepCodeCard || v.CardSerial != sent.Serial || printedKey(printed, v.KeyNumber) == "" {
		t.Fatalf("switch to the sent card: %d %s", code, raw)
	}
	if code, v, raw := f.key(t, b, id, printedKey(printed, v.KeyNumber), v.CSRFToken); code != 200 || v.Step != flows.StepDone {
		t.Fatalf("first key of the sent card: %d %s", code, raw)
	}
	c, err := f.st.Citizen(ctx, res.UserID)
	if err != nil || c.ActiveCard != sent.Serial || c.Failures != 0 {
		t.Fatalf("citizen after the new card's first key: %+v %v", c, err)
	}
	if st, _, _ := f.st.CardStatus(ctx, res.UserID, old); st != store.CardRetired {
		t.Fatalf("old card %s, want retired", st)
	}

	// The login left at the old card: its key is refused as the retired card's, not counted.
	code, ov2, raw := f.key(t, ob, oid, keyOf(res, ov.KeyNumber), ov.CSRFToken)
	if code != 403 || ov2.Error == nil || ov2.Error.Code != flows.CodeCardRetired || ov2.Error.AttemptsLeft != nil ||
		!strings.Contains(ov2.Error.Message, "replaced by your new card") {
		t.Fatalf("old card's key after the switch: %d %s", code, raw)
	}
	if fl, err := f.engine.Load(ctx, oid); err != nil || fl.Failures != 0 || fl.Step != flows.StepCodeCard {
		t.Fatalf("retired card's key counted against the flow: %+v %v", fl, err)
	}
	if c, _ := f.st.Citizen(ctx, res.UserID); c.Failures != 0 {
		t.Fatalf("retired card's key counted against the citizen: %d", c.Failures)
	}
	if code, v, raw := f.switchCard(t, ob, oid, old, ov.CSRFToken); code != 403 || v.Error == nil || v.Error.Code != flows.CodeCardRetired {
		t.Fatalf("switch to the retired card: %d %s", code, raw)
	}

	// The next login asks the new card and no longer says a card was sent.
	_, _, v = f.passwordView(t, res.UserID)
	if v.Notice != nil || v.CardSerial != sent.Serial || len(v.Cards) != 0 {
		t.Fatalf("login after the activation: %+v", v)
	}

	// A lost card: its open login's key and a switch back to it are refused as blocked.
	lb, lid, lv := f.passwordView(t, other.UserID)
	issued, err := f.issuer.OrderCard(ctx, other.UserID, issuance.CardOrder{Reason: "lost", By: "op", Operator: true})
	if err != nil || issued.Card == nil || issued.Status != store.CardActive {
		t.Fatalf("lost card order: %+v %v", issued, err)
	}
	if code, v, raw := f.key(t, lb, lid, keyOf(other, lv.KeyNumber), lv.CSRFToken); code != 403 || v.Error == nil || v.Error.Code != flows.CodeCardBlocked {
		t.Fatalf("lost card's key: %d %s", code, raw)
	}
	if code, v, raw := f.switchCard(t, lb, lid, other.Card.Serial, lv.CSRFToken); code != 403 || v.Error == nil || v.Error.Code != flows.CodeCardBlocked {
		t.Fatalf("switch to the lost card: %d %s", code, raw)
	}
	if code, v, raw := f.switchCard(t, lb, lid, issued.Serial, lv.CSRFToken); code != 200 || v.CardSerial != issued.Serial {
		t.Fatalf("switch to the new card: %d %s", code, raw)
	}
}

// TestCardSwitchForm: the HTML page of the codecard step offers the other usable cards, and
// its form switches with a redirect back to the page.
func TestCardSwitchForm(t *testing.T) {
	t.Parallel()
	f := cardFixture(t)
	res := f.cardCitizen(t)
	b, id, v := f.passwordView(t, res.UserID)
	f.key(t, b, id, keyOf(res, v.KeyNumber), v.CSRFToken) // orders the new card
	b, id, v = f.passwordView(t, res.UserID)
	code, _, page := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", nil)
	if code != 200 || !strings.Contains(page, `action="/login/`+id+`/card"`) || !strings.Contains(page, `data-code="new_card_sent"`) {
		t.Fatalf("codecard page: %d\n%s", code, page)
	}
	var serial string
	for _, s := range v.Cards {
		if s != v.CardSerial {
			serial = s
		}
	}
	req, _ := http.NewRequest("POST", f.srv.URL+"/login/"+id+"/card", strings.NewReader("serial="+serial+"&csrf_token="+v.CSRFToken))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login/"+id {
		t.Fatalf("form switch: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, v, _ := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept); v.CardSerial != serial {
		t.Fatalf("after the form switch: %+v", v)
	}
}

// TestUsedUpCard: a citizen whose only card is used up is told so and how to get a new card;
// nothing is blocked or counted, however often they try.
func TestUsedUpCard(t *testing.T) {
	t.Parallel()
	f := cardFixture(t)
	ctx := context.Background()
	res := f.cardCitizen(t)
	unused := storetest.CitizenKey(f.prefix, res.UserID) + ":card:" + res.Card.Serial + ":unused"
	if err := f.st.Redis().Del(ctx, unused).Err(); err != nil { // every key used
		t.Fatal(err)
	}
	for range 7 { // more than the lockout limit
		id := f.flow(t)
		b := browser()
		_, v, _ := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept)
		code, v, raw := do(t, b, "POST", f.srv.URL+"/login/"+id+"/password", "application/json",
			`{"username":"`+res.UserID+`","password":"`+appPassword+`"}`, jsonPost(v.CSRFToken))
		if code != 403 || v.Error == nil || v.Error.Code != flows.CodeNoKeysLeft || !strings.Contains(v.Error.Message, "borgerservice") ||
			v.Error.AttemptsLeft != nil {
			t.Fatalf("used-up card: %d %s", code, raw)
		}
	}
	c, err := f.st.Citizen(ctx, res.UserID)
	if err != nil || c.Status != store.StatusActive || c.Failures != 0 {
		t.Fatalf("citizen after logins with a used-up card: %+v %v", c, err)
	}
}

// TestCardRunsOutMidLogin: a login whose card ran out of keys while it waited at the codecard
// step (the last key used by another login) is moved to another usable card of the citizen.
func TestCardRunsOutMidLogin(t *testing.T) {
	t.Parallel()
	f := cardFixture(t)
	ctx := context.Background()
	res := f.cardCitizen(t)
	extra, err := f.issuer.OrderCard(ctx, res.UserID, issuance.CardOrder{Reason: "extra", By: "op", Operator: true})
	if err != nil {
		t.Fatal(err)
	}
	b, id, v := f.passwordView(t, res.UserID)
	if v.CardSerial != res.Card.Serial {
		t.Fatalf("asks %s, want the default card %s", v.CardSerial, res.Card.Serial)
	}
	unused := storetest.CitizenKey(f.prefix, res.UserID) + ":card:" + res.Card.Serial + ":unused"
	if err := f.st.Redis().Del(ctx, unused).Err(); err != nil { // every key used meanwhile
		t.Fatal(err)
	}
	code, v, raw := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept)
	if code != 200 || v.CardSerial != extra.Serial || printedKey(*extra.Card, v.KeyNumber) == "" {
		t.Fatalf("view once the card ran out: %d %s", code, raw)
	}
	if code, v, raw := f.key(t, b, id, printedKey(*extra.Card, v.KeyNumber), v.CSRFToken); code != 200 || v.Step != flows.StepDone {
		t.Fatalf("key of the other card: %d %s", code, raw)
	}
}

// TestCardRetiredMidLogin: a login asking a card that was retired meanwhile (another login
// activated its successor) refuses the key as card_retired, uncounted, and moves on to another
// usable card of the citizen instead of asking the retired one again.
func TestCardRetiredMidLogin(t *testing.T) {
	t.Parallel()
	f := cardFixture(t)
	ctx := context.Background()
	res := f.cardCitizen(t)
	extra, err := f.issuer.OrderCard(ctx, res.UserID, issuance.CardOrder{Reason: "extra", By: "op", Operator: true})
	if err != nil {
		t.Fatal(err)
	}
	b, id, v := f.passwordView(t, res.UserID)
	if v.CardSerial != res.Card.Serial {
		t.Fatalf("asks %s, want the default card %s", v.CardSerial, res.Card.Serial)
	}
	card := storetest.CitizenKey(f.prefix, res.UserID) + ":card:" + res.Card.Serial
	if err := f.st.Redis().HSet(ctx, card, "status", "retired").Err(); err != nil {
		t.Fatal(err)
	}
	code, v2, raw := f.key(t, b, id, printedKey(res.Card, v.KeyNumber), v.CSRFToken)
	if code != 403 || v2.Error == nil || v2.Error.Code != flows.CodeCardRetired || v2.Error.AttemptsLeft != nil {
		t.Fatalf("key of the retired card: %d %s, want 403 card_retired, uncounted", code, raw)
	}
	code, v3, raw := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept)
	if code != 200 || v3.CardSerial != extra.Serial || printedKey(*extra.Card, v3.KeyNumber) == "" {
		t.Fatalf("view after the refusal: %d %s, want the extra card %s asked", code, raw, extra.Serial)
	}
	if code, v, raw := f.key(t, b, id, printedKey(*extra.Card, v3.KeyNumber), v3.CSRFToken); code != 200 || v.Step != flows.StepDone {
		t.Fatalf("key of the other card: %d %s", code, raw)
	}
}

// TestAutoOrderAudited: the card the system orders at the threshold is an audit line, by
// system, naming the card it replaces and never a key.
func TestAutoOrderAudited(t *testing.T) {
	t.Parallel()
	f := cardFixture(t)
	rec := &audit.Recorder{}
	f.issuer.Audit = audit.New(rec, throttle.Proxies{})
	res := f.cardCitizen(t)
	b, id, v := f.passwordView(t, res.UserID)
	if code, v, raw := f.key(t, b, id, keyOf(res, v.KeyNumber), v.CSRFToken); code != 200 || v.Step != flows.StepDone {
		t.Fatalf("first key: %d %s", code, raw)
	}
	lines := rec.Find("card.ordered")
	if len(lines) != 1 || lines[0]["by"] != audit.BySystem || lines[0]["user_id"] != res.UserID {
		t.Fatalf("audit card.ordered: %v", lines)
	}
	if d, _ := lines[0]["detail"].(map[string]any); d["replaces"] != res.Card.Serial || d["reason"] != "threshold" {
		t.Fatalf("audit detail: %v", lines[0])
	}
	for _, k := range res.Card.Keys {
		if strings.Contains(rec.String(), `"`+k.Key+`"`) {
			t.Fatal("a card key in the audit trail")
		}
	}
}
