package claims

import (
	"fmt"
	"time"

	"github.com/nemidp/nemidp/idp/store"
)

// OIOSAML 3.0 attribute names (DESIGN.md §4), NameFormat uri.
const (
	SAMLSpecVersion   = "https://data.gov.dk/model/core/specVersion"
	SAMLLoA           = "https://data.gov.dk/concept/core/nsis/loa"
	SAMLPrivileges    = "https://data.gov.dk/model/core/eid/privilegesIntermediate"
	SAMLSpecVersionV3 = "OIO-SAML-3.0"
	// SAMLLoASubstantial is the value of SAMLLoA for every NemID login.
	SAMLLoASubstantial = "Substantial"
	// SAMLAttrNameFormat is the NameFormat of every attribute.
	SAMLAttrNameFormat = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
)

// SAMLDialect names the concepts as OIOSAML 3.0 attributes, every value as text. It is not
// among Dialects: OIDC clients cannot register for it.
var SAMLDialect = Dialect{Name: "oiosaml3", Claims: map[Concept]Claim{
	FullName:   {"https://data.gov.dk/model/core/eid/fullName", AsIs},
	GivenName:  {"https://data.gov.dk/model/core/eid/firstName", AsIs},
	FamilyName: {"https://data.gov.dk/model/core/eid/lastName", AsIs},
	BirthDate:  {"https://data.gov.dk/model/core/eid/dateOfBirth", DateDanish},
	AgeYears:   {"https://data.gov.dk/model/core/eid/age", Text},
	// The OCES youth marker, under the OIOSAML 2.0 name the brokers' SPs know.
	YouthCert: {"dk:gov:saml:attribute:IsYouthCert", Text},
	PIDNumber: {"https://data.gov.dk/model/core/eid/person/pid", AsIs},
	CPRNumber: {"https://data.gov.dk/model/core/eid/cprNumber", AsIs},
}}

// samlConcepts are what an SP is told, in this order: the concepts of scope profile that
// OIOSAML has attributes for (DESIGN.md §4: "a SAML SP gets the attributes of profile").
var samlConcepts = []Concept{FullName, GivenName, FamilyName, BirthDate, AgeYears, YouthCert, PIDNumber}

// SAMLAttribute is one attribute of an assertion's AttributeStatement.
type SAMLAttribute struct {
	Name  string
	Value string
}

// SAMLAttributes are the attributes of an assertion for citizen c (with the login's
// certificate snapshot applied by the caller) at instant now: specVersion and loa first, then
// the profile's concepts that have a value, then the CPR number when withCPR (an SP
// registered with cpr, the SAML twin of scope ssn).
func SAMLAttributes(c *store.Citizen, l Login, withCPR bool, now time.Time) []SAMLAttribute {
	want := samlConcepts
	if withCPR {
		want = append(want[:len(want):len(want)], CPRNumber)
	}
	values := Values(c, l, want, now)
	out := []SAMLAttribute{{SAMLSpecVersion, SAMLSpecVersionV3}, {SAMLLoA, SAMLLoASubstantial}}
	for _, k := range want {
		v, ok := values[k]
		if !ok {
			continue
		}
		cl := SAMLDialect.Claims[k]
		out = append(out, SAMLAttribute{Name: cl.Name, Value: fmt.Sprint(format(cl.Format, v))})
	}
	return out
}
