package idp_test

import (
	"log/slog"
	"os"
	"testing"

	"github.com/nemidp/nemidp/idp"
	"github.com/nemidp/nemidp/idp/logging"
)

// TestMain sets up the process as cmd/nemidp's main does (free tracing spans, the buffered
// text log on stderr), so the benchmarks here measure the server as it runs.
func TestMain(m *testing.M) {
	idp.DisableTracing()
	w := logging.NewWriter(os.Stderr, logging.FlushInterval, logging.BufferSize)
	l, err := logging.New(w, "text", slog.LevelInfo)
	if err != nil {
		panic(err)
	}
	slog.SetDefault(l)
	code := m.Run()
	_ = w.Close()
	os.Exit(code)
}
