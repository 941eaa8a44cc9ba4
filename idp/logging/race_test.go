//go:build race

package logging_test

// raceEnabled: the race detector makes sync.Pool drop items, so slog's buffers allocate.
const raceEnabled = true
