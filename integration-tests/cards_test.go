package integrationtests

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
)

// cardView is the part of a login view the card tests read beyond View: the notice and the
// usable cards of the codecard step.
type cardView struct {
	View
	Notice *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"notice"`
	Cards []string `json:"cards"`
}

func cardViewOf(t *testing.T, r *Resp) cardView {
	t.Helper()
	var v cardView
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("not a JSON view: %v: %s", err, r)
	}
	return v
}

// printCard takes a posted card's printed form from the print endpoint (JSON).
func (p *IdP) printCard(t *testing.T, uid, serial string) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, p.URL+"/admin/v1/citizens/"+uid+"/cards/"+serial+"/print", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.AdminToken)
	req.Header.Set("Accept", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var card struct {
		Serial string `json:"serial"`
		Keys   []struct{ Number, Key string }
	}
	keys := map[string]string{}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &card); err != nil || card.Serial != serial {
			t.Fatalf("print %s: %v %.200s", serial, err, raw)
		}
		for _, k := range card.Keys {
			keys[k.Number] = k.Key
		}
	}
	return resp.StatusCode, keys
}

type citizenCards struct {
	Cards []struct {
		Serial    string `json:"serial"`
		Status    string `json:"status"`
		KeysLeft  int    `json:"keys_left"`
		Origin    string `json:"origin"`
		Replaces  string `json:"replaces"`
		Printable bool   `json:"printable"`
	} `json:"cards"`
}

// TestCardPastThreshold: a login past the threshold has a new card sent (printable once from
// the print endpoint); the next login carries new_card_sent, switches to the new card and logs
// in with its printed key, which retires the old card: a key of the old card is then refused.
func TestCardPastThreshold(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid"), "openid")
	c := p.issueNemID(t, freshCPR(), "Kort Borger", map[string]any{"kind": "oces", "card_threshold": 148})
	p.newBrowser(t).login(t, bank, c) // the first key leaves 147: past the threshold

	var cc citizenCards
	if code := p.admin(t, http.MethodGet, "/admin/v1/citizens/"+c.UserID, nil, &cc); code != http.StatusOK || len(cc.Cards) != 2 {
		t.Fatalf("citizen after the threshold: %d %+v", code, cc)
	}
	newSerial := ""
	for _, k := range cc.Cards {
		if k.Serial != c.Serial {
			newSerial = k.Serial
			if k.Status != "sent" || k.Origin != "auto" || k.Replaces != c.Serial || !k.Printable || k.KeysLeft != 148 {
				t.Fatalf("the card sent: %+v", k)
			}
		}
	}
	code, printed := p.printCard(t, c.UserID, newSerial)
	if code != http.StatusOK || len(printed) != 148 {
		t.Fatalf("print: %d, %d keys", code, len(printed))
	}
	if code, _ := p.printCard(t, c.UserID, newSerial); code != http.StatusGone {
		t.Fatalf("print again: %d, want 410", code)
	}

	// A login left at the old card's key, answered once the new card is in use.
	stale := p.newBrowser(t).authorize(t, bank)
	stale.password(c, c.Password)
	stale.requireStep("codecard")
	if stale.View.CardSerial != c.Serial {
		t.Fatalf("stale login asks %s, want the old card %s", stale.View.CardSerial, c.Serial)
	}

	l := p.newBrowser(t).authorize(t, bank)
	v := cardViewOf(t, l.postRaw("password", map[string]string{"username": c.UserID, "password": c.Password}))
	want := []string{c.Serial, newSerial}
	slices.Sort(want)
	if v.Step != "codecard" || v.Notice == nil || v.Notice.Code != "new_card_sent" || !slices.Equal(v.Cards, want) {
		t.Fatalf("login with a card sent: %+v notice %+v", v.View, v.Notice)
	}
	l.View, l.csrf = v.View, v.CSRFToken
	v = cardViewOf(t, l.postRaw("card", map[string]string{"serial": newSerial}))
	if v.Step != "codecard" || v.CardSerial != newSerial || printed[v.KeyNumber] == "" {
		t.Fatalf("switch to the new card: %+v", v.View)
	}
	l.View = v.View
	l.mustPost("codecard", map[string]string{"key": printed[v.KeyNumber]})
	l.finish()
	l.mustExchange()

	if code := p.admin(t, http.MethodGet, "/admin/v1/citizens/"+c.UserID, nil, &cc); code != http.StatusOK {
		t.Fatal(code)
	}
	for _, k := range cc.Cards {
		switch k.Serial {
		case c.Serial:
			if k.Status != "retired" {
				t.Fatalf("old card after the new one's first key: %+v", k)
			}
		case newSerial:
			if k.Status != "active" || k.KeysLeft != 147 {
				t.Fatalf("new card after its first key: %+v", k)
			}
		}
	}
	// The old card's key: refused, with its reason, and not counted.
	code, sv := stale.post("codecard", map[string]string{"key": c.Keys[stale.View.KeyNumber]})
	if code != http.StatusForbidden || sv.Error == nil || sv.Error.Code != "card_retired" || sv.Error.AttemptsLeft != nil {
		t.Fatalf("old card's key: %d %s", code, sv.Error)
	}
	if st := p.citizenStatus(t, c.UserID); st != "active" {
		t.Fatalf("status after the old card's key: %s", st)
	}
	// Switching back to the old card is refused too.
	code, sv = stale.post("card", map[string]string{"serial": c.Serial})
	if code != http.StatusForbidden || sv.Error == nil || sv.Error.Code != "card_retired" {
		t.Fatalf("switch to the retired card: %d %s", code, sv.Error)
	}
}
