package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/idptest"
	"github.com/nemidp/nemidp/idp/store/storetest"
)

// The tests run the driver against a real IdP served in-process on the shared test Redis
// (NEMIDP_REDIS_URL, else 127.0.0.1:6379) under a fresh key prefix deleted after the test, with
// the near-free test KDF. Without Redis they skip (with CI set, they fail).

type testIdP struct {
	base, admin string
}

func startIdP(t *testing.T) *testIdP {
	t.Helper()
	s := idptest.Start(t)
	return &testIdP{base: s.URL, admin: s.AdminToken}
}

func (p *testIdP) config(mode string) Config {
	return Config{IdP: p.base, AdminToken: p.admin, Mode: mode, Concurrency: 2, Duration: time.Minute,
		MaxOps: 5, PID: os.Getpid(), RedisURL: storetest.RedisURL()}
}

func runConfig(t *testing.T, ctx context.Context, cfg Config) *Summary {
	t.Helper()
	if err := cfg.validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	var log bytes.Buffer
	r := &runner{cfg: cfg, stderr: &log, progressEvery: 50 * time.Millisecond}
	sum, err := r.Run(ctx)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	return sum
}

// TestModes runs every mode for 5 operations at c=2 and wants them all to succeed, with
// the steps of the mode timed, and the CPU and Redis figures present.
func TestModes(t *testing.T) {
	p := startIdP(t)
	want := map[string][]string{
		"login":    {"authorize", "login_page", "password", "codecard", "callback", "token", "op"},
		"sso":      {"authorize", "callback", "token", "op"},
		"refresh":  {"refresh", "op"},
		"userinfo": {"userinfo", "op"},
		"keyapp":   {"authorize", "login_page", "password", "device_list", "device_decide", "keyapp_poll", "callback", "token", "op"},
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			sum := runConfig(t, t.Context(), p.config(mode))
			if sum.Errors != 0 || len(sum.ErrorKinds) != 0 {
				t.Errorf("%d errors: %v", sum.Errors, sum.ErrorKinds)
			}
			if sum.Ops != 5 || sum.Interrupted {
				t.Errorf("ops = %d (interrupted %v), want 5", sum.Ops, sum.Interrupted)
			}
			var steps []string
			for _, st := range sum.Steps {
				steps = append(steps, st.Step)
				if st.Count != 5 || st.P50 <= 0 || st.P50 > st.P95 || st.P95 > st.P99 || st.P99 > st.Max {
					t.Errorf("step %+v: want 5 samples and ordered percentiles", st)
				}
			}
			for _, s := range want[mode] {
				if !slices.Contains(steps, s) {
					t.Errorf("steps %v lack %q", steps, s)
				}
			}
			if sum.CPU == nil || sum.Redis == nil || sum.Redis.Commands <= 0 {
				t.Errorf("CPU %+v Redis %+v: want both measured", sum.CPU, sum.Redis)
			}
			if sum.OpsPerSec <= 0 {
				t.Errorf("ops/s = %v", sum.OpsPerSec)
			}
			var text, js bytes.Buffer
			sum.writeText(&text)
			if !strings.Contains(text.String(), "p99 ms") || !strings.Contains(text.String(), "server CPU") {
				t.Errorf("text summary:\n%s", text.String())
			}
			if err := sum.writeJSON(&js); err != nil || !json.Valid(js.Bytes()) {
				t.Errorf("JSON summary: %v\n%s", err, js.String())
			}
		})
	}
}

