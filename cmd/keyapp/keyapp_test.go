package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/keys/device"
)

// syncBuffer is a bytes.Buffer safe for a command running in another goroutine.
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

// cli runs the command as a user with their own home directory would.
type cli struct {
	t   *testing.T
	env map[string]string
}

func newCLI(t *testing.T, idpURL string) *cli {
	return &cli{t: t, env: map[string]string{"HOME": t.TempDir(), "KEYAPP_IDP": idpURL}}
}

func (c *cli) statePath() string {
	return filepath.Join(c.env["HOME"], ".config", "nemidp-keyapp", "device.json")
}

type result struct {
	code     int
	out, err string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
}

func (c *cli) app(in io.Reader, terminal bool) (*App, *syncBuffer, *syncBuffer) {
	out, errOut := &syncBuffer{}, &syncBuffer{}
	return &App{In: in, Out: out, Err: errOut, Terminal: terminal, Getenv: func(k string) string { return c.env[k] },
		Hostname: func() (string, error) { return "testhost", nil }, HTTP: &http.Client{Timeout: 40 * time.Second}}, out, errOut
}

// run runs args with stdin as given (a terminal or not).
func (c *cli) runIn(in string, terminal bool, args ...string) result {
	c.t.Helper()
	a, out, errOut := c.app(strings.NewReader(in), terminal)
	code := a.Run(c.t.Context(), args)
	return result{code, out.String(), errOut.String()}
}

// run runs args with an empty stdin that is no terminal (a script).
func (c *cli) run(args ...string) result {
	c.t.Helper()
	return c.runIn("", false, args...)
}

func (c *cli) must(args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("keyapp %s: %s", strings.Join(args, " "), r)
	}
	return r
}

