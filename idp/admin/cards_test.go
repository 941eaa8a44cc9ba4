package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/cardprint"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/idp/throttle"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
	keysecret "github.com/nemidp/nemidp/keys/secret"
)

const cardsToken = "operator-token-0123456789abcdef"

// syncBuffer is the audit output, written by handlers and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type cardsAPI struct {
	mux   *http.ServeMux
	st    *store.Store
	audit *syncBuffer
}

func newCardsAPI(t *testing.T) *cardsAPI {
	t.Helper()
	st, _ := storetest.NewStorePrefixed(t, storetest.Real().Client(t))
	hasher, err := codecard.NewHasher([]byte("card-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	buf := &syncBuffer{}
	a := &API{Store: st, Token: "desk1:" + cardsToken, PublicURL: "https://idp.example/", Audit: audit.New(buf, throttle.Proxies{}),
		Issuer: &issuance.Issuer{Store: st, Passwords: password.NewHasher(password.TestParams), Cards: hasher,
			Secret: keysecret.Secret("card-print-secret-0123456789abcdef")}}
	mux := http.NewServeMux()
	a.Register(mux)
	return &cardsAPI{mux: mux, st: st, audit: buf}
}

func (c *cardsAPI) call(t *testing.T, method, path, body string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	var rd *strings.Reader
	if body != "" {
		rd = strings.NewReader(body)
	} else {
		rd = strings.NewReader("")
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Authorization", "Bearer "+cardsToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	c.mux.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

func errorOf(raw string) (code, msg string) {
	var e struct {
		Error struct{ Code, Message string }
	}
	_ = json.Unmarshal([]byte(raw), &e)
	return e.Error.Code, e.Error.Message
}

func (c *cardsAPI) citizen(t *testing.T, uid string) CitizenView {
	t.Helper()
	code, raw, _ := c.call(t, "GET", "/admin/v1/citizens/"+uid, "")
	if code != 200 {
		t.Fatalf("GET citizen: %d %s", code, raw)
	}
	var v CitizenView
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestIssuanceIDCheck: the ID check and channel decide whether the card is handed over (in
// the answer) or sent by post (its serial only, printable once, a card_sent event to the
// postal address or the address); bad values are refused naming the field.
func TestIssuanceIDCheck(t *testing.T) {
	t.Parallel()
	api := newCardsAPI(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, extra string
		status      int
		field       string // named by the refusal
		sent        bool
		to          string // card_sent address
		idCheck     string
		channel     string
	}{
		{"defaults: photo at borgerservice", ``, 201, "", false, "", "photo", "borgerservice"},
		{"photo at a bank", `,"id_check":"photo","channel":"bank"`, 201, "", false, "", "photo", "bank"},
		{"two IDs", `,"id_check":"two_ids","address":"Gade 1, 1000 København K"`, 201, "", true, "Gade 1, 1000 København K", "two_ids", "borgerservice"},
		{"witness, postal address", `,"id_check":"witness","address":"Gade 1","postal_address":"Poste restante, 1000 København K"`, 201, "", true, "Poste restante, 1000 København K", "witness", "borgerservice"},
		{"online with photo", `,"channel":"online","postal_address":"c/o Hansen, Vej 2"`, 201, "", true, "c/o Hansen, Vej 2", "photo", "online"},
		{"embassy, threshold", `,"channel":"embassy","card_threshold":30`, 201, "", false, "", "photo", "embassy"},
		{"witness without an address", `,"id_check":"witness"`, 400, "address", false, "", "", ""},
		{"unknown id check", `,"id_check":"passport"`, 400, "id_check", false, "", "", ""},
		{"OCES at a bank without photo", `,"channel":"bank","id_check":"two_ids","address":"Gade 1"`, 400, "id_check", false, "", "", ""},
		{"bank-only at a bank with two IDs", `,"channel":"bank","kind":"bank","id_check":"two_ids","address":"Gade 1"`, 201, "", true, "Gade 1", "two_ids", "bank"},
		{"unknown channel", `,"channel":"post"`, 400, "channel", false, "", "", ""},
		{"threshold 0", `,"card_threshold":0`, 400, "card_threshold", false, "", "", ""},
		{"threshold over the card", `,"card_threshold":149`, 400, "card_threshold", false, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"cpr":"` + storetest.NewCPR() + `","name":"Karen Jensen"` + tc.extra + `}`
			code, raw, _ := api.call(t, "POST", "/admin/v1/citizens", body)
			if code != tc.status {
				t.Fatalf("%d %s, want %d", code, raw, tc.status)
			}
			if tc.status != 201 {
				if c, msg := errorOf(raw); c != "invalid_request" || !strings.HasPrefix(msg, tc.field+":") {
					t.Fatalf("refusal %s %q, want invalid_request naming %s", c, msg, tc.field)
				}
				return
			}
			var out struct {
				UserID   string          `json:"user_id"`
				Card     json.RawMessage `json:"card"`
				CardSent bool            `json:"card_sent"`
			}
			if err := json.Unmarshal([]byte(raw), &out); err != nil {
				t.Fatal(err)
			}
			var card codecard.Card
			_ = json.Unmarshal(out.Card, &card)
			if tc.sent != out.CardSent || card.Serial == "" {
				t.Fatalf("answer %s, want card_sent %v", raw, tc.sent)
			}
			if tc.sent && (strings.Contains(string(out.Card), "keys") || len(card.Keys) != 0) {
				t.Fatalf("a posted card's keys in the answer: %s", out.Card)
			}
			if !tc.sent && len(card.Keys) != codecard.KeysPerCard {
				t.Fatalf("a card handed over has %d keys, want %d", len(card.Keys), codecard.KeysPerCard)
			}
			v := api.citizen(t, out.UserID)
			wantSt := store.CardActive
			if tc.sent {
				wantSt = store.CardSent
			}
			if v.IDCheck != tc.idCheck || v.Channel != tc.channel || len(v.Cards) != 1 || v.Cards[0].Serial != card.Serial ||
				v.Cards[0].Status != wantSt || v.Cards[0].Printable != tc.sent || v.Cards[0].Origin != store.OriginFirst ||
				v.Cards[0].KeysLeft != codecard.KeysPerCard || !v.Cards[0].Default {
				t.Fatalf("citizen record: %+v", v)
			}
			evs, err := api.st.Events(ctx, out.UserID, 10)
			if err != nil {
				t.Fatal(err)
			}
			if tc.sent != (len(evs) == 1 && evs[0].Type == "card_sent") || (tc.sent && (evs[0].Fields["address"] != tc.to || evs[0].Fields["by"] != "desk1" || evs[0].Fields["serial"] != card.Serial)) {
				t.Fatalf("events: %+v", evs)
			}
			if !tc.sent {
				return
			}
			// Printable once: JSON the first time, 410 after; no such card 404.
			path := "/admin/v1/citizens/" + out.UserID + "/cards/" + card.Serial + "/print"
			code, raw, _ = api.call(t, "GET", path, "", "Accept", "application/json")
			var printed codecard.Card
			if err := json.Unmarshal([]byte(raw), &printed); code != 200 || err != nil || printed.Serial != card.Serial || len(printed.Keys) != codecard.KeysPerCard {
				t.Fatalf("print: %d %.200s", code, raw)
			}
			if code, raw, _ = api.call(t, "GET", path, "", "Accept", "application/json"); code != http.StatusGone {
				t.Fatalf("print again: %d %s, want 410", code, raw)
			}
			if code, raw, _ = api.call(t, "GET", "/admin/v1/citizens/"+out.UserID+"/cards/G000000000/print", ""); code != 404 {
				t.Fatalf("print of no card: %d %s, want 404", code, raw)
			}
			if v := api.citizen(t, out.UserID); v.Cards[0].Printable {
				t.Fatalf("still printable after the print: %+v", v.Cards[0])
			}
			if a := api.audit.String(); strings.Contains(a, printed.Keys[0].Key+`"`) || strings.Contains(a, `"keys"`) {
				t.Fatalf("a key in the audit trail: %s", a)
			}
		})
	}
}

// TestOrderCard: an operator's extra card (handed over: as printed; posted: its serial), the
// 11th refused with card_limit, a lost card blocking every usable card at once; refusals name
// what is wrong; the audit trail names the cards, never a key.
func TestOrderCard(t *testing.T) {
	t.Parallel()
	api := newCardsAPI(t)
	code, raw, _ := api.call(t, "POST", "/admin/v1/citizens", `{"cpr":"`+storetest.NewCPR()+`","name":"Karen Jensen"}`)
	if code != 201 {
		t.Fatalf("issue: %d %s", code, raw)
	}
	var issued issuance.Result
	_ = json.Unmarshal([]byte(raw), &issued)
	uid := issued.UserID
	cards := "/admin/v1/citizens/" + uid + "/cards"
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"no reason", cards, `{}`, 400, "invalid_request"},
		{"unknown reason", cards, `{"reason":"spare"}`, 400, "invalid_request"},
		{"unknown delivery", cards, `{"reason":"extra","deliver":"drone"}`, 400, "invalid_request"},
		{"address to hand over", cards, `{"reason":"extra","address":"Vej 1"}`, 400, "invalid_request"},
		{"unknown field", cards, `{"reason":"extra","keys":1}`, 400, "invalid_request"},
		{"no such citizen", "/admin/v1/citizens/999999999/cards", `{"reason":"extra"}`, 404, "not_found"},
	} {
		if code, raw, _ := api.call(t, "POST", tc.path, tc.body); code != tc.status {
			t.Fatalf("%s: %d %s, want %d", tc.name, code, raw, tc.status)
		} else if c, _ := errorOf(raw); c != tc.code {
			t.Fatalf("%s: code %s, want %s", tc.name, c, tc.code)
		}
	}
	var printedKeys []string
	for i := range store.OperatorExtraCards {
		body := `{"reason":"extra"}`
		if i%2 == 1 {
			body = `{"reason":"extra","deliver":"post","address":"Vej 1"}`
		}
		code, raw, _ := api.call(t, "POST", cards, body)
		var out CardOrderResponse
		if err := json.Unmarshal([]byte(raw), &out); code != 201 || err != nil {
			t.Fatalf("extra card %d: %d %s", i+1, code, raw)
		}
		if i%2 == 0 && (out.Status != store.CardActive || out.Card == nil || len(out.Card.Keys) != codecard.KeysPerCard || out.Card.Serial != out.Serial) {
			t.Fatalf("extra card handed over: %s", raw)
		}
		if i%2 == 1 && (out.Status != store.CardSent || out.Card != nil) {
			t.Fatalf("extra card posted: %s", raw)
		}
		if out.Card != nil {
			printedKeys = append(printedKeys, out.Card.Keys[0].Key)
		}
	}
	code, raw, _ = api.call(t, "POST", cards, `{"reason":"extra","deliver":"post"}`)
	if c, msg := errorOf(raw); code != 409 || c != "card_limit" || !strings.Contains(msg, fmt.Sprint(store.OperatorExtraCards)) {
		t.Fatalf("11th extra card: %d %s, want 409 card_limit", code, raw)
	}
	v := api.citizen(t, uid)
	if len(v.Cards) != 1+store.OperatorExtraCards {
		t.Fatalf("%d cards listed, want %d", len(v.Cards), 1+store.OperatorExtraCards)
	}
	code, raw, _ = api.call(t, "POST", cards, `{"reason":"lost","deliver":"post"}`)
	var lost CardOrderResponse
	if err := json.Unmarshal([]byte(raw), &lost); code != 201 || err != nil || lost.Status != store.CardSent || lost.Card != nil ||
		len(lost.Blocked) != 1+store.OperatorExtraCards {
		t.Fatalf("lost card: %d %s", code, raw)
	}
	v = api.citizen(t, uid)
	for _, c := range v.Cards {
		want := store.CardBlocked
		if c.Serial == lost.Serial {
			want = store.CardSent
		}
		if c.Status != want || (c.Serial == lost.Serial) != c.Default {
			t.Fatalf("after the lost card: %+v", v.Cards)
		}
	}
	// With every extra card blocked, extra cards may be ordered again.
	if code, raw, _ := api.call(t, "POST", cards, `{"reason":"extra"}`); code != 201 {
		t.Fatalf("extra card after the lost one: %d %s", code, raw)
	}
	a := api.audit.String()
	if strings.Count(a, `"card.issued"`) != store.OperatorExtraCards+2 || strings.Count(a, `"card.blocked"`) != 1+store.OperatorExtraCards {
		t.Fatalf("audit trail: %d card.issued, %d card.blocked\n%s", strings.Count(a, `"card.issued"`), strings.Count(a, `"card.blocked"`), a)
	}
	for _, k := range printedKeys {
		if strings.Contains(a, `"`+k+`"`) {
			t.Fatalf("a key in the audit trail: %s", k)
		}
	}
}

// TestPrintHTML: a posted card's print view, for other Accept values, is the HTML renderer's.
func TestPrintHTML(t *testing.T) {
	t.Parallel()
	api := newCardsAPI(t)
	code, raw, _ := api.call(t, "POST", "/admin/v1/citizens", `{"cpr":"`+storetest.NewCPR()+`","name":"Karen Jensen","id_check":"two_ids","address":"Vej 1"}`)
	var out issuance.Result
	if err := json.Unmarshal([]byte(raw), &out); code != 201 || err != nil {
		t.Fatalf("issue: %d %s", code, raw)
	}
	code, page, hdr := api.call(t, "GET", "/admin/v1/citizens/"+out.UserID+"/cards/"+out.Card.Serial+"/print", "", "Accept", "text/html")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !strings.Contains(page, out.Card.Serial) || strings.Count(page, `<div class="pair">`) != codecard.KeysPerCard {
		t.Fatalf("print view: %d %s\n%.300s", code, hdr.Get("Content-Type"), page)
	}
	// The stylesheet comes from the issuer's public listener, and the page's CSP allows it.
	if !strings.Contains(page, `href="https://idp.example`+cardprint.Stylesheet+`"`) ||
		!strings.Contains(hdr.Get("Content-Security-Policy"), "style-src https://idp.example;") {
		t.Fatalf("print view stylesheet: CSP %q\n%.400s", hdr.Get("Content-Security-Policy"), page)
	}
}
