package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test run this binary as nemidp itself (main, with its logger, buffered
// stderr and signal handling) when NEMIDP_TEST_RUN_MAIN is set.
func TestMain(m *testing.M) {
	if os.Getenv("NEMIDP_TEST_RUN_MAIN") == "1" {
		os.Args = append(os.Args[:1], strings.Fields(os.Getenv("NEMIDP_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestServeLogOnCleanStop runs `nemidp serve` as a process in each log format, makes
// requests and stops it with SIGTERM at once: every access-log line (buffered, flushed every
// 100 ms) is on stderr after the exit, in the format asked for, and the JSON lines parse.
func TestServeLogOnCleanStop(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"", "json"} {
		t.Run("format="+format, func(t *testing.T) {
			t.Parallel()
			addr := freeAddr(t)
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "NEMIDP_TEST_RUN_MAIN=1", "NEMIDP_TEST_ARGS=serve", "NEMIDP_ADDR="+addr,
				"NEMIDP_LOG_FORMAT="+format, "NEMIDP_REDIS_URL=", "NEMIDP_CONFIG=")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			base := "http://" + addr
			var up bool
			for range 150 {
				if resp, err := http.Get(base + "/.well-known/openid-configuration"); err == nil {
					resp.Body.Close()
					up = resp.StatusCode == 200
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if !up {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("no discovery within 15 s; stderr:\n%s", stderr.String())
			}
			const n = 20
			for i := range n {
				req, _ := http.NewRequest(http.MethodGet, base+"/.well-known/openid-configuration", nil)
				req.Header.Set("X-Request-Id", fmt.Sprintf("stop-test-%02d", i))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("exit after SIGTERM: %v; stderr:\n%s", err, stderr.String())
				}
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("no exit within 15 s of SIGTERM")
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			seen := map[string]bool{}
			for _, l := range lines {
				if format == "json" {
					var rec map[string]any
					if err := json.Unmarshal([]byte(l), &rec); err != nil {
						t.Fatalf("not a JSON line: %q", l)
					}
					if id, _ := rec["request_id"].(string); rec["msg"] == "http" && strings.HasPrefix(id, "stop-test-") {
						seen[id] = true
					}
					continue
				}
				if strings.HasPrefix(l, "{") {
					t.Fatalf("JSON line in the text log: %q", l)
				}
				if i := strings.Index(l, "request_id=stop-test-"); i >= 0 && strings.Contains(l, " msg=http ") {
					seen[l[i+len("request_id="):]] = true
				}
			}
			if len(seen) != n {
				t.Fatalf("%d of %d access-log lines after the stop; stderr:\n%s", len(seen), n, stderr.String())
			}
			if !strings.Contains(lines[len(lines)-1], "shutting down") {
				t.Errorf("last line %q, want the shutdown", lines[len(lines)-1])
			}
		})
	}
}