func wantFail(t *testing.T, r result, code int, wants ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %s", code, r)
	}
	for _, w := range wants {
		if !strings.Contains(r.err, w) {
			t.Fatalf("stderr lacks %q: %s", w, r)
		}
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// listed is what `requests --json` prints.
type listed struct {
	Requests []listedRequest `json:"requests"`
}

type listedRequest struct {
	ID           string   `json:"id"`
	ClientName   string   `json:"client_name"`
	Text         string   `json:"text"`
	BindingCodes []string `json:"binding_codes"`
	ExpiresAt    string   `json:"expires_at"`
}

func (c *cli) list() listed {
	c.t.Helper()
	r := c.must("requests", "--json")
	var l listed
	if err := json.Unmarshal([]byte(r.out), &l); err != nil {
		c.t.Fatalf("requests --json: %v: %s", err, r.out)
	}
	return l
}

// TestActivateAndDecide runs the key app against a real IdP: activation (refused on the
// temporary password, a wrong key, the right one, refusing to overwrite, --force with a card
// file), then logins approved with the right code, stopped by a wrong one, denied, approved
// interactively and through watch.
func TestActivateAndDecide(t *testing.T) {
	p := startIdP(t)
	bank := p.registerClient(t, "Test Netbank")
	c, issued := p.issueCitizen(t)
	cardFile := writeFile(t, "card.json", string(issued))
	k := newCLI(t, p.base)

	// Still on the activation password: the IdP refuses, after the password.
	tmpPW := writeFile(t, "tmp-password", c.ActivationPassword+"\n")
	wantFail(t, k.run("activate", "--user", c.UserID, "--password-file", tmpPW, "--card", cardFile),
		1, "activation_refused", "temporary password")
	if _, err := os.Stat(k.statePath()); err == nil {
		t.Fatal("a refused activation wrote the state file")
	}

	pw := "Kode" + randHex(3) + "7"
	p.firstLogin(t, bank, c, pw)
	pwFile := writeFile(t, "password", pw+"\n")

	// A wrong key: refused with the attempts left; the prompt named the key number.
	r := k.run("activate", "--user", c.UserID, "--password-file", pwFile, "--key", "000000")
	wantFail(t, r, 1, "wrong_key", "attempt(s) left", "Key number ", "on card "+c.Card.Serial)
	m := regexp.MustCompile(`Key number (\d{4}) on card`).FindStringSubmatch(r.err)
	if m == nil {
		t.Fatalf("no key number in %s", r)
	}
	// The card asks the same number until its key is used.
	r = k.must("activate", "--user", c.UserID, "--password-file", pwFile, "--key", c.key(m[1]), "--name", "Test phone")
	if !strings.Contains(r.out, "Activated device "+c.UserID+".") || !strings.Contains(r.out, k.statePath()) {
		t.Fatalf("activate said: %s", r)
	}
	fi, err := os.Stat(k.statePath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %04o, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(k.statePath()))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("state directory mode %04o, want 0700", di.Mode().Perm())
	}
	first, err := loadState(k.statePath())
	if err != nil {
		t.Fatal(err)
	}
	if first.IdP != p.base || first.DeviceName != "Test phone" || !strings.HasPrefix(first.DeviceID, c.UserID+".") || first.key == nil {
		t.Fatalf("state: %+v", first)
	}
	if entries, _ := os.ReadDir(filepath.Dir(k.statePath())); len(entries) != 1 {
		t.Fatalf("state directory holds %d entries (temporary files left?)", len(entries))
	}

	// An activated state is not overwritten without --force.
	wantFail(t, k.run("activate", "--user", c.UserID, "--password-file", pwFile, "--card", cardFile),
		1, "already holds device "+first.DeviceID, "--force")
	// With --force a new device takes its place; the key comes from the card file.
	r = k.must("activate", "--force", "--user", c.UserID, "--password-file", pwFile, "--card", cardFile)
	if !strings.Contains(r.out, "replaces device "+first.DeviceID) || !strings.Contains(r.err, "(from "+cardFile+")") {
		t.Fatalf("activate --force said: %s", r)
	}
	st, err := loadState(k.statePath())
	if err != nil || st.DeviceID == first.DeviceID || st.DeviceName != "testhost" {
		t.Fatalf("state after --force: %+v %v", st, err)
	}

	if l := k.list(); len(l.Requests) != 0 {
		t.Fatalf("pending before any login: %+v", l)
	}

	t.Run("approve", func(t *testing.T) {
		l, code := p.keyAppLogin(t, bank, c, pw)
		got := k.list()
		if len(got.Requests) != 1 {
			t.Fatalf("requests: %+v", got)
		}
		q := got.Requests[0]
		if len(q.BindingCodes) != 3 || !slices.Contains(q.BindingCodes, code) || q.ClientName != "Test Netbank" || q.Text == "" {
			t.Fatalf("request %+v, browser shows %s", q, code)
		}
		text := k.must("requests")
		if !strings.Contains(text.out, "Test Netbank — "+q.Text) || !strings.Contains(text.out, "codes: "+strings.Join(q.BindingCodes, "  ")) ||
			!regexp.MustCompile(`expires in (\dm)?\d+s`).MatchString(text.out) || !strings.Contains(text.out, "id: "+q.ID) {
			t.Fatalf("requests said: %s", text)
		}
		r := k.must("approve", "--approve", code)
		if !strings.Contains(r.out, "Approved with code "+code) {
			t.Fatalf("approve said: %s", r)
		}
		if f := l.load(t); f.Step != flows.StepDone {
			t.Fatalf("flow after approval: step %s (%v)", f.Step, f.Failure)
		}
		if l := k.list(); len(l.Requests) != 0 {
			t.Fatalf("still pending after approval: %+v", l)
		}
	})

	t.Run("wrong code", func(t *testing.T) {
		l, code := p.keyAppLogin(t, bank, c, pw)
		q := k.list().Requests[0]
		// A code that is none of the three is refused here; nothing is sent.
		wantFail(t, k.run("approve", "--approve", "x1"), 1, "not one of this request's codes", "nothing was sent")
		if n := len(k.list().Requests); n != 1 {
			t.Fatalf("%d pending after a code refused locally", n)
		}
		other := q.BindingCodes[slices.IndexFunc(q.BindingCodes, func(s string) bool { return s != code })]
		wantFail(t, k.run("approve", "--request", q.ID, "--approve", other), 1,
			"That is not the code the login shows", "(wrong_binding_code)")
		if f := l.load(t); f.Step == flows.StepDone {
			t.Fatal("a wrong code let the login through")
		}
		wantFail(t, k.run("approve", "--approve", code, "--wait", "0"), 1, "no pending login request")
	})

	t.Run("deny", func(t *testing.T) {
		l, _ := p.keyAppLogin(t, bank, c, pw)
		r := k.must("deny")
		if !strings.Contains(r.out, "Denied: the login at Test Netbank was stopped.") {
			t.Fatalf("deny said: %s", r)
		}
		if f := l.load(t); f.Step != flows.StepFailed || f.Failure == nil || f.Failure.Code != flows.CodeKeyAppDenied {
			t.Fatalf("flow after deny: step %s failure %v", f.Step, f.Failure)
		}
	})

	t.Run("interactive", func(t *testing.T) {
		l, code := p.keyAppLogin(t, bank, c, pw)
		// Not a terminal, no flag: refused, nothing asked.
		wantFail(t, k.run("approve"), 2, "not a terminal", "--approve CODE")
		r := k.runIn("7x\n"+code+"\n", true, "approve")
		if r.code != 0 || !strings.Contains(r.err, "Which code does your browser show?") || !strings.Contains(r.err, `"7x" is not one of the codes`) ||
			!strings.Contains(r.out, "Approved with code "+code) {
			t.Fatalf("interactive approve: %s", r)
		}
		if f := l.load(t); f.Step != flows.StepDone {
			t.Fatalf("flow after approval: step %s", f.Step)
		}

		// Two logins pending: it asks which; --request names one.
		la, _ := p.keyAppLogin(t, bank, c, pw)
		lb, codeB := p.keyAppLogin(t, bank, c, pw)
		idA, idB := la.load(t).Approval.ID, lb.load(t).Approval.ID
		got := k.list().Requests
		nB := slices.IndexFunc(got, func(q listedRequest) bool { return q.ID == idB })
		if len(got) != 2 || nB < 0 {
			t.Fatalf("requests %+v, want %s and %s", got, idA, idB)
		}
		r = k.runIn(fmt.Sprintf("%d\n%s\n", nB+1, codeB), true, "approve")
		if r.code != 0 || !strings.Contains(r.out, "2 pending login requests") || !strings.Contains(r.err, "Which request? [1-2]") {
			t.Fatalf("approve with two pending: %s", r)
		}
		if fa, fb := la.load(t), lb.load(t); fa.Step != flows.StepKeyApp || fb.Step != flows.StepDone {
			t.Fatalf("after approving B: A %s, B %s", fa.Step, fb.Step)
		}
		k.must("deny", "--request", idA)
		if f := la.load(t); f.Step != flows.StepFailed {
			t.Fatalf("after denying A: %s", f.Step)
		}
	})

	t.Run("watch", func(t *testing.T) {
		wantFail(t, k.run("watch"), 2, "not a terminal")
		in, answer := io.Pipe()
		defer answer.Close()
		a, out, errOut := k.app(in, true)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		done := make(chan int, 1)
		go func() { done <- a.Run(ctx, []string{"watch"}) }()
		waitFor(t, errOut, "Waiting for login requests")
		// The request comes while watch long-polls.
		l, code := p.keyAppLogin(t, bank, c, pw)
		waitFor(t, errOut, "Which code does your browser show?")
		if _, err := io.WriteString(answer, code+"\n"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, out, "Approved with code "+code)
		if f := l.load(t); f.Step != flows.StepDone {
			t.Fatalf("flow after approval in watch: step %s", f.Step)
		}
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Fatalf("watch ended with %d: %s %s", code, out, errOut)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("watch did not stop when its context ended")
		}
	})

	t.Run("state file", func(t *testing.T) {
		if err := os.Chmod(k.statePath(), 0o644); err != nil {
			t.Fatal(err)
		}
		wantFail(t, k.run("requests"), 1, "mode 0644", "other users may read", "chmod 600")
		if err := os.Chmod(k.statePath(), 0o600); err != nil {
			t.Fatal(err)
		}
		wantFail(t, k.run("--idp", "http://127.0.0.1:1", "requests"), 1, "was activated at "+p.base)
		wantFail(t, k.run("requests", "--state", filepath.Join(t.TempDir(), "none.json")), 1, "does not exist", "keyapp activate")
	})
}

