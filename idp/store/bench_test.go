package store_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
)

// BenchmarkUseCardKeyInFlow: one op is one right card key checked and consumed for a login
// flow against a real Redis (attempt reservation + use-key script, one pipelined round trip).
// A fresh citizen (TestParams KDF) is issued outside the timer every 148 keys.
func BenchmarkUseCardKeyInFlow(b *testing.B) {
	st := storetest.NewStore(b, storetest.Real().Client(b))
	ctx := context.Background()
	cards, err := codecard.NewHasher([]byte("card-secret-0123456789abcdef"))
	if err != nil {
		b.Fatal(err)
	}
	is := &issuance.Issuer{Store: st, Passwords: password.NewHasher(password.TestParams), Cards: cards}
	const flowID = "benchflow0123456789abc"
	if _, err := st.SaveFlow(ctx, flowID, 0, []byte(`{}`), time.Hour, false); err != nil {
		b.Fatal(err)
	}
	var (
		res  *issuance.Result
		next int
	)
	b.ReportAllocs()
	for b.Loop() {
		if res == nil || next == len(res.Card.Keys) {
			b.StopTimer()
			if res, err = is.IssueWithPassword(ctx, issuance.Request{CPR: storetest.NewCPR(), Name: "Bench Borger"}, "Bench2026nemid"); err != nil {
				b.Fatal(err)
			}
			next = 0
			b.StartTimer()
		}
		k := res.Card.Keys[next]
		next++
		out, _, err := st.UseCardKeyInFlow(ctx, flowID, res.UserID, res.Card.Serial, k.Number, cards.Hash(res.Card.Serial, k.Number, k.Key), 5)
		if err != nil || out.Outcome != store.KeyOK {
			b.Fatalf("UseCardKeyInFlow = %+v, %v", out, err)
		}
	}
}

// BenchmarkSaveLoadFlow: one op is one SaveFlow (compare-and-set script) and one LoadFlow of a
// 1.5 KB flow blob against a real Redis: a flow step's Redis cost without its JSON.
func BenchmarkSaveLoadFlow(b *testing.B) {
	st := storetest.NewStore(b, storetest.Real().Client(b))
	ctx := context.Background()
	data := bytes.Repeat([]byte("x"), 1536)
	const flowID = "benchflow0123456789abc"
	var v int64
	b.ReportAllocs()
	for b.Loop() {
		nv, err := st.SaveFlow(ctx, flowID, v, data, 10*time.Minute, false)
		if err != nil {
			b.Fatal(err)
		}
		rec, err := st.LoadFlow(ctx, flowID)
		if err != nil || rec.Version != nv {
			b.Fatalf("LoadFlow = %d, %v", rec.Version, err)
		}
		v = nv
	}
}
