package claims

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nemidp/nemidp/idp/cpr"
)

// Format is how a dialect writes a concept's value.
type Format int

// Formats.
const (
	AsIs       Format = iota // the value as Values gives it (string, bool, int, []string, map)
	DateISO                  // cpr.Date → "YYYY-MM-DD"
	DateDanish               // cpr.Date → "DD-MM-YYYY" (OIOSAML dateOfBirth)
	Text                     // any value → its decimal or plain text form ("36", "true")
	UnixTime                 // time.Time → seconds since the epoch (OIDC NumericDate)
	PIDPrefix                // PID → "PID:9208-2002-2-…" (the OCES certificate's serial form)
)

// Claim is a concept's name and value format in one dialect.
type Claim struct {
	Name   string
	Format Format
}

// Dialect is one relying-party vocabulary: a table from concept to claim name and format.
// Adding a dialect is adding a table; no code per claim.
type Dialect struct {
	Name   string
	Claims map[Concept]Claim
}

// Default is the reference dialect of DESIGN.md §4.
var Default = Dialect{Name: "default", Claims: map[Concept]Claim{
	Provider:   {"idp", AsIs},
	ACRLevel:   {"acr", AsIs},
	Methods:    {"amr", AsIs},
	AuthTime:   {"auth_time", UnixTime},
	FullName:   {"name", AsIs},
	GivenName:  {"given_name", AsIs},
	FamilyName: {"family_name", AsIs},
	BirthDate:  {"birthdate", DateISO},
	AgeYears:   {"age", AsIs},
	Under18:    {"dk.age_under_18", AsIs},
	AgeOver:    {"age_equal_or_over", AsIs},
	YouthCert:  {"dk.youth_certificate", AsIs},
	HasOCES:    {"nemid.oces", AsIs},
	PIDNumber:  {"nemid.pid", AsIs},
	CPRNumber:  {"dk.cpr", AsIs},
}}

// Broker is the vocabulary of the NemID brokers relying parties move from: camel-case
// OIOSAML-derived names, the age as text (brokers pass SAML attribute strings on), the PID
// in its certificate form. The OIDC protocol claims (acr, amr, auth_time) and the standard
// profile names keep their names.
var Broker = Dialect{Name: "broker", Claims: map[Concept]Claim{
	Provider:   {"idp", AsIs},
	ACRLevel:   {"acr", AsIs},
	Methods:    {"amr", AsIs},
	AuthTime:   {"auth_time", UnixTime},
	FullName:   {"name", AsIs},
	GivenName:  {"given_name", AsIs},
	FamilyName: {"family_name", AsIs},
	BirthDate:  {"dateofbirth", DateISO},
	AgeYears:   {"age", Text},
	Under18:    {"isUnder18", AsIs},
	AgeOver:    {"ageEqualOrOver", AsIs},
	YouthCert:  {"isYouthCert", AsIs},
	HasOCES:    {"hasOCES", AsIs},
	PIDNumber:  {"pidNumberIdentifier", PIDPrefix},
	CPRNumber:  {"cprNumberIdentifier", AsIs},
}}

// Dialects are the dialects a relying party may register for, by name.
var Dialects = map[string]*Dialect{Default.Name: &Default, Broker.Name: &Broker}

// DialectNames lists the registrable dialects, sorted.
func DialectNames() []string { return slices.Sorted(maps.Keys(Dialects)) }

// DialectNamed finds a dialect; "" is the default.
func DialectNamed(name string) (*Dialect, error) {
	if name == "" {
		return &Default, nil
	}
	d, ok := Dialects[name]
	if !ok {
		return nil, fmt.Errorf("claims: unknown dialect %q (known: %v)", name, DialectNames())
	}
	return d, nil
}

// Named returns the claims for values, keyed by this dialect's names and formatted.
func (d *Dialect) Named(values map[Concept]any) map[string]any {
	out := make(map[string]any, len(values))
	for k, v := range values {
		c, ok := d.Claims[k]
		if !ok {
			continue
		}
		out[c.Name] = format(c.Format, v)
	}
	return out
}

// Concept is the concept a claim name of this dialect stands for.
func (d *Dialect) Concept(name string) (Concept, bool) {
	for k, c := range d.Claims {
		if c.Name == name {
			return k, true
		}
	}
	return "", false
}

// Names are this dialect's names for the given concepts, in their order.
func (d *Dialect) Names(concepts []Concept) []string {
	var out []string
	for _, k := range concepts {
		if c, ok := d.Claims[k]; ok {
			out = append(out, c.Name)
		}
	}
	return out
}

func format(f Format, v any) any {
	switch f {
	case DateISO:
		if d, ok := v.(cpr.Date); ok {
			return d.String()
		}
	case DateDanish:
		if d, ok := v.(cpr.Date); ok {
			return d.DanishString()
		}
	case Text:
		return fmt.Sprint(v)
	case UnixTime:
		if t, ok := v.(time.Time); ok {
			return t.Unix()
		}
	case PIDPrefix:
		if s, ok := v.(string); ok {
			return "PID:" + s
		}
	}
	return v
}

// AllNames are the claim names of every dialect, sorted, each once (discovery lists them).
func AllNames() []string {
	var out []string
	for _, d := range Dialects {
		for _, c := range d.Claims {
			if !slices.Contains(out, c.Name) {
				out = append(out, c.Name)
			}
		}
	}
	slices.Sort(out)
	return out
}
