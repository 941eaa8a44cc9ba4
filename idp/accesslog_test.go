package idp

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nemidp/nemidp/idp/logging"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAccessLogFieldsAndNoSecrets: one line per request with the route pattern, method,
// status, duration and request id, in either format, through the buffered writer; never the
// path, the query, a header or the body (flow ids, codes, state, tokens, passwords, keys).
func TestAccessLogFieldsAndNoSecrets(t *testing.T) {
	t.Parallel()
	secrets := []string{"FLOWID0123", "CODE4567", "STATE89", "BEARERTOKEN", "hunter2pw", "150690-1234", "123456"}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			out := &lockedBuffer{}
			w := logging.NewWriter(out, time.Hour, 0)
			l, err := logging.New(w, format, slog.LevelInfo)
			if err != nil {
				t.Fatal(err)
			}
			m := newHTTPMetrics(prometheus.NewRegistry())
			m.log = l
			mux := http.NewServeMux()
			mux.HandleFunc("POST /login/{flow}/codecard", func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusUnprocessableEntity)
			})
			mux.HandleFunc("GET /healthz", func(http.ResponseWriter, *http.Request) {})
			h := chain(mux, m)

			req := httptest.NewRequest(http.MethodPost, "/login/FLOWID0123/codecard?code=CODE4567&state=STATE89",
				strings.NewReader(`{"key":"123456","password":"hunter2pw","cpr":"150690-1234"}`))
			req.Header.Set("Authorization", "Bearer BEARERTOKEN")
			req.Header.Set("X-Request-Id", "req-1")
			h.ServeHTTP(httptest.NewRecorder(), req)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/healthz", nil))
			if got := out.String(); got != "" {
				t.Fatalf("written before the flush interval: %q", got)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := out.String()
			if strings.Count(got, "\n") != 1 {
				t.Fatalf("want one line (health checks are not logged), got %q", got)
			}
			for _, s := range secrets {
				if strings.Contains(got, s) {
					t.Errorf("access log carries %q: %s", s, got)
				}
			}
			if format == "text" {
				for _, want := range []string{"level=INFO msg=http ", `route="POST /login/{flow}/codecard" method=POST status=422 took=`, " request_id=req-1\n"} {
					if !strings.Contains(got, want) {
						t.Errorf("text line lacks %q: %s", want, got)
					}
				}
				return
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(got), &rec); err != nil {
				t.Fatalf("%q: %v", got, err)
			}
			if rec["msg"] != "http" || rec["route"] != "POST /login/{flow}/codecard" || rec["method"] != "POST" ||
				rec["status"] != 422.0 || rec["request_id"] != "req-1" || rec["source"] != nil {
				t.Errorf("json line %v", rec)
			}
			if took, ok := rec["took"].(float64); !ok || took <= 0 {
				t.Errorf("took %v, want nanoseconds", rec["took"])
			}
		})
	}
}
