// Package claims turns an authenticated citizen into the claims relying parties see, in one
// place, so every protocol says the same thing (DESIGN.md §4).
package claims

import (
	"slices"
	"time"

	"github.com/nemidp/nemidp/idp/cpr"
	"github.com/nemidp/nemidp/idp/store"
)

// Claim names of the default dialect.
const (
	IDP          = "idp"
	Age          = "age"
	CPR          = "dk.cpr"
	AgeUnder18   = "dk.age_under_18"
	YouthCert    = "dk.youth_certificate"
	OCES         = "nemid.oces"
	PID          = "nemid.pid"
	ACR          = "acr"
	AMR          = "amr"
	AuthTime     = "auth_time"
	ScopeSSN     = "ssn"
	ProviderName = "nemid"
)

// Person is the citizen's identity claims for a set of granted scopes. Age is computed at the
// moment asked (each login, each userinfo call), in Danish time.
type Person struct {
	Name, GivenName, FamilyName string
	BirthDate                   string // YYYY-MM-DD
	Age                         int
	Extra                       map[string]any
}

// ForCitizen maps a citizen to claims. The certificate fields (Kind, PID, YouthCert) are the
// login's snapshot when the caller applied it (flows.Certificate.Apply): what the login saw,
// which an SSO re-login keeps until the citizen logs in afresh. CPR is released only when the scope ssn was granted
// (the OIDC front end grants it only to clients allowed it).
func ForCitizen(c *store.Citizen, scopes []string, now time.Time) Person {
	p := Person{Extra: map[string]any{IDP: ProviderName}}
	if slices.Contains(scopes, "profile") {
		p.Name, p.GivenName, p.FamilyName = c.Name, c.GivenName, c.FamilyName
		if n, err := cpr.Parse(c.CPR); err == nil {
			b := n.BirthDate()
			p.BirthDate = b.String()
			p.Age = cpr.Age(b, now)
			p.Extra[Age] = p.Age
			p.Extra[AgeUnder18] = p.Age < 18
		}
		p.Extra[OCES] = c.Kind == "oces"
		p.Extra[YouthCert] = c.Kind == "oces" && c.YouthCert
		if c.Kind == "oces" && c.PID != "" {
			p.Extra[PID] = c.PID
		}
	}
	if slices.Contains(scopes, ScopeSSN) {
		p.Extra[CPR] = c.CPR
	}
	return p
}
