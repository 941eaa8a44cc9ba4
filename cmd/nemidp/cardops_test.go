package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nemidp/nemidp/idp/admin"
	"github.com/nemidp/nemidp/keys/codecard"
)

// TestCardOps: `nemidp citizen add` with an ID check that posts the card, `nemidp card print`
// once (410 after), and `nemidp card issue` for an extra card (handed over or posted) and a
// lost one, with the API's rules and refusals.
func TestCardOps(t *testing.T) {
	t.Parallel()
	getenv := cliEnv(t)
	ctx := context.Background()
	cli := func(t *testing.T, args ...string) []byte {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, args, getenv, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.Bytes()
	}
	refused := func(t *testing.T, code string, args ...string) {
		t.Helper()
		var out bytes.Buffer
		err := run(ctx, args, getenv, &out)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != code || out.Len() != 0 {
			t.Fatalf("%v: %v (printed %q), want the API's %s", args, err, out.String(), code)
		}
	}

	refused(t, "invalid_request", "citizen", "add", "--cpr", "010190-1239", "--name", "Per Hansen", "--id-check", "witness")
	raw := cli(t, "citizen", "add", "--cpr", "010190-1239", "--name", "Per Hansen", "--id-check", "witness",
		"--channel", "embassy", "--postal-address", "Poste restante, 1000 København K")
	var added struct {
		UserID   string          `json:"user_id"`
		Card     json.RawMessage `json:"card"`
		CardSent bool            `json:"card_sent"`
	}
	if err := json.Unmarshal(raw, &added); err != nil || !added.CardSent || strings.Contains(string(added.Card), "keys") {
		t.Fatalf("citizen add with a witness: %s %v", raw, err)
	}
	var serial struct{ Serial string }
	_ = json.Unmarshal(added.Card, &serial)
	uid := added.UserID

	var printed codecard.Card
	if err := json.Unmarshal(cli(t, "card", "print", uid, serial.Serial), &printed); err != nil || printed.Serial != serial.Serial || len(printed.Keys) != codecard.KeysPerCard {
		t.Fatalf("card print: %+v %v", printed.Serial, err)
	}
	refused(t, "gone", "card", "print", uid, serial.Serial)
	refused(t, "not_found", "card", "print", uid, "G000000000")

	var extra admin.CardOrderResponse
	if err := json.Unmarshal(cli(t, "card", "issue", uid, "--reason", "extra"), &extra); err != nil || extra.Card == nil || len(extra.Card.Keys) != codecard.KeysPerCard {
		t.Fatalf("card issue extra: %+v %v", extra, err)
	}
	var posted admin.CardOrderResponse
	if err := json.Unmarshal(cli(t, "card", "issue", "--reason", "extra", "--post", uid), &posted); err != nil || posted.Card != nil || posted.Status != "sent" {
		t.Fatalf("card issue extra --post: %+v %v", posted, err)
	}
	page := cli(t, "card", "print", uid, posted.Serial, "--html")
	if !bytes.Contains(page, []byte(posted.Serial)) || !bytes.HasPrefix(page, []byte("<!DOCTYPE html>")) {
		t.Fatalf("card print --html: %.200s", page)
	}
	refused(t, "invalid_request", "card", "issue", uid, "--reason", "spare")
	refused(t, "not_found", "card", "issue", "999999999", "--reason", "extra")
	var lost admin.CardOrderResponse
	if err := json.Unmarshal(cli(t, "card", "issue", uid, "--reason", "lost"), &lost); err != nil || len(lost.Blocked) != 3 || lost.Card == nil {
		t.Fatalf("card issue lost: %+v %v", lost, err)
	}
	var v admin.CitizenView
	if err := json.Unmarshal(cli(t, "citizen", "show", uid), &v); err != nil || len(v.Cards) != 4 || v.IDCheck != "witness" || v.Channel != "embassy" {
		t.Fatalf("citizen show: %+v %v", v, err)
	}
	if err := run(ctx, []string{"card", "print", uid}, getenv, &bytes.Buffer{}); err == nil {
		t.Fatal("card print without a serial: no error")
	}
}
