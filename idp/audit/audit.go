// Package audit is the audit trail: one JSON line per state change and login outcome, on the
// server's log output whatever its log format, written through at once (never left in a
// buffer).
//
// A line names who acted, what happened, the citizen affected (by NemID number only), when,
// from which client address (the trusted-proxy rule of the throttle) and the request id, plus
// a few non-secret facts in detail. It never holds a password, a card key, a CPR number, a
// token, a code or a cookie: callers put only the values listed at Event.Detail there.
//
//	{"msg":"audit","audit":true,"at":"2026-12-01T13:30:00Z","by":"operator","who":"borgerservice",
//	 "what":"citizen.issued","user_id":"123456789","ip":"198.51.100.7","request_id":"4f1c…",
//	 "detail":{"card_serial":"G750159724"}}
package audit

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/nemidp/nemidp/idp/throttle"
)

// Who acted: By says what kind of actor Who is.
const (
	ByCitizen   = "citizen"   // Who is the NemID number of the citizen who proved who they are
	ByOperator  = "operator"  // Who is the operator token's label
	ByAnonymous = "anonymous" // nobody proven: a failed login answer, an unauthenticated call
	BySystem    = "system"    // the IdP itself (a card ordered at the threshold of keys left)
	// Self is the Who of a citizen's action on their own NemID through self-service.
	Self = "self"
)

// Event is one audit line.
type Event struct {
	By   string // ByCitizen, ByOperator, ByAnonymous
	Who  string // the citizen's user id, the operator label, Self; "" for ByAnonymous
	What string // event name, "area.verb" (citizen.issued, login.password, …)
	// UserID is the NemID number of the citizen affected ("" when none is known, e.g. an
	// unknown user ID typed at login). Never a CPR number or an alias.
	UserID string
	// Detail holds non-secret facts only: outcome (ok or an error code), card_serial,
	// device_id, client_id, amr, acr, guardianship ids, status, route, …
	Detail map[string]any
}

// Logger writes audit lines. A nil *Logger writes nothing.
type Logger struct {
	h       slog.Handler
	flush   func() error
	proxies throttle.Proxies
	now     func() time.Time
}

// New writes JSON lines to out (the server's log output). When out buffers (it has a Flush
// method, as logging.Writer has), every line is flushed before Log returns. proxies is the
// deployment's trusted-proxy rule, which names the client address.
func New(out io.Writer, proxies throttle.Proxies) *Logger {
	h := slog.NewJSONHandler(out, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
			return slog.Attr{} // "at" is the time; an audit line has no level
		}
		return a
	}})
	l := &Logger{h: h, proxies: proxies, now: time.Now}
	if f, ok := out.(interface{ Flush() error }); ok {
		l.flush = f.Flush
	}
	return l
}

// WithClock is l with another clock (tests).
func (l *Logger) WithClock(now func() time.Time) *Logger {
	c := *l
	c.now = now
	return &c
}

// Log writes ev for request r, answered on w: the request id is the X-Request-Id the
// middleware set on w (or, without one, the request's own header).
func (l *Logger) Log(w http.ResponseWriter, r *http.Request, ev Event) {
	if l == nil {
		return
	}
	reqID := ""
	if w != nil {
		reqID = w.Header().Get("X-Request-Id")
	}
	if reqID == "" && r != nil {
		if id := r.Header.Get("X-Request-Id"); len(id) <= 64 {
			reqID = id
		}
	}
	ip := ""
	if r != nil {
		if a := l.proxies.ClientAddr(r); a.IsValid() {
			ip = a.String()
		}
	}
	ctx := context.Background()
	if r != nil {
		ctx = r.Context()
	}
	l.write(ctx, ev, ip, reqID)
}

func (l *Logger) write(ctx context.Context, ev Event, ip, reqID string) {
	rec := slog.NewRecord(time.Time{}, slog.LevelInfo, "audit", 0)
	by := ev.By
	if by == "" {
		by = ByAnonymous
	}
	rec.AddAttrs(slog.Bool("audit", true), slog.String("at", l.now().UTC().Format(time.RFC3339)),
		slog.String("by", by), slog.String("who", ev.Who), slog.String("what", ev.What))
	if ev.UserID != "" {
		rec.AddAttrs(slog.String("user_id", ev.UserID))
	}
	rec.AddAttrs(slog.String("ip", ip), slog.String("request_id", reqID))
	if len(ev.Detail) > 0 {
		keys := make([]string, 0, len(ev.Detail))
		for k := range ev.Detail {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		attrs := make([]any, 0, len(keys))
		for _, k := range keys {
			attrs = append(attrs, slog.Any(k, ev.Detail[k]))
		}
		rec.AddAttrs(slog.Group("detail", attrs...))
	}
	if err := l.h.Handle(context.WithoutCancel(ctx), rec); err != nil {
		slog.WarnContext(ctx, "audit line not written", "what", ev.What, "err", err)
		return
	}
	if l.flush != nil {
		if err := l.flush(); err != nil {
			slog.WarnContext(ctx, "audit line not flushed", "what", ev.What, "err", err)
		}
	}
}
