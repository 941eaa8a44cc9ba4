package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/term"
)

// run is the whole command: flags, setup, the timed run, the summary. It returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 2
	}
	r := &runner{cfg: cfg, stderr: stderr, tty: isTerminal(stderr)}
	sum, err := r.Run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 1
	}
	if cfg.JSON {
		if err := sum.writeJSON(stdout); err != nil {
			fmt.Fprintln(stderr, "loadgen:", err)
			return 1
		}
	} else {
		sum.writeText(stdout)
	}
	if sum.Errors > 0 {
		return 3
	}
	return 0
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// runner is one run of the driver.
type runner struct {
	cfg    Config
	stderr io.Writer
	tty    bool // progress overwrites one line every second; else a plain line every 5 s
	// progressEvery overrides the progress period (tests); 0: 1 s.
	progressEvery time.Duration
}

// worker is one of -c concurrent loops, with the citizens it alone logs in (a card has one
// pending key number, so one citizen's logins must not overlap) and its mode's state.
type worker struct {
	e       *env
	cits    []*citizen
	next    int
	cur     *citizen     // the citizen of the next operation (login, keyapp)
	b       *http.Client // sso: the browser holding the SSO session
	refresh string       // refresh: the newest refresh token
	access  string       // userinfo: an access token
}

