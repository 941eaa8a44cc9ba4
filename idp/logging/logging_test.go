package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/cpr"
	"github.com/nemidp/nemidp/idp/logging"
)

// sink is the writer under the buffer: it records every Write it gets.
type sink struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	fail   error
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if s.fail != nil {
		return 0, s.fail
	}
	return s.buf.Write(p)
}

func (s *sink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *sink) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// eventually polls cond until it holds or d has passed.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestWriterFlushesWithinInterval(t *testing.T) {
	t.Parallel()
	out := &sink{}
	w := logging.NewWriter(out, 20*time.Millisecond, 1<<10)
	defer w.Close()
	start := time.Now()
	for i := range 3 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	if got := out.String(); got != "" {
		t.Fatalf("written before the interval: %q", got)
	}
	if !eventually(2*time.Second, func() bool { return out.String() == "line 0\nline 1\nline 2\n" }) {
		t.Fatalf("after the interval: %q", out.String())
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Errorf("flushed after %v, before the 20ms interval", took)
	}
	if n := out.Writes(); n != 1 {
		t.Errorf("%d writes for three buffered lines, want 1", n)
	}
	// The timer is armed again by the next line after a flush.
	fmt.Fprintf(w, "line 3\n")
	if !eventually(2*time.Second, func() bool { return strings.HasSuffix(out.String(), "line 3\n") }) {
		t.Fatalf("second batch not flushed: %q", out.String())
	}
}

func TestWriterCloseFlushesAndWritesThrough(t *testing.T) {
	t.Parallel()
	out := &sink{}
	w := logging.NewWriter(out, time.Hour, 1<<10)
	fmt.Fprintf(w, "a\n")
	fmt.Fprintf(w, "b\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "a\nb\n" {
		t.Fatalf("after Close: %q", got)
	}
	// A line logged after Close (a late goroutine) is not lost.
	fmt.Fprintf(w, "c\n")
	if got := out.String(); got != "a\nb\nc\n" {
		t.Fatalf("write after Close: %q", got)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestWriterFlushesWhenFullAndKeepsOrder(t *testing.T) {
	t.Parallel()
	out := &sink{}
	w := logging.NewWriter(out, time.Hour, 16)
	fmt.Fprintf(w, "0123456789\n")                  // buffered
	fmt.Fprintf(w, "abcdefghij\n")                  // would overflow: the first goes out
	fmt.Fprintf(w, "%s\n", strings.Repeat("x", 40)) // bigger than the buffer: after the second
	if got, want := out.String(), "0123456789\nabcdefghij\n"+strings.Repeat("x", 40)+"\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	fmt.Fprintf(w, "tail\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "x\ntail\n") {
		t.Fatalf("after Flush: %q", out.String())
	}
	_ = w.Close()
}

// TestWriterConcurrentWritersLoseNothing: many goroutines, a small buffer (many flushes when
// full) and a short interval (timer flushes racing the writers); after Close every line is
// there once, whole, and each goroutine's lines are in its order.
func TestWriterConcurrentWritersLoseNothing(t *testing.T) {
	t.Parallel()
	const goroutines, lines = 8, 2000
	out := &sink{}
	w := logging.NewWriter(out, time.Millisecond, 512)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(w, "g=%d i=%d %s\n", g, i, strings.Repeat("p", i%37))
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]int, goroutines)
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != goroutines*lines {
		t.Fatalf("%d lines, want %d", len(got), goroutines*lines)
	}
	for _, l := range got {
		var g, i int
		var pad string
		if n, err := fmt.Sscanf(l, "g=%d i=%d %s", &g, &i, &pad); (err != nil && i%37 != 0) || n < 2 {
			t.Fatalf("torn line %q: %v", l, err)
		}
		if i != next[g] || len(pad) != i%37 {
			t.Fatalf("line %q: want i=%d of g=%d with %d pad", l, next[g], g, next[g]%37)
		}
		next[g]++
	}
}

func TestWriterReportsWriteError(t *testing.T) {
	t.Parallel()
	out := &sink{fail: errors.New("disk full")}
	w := logging.NewWriter(out, time.Hour, 1<<10)
	fmt.Fprintf(w, "lost\n")
	if err := w.Flush(); err == nil || err.Error() != "disk full" {
		t.Fatalf("Flush: %v, want disk full", err)
	}
	if err := w.Flush(); err != nil {
		t.Fatalf("second Flush with nothing buffered: %v", err)
	}
	out.mu.Lock()
	out.fail = nil
	out.mu.Unlock()
	fmt.Fprintf(w, "kept\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "kept\n" {
		t.Fatalf("after the output recovered: %q", got)
	}
}

