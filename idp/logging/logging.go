// Package logging is nemidp's log output: slog's text or JSON handler over a buffered writer
// that is flushed at least every FlushInterval, at once for warnings and errors, and on Close,
// and a way to log a record without slog's runtime.Callers (the access log's hot path).
//
// What a crash can lose: on SIGKILL, an out-of-memory kill, os.Exit without Close or an
// unrecovered panic in a goroutine whose defers do not Close the writer, the info lines of
// the last FlushInterval (access-log lines and info events) still in the buffer, at most
// BufferSize bytes. Warnings and errors are written through before Handle returns; a clean
// stop (Close after the server has drained) loses nothing, and a line logged after Close is
// written through.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// FlushInterval bounds how long a buffered line waits before it is written.
const FlushInterval = 100 * time.Millisecond

// BufferSize is the default buffer: lines are written when it would overflow, before the
// interval is up.
const BufferSize = 64 << 10

// Writer buffers whole writes (slog handlers write one line per Write) and writes them to
// the underlying writer in order: when the buffer would overflow, within the flush interval
// of the first buffered byte, on Flush and on Close. It is safe for concurrent use; a Write
// is never split or interleaved with another. After Close it writes through.
type Writer struct {
	mu       sync.Mutex
	out      io.Writer
	buf      []byte
	interval time.Duration
	timer    *time.Timer
	armed    bool // the timer will flush what is buffered
	closed   bool
	err      error // the first failed write since the last Flush
}

// NewWriter buffers up to size bytes for out and flushes them at least every interval
// (FlushInterval and BufferSize when ≤ 0).
func NewWriter(out io.Writer, interval time.Duration, size int) *Writer {
	if interval <= 0 {
		interval = FlushInterval
	}
	if size <= 0 {
		size = BufferSize
	}
	w := &Writer{out: out, buf: make([]byte, 0, size), interval: interval}
	w.timer = time.AfterFunc(time.Hour, w.tick)
	w.timer.Stop()
	return w
}

// Write buffers p (or, when p alone exceeds the buffer, writes it after what is buffered).
// A failed write of buffered lines is reported by the next Flush or Close.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.out.Write(p)
	}
	if len(w.buf)+len(p) > cap(w.buf) {
		w.flushLocked()
		if len(p) > cap(w.buf) {
			return w.out.Write(p)
		}
	}
	w.buf = append(w.buf, p...)
	if !w.armed {
		w.armed = true
		w.timer.Reset(w.interval)
	}
	return len(p), nil
}

func (w *Writer) tick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	w.flushLocked()
}

// flushLocked writes the buffer; a failure is kept for Flush and the lines are dropped (the
// buffer must not grow without bound while the output is broken).
func (w *Writer) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	if _, err := w.out.Write(w.buf); err != nil && w.err == nil {
		w.err = err
	}
	w.buf = w.buf[:0]
}

// Flush writes what is buffered and returns the first write error since the last Flush.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	err := w.err
	w.err = nil
	return err
}

// Close flushes and stops the timer; later writes go straight to the underlying writer.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer.Stop()
	w.armed = false
	w.closed = true
	w.flushLocked()
	err := w.err
	w.err = nil
	return err
}

// New is a logger at level over w in format ("" is text). Records at slog.LevelWarn and
// above are flushed before Handle returns.
func New(w *Writer, format string, level slog.Leveler) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch format {
	case "", "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf(`logging: format %q: want "text" or "json"`, format)
	}
	return slog.New(flushing{h, w}), nil
}

// flushing writes warnings and errors through at once, so a crash right after one keeps it.
type flushing struct {
	slog.Handler
	w *Writer
}

func (f flushing) Handle(ctx context.Context, r slog.Record) error {
	err := f.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		if ferr := f.w.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (f flushing) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushing{f.Handler.WithAttrs(attrs), f.w}
}

func (f flushing) WithGroup(name string) slog.Handler {
	return flushing{f.Handler.WithGroup(name), f.w}
}

// Attrs logs msg with attrs to l (slog.Default when nil) when l is enabled for level, like
// slog.LogAttrs but without the caller's program counter: slog takes one with
// runtime.Callers for every record, which no nemidp handler prints (AddSource is off).
func Attrs(ctx context.Context, l *slog.Logger, level slog.Level, msg string, attrs ...slog.Attr) {
	if l == nil {
		l = slog.Default()
	}
	h := l.Handler()
	if !h.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(time.Now(), level, msg, 0)
	r.AddAttrs(attrs...)
	_ = h.Handle(ctx, r)
}
