package keyapp

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nemidp/nemidp/flows"
)

// TestWaitParam: ?wait= is whole seconds clamped to [0, flows.MaxWait], without overflow.
func TestWaitParam(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		q    string
		want time.Duration
		bad  bool
	}{
		{"", 0, false},
		{"wait=0", 0, false},
		{"wait=5", 5 * time.Second, false},
		{"wait=30", flows.MaxWait, false},
		{"wait=31", flows.MaxWait, false},
		{"wait=9223372037", flows.MaxWait, false},  // × 1e9 overflows int64
		{"wait=18446744099", flows.MaxWait, false}, // past int64
		{"wait=99999999999999999999", flows.MaxWait, false},
		{"wait=-1", 0, true},
		{"wait=-99999999999999999999", 0, true},
		{"wait=1.5", 0, true},
		{"wait=soon", 0, true},
		{"wait=", 0, true},
	} {
		r := httptest.NewRequest("GET", "/keyapp/v1/requests?"+tc.q, nil)
		got, err := waitParam(r)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("%q: %v, %v; want %v (error %v)", tc.q, got, err, tc.want, tc.bad)
		}
	}
}
