package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nemidp/nemidp/idp/keyapp/deviceclient"
)

const usage = `keyapp — a NemID key app (nøgleapp) in a terminal

Usage:
  keyapp [--idp URL] [--state FILE] <command> [flags]

Commands:
  activate   activate this device: user ID, password and a key from your code card
  requests   list the pending login requests (--wait N to wait for one, --json)
  approve    approve a login by choosing the code your browser shows (or --approve CODE)
  deny       deny a login
  watch      wait for login requests and answer each one as it comes

Global flags (also accepted after the command):
  --idp URL     the IdP's base URL (env KEYAPP_IDP; default %s); only activate needs it:
                the other commands use the IdP the device was activated at
  --state FILE  the device's state file (default %s)

Run 'keyapp <command> --help' for the flags of a command.
Exit status: 0 done, 1 refused or failed (the reason is printed), 2 wrong usage.
`

// defaultIdP is where `nemidp serve` listens by default (config.Default's address).
const defaultIdP = "http://127.0.0.1:8080"

// App is one run of the command: its input and output, environment and clock. Nothing else
// is global, so tests run it against an in-process IdP.
type App struct {
	In  io.Reader
	Out io.Writer // results
	Err io.Writer // questions, progress and errors
	// Terminal: In is a terminal, so questions may be asked. Without it approve, deny and
	// watch refuse to ask and want their non-interactive flags.
	Terminal bool
	// ReadSecret reads a password without echo (nil: a line from In, echoed).
	ReadSecret func(ctx context.Context) (string, error)
	Getenv     func(string) string
	Hostname   func() (string, error)
	HTTP       *http.Client
	Now        func() time.Time

	lines *lineReader
}

// usageError is wrong usage: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// globals are the flags every command takes.
type globals struct {
	idp      string
	idpGiven bool // by --idp or KEYAPP_IDP
	state    string
}

// idpFlag records that --idp was given.
type idpFlag struct{ g *globals }

func (f idpFlag) String() string {
	if f.g == nil {
		return ""
	}
	return f.g.idp
}
func (f idpFlag) Set(v string) error { f.g.idp, f.g.idpGiven = v, true; return nil }

func (g *globals) register(fs *flag.FlagSet) {
	fs.Var(idpFlag{g}, "idp", "the IdP's base `URL` (env KEYAPP_IDP)")
	fs.StringVar(&g.state, "state", g.state, "the device's state `FILE`")
}

// Run runs the command line args (without the program name) and returns the exit status.
func (a *App) Run(ctx context.Context, args []string) int {
	err := a.run(ctx, args)
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(a.Err, "keyapp:", err)
		fmt.Fprintln(a.Err, "Run 'keyapp --help' for usage.")
		return 2
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		fmt.Fprintln(a.Err, "\nkeyapp: interrupted")
		return 1
	}
	fmt.Fprintln(a.Err, "keyapp:", describe(err))
	return 1
}

func (a *App) run(ctx context.Context, args []string) error {
	a.lines = &lineReader{r: bufio.NewReader(a.In)}
	g := &globals{}
	if v := a.Getenv("KEYAPP_IDP"); v != "" {
		g.idp, g.idpGiven = v, true
	} else {
		g.idp = defaultIdP
	}
	statePath, err := defaultStatePath(a.Getenv)
	if err != nil {
		statePath = ""
	}
	g.state = statePath
	help := func() { fmt.Fprintf(a.Out, usage, defaultIdP, orUnset(statePath)) }

	fs := flag.NewFlagSet("keyapp", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	g.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			help()
			return err
		}
		return usagef("%v", err)
	}
	args = fs.Args()
	if len(args) == 0 {
		help()
		return usagef("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "activate":
		return a.activate(ctx, g, rest)
	case "requests", "list":
		return a.requests(ctx, g, rest)
	case "approve":
		return a.decide(ctx, g, "approve", rest)
	case "deny":
		return a.decide(ctx, g, "deny", rest)
	case "watch":
		return a.watch(ctx, g, rest)
	case "help":
		help()
		return nil
	}
	return usagef("unknown command %q", cmd)
}

func orUnset(s string) string {
	if s == "" {
		return "unset: give --state"
	}
	return s
}