// waitFor waits until b holds s.
func waitFor(t *testing.T, b *syncBuffer, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 20 s in:\n%s", s, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUsage: wrong usage exits 2 before anything is asked or sent; --help exits 0.
func TestUsage(t *testing.T) {
	k := newCLI(t, "http://127.0.0.1:1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"requests", "extra"}, `unexpected argument "extra"`},
		{[]string{"requests", "--wait", "-1"}, "--wait must be 0 or more"},
		{[]string{"approve", "--approve", "12", "--deny"}, "not both"},
		{[]string{"approve"}, "not a terminal"},
		{[]string{"watch"}, "not a terminal"},
		{[]string{"activate", "--password-file", "x", "--password-stdin"}, "not both"},
		{[]string{"activate", "--key", "123456", "--card", "x"}, "not both"},
		{[]string{"activate", "--password", "hunter2"}, "flag provided but not defined: -password"},
		{[]string{"--idp", "127.0.0.1:8080", "activate"}, "give the IdP's base URL"},
	} {
		r := k.run(tc.args...)
		wantFail(t, r, 2, tc.want)
	}
	for _, args := range [][]string{{"--help"}, {"help"}, {"activate", "--help"}, {"approve", "-h"}, {"watch", "--help"}} {
		r := k.run(args...)
		if r.code != 0 || !strings.Contains(r.out, "Usage:") || !strings.Contains(r.out, "keyapp") {
			t.Fatalf("%v: %s", args, r)
		}
	}
	if r := k.run("activate", "--help"); !strings.Contains(r.out, "-password-file FILE") || !strings.Contains(r.out, "-state FILE") {
		t.Fatalf("activate --help lacks its flags: %s", r)
	}
	// Nothing listens at the IdP: the failure says so.
	pw := writeFile(t, "pw", "Kode12345x\n")
	wantFail(t, k.run("activate", "--user", "123456789", "--password-file", pw, "--key", "123456"), 1, "cannot reach the IdP")
}

func TestStateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "device.json")
	key, err := device.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pem, err := device.EncodePrivate(key)
	if err != nil {
		t.Fatal(err)
	}
	s := &State{IdP: "http://127.0.0.1:8080", DeviceID: "123456789.AAAAAAAAAAAAAAAAAAAAAA", DeviceName: "x", PrivateKey: string(pem)}
	if err := saveState(path, s); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700, filepath.Dir(dir): 0o700} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != want {
			t.Fatalf("%s: mode %v (%v), want %04o", p, fi.Mode().Perm(), err, want)
		}
	}
	got, err := loadState(path)
	if err != nil || got.DeviceID != s.DeviceID || got.key == nil {
		t.Fatalf("loadState: %+v %v", got, err)
	}
	// Rewriting replaces the file whole (a rename), leaving no temporary file.
	s.DeviceName = "y"
	if err := saveState(path, s); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d entries in the state directory", len(entries))
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := loadState(path); err == nil || !strings.Contains(err.Error(), "other users may read") {
			t.Fatalf("mode %04o: loadState = %v", mode, err)
		}
	}
}

func TestDefaultStatePath(t *testing.T) {
	for _, tc := range []struct{ xdg, home, want string }{
		{"/x/cfg", "/home/k", "/x/cfg/nemidp-keyapp/device.json"},
		{"", "/home/k", "/home/k/.config/nemidp-keyapp/device.json"},
		{"relative", "/home/k", "/home/k/.config/nemidp-keyapp/device.json"},
	} {
		env := map[string]string{"XDG_CONFIG_HOME": tc.xdg, "HOME": tc.home}
		got, err := defaultStatePath(func(k string) string { return env[k] })
		if err != nil || got != tc.want {
			t.Fatalf("%+v: %q %v", tc, got, err)
		}
	}
	if _, err := defaultStatePath(func(string) string { return "" }); err == nil {
		t.Fatal("no HOME and no XDG_CONFIG_HOME: want an error")
	}
}
