package idp

import "testing"

// TestSafeRequestID: a caller's request id reaches the logs only when it cannot carry a
// NemID or CPR number (with or without its dash) or anything but a plain token.
func TestSafeRequestID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id   string
		safe bool
	}{
		{"req-1", true},
		{"550e8400-e29b-41d4-a716-446655440000", true},
		{"0f72f538dad49127", true},
		{"lb:12345678.abc", true},
		{"446655440000", true}, // 12 digits: a UUID's last group, no NemID or CPR number
		{"", false},
		{"0101901234", false},     // a CPR number
		{"cpr-0101901234", false}, // one inside
		{"010190-1234", false},    // with its dash
		{"x010190-1234y", false},  // inside, dashed
		{"123456789", false},      // a NemID number
		{"has space", false},      // not a token
		{"quote\"", false},        // nor this
		{"é", false},              // nor this
		{string(make([]byte, 65)), false},
	} {
		if got := safeRequestID(tc.id); got != tc.safe {
			t.Errorf("safeRequestID(%q) = %v, want %v", tc.id, got, tc.safe)
		}
	}
}
