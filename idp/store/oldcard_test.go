package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
)

// TestLoginWithOldFormatCard: a citizen whose card an earlier release stored (4-digit strings
// in the unused set, a used key marked "u:<flow id>|<hash>") logs in through the flow engine
// with it, twice, each time asked an unused key number of the card; the card keeps its old
// format (nothing is rewritten) and still counts its keys.
func TestLoginWithOldFormatCard(t *testing.T) {
	t.Parallel()
	for _, b := range []storetest.Backend{storetest.Embedded(), storetest.Real()} {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			client := b.Client(t)
			st, prefix := storetest.NewStorePrefixed(t, client)
			cards, err := codecard.NewHasher([]byte("card-secret-0123456789abcdef"))
			if err != nil {
				t.Fatal(err)
			}
			pw := password.NewHasher(password.TestParams)
			e := &flows.Engine{Store: st, Passwords: pw, Cards: cards, MaxFailures: 5, FlowTTL: 10 * time.Minute,
				SessionTTL: 8 * time.Hour, Grace: time.Hour}
			is := &issuance.Issuer{Store: st, Passwords: pw, Cards: cards}
			const secret = "Hemmelig42nemid"
			res, err := is.IssueWithPassword(ctx, issuance.Request{CPR: storetest.NewCPR(), Name: "Karen Jensen"}, secret)
			if err != nil {
				t.Fatal(err)
			}
			keys := map[string]string{}
			for _, k := range res.Card.Keys {
				keys[k.Number] = k.Key
			}
			spent := res.Card.Keys[0].Number
			if err := storetest.WriteOldFormatCard(ctx, client, prefix, res.UserID, res.Card.Serial,
				map[string]string{spent: flows.NewID()}); err != nil {
				t.Fatal(err)
			}
			unused := prefix + "{c:" + res.UserID + "}:card:" + res.Card.Serial + ":unused"
			old, err := client.SMembers(ctx, unused).Result()
			if err != nil || len(old) != codecard.KeysPerCard-1 {
				t.Fatalf("seeded unused set: %d members, %v", len(old), err)
			}

			asked := map[string]bool{spent: true}
			for i := range 2 {
				f, err := e.Begin(ctx, flows.Start{ClientID: "netbank", ReturnURL: func(id string) string { return "https://rp.example/cb?flow=" + id }})
				if err != nil {
					t.Fatal(err)
				}
				if err := e.Submit(ctx, f, flows.StepPassword, flows.Answer{Username: res.UserID, Password: secret}); err != nil {
					t.Fatalf("login %d, password: %v", i, err)
				}
				n := f.KeyNumber
				if f.Step != flows.StepCodeCard || keys[n] == "" || asked[n] {
					t.Fatalf("login %d: at %s asked key number %q (used before: %v)", i, f.Step, n, asked[n])
				}
				asked[n] = true
				if err := e.Submit(ctx, f, flows.StepCodeCard, flows.Answer{Key: keys[n]}); err != nil {
					t.Fatalf("login %d, key %s: %v", i, n, err)
				}
				if !f.Done() {
					t.Fatalf("login %d ended at %s", i, f.Step)
				}
				if ok, err := st.KeyUnused(ctx, res.UserID, res.Card.Serial, n); err != nil || ok {
					t.Fatalf("login %d: key %s still unused (%v)", i, n, err)
				}
			}
			status, left, err := st.CardStatus(ctx, res.UserID, res.Card.Serial)
			if err != nil || status != store.CardActive || left != codecard.KeysPerCard-3 {
				t.Fatalf("CardStatus = %q, %d, %v; want active, %d", status, left, err, codecard.KeysPerCard-3)
			}
			// Still the old format: members stay 4-digit strings.
			now, err := client.SMembers(ctx, unused).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range now {
				if !codecard.ValidNumber(m) {
					t.Fatalf("unused-set member %q: the old card was rewritten", m)
				}
			}
		})
	}
}
