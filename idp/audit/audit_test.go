package audit

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/logging"
	"github.com/nemidp/nemidp/idp/throttle"
)

func TestLine(t *testing.T) {
	t.Parallel()
	proxies, err := throttle.ParseProxies([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 14, 30, 0, 0, time.FixedZone("CET", 3600))
	tests := []struct {
		name    string
		remote  string
		xff     string
		reqID   string // on the response, as the middleware sets it
		hdrID   string // on the request only
		ev      Event
		want    map[string]any
		missing []string
	}{
		{"operator call behind a trusted proxy", "10.1.2.3:4000", "198.51.100.7", "rid-1", "",
			Event{By: ByOperator, Who: "bank", What: "citizen.issued", UserID: "123456789", Detail: map[string]any{"card_serial": "G750159724"}},
			map[string]any{"msg": "audit", "audit": true, "at": "2026-12-01T13:30:00Z", "by": "operator", "who": "bank",
				"what": "citizen.issued", "user_id": "123456789", "ip": "198.51.100.7", "request_id": "rid-1",
				"detail": map[string]any{"card_serial": "G750159724"}}, []string{"time", "level"}},
		{"forwarded header of an untrusted peer is ignored", "203.0.113.9:1", "198.51.100.7", "", "from-client",
			Event{What: "login.password", Detail: map[string]any{"outcome": "unknown_user"}},
			map[string]any{"by": "anonymous", "who": "", "ip": "203.0.113.9", "request_id": "from-client",
				"detail": map[string]any{"outcome": "unknown_user"}}, []string{"user_id"}},
		{"no detail", "[2001:db8::1]:443", "", "rid-3", "",
			Event{By: ByCitizen, Who: "123456789", What: "login.done", UserID: "123456789"},
			map[string]any{"ip": "2001:db8::1"}, []string{"detail"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var rec Recorder
			l := New(&rec, proxies).WithClock(func() time.Time { return at })
			r := httptest.NewRequest("POST", "/x", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if tc.hdrID != "" {
				r.Header.Set("X-Request-Id", tc.hdrID)
			}
			w := httptest.NewRecorder()
			if tc.reqID != "" {
				w.Header().Set("X-Request-Id", tc.reqID)
			}
			l.Log(w, r, tc.ev)
			lines := rec.Lines()
			if len(lines) != 1 || lines[0] == nil {
				t.Fatalf("want one JSON line, got %q", rec.String())
			}
			for k, v := range tc.want {
				got, _ := json.Marshal(lines[0][k])
				want, _ := json.Marshal(v)
				if !bytes.Equal(got, want) {
					t.Errorf("%s = %s, want %s (line %s)", k, got, want, rec.String())
				}
			}
			for _, k := range tc.missing {
				if _, ok := lines[0][k]; ok {
					t.Errorf("line has %s: %s", k, rec.String())
				}
			}
		})
	}
}

// TestWrittenThrough: over the server's buffered log writer, an audit line is out before Log
// returns (a crash right after keeps it), and a nil Logger writes nothing.
func TestWrittenThrough(t *testing.T) {
	t.Parallel()
	var out Recorder
	w := logging.NewWriter(&out, time.Hour, 0)
	defer w.Close()
	New(w, nil).Log(nil, httptest.NewRequest("GET", "/", nil), Event{What: "x.y"})
	if !strings.Contains(out.String(), `"what":"x.y"`) {
		t.Fatalf("audit line still buffered: %q", out.String())
	}
	var nilLogger *Logger
	nilLogger.Log(nil, nil, Event{What: "nothing"})
}
