package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nemidp/nemidp/idp/admin"
)

// TestOutboxCLI: `nemidp outbox` prints the operator API's outbox page as indented JSON: a
// block through the CLI is there as nemid_blocked with the citizen's address and the CLI as
// who blocked; --after and --limit page as the API does, and their refusals are the API's.
func TestOutboxCLI(t *testing.T) {
	t.Parallel()
	getenv := cliEnv(t)
	ctx := context.Background()
	const address = "Nørregade 7, 5000 Odense C"
	var out bytes.Buffer
	if err := run(ctx, []string{"citizen", "add", "--cpr", "010203-4321", "--name", "Ole Olsen", "--address", address}, getenv, &out); err != nil {
		t.Fatal(err)
	}
	var c struct {
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal(out.Bytes(), &c); err != nil || c.UserID == "" {
		t.Fatalf("citizen add printed %q: %v", out.String(), err)
	}
	for _, args := range [][]string{
		{"citizen", "block", c.UserID, "--reason", "lost_card"},
		{"citizen", "unblock", c.UserID},
	} {
		if err := run(ctx, args, getenv, &bytes.Buffer{}); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}

	page := func(t *testing.T, args ...string) admin.OutboxResponse {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, append([]string{"outbox"}, args...), getenv, &out); err != nil {
			t.Fatalf("outbox %v: %v", args, err)
		}
		if !strings.Contains(out.String(), "\n  \"events\": ") {
			t.Fatalf("outbox %v: not indented JSON: %q", args, out.String())
		}
		var p admin.OutboxResponse
		if err := json.Unmarshal(out.Bytes(), &p); err != nil {
			t.Fatalf("outbox %v printed %q: %v", args, out.String(), err)
		}
		return p
	}
	all := page(t)
	var types []string
	for _, e := range all.Events {
		if e.UserID != c.UserID || e.Address != address || e.Data["by"] != cliOperator {
			t.Fatalf("entry %+v, want %s's at %q by %s", e, c.UserID, address, cliOperator)
		}
		types = append(types, e.Type)
	}
	if strings.Join(types, ",") != "nemid_blocked,nemid_unblocked" || all.Events[0].Data["reason"] != "lost_card" {
		t.Fatalf("outbox %+v", all)
	}
	first := page(t, "--limit", "1")
	if len(first.Events) != 1 || first.Next != all.Events[0].ID {
		t.Fatalf("--limit 1: %+v", first)
	}
	second := page(t, "--after", first.Next, "--limit", "5")
	if len(second.Events) != 1 || second.Events[0].ID != all.Events[1].ID {
		t.Fatalf("--after %s: %+v", first.Next, second)
	}
	if end := page(t, "--after", second.Next); len(end.Events) != 0 || end.Next != second.Next {
		t.Fatalf("past the end: %+v", end)
	}

	for _, args := range [][]string{{"--limit", "0"}, {"--limit", "many"}, {"--after", "yesterday"}} {
		var out bytes.Buffer
		err := run(ctx, append([]string{"outbox"}, args...), getenv, &out)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != "invalid_request" || ae.Message == "" || out.Len() != 0 {
			t.Fatalf("outbox %v: err %v, printed %q; want the API's invalid_request", args, err, out.String())
		}
	}
	for _, args := range [][]string{{"extra"}, {"--since", "1-0"}} {
		if err := run(ctx, append([]string{"outbox"}, args...), getenv, &bytes.Buffer{}); err == nil {
			t.Fatalf("outbox %v: no error", args)
		}
	}
	noRedis := func(k string) string {
		if k == "NEMIDP_REDIS_URL" {
			return ""
		}
		return getenv(k)
	}
	if err := run(ctx, []string{"outbox"}, noRedis, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "NEMIDP_REDIS_URL") {
		t.Fatalf("outbox without a Redis: %v", err)
	}
}
