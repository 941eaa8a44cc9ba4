package claims

import "slices"

// Scopes.
const (
	ScopeOpenID  = "openid"
	ScopeProfile = "profile"
	// ScopeAge is age verification without identity: the age concepts and nothing that names
	// the citizen (no names, no birth date, no CPR, no PID).
	ScopeAge = "age"
	// ScopeSSN releases the CPR number; the front ends grant it only to relying parties
	// registered for it.
	ScopeSSN = "ssn"
)

// ScopeTable is what each scope releases (data minimisation, DESIGN.md §4). A scope not in the
// table releases nothing (offline_access is about tokens, not claims).
var ScopeTable = map[string][]Concept{
	ScopeOpenID:  {ACRLevel, Methods, AuthTime, Provider},
	ScopeProfile: {FullName, GivenName, FamilyName, BirthDate, AgeYears, Under18, YouthCert, HasOCES, PIDNumber},
	ScopeAge:     {AgeYears, Under18, AgeOver},
	ScopeSSN:     {CPRNumber},
}

// ClaimScopes are the scopes of ScopeTable, in a fixed order (discovery lists them).
var ClaimScopes = []string{ScopeOpenID, ScopeProfile, ScopeAge, ScopeSSN}

// Allowed is what the granted scopes release, each concept once, in table order.
func Allowed(scopes []string) []Concept {
	var out []Concept
	for _, sc := range ClaimScopes {
		if !slices.Contains(scopes, sc) {
			continue
		}
		for _, k := range ScopeTable[sc] {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}
