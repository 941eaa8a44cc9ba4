package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/keys/password"
)

// TestIssueWhileKDFBusy: a NemID issued while every place of the KDF queue is taken (a login
// storm) is answered 503 unavailable with Retry-After, not 500: nothing was written, and the
// operator may try again.
func TestIssueWhileKDFBusy(t *testing.T) {
	t.Parallel()
	h := password.NewHasher(password.Params{MemoryKiB: 64, Time: 1, Threads: 1, Concurrency: 1, Queue: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	running, err := h.Hold(ctx) // the one slot
	if err != nil {
		t.Fatal(err)
	}
	defer running()
	waiting := make(chan struct{})
	go func() { // the one place in the queue, waiting for the slot until the test ends
		defer close(waiting)
		if release, err := h.Hold(ctx); err == nil {
			release()
		}
	}()
	for h.Waiting() < 1 { // lined up: the queue is full only once it waits
		select {
		case <-waiting:
			t.Fatal("the queued hash did not wait")
		default:
			runtime.Gosched()
		}
	}
	a := &API{Issuer: &issuance.Issuer{Passwords: h}, Token: "operator-token-0123456789"}
	mux := http.NewServeMux()
	a.Register(mux)
	body := `{"cpr":"0101901234","name":"Karen Jensen"}`
	req := httptest.NewRequest("POST", "/admin/v1/citizens", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer operator-token-0123456789")
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	var out struct {
		Error struct{ Code string }
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	if rec.Code != http.StatusServiceUnavailable || out.Error.Code != "unavailable" || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("issue while the KDF is busy: %d %s (Retry-After %q), want 503 unavailable with Retry-After",
			rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
}
