package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// Bounds of a run: every run ends, whatever the flags say.
const (
	maxConcurrency = 256
	maxDuration    = 10 * time.Minute
	maxOps         = 1_000_000
	maxCitizens    = 10_000
	maxLive        = 100_000
)

// Modes are the kinds of operation the driver times.
var modes = []string{"login", "sso", "refresh", "userinfo", "keyapp"}

// Config is one run's settings, from the command line.
type Config struct {
	IdP         string // base URL, loopback only
	AdminToken  string
	Mode        string
	Concurrency int
	Duration    time.Duration
	MaxOps      int
	Citizens    int
	Live        int    // login flows opened before the timed run and left unfinished
	PID         int    // server process for CPU from /proc (0: not measured)
	RedisURL    string // for INFO commandstats (empty: not measured)
	JSON        bool
}

// parseFlags reads the command line; getenv supplies NEMIDP_ADMIN_TOKEN when --admin-token is
// not given.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.IdP, "idp", "http://127.0.0.1:8080", "base URL of the IdP (loopback only: 127.0.0.1, localhost, [::1])")
	fs.StringVar(&c.AdminToken, "admin-token", "", "operator API bearer token (default $NEMIDP_ADMIN_TOKEN)")
	fs.StringVar(&c.Mode, "mode", "login", "operation: "+strings.Join(modes, "|"))
	fs.IntVar(&c.Concurrency, "c", 4, fmt.Sprintf("concurrent workers (1..%d)", maxConcurrency))
	fs.DurationVar(&c.Duration, "d", 10*time.Second, fmt.Sprintf("run duration (at most %v)", maxDuration))
	fs.IntVar(&c.MaxOps, "n", 100_000, fmt.Sprintf("maximum operations (at most %d); the run ends at -d or -n, whichever comes first", maxOps))
	fs.IntVar(&c.Citizens, "citizens", 0, "citizens to create (default and minimum: one per worker)")
	fs.IntVar(&c.Live, "live", 0, fmt.Sprintf("login flows to open (authorize → login page) before the timed run and leave unfinished, -c at a time (at most %d); they stay in Redis until login.flow_ttl", maxLive))
	fs.IntVar(&c.PID, "pid", 0, "server process id: report its CPU and page faults per operation from /proc/<pid>/stat and its memory from /proc/<pid>/status")
	fs.StringVar(&c.RedisURL, "redis", "", "Redis URL of the server: report Redis commands per operation from INFO commandstats")
	fs.BoolVar(&c.JSON, "json", false, "print the summary as JSON")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.AdminToken == "" {
		c.AdminToken = getenv("NEMIDP_ADMIN_TOKEN")
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	base, err := loopbackBase(c.IdP)
	if err != nil {
		return fmt.Errorf("--idp: %w", err)
	}
	c.IdP = base
	if c.AdminToken == "" {
		return errors.New("--admin-token (or NEMIDP_ADMIN_TOKEN) is required: the driver makes its client and citizens through the operator API")
	}
	ok := false
	for _, m := range modes {
		ok = ok || m == c.Mode
	}
	if !ok {
		return fmt.Errorf("--mode %q: want one of %s", c.Mode, strings.Join(modes, ", "))
	}
	if c.Concurrency < 1 || c.Concurrency > maxConcurrency {
		return fmt.Errorf("-c %d: want 1..%d", c.Concurrency, maxConcurrency)
	}
	if c.Duration <= 0 || c.Duration > maxDuration {
		return fmt.Errorf("-d %v: want more than 0 and at most %v", c.Duration, maxDuration)
	}
	if c.MaxOps < 1 || c.MaxOps > maxOps {
		return fmt.Errorf("-n %d: want 1..%d", c.MaxOps, maxOps)
	}
	if c.Citizens < 0 || c.Citizens > maxCitizens {
		return fmt.Errorf("--citizens %d: want 0..%d", c.Citizens, maxCitizens)
	}
	if c.Live < 0 || c.Live > maxLive {
		return fmt.Errorf("--live %d: want 0..%d", c.Live, maxLive)
	}
	if c.Citizens < c.Concurrency {
		c.Citizens = c.Concurrency // each worker logs its own citizens in: one card, one pending key number
	}
	if c.PID < 0 {
		return fmt.Errorf("--pid %d: not a process id", c.PID)
	}
	return nil
}

// loopbackBase checks that raw is an http(s) URL on a loopback host and returns it without a
// trailing slash. The driver sends real passwords and floods what it reaches: never off this
// machine.
func loopbackBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q: want an http(s) URL", raw)
	}
	if !isLoopbackHost(u.Hostname()) {
		return "", fmt.Errorf("%q: the load driver only runs against this machine (127.0.0.1, localhost or [::1])", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: want a base URL without user, query or fragment", raw)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
