package selfservice_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/selfservice"
	"github.com/nemidp/nemidp/idp/store"
)

var renewForm = regexp.MustCompile(`name="serial" value="([^"]+)"><input type="hidden" name="number" value="(\d{4})"`)

// TestRealLifeCycle runs the pages against the issuer's card and renewal services as `nemidp
// serve` wires them: renewal in the window with the card's pending key (the key then spent),
// three extra cards and the fourth refused with card_limit, a lost card blocking every usable
// card at once so the next login's key from the old card is refused.
func TestRealLifeCycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, realLC)
	c := e.citizen(cprA, "Karen Jensen")
	ctx := t.Context()
	// 30 days left: in the renewal window.
	exp := time.Now().In(time.UTC).AddDate(0, 0, 30).Format(time.DateOnly)
	if err := e.srv.Store.Redis().HSet(ctx, e.srv.Store.Prefix()+"{c:"+c.uid+"}", "expires_at", exp).Err(); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	token := csrf(t, b.login(c))

	page := b.get(selfservice.Path + "/fornyelse")
	m := renewForm.FindStringSubmatch(page.body)
	if page.status != http.StatusOK || m == nil {
		t.Fatalf("renewal page: %d, no key asked\n%.600s", page.status, page.body)
	}
	form := url.Values{"csrf_token": {csrf(t, page.body)}, "serial": {m[1]}, "number": {m[2]}, "key": {c.keys[m[2]]}}
	if a := b.post(selfservice.Path+"/fornyelse", form); a.status != http.StatusSeeOther {
		t.Fatalf("renew: %d %s", a.status, a.body)
	}
	got, err := e.srv.Store.Citizen(ctx, c.uid)
	if err != nil {
		t.Fatal(err)
	}
	if want := store.DanishToday(time.Now().AddDate(3, 0, 0)); got.ExpiresAt != want {
		t.Errorf("expiry after renewal %s, want %s", got.ExpiresAt, want)
	}
	// The same key again: spent (and the NemID is not due any more anyway).
	if a := b.post(selfservice.Path+"/fornyelse", form); a.status == http.StatusSeeOther {
		t.Errorf("the renewal's key renewed twice")
	}

	for i := range 3 {
		if a := b.post(selfservice.Path+"/kort", url.Values{"csrf_token": {token}, "reason": {"extra"}}); a.status != http.StatusSeeOther {
			t.Fatalf("extra card %d: %d %s", i+1, a.status, a.body)
		}
	}
	if a := b.post(selfservice.Path+"/kort", url.Values{"csrf_token": {token}, "reason": {"extra"}}); a.status != http.StatusConflict || errorCode(a.body) != "card_limit" {
		t.Fatalf("4th extra card by self-service: %d %q, want 409 card_limit", a.status, errorCode(a.body))
	}
	if a := b.post(selfservice.Path+"/kort", url.Values{"csrf_token": {token}, "reason": {"lost"}}); a.status != http.StatusSeeOther {
		t.Fatalf("lost card: %d %s", a.status, a.body)
	}
	cards, err := e.srv.Store.Cards(ctx, c.uid)
	if err != nil {
		t.Fatal(err)
	}
	var blocked, sent int
	for _, cd := range cards {
		switch cd.Status {
		case store.CardBlocked:
			blocked++
		case store.CardSent:
			sent++
		}
	}
	if len(cards) != 5 || blocked != 4 || sent != 1 {
		t.Fatalf("cards after the lost-card report: %+v; want the first and 3 extra blocked, 1 sent", cards)
	}
	if lines := e.rec.Find("card.blocked"); len(lines) != 4 || lines[0]["by"] != "citizen" || lines[0]["who"] != c.uid {
		t.Fatalf("audit card.blocked after the lost-card report: %v", lines)
	}
	// A new login in another browser: the first card's key is refused at once.
	o := e.browser()
	a := o.get(selfservice.Path)
	v := o.view(a.location)
	st, nv := o.json("POST", a.location+"/password", v["csrf_token"].(string), map[string]string{"username": c.uid, "password": c.pw})
	if st != http.StatusOK || nv["step"] != "codecard" || nv["card_serial"] == m[1] {
		t.Fatalf("login after the lost card: %d %v; want the sent card asked, not %s", st, nv, m[1])
	}
	if !strings.HasPrefix(nv["card_serial"].(string), "G") {
		t.Fatalf("asked card %v", nv["card_serial"])
	}
	st, sw := o.json("POST", a.location+"/card", nv["csrf_token"].(string), map[string]string{"serial": m[1]})
	if code, _ := sw["error"].(map[string]any)["code"].(string); st != http.StatusForbidden || code != "card_blocked" {
		t.Fatalf("switch to the lost card: %d %v, want 403 card_blocked", st, sw)
	}
}