// commandFlags is the flag set of one command, with the global flags and its help text.
func (a *App) commandFlags(g *globals, name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.Out)
	g.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(a.Out, "Usage: keyapp %s\n\n%s\n\nFlags:\n", synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a command's flags, printing its help for -h/--help; stray arguments are a
// usage error.
func parse(fs *flag.FlagSet, args []string) error {
	out, help := fs.Output(), fs.Usage
	// The flag package prints its errors and the help itself; we print them our way.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	fs.Usage = help
	if errors.Is(err, flag.ErrHelp) {
		help()
		return err
	}
	if err != nil {
		return usagef("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// checkIdPURL refuses a base URL that is not http(s)://host[/path].
func checkIdPURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", usagef("--idp %q: give the IdP's base URL, like %s", raw, defaultIdP)
	}
	return strings.TrimRight(raw, "/"), nil
}

// device loads the activated device of the state file.
func (a *App) device(g *globals) (*deviceclient.Device, *State, error) {
	if g.state == "" {
		return nil, nil, usagef("no state file: give --state FILE (neither XDG_CONFIG_HOME nor HOME is set)")
	}
	s, err := loadState(g.state)
	if err != nil {
		return nil, nil, err
	}
	if g.idpGiven {
		want, err := checkIdPURL(g.idp)
		if err != nil {
			return nil, nil, err
		}
		if want != strings.TrimRight(s.IdP, "/") {
			return nil, nil, fmt.Errorf("--idp (or KEYAPP_IDP) names %s, but the device in %s was activated at %s; a device works only with the IdP that activated it",
				want, g.state, s.IdP)
		}
	}
	return &deviceclient.Device{Base: s.IdP, ID: s.DeviceID, Key: s.key, HTTP: a.HTTP, Now: a.Now}, s, nil
}

func (a *App) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// describe turns an error into the line printed: the IdP's message and code as it gave
// them, or what went wrong on the way.
func describe(err error) string {
	var de *deviceclient.Error
	if errors.As(err, &de) {
		s := de.Message
		if s == "" {
			s = http.StatusText(de.Status)
		}
		s += " (" + de.Code
		if de.AttemptsLeft != nil {
			s += fmt.Sprintf(", %d attempt(s) left", *de.AttemptsLeft)
		}
		s += ")"
		if de.Code == "unknown_device" || de.Code == "device_deactivated" {
			s += "; this device is not registered at the IdP (any more): activate it again with `keyapp activate --force`"
		}
		return s
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return "cannot reach the IdP: " + err.Error()
	}
	return err.Error()
}

// lineReader reads answers line by line without blocking a cancelled context: a read still
// outstanding when the context ends is taken up by the next call.
type lineReader struct {
	r       *bufio.Reader
	pending chan lineResult
}

type lineResult struct {
	line string
	err  error
}

// errNoInput: standard input ended before an answer.
var errNoInput = errors.New("no answer: standard input ended")

func (l *lineReader) read(ctx context.Context) (string, error) {
	if l.pending == nil {
		ch := make(chan lineResult, 1)
		l.pending = ch
		go func() {
			s, err := l.r.ReadString('\n')
			if err == io.EOF && s != "" {
				err = nil
			}
			ch <- lineResult{strings.TrimRight(s, "\r\n"), err}
		}()
	}
	select {
	case r := <-l.pending:
		l.pending = nil
		if r.err == io.EOF {
			return "", errNoInput
		}
		return r.line, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// ask prints a question and reads the answer line.
func (a *App) ask(ctx context.Context, question string) (string, error) {
	fmt.Fprint(a.Err, question)
	s, err := a.lines.read(ctx)
	if errors.Is(err, errNoInput) {
		fmt.Fprintln(a.Err)
	}
	return strings.TrimSpace(s), err
}

// askSecret asks for a password, without echo on a terminal.
func (a *App) askSecret(ctx context.Context, question string) (string, error) {
	if a.ReadSecret == nil || !a.Terminal {
		s, err := a.ask(ctx, question)
		return s, err
	}
	fmt.Fprint(a.Err, question)
	s, err := a.ReadSecret(ctx)
	fmt.Fprintln(a.Err)
	return s, err
}

// osApp is the App of the real process.
func osApp() *App {
	return &App{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv, Hostname: os.Hostname,
		Terminal: stdinIsTerminal(), ReadSecret: readSecret,
		// Long-polls wait up to 30 s at the IdP.
		HTTP: &http.Client{Timeout: 60 * time.Second}}
}
