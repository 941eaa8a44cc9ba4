package claims

// Claims of a login on behalf of someone else (DESIGN.md §4, "on behalf of").
const (
	// Act names the acting party (RFC 8693 §4.1): the guardian, by their own pairwise sub.
	Act = "act"
	// Guardianship is the kind of guardianship the guardian acts under: "full" or "partial".
	Guardianship = "dk.guardianship"
)

// OnBehalfOf is the claims added to the ward's own when a guardian acts for them: sub stays
// the ward's, act names the guardian (their pairwise sub at the same relying party, and name).
// The name is left out when empty (not released by the scopes).
func OnBehalfOf(guardianSub, guardianName, kind string) map[string]any {
	act := map[string]any{"sub": guardianSub}
	if guardianName != "" {
		act["name"] = guardianName
	}
	return map[string]any{Act: act, Guardianship: kind}
}
