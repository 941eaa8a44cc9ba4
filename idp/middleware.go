package idp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nemidp/nemidp/idp/held"
	"github.com/nemidp/nemidp/idp/logging"
	"github.com/nemidp/nemidp/idp/store"
)

// chain wraps the mux: request id, recovery, security headers, body limit, metrics and the
// access log.
func chain(next http.Handler, m *httpMetrics) http.Handler {
	return requestID(recoverer(securityHeaders(limitBody(m.wrap(next)))))
}

// maxBody bounds every request body; handlers that expect less set lower limits.
const maxBody = 256 << 10

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			_, _ = w.Write([]byte(`{"error":{"code":"invalid_request","message":"Request body too large."}}` + "\n"))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !safeRequestID(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r)
	})
}

// safeRequestID accepts a caller's request id (a proxy's, for correlation) only when it can
// carry nothing a log must not: 1–64 of [A-Za-z0-9._:-], no run of exactly 9 or 10 digits (a
// NemID or CPR number) and no CPR number with its dash (6 digits, '-', 4 digits). Anything
// else gets one of ours. (UUIDs and the usual proxy ids pass.)
func safeRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	run, before := 0, 0 // digits in the current run; in the run before a '-'
	for i := 0; i <= len(id); i++ {
		if i < len(id) && id[i] >= '0' && id[i] <= '9' {
			run++
			continue
		}
		// A run of digits ends here.
		if run == 9 || run == 10 || (before == 6 && run == 4) {
			return false
		}
		switch {
		case i == len(id):
		case id[i] == '-':
			before, run = run, 0
		case id[i] >= 'a' && id[i] <= 'z', id[i] >= 'A' && id[i] <= 'Z', id[i] == '.', id[i] == '_', id[i] == ':':
			before, run = 0, 0
		default:
			return false
		}
	}
	return true
}

// recoverer turns a panic into a 500 and a log line (with the stack, without the request body).
func recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				slog.ErrorContext(r.Context(), "handler panic", "path", r.URL.Path, "request_id", w.Header().Get("X-Request-Id"),
					"panic", v, "stack", string(debug.Stack()))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// securityHeaders: no framing (clickjacking a login page), a strict CSP, no sniffing, and
// referrers only to ourselves: flow ids in URLs never reach other sites. ("no-referrer" would
// make browsers send "Origin: null" on our own form POSTs, which the CSRF check refuses.)
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// form-action is left out on purpose: browsers apply it to the redirect that follows a
		// form POST, which here ends at the relying party's redirect_uri.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

type httpMetrics struct {
	duration *prometheus.HistogramVec
	// log receives the access log; nil is slog.Default() at the time of the request.
	log *slog.Logger
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "nemidp_http_request_duration_seconds",
		Help:    "HTTP requests by route pattern, method and status.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route", "method", "status"})}
	reg.MustRegister(m.duration)
	return m
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (m *httpMetrics) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		// The route pattern (not the path) keeps flow ids out of the label set.
		route := r.Pattern
		if route == "" {
			route = "other"
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		took := time.Since(start)
		m.duration.WithLabelValues(route, r.Method, strconv.Itoa(sw.status)).Observe(took.Seconds())
		switch route {
		case "GET /healthz", "GET /readyz", "GET /metrics", "GET /static/":
		default:
			// The route pattern, never the path or query: they carry flow ids, codes and state.
			// Without a caller PC (logging.Attrs): no handler prints it, and slog would take
			// it with runtime.Callers on every request.
			logging.Attrs(r.Context(), m.log, slog.LevelInfo, "http", slog.String("route", route), slog.String("method", r.Method),
				slog.Int("status", sw.status), slog.Duration("took", took), slog.String("request_id", w.Header().Get("X-Request-Id")))
		}
	})
}

// storeOutage503 is for zitadel/oidc's token, introspection and revocation endpoints, which
// turn storage failures into 500 server_error or even 400 invalid_grant ("invalid code"): when
// the answer is an error and Redis does not answer, the client is told 503
// temporarily_unavailable instead, so it retries rather than throwing its code or refresh
// token away. Redis is only asked on error answers.
func storeOutage503(ping func(context.Context) error, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bw := held.Share(w.Header())
		next.ServeHTTP(bw, r)
		if bw.Status >= 400 {
			ctx, cancel := context.WithTimeout(r.Context(), time.Second)
			err := ping(ctx)
			cancel()
			if err != nil && errors.Is(err, store.ErrUnavailable) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "5")
				w.Header().Del("Content-Length")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"error":"temporarily_unavailable","error_description":"the login service is temporarily unavailable"}` + "\n"))
				return
			}
		}
		bw.Send(w)
	})
}
