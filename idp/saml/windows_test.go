package saml

import (
	"testing"
	"time"

	"github.com/crewjam/saml"
)

// TestSetWindows: the configured windows reach crewjam's checks and the replay window; zero
// keeps what is set. Not parallel: it sets process-wide values (restored after), and parallel
// tests start only once the sequential ones are done.
func TestSetWindows(t *testing.T) {
	skew, delay := saml.MaxClockSkew, saml.MaxIssueDelay
	t.Cleanup(func() { saml.MaxClockSkew, saml.MaxIssueDelay = skew, delay })
	SetWindows(3*time.Minute, 10*time.Minute)
	if saml.MaxClockSkew != 3*time.Minute || saml.MaxIssueDelay != 10*time.Minute || ReplayWindow() != 14*time.Minute {
		t.Fatalf("skew %v, delay %v, replay window %v", saml.MaxClockSkew, saml.MaxIssueDelay, ReplayWindow())
	}
	SetWindows(0, 0)
	if saml.MaxClockSkew != 3*time.Minute || saml.MaxIssueDelay != 10*time.Minute {
		t.Fatalf("zero changed the windows: %v %v", saml.MaxClockSkew, saml.MaxIssueDelay)
	}
}
