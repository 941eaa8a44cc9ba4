package integrationtests

import (
	"log/slog"
	"os"
	"testing"
)

// TestMain keeps the servers' logs to errors, so a failing test's output stays readable;
// NEMIDP_TEST_LOG=1 shows everything.
func TestMain(m *testing.M) {
	level := slog.LevelError
	if os.Getenv("NEMIDP_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	os.Exit(m.Run())
}
