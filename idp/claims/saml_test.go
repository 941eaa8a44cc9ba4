package claims

import (
	"reflect"
	"testing"

	"github.com/nemidp/nemidp/idp/store"
)

// TestSAMLAttributes: the OIOSAML 3.0 attributes come from the same mapping as the OIDC
// claims: specVersion and loa first, names, dateOfBirth DD-MM-YYYY, age as text, the youth
// marker, the PID only when OCES is attached, the CPR number only when asked for.
func TestSAMLAttributes(t *testing.T) {
	t.Parallel()
	oces := &store.Citizen{CPR: "2511084321", Name: "Karen Marie Jensen", GivenName: "Karen Marie", FamilyName: "Jensen",
		Kind: "oces", PID: "9208-2002-2-123456789012", YouthCert: true}
	bank := &store.Citizen{CPR: "1506901234", Name: "Bo Bank", GivenName: "Bo", FamilyName: "Bank", Kind: "bank", PID: "stale"}
	now := at(2026, 12, 1, 12, 0)
	names := func(as []SAMLAttribute) map[string]string {
		m := map[string]string{}
		for _, a := range as {
			if _, dup := m[a.Name]; dup {
				t.Errorf("attribute %s twice", a.Name)
			}
			m[a.Name] = a.Value
		}
		return m
	}
	got := SAMLAttributes(oces, Login{}, false, now)
	if got[0] != (SAMLAttribute{SAMLSpecVersion, "OIO-SAML-3.0"}) || got[1] != (SAMLAttribute{SAMLLoA, "Substantial"}) {
		t.Errorf("first attributes %v", got[:2])
	}
	want := map[string]string{
		SAMLSpecVersion: "OIO-SAML-3.0", SAMLLoA: "Substantial",
		"https://data.gov.dk/model/core/eid/fullName":    "Karen Marie Jensen",
		"https://data.gov.dk/model/core/eid/firstName":   "Karen Marie",
		"https://data.gov.dk/model/core/eid/lastName":    "Jensen",
		"https://data.gov.dk/model/core/eid/dateOfBirth": "25-11-2008",
		"https://data.gov.dk/model/core/eid/age":         "18",
		"dk:gov:saml:attribute:IsYouthCert":              "true",
		"https://data.gov.dk/model/core/eid/person/pid":  "9208-2002-2-123456789012",
	}
	if m := names(got); !reflect.DeepEqual(m, want) {
		t.Errorf("OCES, no cpr:\n got %v\nwant %v", m, want)
	}
	m := names(SAMLAttributes(bank, Login{}, true, now))
	if m["https://data.gov.dk/model/core/eid/cprNumber"] != "1506901234" {
		t.Errorf("cpr not released with cpr: %v", m)
	}
	if _, ok := m["https://data.gov.dk/model/core/eid/person/pid"]; ok {
		t.Errorf("pid released for a bank-only NemID: %v", m)
	}
	if m["dk:gov:saml:attribute:IsYouthCert"] != "false" || m["https://data.gov.dk/model/core/eid/dateOfBirth"] != "15-06-1990" {
		t.Errorf("bank-only: %v", m)
	}
}