func TestLoggerWritesWarningsAtOnce(t *testing.T) {
	t.Parallel()
	out := &sink{}
	w := logging.NewWriter(out, time.Hour, 1<<10)
	defer w.Close()
	l, err := logging.New(w, "text", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	l = l.With("instance", "a") // WithAttrs keeps the flushing
	l.Info("buffered")
	if out.String() != "" {
		t.Fatalf("info written at once: %q", out.String())
	}
	l.Warn("urgent")
	got := out.String()
	if !strings.Contains(got, "msg=buffered instance=a") || !strings.Contains(got, "level=WARN msg=urgent instance=a") ||
		strings.Index(got, "buffered") > strings.Index(got, "urgent") {
		t.Fatalf("after a warning: %q", got)
	}
	l.WithGroup("g").Error("bad", "k", "v")
	if !strings.Contains(out.String(), "level=ERROR msg=bad instance=a g.k=v") {
		t.Fatalf("error in a group not written at once: %q", out.String())
	}
}

func TestNewFormats(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"", "text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			out := &sink{}
			w := logging.NewWriter(out, time.Hour, 1<<10)
			l, err := logging.New(w, format, slog.LevelInfo)
			if err != nil {
				t.Fatal(err)
			}
			l.Debug("hidden")
			l.Info("shown", "cpr", cpr.Number("1506901234"), "n", 3)
			_ = w.Close()
			got := out.String()
			if strings.Contains(got, "hidden") || strings.Contains(got, "1234") || !strings.Contains(got, "150690-xxxx") {
				t.Fatalf("%q", got)
			}
			if format == "json" {
				var m map[string]any
				if err := json.Unmarshal([]byte(got), &m); err != nil || m["msg"] != "shown" || m["cpr"] != "150690-xxxx" || m["n"] != 3.0 {
					t.Fatalf("json line %q: %v %v", got, m, err)
				}
			} else if !strings.Contains(got, "level=INFO msg=shown cpr=150690-xxxx n=3\n") {
				t.Fatalf("text line %q", got)
			}
		})
	}
	if _, err := logging.New(logging.NewWriter(&sink{}, 0, 0), "xml", slog.LevelInfo); err == nil {
		t.Fatal("format xml accepted")
	}
}

// TestAttrsNoSourceNoAllocs: Attrs writes the record (no source, none asked for) and
// allocates nothing with the JSON handler over the buffer; a disabled level writes nothing.
func TestAttrsNoSourceNoAllocs(t *testing.T) {
	out := &sink{}
	w := logging.NewWriter(out, time.Hour, 1<<20)
	l, err := logging.New(w, "json", slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	logging.Attrs(ctx, l, slog.LevelDebug, "hidden")
	logging.Attrs(ctx, l, slog.LevelInfo, "http", slog.String("route", "GET /login/{flow}"), slog.String("method", "GET"),
		slog.Int("status", 200), slog.Duration("took", 1500*time.Microsecond), slog.String("request_id", "abc"))
	_ = w.Flush()
	var m map[string]any
	if err := json.Unmarshal(out.buf.Bytes(), &m); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	if m["msg"] != "http" || m["route"] != "GET /login/{flow}" || m["status"] != 200.0 || m["took"] != 1.5e6 || m["request_id"] != "abc" {
		t.Fatalf("record %v", m)
	}
	if _, ok := m["source"]; ok || strings.Contains(out.String(), "hidden") {
		t.Fatalf("record %q", out.String())
	}
	if raceEnabled {
		_ = w.Close()
		return
	}
	allocs := testing.AllocsPerRun(1000, func() {
		logging.Attrs(ctx, l, slog.LevelInfo, "http", slog.String("route", "GET /login/{flow}"), slog.String("method", "GET"),
			slog.Int("status", 200), slog.Duration("took", 1500*time.Microsecond), slog.String("request_id", "abc"))
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per access-log line, want 0", allocs)
	}
	_ = w.Close()
}

func BenchmarkAccessLine(b *testing.B) {
	for _, format := range []string{"text", "json"} {
		b.Run(format, func(b *testing.B) {
			w := logging.NewWriter(discard{}, time.Hour, logging.BufferSize)
			l, _ := logging.New(w, format, slog.LevelInfo)
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					logging.Attrs(ctx, l, slog.LevelInfo, "http", slog.String("route", "GET /login/{flow}"), slog.String("method", "GET"),
						slog.Int("status", 200), slog.Duration("took", 1500*time.Microsecond), slog.String("request_id", "0123456789abcdef"))
				}
			})
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