// TestLoginReplacesCitizenWhenCardRunsLow: a citizen whose card is nearly used is replaced by
// a newly issued one before the next login, which still succeeds.
func TestLoginReplacesCitizenWhenCardRunsLow(t *testing.T) {
	p := startIdP(t)
	cfg := p.config("login")
	cfg.Concurrency, cfg.MaxOps, cfg.PID, cfg.RedisURL = 1, 1, 0, ""
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	e, err := newEnv(t.Context(), cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.issueCitizen(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for n := range c.keys {
		if c.keysLeft() <= lowKeys {
			break
		}
		c.used[n] = true
	}
	w := &worker{e: e, cits: []*citizen{c}}
	if err := w.prepare(t.Context()); err != nil {
		t.Fatal(err)
	}
	if w.cur == c || e.issued.Load() != 1 {
		t.Fatalf("the citizen with %d keys left was not replaced", c.keysLeft())
	}
	if err := w.op(t.Context(), &trace{}); err != nil {
		t.Fatalf("login of the new citizen: %v", err)
	}
}

// TestInterrupt: cancelling the run (Ctrl-C) ends it with the summary so far, the operations
// cut short counted neither as successes nor as errors.
func TestInterrupt(t *testing.T) {
	p := startIdP(t)
	cfg := p.config("userinfo")
	cfg.MaxOps = maxOps
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(700*time.Millisecond, cancel)
	sum := runConfig(t, ctx, cfg)
	if !sum.Interrupted || sum.Errors != 0 || sum.Ops == 0 || sum.ElapsedS > 30 {
		t.Fatalf("interrupted %v, %d ops, %d errors %v in %.1f s", sum.Interrupted, sum.Ops, sum.Errors, sum.ErrorKinds, sum.ElapsedS)
	}
}

func TestFlags(t *testing.T) {
	env := func(k string) string {
		if k == "NEMIDP_ADMIN_TOKEN" {
			return "from-env"
		}
		return ""
	}
	for _, idp := range []string{"http://127.0.0.1:8080", "http://localhost:8080/", "http://[::1]:8080", "https://127.0.0.1"} {
		c, err := parseFlags([]string{"--idp", idp}, env, io.Discard)
		if err != nil || c.AdminToken != "from-env" || strings.HasSuffix(c.IdP, "/") {
			t.Errorf("--idp %s: %+v %v", idp, c, err)
		}
	}
	for _, idp := range []string{"http://example.com", "http://10.0.0.1:8080", "http://192.168.1.2", "ftp://127.0.0.1",
		"http://127.0.0.1.example.com", "http://localhost.evil:8080", "127.0.0.1:8080", "http://u:p@127.0.0.1"} {
		if _, err := parseFlags([]string{"--idp", idp}, env, io.Discard); err == nil {
			t.Errorf("--idp %s accepted", idp)
		}
	}
	for _, args := range [][]string{{"-c", "0"}, {"-c", "1000"}, {"-d", "0s"}, {"-d", "11m"}, {"-n", "0"},
		{"-n", "2000000"}, {"--mode", "saml"}, {"--citizens", "20000"}, {"--live", "-1"}, {"--live", "100001"}, {"stray"}} {
		if _, err := parseFlags(args, env, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if _, err := parseFlags(nil, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("no admin token accepted")
	}
	c, err := parseFlags([]string{"-c", "8", "--citizens", "3", "--admin-token", "x"}, env, io.Discard)
	if err != nil || c.Citizens != 8 || c.AdminToken != "x" {
		t.Errorf("citizens below -c: %+v %v, want one per worker", c, err)
	}
	if c, err := parseFlags([]string{"--live", "10000"}, env, io.Discard); err != nil || c.Live != 10000 {
		t.Errorf("--live 10000: %+v %v", c, err)
	}
}

// TestLive: --live opens that many flows, each at the password step, before the run, and the
// run after them still succeeds, with the server's memory and page faults measured.
func TestLive(t *testing.T) {
	p := startIdP(t)
	cfg := p.config("login")
	cfg.Live, cfg.MaxOps = 25, 2
	sum := runConfig(t, t.Context(), cfg)
	if sum.Errors != 0 || sum.Ops != 2 {
		t.Fatalf("%d ops, %d errors %v", sum.Ops, sum.Errors, sum.ErrorKinds)
	}
	if sum.Live == nil || sum.Live.Flows != 25 || sum.Live.Seconds <= 0 {
		t.Errorf("live %+v, want 25 flows", sum.Live)
	}
	// VmHWM is the kernel's own peak, but its RSS counters are synced per thread lazily, so it
	// may trail a VmRSS sample a little (72.25 MiB against a sample of 72.33 in one CI run).
	if m := sum.Memory; m == nil || m.Samples < 2 || m.PeakMiB <= 0 || m.HWMMiB < m.PeakMiB-1 {
		t.Errorf("memory %+v", sum.Memory)
	}
	if sum.CPU == nil || sum.CPU.MinFlt < 0 || sum.CPU.MsPerOK < sum.CPU.MsPerOp {
		t.Errorf("CPU %+v", sum.CPU)
	}
	var text bytes.Buffer
	sum.writeText(&text)
	for _, want := range []string{"live flows: 25 opened", "server RSS:", "server page faults:"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text summary lacks %q:\n%s", want, text.String())
		}
	}
}

// TestRunRefusesNonLoopback: the command exits 2 before any request when --idp is elsewhere.
func TestRunRefusesNonLoopback(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"--idp", "https://nemidp.example.dk", "--admin-token", "x"},
		func(string) string { return "" }, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "only runs against this machine") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

// TestProcCPU reads the test's own CPU from /proc: it grows as the test burns CPU.
func TestProcCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	ticks, _ := clockTicks()
	before, err := readProcCPU(os.Getpid(), ticks)
	if err != nil {
		t.Fatal(err)
	}
	// Spin until getrusage, an independent reading, says the process used 200 ms of CPU more
	// (however long a loaded machine takes to give it that), then read /proc.
	rusage := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start, x := rusage(), 0
	for deadline := time.Now().Add(30 * time.Second); rusage()-start < 200*time.Millisecond && time.Now().Before(deadline); {
		for range 100000 {
			x++
		}
	}
	spun := rusage() - start
	after, err := readProcCPU(os.Getpid(), ticks)
	if err != nil {
		t.Fatal(err)
	}
	used := (after.User + after.System) - (before.User + before.System)
	// /proc counts in clock ticks (10 ms): allow a few either way.
	if used < spun-50*time.Millisecond || used > spun+10*time.Second {
		t.Fatalf("%v of CPU by getrusage (%d loops) read from /proc as %v", spun, x, used)
	}
	if _, err := readProcCPU(1<<30, ticks); err == nil {
		t.Error("a process that does not exist was read")
	}
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name, line string
		ticks      int
		want       procCPU
		wantErr    bool
	}{
		{"spaces and parentheses in the name", "4242 (we ird) (name) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0 1 0 100 0 0\n", 100,
			procCPU{User: 2500 * time.Millisecond, System: 300 * time.Millisecond, MinFlt: 7, MajFlt: 9}, false},
		{"1000 ticks", "1 (nemidp) R 0 1 1 0 -1 4194560 123456 0 2 0 1500 250 0 0 20 0 9 0 5 0 0", 1000,
			procCPU{User: 1500 * time.Millisecond, System: 250 * time.Millisecond, MinFlt: 123456, MajFlt: 2}, false},
		{"garbage", "garbage", 100, procCPU{}, true},
		{"too short", "1 (x) S 1 2 3", 100, procCPU{}, true},
		{"bad faults", "1 (x) S 1 2 3 4 5 6 many 8 9 10 250 30 0", 100, procCPU{}, true},
		{"no ticks", "1 (x) S 1 2 3 4 5 6 7 8 9 10 250 30 0", 0, procCPU{}, true},
	}
	for _, tt := range tests {
		got, err := parseProcStat(tt.line, tt.ticks)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v (error %v)", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseProcStatus(t *testing.T) {
	const head = "Name:\tnemidp\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t 1300000 kB\n"
	tests := []struct {
		name, status string
		want         procMem
		wantErr      bool
	}{
		{"both", head + "VmHWM:\t  142716 kB\nVmRSS:\t   65604 kB\nRssAnon:\t   40000 kB\n", procMem{RSS: 65604, HWM: 142716}, false},
		{"kernel thread", "Name:\tkthreadd\nState:\tS (sleeping)\n", procMem{}, true},
		{"no unit", head + "VmHWM:\t  142716\nVmRSS:\t   65604 kB\n", procMem{}, true},
		{"not a number", head + "VmHWM:\t  lots kB\nVmRSS:\t   65604 kB\n", procMem{}, true},
	}
	for _, tt := range tests {
		got, err := parseProcStatus(tt.status)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v (error %v)", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestProcMem reads the test's own memory: it has some, the peak at least what it has now, and
// a sampler over a run of allocations sees at least as much as at its start.
func TestProcMem(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	m, err := readProcMem(os.Getpid())
	if err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Fatalf("got %+v, %v", m, err)
	}
	s, err := startMemSampler(os.Getpid(), 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	held := make([]byte, 32<<20)
	for i := range held {
		held[i] = byte(i)
	}
	time.Sleep(30 * time.Millisecond)
	st := s.stop()
	if st.Samples < 2 || st.PeakMiB < st.StartMiB || st.PeakMiB < st.EndMiB || st.HWMMiB < st.PeakMiB || st.Note != "" {
		t.Errorf("sampler: %+v", st)
	}
	if st.PeakMiB < 32 {
		t.Errorf("32 MiB touched, peak RSS %.1f MiB", st.PeakMiB)
	}
	_ = held[len(held)-1]
	if _, err := startMemSampler(1<<30, time.Millisecond); err == nil {
		t.Error("a process that does not exist was sampled")
	}
}

func TestCommandStats(t *testing.T) {
	before := parseCommandStats("# Commandstats\r\ncmdstat_get:calls=10,usec=5,usec_per_call=0.5\r\ncmdstat_info:calls=3,usec=9\r\n")
	after := parseCommandStats("# Commandstats\r\ncmdstat_get:calls=25,usec=9\r\ncmdstat_evalsha:calls=4,usec=1\r\ncmdstat_info:calls=4,usec=9\r\n")
	d := redisDelta(before, after)
	if d.Commands != 19 || d.ByCmd["get"] != 15 || d.ByCmd["evalsha"] != 4 || d.ByCmd["info"] != 0 {
		t.Fatalf("delta %+v", d)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 95: 95 * time.Millisecond, 99: 99 * time.Millisecond, 100: 100 * time.Millisecond} {
		if got := percentile(d, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if percentile([]time.Duration{7}, 99) != 7 {
		t.Error("one sample")
	}
}