// Run sets up (client, citizens, first logins, devices, per-worker sessions), then runs
// operations until -d, -n or ctx ends, and summarizes. A cancelled ctx during the timed run
// still yields the summary so far (Interrupted).
func (r *runner) Run(ctx context.Context) (*Summary, error) {
	cfg := r.cfg
	e, err := newEnv(ctx, cfg, r.stderr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(r.stderr, "loadgen: client %s registered; issuing %d citizens (first login%s)…\n", e.client.ID, cfg.Citizens,
		map[bool]string{true: " and device activation", false: ""}[cfg.Mode == "keyapp"])
	cits, err := r.issueAll(ctx, e)
	if err != nil {
		return nil, err
	}
	workers := make([]*worker, cfg.Concurrency)
	for i := range workers {
		workers[i] = &worker{e: e}
	}
	for i, c := range cits {
		workers[i%cfg.Concurrency].cits = append(workers[i%cfg.Concurrency].cits, c)
	}
	if err := parallel(ctx, len(workers), min(cfg.Concurrency, setupConcurrency), func(i int) error { return workers[i].setup(ctx) }); err != nil {
		return nil, err
	}

	sum := &Summary{Mode: cfg.Mode, Concurrency: cfg.Concurrency, ErrorKinds: map[string]int{}}
	if cfg.Live > 0 {
		fmt.Fprintf(r.stderr, "loadgen: opening %d live login flows…\n", cfg.Live)
		if sum.Live, err = openLive(ctx, e, cfg.Live, cfg.Concurrency); err != nil {
			return nil, fmt.Errorf("--live: %w", err)
		}
	}
	var ticks int
	var cpu0 procCPU
	if cfg.PID > 0 {
		var note string
		ticks, note = clockTicks()
		if cpu0, err = readProcCPU(cfg.PID, ticks); err != nil {
			return nil, fmt.Errorf("--pid: %w", err)
		}
		sum.CPU = &CPUStats{PID: cfg.PID, ClockTicks: ticks, Note: note}
	}
	var mem *memSampler
	if cfg.PID > 0 {
		if mem, err = startMemSampler(cfg.PID, memSampleEvery); err != nil {
			return nil, fmt.Errorf("--pid: %w", err)
		}
	}
	var rdb redis.UniversalClient
	var cmd0 map[string]int64
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("--redis: %w", err)
		}
		rdb = redis.NewClient(opt)
		defer rdb.Close()
		if cmd0, err = commandStats(ctx, rdb); err != nil {
			return nil, fmt.Errorf("--redis: INFO commandstats: %w", err)
		}
	}

	fmt.Fprintf(r.stderr, "loadgen: %s, c=%d, for %v or %d ops\n", cfg.Mode, cfg.Concurrency, cfg.Duration, cfg.MaxOps)
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var started, okOps, errOps atomic.Int64
	all := make([]*stats, len(workers))
	var wg sync.WaitGroup
	t0 := time.Now()
	for i, w := range workers {
		st := newStats()
		all[i] = st
		wg.Go(func() {
			for runCtx.Err() == nil && started.Add(1) <= int64(cfg.MaxOps) {
				if err := w.prepare(ctx); err != nil {
					if ctx.Err() != nil {
						return
					}
					st.failure(err)
					errOps.Add(1)
					continue
				}
				tr := &trace{}
				s := time.Now()
				err := w.op(ctx, tr)
				total := time.Since(s)
				if ctx.Err() != nil {
					return // interrupted: this op is neither a success nor an error
				}
				if err != nil {
					st.failure(err)
					errOps.Add(1)
					continue
				}
				st.success(tr, total)
				okOps.Add(1)
			}
		})
	}
	done := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		r.progress(done, t0, &okOps, &errOps)
	}()
	wg.Wait()
	elapsed := time.Since(t0)
	close(done)
	<-progressDone

	if mem != nil {
		sum.Memory = mem.stop()
	}
	if sum.CPU != nil {
		if cpu1, err := readProcCPU(cfg.PID, ticks); err != nil {
			sum.CPU.Note = joinNote(sum.CPU.Note, "reading /proc after the run: "+err.Error())
		} else {
			sum.CPU.UserMs, sum.CPU.SystemMs = ms(cpu1.User-cpu0.User), ms(cpu1.System-cpu0.System)
			sum.CPU.MinFlt, sum.CPU.MajFlt = cpu1.MinFlt-cpu0.MinFlt, cpu1.MajFlt-cpu0.MajFlt
		}
	}
	if rdb != nil {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		cmd1, err := commandStats(cctx, rdb)
		ccancel()
		if err != nil {
			sum.Notes = append(sum.Notes, "Redis INFO commandstats after the run: "+err.Error())
		} else {
			sum.Redis = redisDelta(cmd0, cmd1)
		}
	}

	merged := newStats()
	for _, s := range all {
		merged.merge(s)
	}
	sum.Interrupted = ctx.Err() != nil
	sum.ElapsedS = elapsed.Seconds()
	sum.Ops = merged.ok + int(errOps.Load())
	sum.Errors = int(errOps.Load())
	sum.OpsPerSec = float64(merged.ok) / elapsed.Seconds()
	sum.Steps = summarizeSteps(merged.steps)
	sum.ErrorKinds = merged.errs
	sum.CitizensAdded = e.issued.Load()
	if sum.CPU != nil && sum.Ops > 0 {
		sum.CPU.MsPerOp = (sum.CPU.UserMs + sum.CPU.SystemMs) / float64(sum.Ops)
		sum.CPU.Cores = (sum.CPU.UserMs + sum.CPU.SystemMs) / 1000 / elapsed.Seconds()
		if merged.ok > 0 {
			sum.CPU.MsPerOK = (sum.CPU.UserMs + sum.CPU.SystemMs) / float64(merged.ok)
		}
		sum.CPU.MinFltPerOp = float64(sum.CPU.MinFlt) / float64(sum.Ops)
		sum.CPU.MajFltPerOp = float64(sum.CPU.MajFlt) / float64(sum.Ops)
	}
	if sum.Redis != nil && sum.Ops > 0 {
		sum.Redis.PerOp = float64(sum.Redis.Commands) / float64(sum.Ops)
		for k, v := range sum.Redis.ByCmd {
			sum.Redis.ByCmd[k] = v / float64(sum.Ops)
		}
	}
	if sum.CitizensAdded > 0 && (sum.CPU != nil || sum.Redis != nil) {
		sum.Notes = append(sum.Notes, "the server CPU and Redis figures include issuing and first-logging-in the citizens added during the run")
	}
	sum.Notes = append(sum.Notes, "ops/s and percentiles count successful operations; CPU, faults and Redis per op divide by all operations (and CPU per successful op by those alone)")
	return sum, nil
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// redisDelta is the commands between two INFO commandstats readings, without the driver's own
// INFO (the second reading counts the first).
func redisDelta(before, after map[string]int64) *RedisStats {
	rs := &RedisStats{ByCmd: map[string]float64{},
		Note: "server-wide counts: anything else using this Redis meanwhile counts too; commands run by Lua scripts count besides the EVALSHA"}
	for k, v := range after {
		d := v - before[k]
		if k == "info" {
			d--
		}
		if d > 0 {
			rs.Commands += d
			rs.ByCmd[k] = float64(d)
		}
	}
	return rs
}

