package store_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
)

// Targets of issue 17, point 5.
const (
	sessionTarget = 1024      // bytes of Redis per SSO session
	citizenTarget = 16 * 1024 // bytes of Redis per citizen with a card
)

// TestRedisMemoryPerRecord measures, with MEMORY USAGE <key> SAMPLES 0 on a real Redis (the
// embedded backend has no MEMORY command), what one SSO session and one citizen with a code
// card cost: a citizen issued with a password at the production KDF, one complete code-card
// login through the flow engine, its pairwise subject at a client, and the SSO session that
// login starts (figures are also logged for the citizen as issued). Every key under the test's prefix is counted and classed by name. It then
// uses up the rest of the card and reports the citizen again (a used key's value changes).
// At each of the three moments the card must keep its compact encodings (the card hash a
// listpack, the unused-keys set an intset while it exists), which the figures depend on.
//
// A target not met fails only with NEMIDP_MEMORY_TARGETS set; without it the test skips
// with the figure, so CI stays green while the gap is visible in -v output.
func TestRedisMemoryPerRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, prefix := storetest.NewStorePrefixed(t, storetest.Real().Client(t))
	rdb := st.Redis()
	cards, err := codecard.NewHasher([]byte("card-secret-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	pw := password.NewHasher(password.Params{})
	e := &flows.Engine{Store: st, Passwords: pw, Cards: cards, MaxFailures: 5, FlowTTL: 10 * time.Minute,
		SessionTTL: 8 * time.Hour, Grace: time.Hour}
	is := &issuance.Issuer{Store: st, Passwords: pw, Cards: cards}

	const secret = "Hemmelig42nemid"
	res, err := is.IssueWithPassword(ctx, issuance.Request{CPR: storetest.NewCPR(), Name: "Karen Margrethe Jensen",
		GivenName: "Karen Margrethe", FamilyName: "Jensen", Address: "Vestergade 12, 2. th., 8000 Aarhus C"}, secret)
	if err != nil {
		t.Fatal(err)
	}
	tag := "{c:" + res.UserID + "}"
	var misses []string
	compact := func(u usage, when string) {
		if u.cardEnc != "listpack" || (u.unusedEnc != "" && u.unusedEnc != "intset") {
			misses = append(misses, fmt.Sprintf("%s: card hash %s, unused set %s (want listpack, intset)", when, u.cardEnc, u.unusedEnc))
		}
	}
	issued := measure(t, rdb, prefix, tag, false)
	issued.log(t, "issued, before any login")
	compact(issued, "as issued")
	if issued.citizen() > citizenTarget {
		misses = append(misses, fmt.Sprintf("citizen with a card as issued %d bytes > %d", issued.citizen(), citizenTarget))
	}
	keys := map[string]string{}
	for _, k := range res.Card.Keys {
		keys[k.Number] = k.Key
	}
	f, err := e.Begin(ctx, flows.Start{ClientID: "netbank", ReturnURL: func(id string) string { return "https://rp.example/cb?flow=" + id }})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Submit(ctx, f, flows.StepPassword, flows.Answer{Username: res.UserID, Password: secret}); err != nil {
		t.Fatal(err)
	}
	first := f.KeyNumber
	if err := e.Submit(ctx, f, flows.StepCodeCard, flows.Answer{Key: keys[first]}); err != nil {
		t.Fatal(err)
	}
	if !f.Done() {
		t.Fatalf("login ended at %s", f.Step)
	}
	if _, err := st.PairwiseSubject(ctx, res.UserID, "netbank", uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.StartSession(ctx, f.Result); err != nil {
		t.Fatal(err)
	}

	m := measure(t, rdb, prefix, tag, true)
	m.log(t, "after one login")
	compact(m, "after one login")
	if m.session > sessionTarget {
		misses = append(misses, fmt.Sprintf("SSO session %d bytes > %d", m.session, sessionTarget))
	}
	if m.citizen() > citizenTarget {
		misses = append(misses, fmt.Sprintf("citizen with a card %d bytes > %d", m.citizen(), citizenTarget))
	}

	// The rest of the card used up, as by 147 more logins of other flows.
	for _, k := range res.Card.Keys {
		if k.Number == first {
			continue
		}
		out, _, err := st.UseCardKeyInFlow(ctx, flows.NewID(), res.UserID, res.Card.Serial, k.Number, cards.Hash(res.Card.Serial, k.Number, k.Key), 5)
		if err != nil {
			t.Fatal(err)
		}
		if out.Outcome != "ok" {
			t.Fatalf("key %s: %s", k.Number, out.Outcome)
		}
	}
	used := measure(t, rdb, prefix, tag, true)
	used.log(t, "card used up")
	compact(used, "card used up")
	if used.citizen() > citizenTarget {
		misses = append(misses, fmt.Sprintf("citizen with a used-up card %d bytes > %d", used.citizen(), citizenTarget))
	}

	if len(misses) > 0 {
		msg := "target not met yet: " + strings.Join(misses, "; ")
		if os.Getenv("NEMIDP_MEMORY_TARGETS") == "" {
			t.Skip(msg + " (set NEMIDP_MEMORY_TARGETS to make this fail)")
		}
		t.Fatal(msg)
	}
}

// usage is what MEMORY USAGE says of the keys under one test prefix, by class.
type usage struct {
	session, citizenTagged, indexes, flow, other int64
	keys                                         []string // "bytes type encoding key", for the log
	cardEnc, unusedEnc                           string   // OBJECT ENCODING of the card hash and unused set
}

// citizen is the citizen's whole record: its hash-tagged keys and its global index entries.
func (u usage) citizen() int64 { return u.citizenTagged + u.indexes }

func (u usage) log(t *testing.T, when string) {
	t.Helper()
	t.Logf("Redis memory, %s (MEMORY USAGE SAMPLES 0):", when)
	for _, k := range u.keys {
		t.Logf("  %s", k)
	}
	t.Logf("  SSO session: %d bytes (target ≤ %d)", u.session, sessionTarget)
	t.Logf("  citizen with a card: %d bytes = %d under its hash tag + %d of indexes (target ≤ %d)",
		u.citizen(), u.citizenTagged, u.indexes, citizenTarget)
	t.Logf("  finished login flow (kept for the code exchange): %d bytes; other: %d bytes", u.flow, u.other)
}

func measure(t *testing.T, rdb redis.UniversalClient, prefix, tag string, session bool) usage {
	t.Helper()
	ctx := context.Background()
	var u usage
	var names []string
	it := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for it.Next(ctx) {
		names = append(names, it.Val())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	tagged := 0
	for _, k := range names {
		n, err := rdb.Do(ctx, "MEMORY", "USAGE", k, "SAMPLES", "0").Int64()
		if err != nil {
			t.Fatalf("MEMORY USAGE %s: %v", k, err)
		}
		rest := strings.TrimPrefix(k, prefix)
		typ, _ := rdb.Type(ctx, k).Result()
		enc, _ := rdb.ObjectEncoding(ctx, k).Result()
		switch {
		case strings.HasPrefix(rest, tag):
			u.citizenTagged += n
			tagged++
			switch {
			case strings.HasSuffix(rest, ":unused"):
				u.unusedEnc = enc
			case strings.Contains(rest, ":card:"):
				u.cardEnc = enc
			}
		case strings.HasPrefix(rest, "idx:"):
			u.indexes += n
		case strings.HasPrefix(rest, "sess:"):
			u.session += n
		case strings.HasPrefix(rest, "flow:"):
			u.flow += n
		default:
			u.other += n
		}
		u.keys = append(u.keys, fmt.Sprintf("%6d  %-6s %-9s %s", n, typ, enc, rest))
	}
	// The hash tag's own SCAN finds the same keys: nothing of the citizen is missed.
	var viaTag int
	it = rdb.Scan(ctx, 0, prefix+tag+"*", 500).Iterator()
	for it.Next(ctx) {
		viaTag++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if viaTag != tagged || tagged == 0 {
		t.Fatalf("SCAN %s%s* found %d keys, the prefix scan %d", prefix, tag, viaTag, tagged)
	}
	if session && u.session == 0 {
		t.Fatal("no SSO session key found")
	}
	return u
}
