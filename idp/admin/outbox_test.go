package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
)

const outboxToken = "outbox-token-0123456789abcdef"

// outboxAPI is the operator API on a store of its own on the test Redis, with a citizen whose
// NemID was blocked and unblocked n times (2n outbox entries).
func outboxAPI(t *testing.T, n int) (*http.ServeMux, *store.Citizen) {
	mux, c, _ := outboxAPIPrefixed(t, n)
	return mux, c
}

func outboxAPIPrefixed(t *testing.T, n int) (*http.ServeMux, *store.Citizen, *store.Store) {
	t.Helper()
	st := storetest.NewStore(t, storetest.Real().Client(t))
	c := &store.Citizen{UserID: storetest.NewUserID(), CPR: storetest.NewCPR(), Name: "Karen Jensen", Kind: "oces",
		Status: store.StatusActive, Password: "$argon2id$x", IssuedAt: "2025-01-02", CreatedAt: time.Now(),
		Address: "Vestergade 2, 8000 Aarhus C"}
	card := store.CardRecord{Serial: "G" + storetest.NewUserID(), Status: store.CardActive, Hashes: map[string]string{"0001": "h"}}
	if err := st.CreateCitizen(t.Context(), c, card); err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := st.Block(t.Context(), c.UserID, store.BlockMisuse, "bank.dk", time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Unblock(t.Context(), c.UserID, "bank.dk", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	(&API{Store: st, Token: "bank.dk:" + outboxToken}).Register(mux)
	return mux, c, st
}

func getOutbox(t *testing.T, mux *http.ServeMux, query, token string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest("GET", "/admin/v1/outbox"+query, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// TestOutboxRefusals: a malformed after or limit is 400 invalid_request with a message; a
// missing or wrong token is 401.
func TestOutboxRefusals(t *testing.T) {
	t.Parallel()
	mux, _ := outboxAPI(t, 1)
	tests := []struct {
		name, query, token string
		status             int
		code               string
	}{
		{"no token", "", "", http.StatusUnauthorized, "unauthorized"},
		{"wrong token", "", "outbox-token-0123456789abcdeX", http.StatusUnauthorized, "unauthorized"},
		{"after not an id", "?after=abc", outboxToken, http.StatusBadRequest, "invalid_request"},
		{"after without seq", "?after=1700000000000", outboxToken, http.StatusBadRequest, "invalid_request"},
		{"after exclusive marker", "?after=" + url.QueryEscape("(1-0"), outboxToken, http.StatusBadRequest, "invalid_request"},
		{"after overflowing", "?after=99999999999999999999-0", outboxToken, http.StatusBadRequest, "invalid_request"},
		{"limit zero", "?limit=0", outboxToken, http.StatusBadRequest, "invalid_request"},
		{"limit negative", "?limit=-3", outboxToken, http.StatusBadRequest, "invalid_request"},
		{"limit not a number", "?limit=ten", outboxToken, http.StatusBadRequest, "invalid_request"},
		{"limit empty", "?limit=", outboxToken, http.StatusBadRequest, "invalid_request"},
		{"limit fraction", "?limit=1.5", outboxToken, http.StatusBadRequest, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			status, body := getOutbox(t, mux, tc.query, tc.token)
			var e struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(body, &e); err != nil || status != tc.status || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("GET outbox%s: %d %s; want %d %s", tc.query, status, body, tc.status, tc.code)
			}
			if strings.Contains(string(body), `"events"`) {
				t.Fatalf("a refusal carries events: %s", body)
			}
		})
	}
}

// TestOutboxPaging: the answer has the contract's fields; pages of limit entries chained by
// next read every entry once, oldest first; past the end the page is empty and next stays;
// the default limit is 100 and a limit over the maximum reads the maximum.
func TestOutboxPaging(t *testing.T) {
	t.Parallel()
	mux, c := outboxAPI(t, 3)
	status, body := getOutbox(t, mux, "", outboxToken)
	var first struct {
		Events []map[string]any `json:"events"`
		Next   string           `json:"next"`
	}
	if err := json.Unmarshal(body, &first); err != nil || status != http.StatusOK || len(first.Events) != 6 {
		t.Fatalf("GET outbox: %d %s", status, body)
	}
	for i, e := range first.Events {
		var keys []string
		for k := range e {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"address", "at", "data", "id", "type", "user_id"}) {
			t.Fatalf("entry %d has fields %v", i, keys)
		}
		wantType := []string{"nemid_blocked", "nemid_unblocked"}[i%2]
		data, _ := e["data"].(map[string]any)
		if e["type"] != wantType || e["user_id"] != c.UserID || e["address"] != c.Address || data["reason"] != "misuse" || data["by"] != "bank.dk" {
			t.Fatalf("entry %d: %v", i, e)
		}
	}
	if first.Next != first.Events[5]["id"] {
		t.Fatalf("next %q, want the last id %v", first.Next, first.Events[5]["id"])
	}

	for _, limit := range []string{"1", "4", "6", "100000"} {
		var ids []string
		after := ""
		for range 10 {
			status, body := getOutbox(t, mux, "?limit="+limit+"&after="+url.QueryEscape(after), outboxToken)
			var page OutboxResponse
			if err := json.Unmarshal(body, &page); err != nil || status != http.StatusOK {
				t.Fatalf("limit %s after %q: %d %s", limit, after, status, body)
			}
			if len(page.Events) == 0 {
				if page.Next != after || page.Events == nil {
					t.Fatalf("empty page: %s; want events [] and next %q", body, after)
				}
				break
			}
			for _, e := range page.Events {
				ids = append(ids, e.ID)
			}
			after = page.Next
		}
		var want []string
		for _, e := range first.Events {
			want = append(want, e["id"].(string))
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("limit %s paged %v, want %v", limit, ids, want)
		}
	}
}

// TestOutboxDefaultLimit: without a limit a page holds 100 entries.
func TestOutboxDefaultLimit(t *testing.T) {
	t.Parallel()
	mux, _, st := outboxAPIPrefixed(t, 0)
	p := st.Redis().Pipeline()
	for i := range OutboxDefaultLimit + 1 {
		p.XAdd(t.Context(), &redis.XAddArgs{Stream: st.Prefix() + "{outbox}:stream", ID: fmt.Sprintf("%d-1", 1_700_000_000_000+i),
			Values: []string{"type", "card_sent", "user_id", "1", "address", "a", "at", "2023-11-14T22:13:20Z", "data", "{}"}})
	}
	if _, err := p.Exec(t.Context()); err != nil {
		t.Fatal(err)
	}
	status, body := getOutbox(t, mux, "", outboxToken)
	var page OutboxResponse
	if err := json.Unmarshal(body, &page); err != nil || status != http.StatusOK || len(page.Events) != OutboxDefaultLimit {
		t.Fatalf("GET outbox: %d, %d entries; want %d", status, len(page.Events), OutboxDefaultLimit)
	}
}
