package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/nemidp/nemidp/idp/admin"
)

// cliEnv is a CLI environment on the shared test Redis under a fresh prefix.
func cliEnv(t *testing.T) func(string) string {
	t.Helper()
	env := realRedisEnv(t)
	env["NEMIDP_SECRET"] = "cli-test-secret-0123456789abcdef0123"
	return func(k string) string { return env[k] }
}

// addCitizen issues a NemID through `nemidp citizen add` and gives its user id and
// activation password.
func addCitizen(t *testing.T, getenv func(string) string, cpr string) (uid, pw string) {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"citizen", "add", "--cpr", cpr, "--name", "Karen Jensen"}, getenv, &out); err != nil {
		t.Fatal(err)
	}
	var c struct {
		UserID             string `json:"user_id"`
		ActivationPassword string `json:"activation_password"`
	}
	if err := json.Unmarshal(out.Bytes(), &c); err != nil || c.UserID == "" || c.ActivationPassword == "" {
		t.Fatalf("citizen add printed %q: %v", out.String(), err)
	}
	return c.UserID, c.ActivationPassword
}

// TestCitizenOps runs show, block, unblock, renew and temporary-password through the CLI: each
// answers as the operator API does, and its refusals are the API's codes.
func TestCitizenOps(t *testing.T) {
	t.Parallel()
	getenv := cliEnv(t)
	ctx := context.Background()
	uid, activation := addCitizen(t, getenv, "150690-1234")

	citizen := func(t *testing.T, args ...string) admin.CitizenView {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, args, getenv, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.Contains(out.String(), "\n  \"user_id\": ") {
			t.Fatalf("%v: not indented JSON: %q", args, out.String())
		}
		var v admin.CitizenView
		if err := json.Unmarshal(out.Bytes(), &v); err != nil {
			t.Fatalf("%v printed %q: %v", args, out.String(), err)
		}
		if v.UserID != uid {
			t.Fatalf("%v: user id %q, want %s", args, v.UserID, uid)
		}
		return v
	}
	refused := func(t *testing.T, code string, args ...string) {
		t.Helper()
		var out bytes.Buffer
		err := run(ctx, args, getenv, &out)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != code || ae.Message == "" {
			t.Fatalf("%v: err = %v, want the API's %s", args, err, code)
		}
		if out.Len() != 0 {
			t.Fatalf("%v: printed %q on a refusal", args, out.String())
		}
	}

	if v := citizen(t, "citizen", "show", uid); v.Status != "active" || v.CPR == "" || len(v.Cards) != 1 {
		t.Fatalf("show: %+v", v)
	}
	refused(t, "not_found", "citizen", "show", "999999999")
	refused(t, "not_found", "citizen", "block", "999999999", "--reason", "misuse")
	refused(t, "not_found", "citizen", "unblock", "999999999")
	refused(t, "not_found", "citizen", "renew", "999999999")
	refused(t, "not_found", "citizen", "temporary-password", "999999999")
	refused(t, "not_blocked", "citizen", "unblock", uid)
	refused(t, "invalid_request", "citizen", "block", uid, "--reason", "boredom")
	refused(t, "invalid_request", "citizen", "block", uid)

	if v := citizen(t, "citizen", "block", uid, "--reason", "lost_card"); v.Status != "blocked" || v.BlockReason != "lost_card" {
		t.Fatalf("block: %+v", v)
	}
	// The flag before the user id, and a new reason for a blocked NemID.
	if v := citizen(t, "citizen", "block", "--reason", "operator", uid); v.Status != "blocked" || v.BlockReason != "operator" {
		t.Fatalf("block again: %+v", v)
	}
	refused(t, "blocked", "citizen", "temporary-password", uid)
	if v := citizen(t, "citizen", "unblock", uid); v.Status != "active" || v.BlockReason != "" {
		t.Fatalf("unblock: %+v", v)
	}
	if v := citizen(t, "citizen", "renew", uid); v.Status != "active" || v.ExpiresAt == "" {
		t.Fatalf("renew: %+v", v)
	}

	var out bytes.Buffer
	if err := run(ctx, []string{"citizen", "temporary-password", uid}, getenv, &out); err != nil {
		t.Fatal(err)
	}
	var tp admin.TemporaryPasswordResponse
	if err := json.Unmarshal(out.Bytes(), &tp); err != nil || tp.Password == "" || tp.Password == activation {
		t.Fatalf("temporary-password printed %q: %v", out.String(), err)
	}
	// The login's own check: the temporary password is the citizen's, to be changed; the
	// activation password no longer is.
	srv, done, err := operatorServer(ctx, getenv)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	c, err := srv.Store.Citizen(ctx, uid)
	if err != nil {
		t.Fatal(err)
	}
	if !c.MustChange {
		t.Fatal("temporary password: must_change not set")
	}
	for pw, want := range map[string]bool{tp.Password: true, activation: false} {
		ticket, err := srv.Issuer.Passwords.Admit()
		if err != nil {
			t.Fatal(err)
		}
		ok, err := ticket.Verify(ctx, c.Password, pw)
		ticket.Release()
		if err != nil || ok != want {
			t.Fatalf("verify %q: %v, %v; want %v", pw, ok, err, want)
		}
	}

	for _, args := range [][]string{
		{"citizen", "show"},
		{"citizen", "show", uid, uid},
		{"citizen", "unblock", "--reason", "misuse", uid}, // no --reason for unblock
	} {
		if err := run(ctx, args, getenv, &bytes.Buffer{}); err == nil {
			t.Fatalf("%v: no error", args)
		}
	}
}