// openLive opens n login flows, k at a time, each in a browser of its own: authorize, then
// the login page it leads to, which must be the password step. Nothing answers them, so they
// stay in the server's store, unfinished, until they expire (login.flow_ttl).
func openLive(ctx context.Context, e *env, n, k int) (*LiveStats, error) {
	t0 := time.Now()
	err := parallel(ctx, n, k, func(int) error {
		l := e.newLogin(newBrowser(e.tr), &trace{})
		if err := l.start(ctx); err != nil {
			return err
		}
		if l.back != nil || l.v.Step != "password" {
			return &opError{Step: "live", Code: "not_at_password_step_" + l.v.Step}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	d := time.Since(t0).Seconds()
	return &LiveStats{Flows: n, Seconds: d, FlowsSec: float64(n) / d}, nil
}

// memSampleEvery is how often the server's VmRSS is sampled during the timed run.
const memSampleEvery = 100 * time.Millisecond

// memSampler reads the server's /proc/<pid>/status every period until stop.
type memSampler struct {
	pid  int
	done chan struct{}
	out  chan *MemStats
}

func startMemSampler(pid int, every time.Duration) (*memSampler, error) {
	m0, err := readProcMem(pid)
	if err != nil {
		return nil, err
	}
	s := &memSampler{pid: pid, done: make(chan struct{}), out: make(chan *MemStats, 1)}
	go func() {
		st := &MemStats{StartMiB: mib(m0.RSS), PeakMiB: mib(m0.RSS), Samples: 1}
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			var stop bool
			select {
			case <-tk.C:
			case <-s.done:
				stop = true
			}
			m, err := readProcMem(pid)
			if err != nil {
				st.Note = joinNote(st.Note, "reading /proc/<pid>/status: "+err.Error())
				s.out <- st
				return
			}
			st.Samples++
			st.PeakMiB = max(st.PeakMiB, mib(m.RSS))
			if stop {
				st.EndMiB, st.HWMMiB = mib(m.RSS), mib(m.HWM)
				s.out <- st
				return
			}
		}
	}()
	return s, nil
}

// stop takes a last sample and returns the figures.
func (s *memSampler) stop() *MemStats {
	close(s.done)
	return <-s.out
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// setupConcurrency bounds the setup's logins and issuings at once (each runs the server's
// password KDF): past the server's KDF queue (login.kdf_queue, 4 × GOMAXPROCS by default)
// they would be refused with 503 (500 from the operator API), and the KDF is the bottleneck
// of the setup anyway.
const setupConcurrency = 4

// issueAll issues cfg.Citizens citizens, -c (at most setupConcurrency) at a time.
func (r *runner) issueAll(ctx context.Context, e *env) ([]*citizen, error) {
	cits := make([]*citizen, r.cfg.Citizens)
	err := parallel(ctx, len(cits), min(r.cfg.Concurrency, setupConcurrency), func(i int) error {
		c, err := e.issueCitizen(ctx)
		cits[i] = c
		return err
	})
	return cits, err
}

// parallel runs f(0..n-1), at most k at once, and returns the first error.
func parallel(ctx context.Context, n, k int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  atomic.Int64
	)
	for range min(n, k) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// progress writes a progress line to stderr until done: every second over the same line on a
// terminal, else a plain line every 5 s.
func (r *runner) progress(done <-chan struct{}, t0 time.Time, ok, bad *atomic.Int64) {
	every := r.progressEvery
	if every == 0 {
		every = time.Second
		if !r.tty {
			every = 5 * time.Second
		}
	}
	tk := time.NewTicker(every)
	defer tk.Stop()
	var last int64
	lastAt := t0
	for {
		select {
		case <-done:
			if r.tty {
				fmt.Fprintln(r.stderr)
			}
			return
		case now := <-tk.C:
			n := ok.Load()
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			last, lastAt = n, now
			line := fmt.Sprintf("%6.1fs  %d ok  %d errors  %.1f ops/s now", now.Sub(t0).Seconds(), n, bad.Load(), rate)
			if r.tty {
				fmt.Fprintf(r.stderr, "\r%-70s", line)
			} else {
				fmt.Fprintln(r.stderr, line)
			}
		}
	}
}

// setup prepares a worker's mode state outside the timed run: a session, a refresh token or
// an access token from one complete login of its first citizen.
func (w *worker) setup(ctx context.Context) error {
	switch w.e.cfg.Mode {
	case "sso", "refresh", "userinfo":
		w.b = newBrowser(w.e.tr)
		tok, err := w.e.fullLogin(ctx, w.b, w.cits[0], &trace{})
		if err != nil {
			return fmt.Errorf("the worker's first login: %w", err)
		}
		w.refresh, w.access = tok.RefreshToken, tok.AccessToken
		if w.e.cfg.Mode == "refresh" && w.refresh == "" {
			return errors.New("the worker's first login: no refresh token (is offline_access refused?)")
		}
	}
	return nil
}

// prepare picks the citizen of the next operation (outside its timing), replacing one whose
// card runs low by a newly issued one (login mode).
func (w *worker) prepare(ctx context.Context) error {
	if m := w.e.cfg.Mode; m != "login" && m != "keyapp" {
		return nil
	}
	i := w.next % len(w.cits)
	w.next++
	if w.e.cfg.Mode == "login" && w.cits[i].keysLeft() <= lowKeys {
		c, err := w.e.issueCitizen(ctx)
		if err != nil {
			return &opError{Step: "new_citizen", Code: "failed", Err: err}
		}
		w.e.issued.Add(1)
		w.cits[i] = c
	}
	w.cur = w.cits[i]
	return nil
}

// op is one timed operation of the worker's mode.
func (w *worker) op(ctx context.Context, tr *trace) error {
	e := w.e
	switch e.cfg.Mode {
	case "login", "keyapp":
		_, err := e.fullLogin(ctx, newBrowser(e.tr), w.cur, tr)
		return err
	case "sso":
		l := e.newLogin(w.b, tr)
		if err := l.start(ctx); err != nil {
			return err
		}
		if l.back == nil {
			return &opError{Step: "authorize", Code: "sso_shows_step_" + l.v.Step}
		}
		_, err := l.exchange(ctx)
		return err
	case "refresh":
		t0 := time.Now()
		tok, err := e.tokenCall(ctx, "refresh", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {w.refresh}})
		tr.add("refresh", time.Since(t0))
		if err != nil {
			return err
		}
		if tok.RefreshToken == "" {
			return &opError{Step: "refresh", Status: http.StatusOK, Code: "no_rotated_refresh_token"}
		}
		w.refresh = tok.RefreshToken
		return nil
	case "userinfo":
		t0 := time.Now()
		r, err := send(ctx, e.hc, http.MethodGet, e.disc.Userinfo, nil, map[string]string{"Authorization": "Bearer " + w.access})
		tr.add("userinfo", time.Since(t0))
		if err != nil {
			return &opError{Step: "userinfo", Err: err}
		}
		if r.Status != http.StatusOK {
			return &opError{Step: "userinfo", Status: r.Status, Code: errorCode(r.Body)}
		}
		return nil
	}
	return fmt.Errorf("mode %q", e.cfg.Mode)
}
