package web

import (
	"strings"
	"testing"

	"github.com/nemidp/nemidp/flows"
)

// TestBlockedPageNamesReason: the Danish page of a blocked NemID names the block's category,
// as the JSON message does; English uses the engine's message, which names it too.
func TestBlockedPageNamesReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lang, reason, want string
	}{
		{langDA, "misuse", "misbrug"},
		{langDA, "lost_card", "bortkommet"},
		{langDA, "operator", "spærret af NemID-support"},
		{langDA, "", "Dit NemID er spærret. Kontakt NemID-support."},
		{langEN, "misuse", "misuse"},
	} {
		e := flows.Errorf(flows.CodeBlocked, "Your NemID is blocked because misuse was suspected.")
		e.Reason = tc.reason
		got := pageData{Lang: tc.lang, Error: e}.ErrorText()
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s/%q: %q, want it to contain %q", tc.lang, tc.reason, got, tc.want)
		}
	}
}