// TestCitizenOpsProcess runs the CLI as a process: the audit trail names the operator "cli"
// and never holds the temporary password, and a refusal exits 1 with the API's code and
// message on stderr and nothing on stdout.
func TestCitizenOpsProcess(t *testing.T) {
	t.Parallel()
	getenv := cliEnv(t)
	uid, _ := addCitizen(t, getenv, "150690-1234")
	cli := func(args string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "NEMIDP_TEST_RUN_MAIN=1", "NEMIDP_TEST_ARGS="+args, "NEMIDP_CONFIG=",
			"NEMIDP_REDIS_URL="+getenv("NEMIDP_REDIS_URL"), "NEMIDP_REDIS_PREFIX="+getenv("NEMIDP_REDIS_PREFIX"),
			"NEMIDP_SECRET="+getenv("NEMIDP_SECRET"), "NEMIDP_ADMIN_TOKEN=")
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}

	out, errOut, code := cli("citizen block " + uid + " --reason misuse")
	if code != 0 || !strings.Contains(out, `"status": "blocked"`) {
		t.Fatalf("block: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	if !strings.Contains(errOut, `"who":"cli","what":"citizen.blocked","user_id":"`+uid+`"`) {
		t.Fatalf("block: no audit line naming cli:\n%s", errOut)
	}
	out, errOut, code = cli("citizen temporary-password " + uid)
	if code != 1 || out != "" || !strings.Contains(errOut, "nemidp: blocked: This NemID is blocked (misuse)") ||
		!strings.Contains(errOut, `"who":"cli","what":"operator.refused"`) {
		t.Fatalf("temporary-password on a blocked NemID: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	if _, errOut, code = cli("citizen unblock " + uid); code != 0 {
		t.Fatalf("unblock: exit %d: %s", code, errOut)
	}
	out, errOut, code = cli("citizen temporary-password " + uid)
	var tp admin.TemporaryPasswordResponse
	if code != 0 || json.Unmarshal([]byte(out), &tp) != nil || tp.Password == "" {
		t.Fatalf("temporary-password: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, `"who":"cli","what":"citizen.temporary_password"`) || strings.Contains(errOut, tp.Password) {
		t.Fatalf("temporary-password: audit line missing, or the password on stderr:\n%s", errOut)
	}
	if out, errOut, code = cli("citizen unblock 999999999"); code != 1 || out != "" || !strings.Contains(errOut, "nemidp: not_found: ") {
		t.Fatalf("unblock of an unknown NemID: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}
