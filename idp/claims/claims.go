// Package claims turns an authenticated citizen into what relying parties are told, in one
// place, so every protocol says the same thing (DESIGN.md §4). It is protocol-neutral: scopes
// release concepts (scopes.go), a citizen and a login give the concepts' values (this file),
// and a dialect names and formats them (dialects.go). The OIDC front end and, later, SAML
// each pick a dialect table; neither adds claims of its own here.
package claims

import (
	"strconv"
	"time"

	"github.com/nemidp/nemidp/idp/cpr"
	"github.com/nemidp/nemidp/idp/store"
)

// Concept is one fact a relying party may be told, independent of any protocol's name for it.
type Concept string

// The concepts. The subject (pairwise sub, NameID) is not one: every protocol carries it its
// own way, and it is always released.
const (
	Provider   Concept = "provider"    // the identity provider: "nemid"
	ACRLevel   Concept = "acr"         // assurance level of the login
	Methods    Concept = "amr"         // authentication methods (RFC 8176)
	AuthTime   Concept = "auth_time"   // when the citizen authenticated
	FullName   Concept = "name"        // full name
	GivenName  Concept = "given_name"  // first name(s)
	FamilyName Concept = "family_name" // last name
	BirthDate  Concept = "birth_date"  // from the CPR number
	AgeYears   Concept = "age"         // whole years, in Danish time, at the moment asked
	Under18    Concept = "under_18"    // age < 18
	AgeOver    Concept = "age_over"    // {"15","16","18","21"} → age ≥ n (EU wallet PID)
	YouthCert  Concept = "youth_cert"  // the OCES youth marker ("ung under 18")
	HasOCES    Concept = "oces"        // the NemID carries OCES (public digital signature)
	PIDNumber  Concept = "pid"         // the OCES PID, only when attached
	CPRNumber  Concept = "cpr"         // the CPR number, only with scope ssn
)

// ProviderName is the value of Provider.
const ProviderName = "nemid"

// AgeThresholds are the keys of AgeOver.
var AgeThresholds = []int{15, 16, 18, 21}

// Login is what the authentication itself tells: level, methods and time.
type Login struct {
	ACR      string
	AMR      []string
	AuthTime time.Time
}

// Values gives the value of each wanted concept for citizen c and login l at instant now. A
// concept with no value for this citizen (no PID attached, a CPR number that does not parse)
// is left out. Age is computed from the CPR birth date in Danish time (cpr.Age). Values are
// raw: cpr.Date for BirthDate, int for AgeYears, map[string]bool for AgeOver, time.Time for
// AuthTime; a dialect formats them.
func Values(c *store.Citizen, l Login, want []Concept, now time.Time) map[Concept]any {
	out := make(map[Concept]any, len(want))
	var (
		birth  cpr.Date
		parsed bool
	)
	if n, err := cpr.Parse(c.CPR); err == nil {
		birth, parsed = n.BirthDate(), true
	}
	age := func() int { return cpr.Age(birth, now) }
	for _, k := range want {
		switch k {
		case Provider:
			out[k] = ProviderName
		case ACRLevel:
			if l.ACR != "" {
				out[k] = l.ACR
			}
		case Methods:
			if len(l.AMR) > 0 {
				out[k] = l.AMR
			}
		case AuthTime:
			if !l.AuthTime.IsZero() {
				out[k] = l.AuthTime
			}
		case FullName:
			setString(out, k, c.Name)
		case GivenName:
			setString(out, k, c.GivenName)
		case FamilyName:
			setString(out, k, c.FamilyName)
		case BirthDate:
			if parsed {
				out[k] = birth
			}
		case AgeYears:
			if parsed {
				out[k] = age()
			}
		case Under18:
			if parsed {
				out[k] = age() < 18
			}
		case AgeOver:
			if parsed {
				a, m := age(), make(map[string]bool, len(AgeThresholds))
				for _, n := range AgeThresholds {
					m[strconv.Itoa(n)] = a >= n
				}
				out[k] = m
			}
		case YouthCert:
			out[k] = c.Kind == "oces" && c.YouthCert // a marker of the OCES: none without one
		case HasOCES:
			out[k] = c.Kind == "oces"
		case PIDNumber:
			if c.Kind == "oces" {
				setString(out, k, c.PID)
			}
		case CPRNumber:
			setString(out, k, c.CPR)
		}
	}
	return out
}

func setString(out map[Concept]any, k Concept, v string) {
	if v != "" {
		out[k] = v
	}
}
