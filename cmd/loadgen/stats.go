package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// stats is what one worker measured; merged at the end.
type stats struct {
	steps map[string][]time.Duration
	errs  map[string]int
	ok    int
}

func newStats() *stats { return &stats{steps: map[string][]time.Duration{}, errs: map[string]int{}} }

func (s *stats) success(tr *trace, total time.Duration) {
	s.ok++
	for i, n := range tr.names {
		s.steps[n] = append(s.steps[n], tr.times[i])
	}
	s.steps["op"] = append(s.steps["op"], total)
}

func (s *stats) failure(err error) {
	s.errs[errorKind(err)]++
}

func errorKind(err error) string {
	var oe *opError
	if errors.As(err, &oe) {
		return oe.Kind()
	}
	return "other"
}

func (s *stats) merge(o *stats) {
	s.ok += o.ok
	for k, v := range o.steps {
		s.steps[k] = append(s.steps[k], v...)
	}
	for k, v := range o.errs {
		s.errs[k] += v
	}
}

// StepStats are the latency percentiles of one step, in milliseconds.
type StepStats struct {
	Step  string  `json:"step"`
	Count int     `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

// CPUStats is the server's CPU and page faults over the timed run.
type CPUStats struct {
	PID         int     `json:"pid"`
	UserMs      float64 `json:"user_ms"`
	SystemMs    float64 `json:"system_ms"`
	MsPerOp     float64 `json:"ms_per_op"`
	MsPerOK     float64 `json:"ms_per_successful_op"`
	Cores       float64 `json:"cores_busy"`
	MinFlt      int64   `json:"minor_faults"`
	MajFlt      int64   `json:"major_faults"`
	MinFltPerOp float64 `json:"minor_faults_per_op"`
	MajFltPerOp float64 `json:"major_faults_per_op"`
	ClockTicks  int     `json:"clock_ticks"`
	Note        string  `json:"note,omitempty"`
}

// MemStats is the server's resident memory (/proc/<pid>/status), in MiB: at the start and
// end of the timed run, the highest VmRSS sampled during it (every memSampleEvery), and VmHWM
// at the end (the kernel's peak since the process started, setup and live flows included).
type MemStats struct {
	StartMiB float64 `json:"rss_start_mib"`
	PeakMiB  float64 `json:"rss_peak_sampled_mib"`
	EndMiB   float64 `json:"rss_end_mib"`
	HWMMiB   float64 `json:"vmhwm_mib"`
	Samples  int     `json:"samples"`
	Note     string  `json:"note,omitempty"`
}

// LiveStats are the login flows opened before the timed run and left unfinished (--live).
type LiveStats struct {
	Flows    int     `json:"flows"`
	Seconds  float64 `json:"open_s"`
	FlowsSec float64 `json:"flows_per_s"`
}

// RedisStats are the Redis commands over the timed run (INFO commandstats deltas).
type RedisStats struct {
	Commands int64              `json:"commands"`
	PerOp    float64            `json:"per_op"`
	ByCmd    map[string]float64 `json:"per_op_by_command"`
	Note     string             `json:"note"`
}

// Summary is what a run prints.
type Summary struct {
	Mode          string         `json:"mode"`
	Concurrency   int            `json:"concurrency"`
	ElapsedS      float64        `json:"elapsed_s"`
	Ops           int            `json:"ops"`
	Errors        int            `json:"errors"`
	OpsPerSec     float64        `json:"ops_per_s"`
	Steps         []StepStats    `json:"steps"`
	ErrorKinds    map[string]int `json:"error_kinds"`
	CPU           *CPUStats      `json:"server_cpu,omitempty"`
	Redis         *RedisStats    `json:"redis,omitempty"`
	Memory        *MemStats      `json:"server_memory,omitempty"`
	Live          *LiveStats     `json:"live_flows,omitempty"`
	Interrupted   bool           `json:"interrupted"`
	CitizensAdded int64          `json:"citizens_issued_during_run"`
	Notes         []string       `json:"notes,omitempty"`
}

// stepOrder lists steps in the order an operation meets them; "op" (the whole) last.
var stepOrder = []string{"authorize", "login_page", "password", "codecard", "new_password", "act_as",
	"device_list", "device_decide", "keyapp_poll", "callback", "redirect", "token", "refresh", "userinfo"}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p/100*float64(len(sorted))+0.999999) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func summarizeSteps(steps map[string][]time.Duration) []StepStats {
	names := slices.Collect(maps.Keys(steps))
	rank := func(n string) int {
		if n == "op" {
			return len(stepOrder) + 1
		}
		if i := slices.Index(stepOrder, n); i >= 0 {
			return i
		}
		return len(stepOrder)
	}
	sort.Slice(names, func(i, j int) bool {
		ri, rj := rank(names[i]), rank(names[j])
		if ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
	var out []StepStats
	for _, n := range names {
		d := slices.Clone(steps[n])
		slices.Sort(d)
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		out = append(out, StepStats{Step: n, Count: len(d), Mean: ms(sum / time.Duration(len(d))),
			P50: ms(percentile(d, 50)), P95: ms(percentile(d, 95)), P99: ms(percentile(d, 99)), Max: ms(d[len(d)-1])})
	}
	return out
}

func (s *Summary) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

func (s *Summary) writeText(w io.Writer) {
	state := ""
	if s.Interrupted {
		state = " (interrupted: the summary so far)"
	}
	fmt.Fprintf(w, "mode %s, c=%d: %d ops in %.2f s = %.1f ops/s, %d errors%s\n",
		s.Mode, s.Concurrency, s.Ops, s.ElapsedS, s.OpsPerSec, s.Errors, state)
	fmt.Fprintf(w, "%-14s %7s %9s %9s %9s %9s %9s\n", "step", "count", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms")
	for _, st := range s.Steps {
		fmt.Fprintf(w, "%-14s %7d %9.2f %9.2f %9.2f %9.2f %9.2f\n", st.Step, st.Count, st.Mean, st.P50, st.P95, st.P99, st.Max)
	}
	if l := s.Live; l != nil {
		fmt.Fprintf(w, "live flows: %d opened (authorize → login page) in %.1f s = %.0f/s before the run, left unfinished\n",
			l.Flows, l.Seconds, l.FlowsSec)
	}
	if len(s.ErrorKinds) > 0 {
		fmt.Fprintln(w, "errors:")
		for _, k := range slices.Sorted(maps.Keys(s.ErrorKinds)) {
			fmt.Fprintf(w, "  %6d  %s\n", s.ErrorKinds[k], k)
		}
	}
	if c := s.CPU; c != nil {
		fmt.Fprintf(w, "server CPU (pid %d): %.0f ms user + %.0f ms system = %.3f ms/op (%.3f ms per successful op), %.2f cores busy\n",
			c.PID, c.UserMs, c.SystemMs, c.MsPerOp, c.MsPerOK, c.Cores)
		fmt.Fprintf(w, "server page faults: %d minor = %.1f/op, %d major = %.2f/op\n",
			c.MinFlt, c.MinFltPerOp, c.MajFlt, c.MajFltPerOp)
		if c.Note != "" {
			fmt.Fprintf(w, "  note: %s\n", c.Note)
		}
	}
	if m := s.Memory; m != nil {
		fmt.Fprintf(w, "server RSS: %.1f MiB at start, %.1f MiB peak (%d samples), %.1f MiB at end; VmHWM %.1f MiB (peak since the server started)\n",
			m.StartMiB, m.PeakMiB, m.Samples, m.EndMiB, m.HWMMiB)
		if m.Note != "" {
			fmt.Fprintf(w, "  note: %s\n", m.Note)
		}
	}
	if r := s.Redis; r != nil {
		fmt.Fprintf(w, "Redis: %d commands = %.2f per op", r.Commands, r.PerOp)
		type kv struct {
			k string
			v float64
		}
		var top []kv
		for k, v := range r.ByCmd {
			top = append(top, kv{k, v})
		}
		sort.Slice(top, func(i, j int) bool { return top[i].v > top[j].v || top[i].v == top[j].v && top[i].k < top[j].k })
		var parts []string
		for _, t := range top {
			parts = append(parts, fmt.Sprintf("%s %.2f", t.k, t.v))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
		}
		fmt.Fprintf(w, "\n  note: %s\n", r.Note)
	}
	if s.CitizensAdded > 0 {
		fmt.Fprintf(w, "citizens issued during the run (cards running low): %d\n", s.CitizensAdded)
	}
	for _, n := range s.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
