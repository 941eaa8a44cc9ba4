package integrationtests

import (
	"net/http"
	"strings"
	"testing"

	"github.com/nemidp/nemidp/idp/claims"
	idpsaml "github.com/nemidp/nemidp/idp/saml"
)

const (
	attrFullName = "https://data.gov.dk/model/core/eid/fullName"
	attrCPR      = "https://data.gov.dk/model/core/eid/cprNumber"
	attrBirth    = "https://data.gov.dk/model/core/eid/dateOfBirth"
	attrPID      = "https://data.gov.dk/model/core/eid/person/pid"
)

// TestSAMLLogin: a samlsp SP logs a citizen in through the whole flow (Redirect binding,
// signed request, password and card key): it verifies the signatures, decrypts the assertion
// (AES-256-GCM, RSA-OAEP) and reads the OIOSAML 3.0 attributes; no CPR number without cpr,
// with cpr the CPR number.
func TestSAMLLogin(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	c := p.issueCitizen(t, freshCPR(), "Karen Marie Jensen")
	for _, tc := range []struct {
		name string
		pol  spPolicy
	}{
		{"default", spPolicy{}},
		{"cpr, unencrypted", spPolicy{CPR: true, NoEncryption: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := p.newCrewSP(t, tc.pol)
			s := sp.signIn(t, p.newBrowser(t), c)
			if !strings.HasPrefix(s.Subject, idpsaml.NameIDPrefix) || len(s.Subject) != len(idpsaml.NameIDPrefix)+36 {
				t.Fatalf("NameID %q", s.Subject)
			}
			a := s.Attributes
			want := map[string]string{claims.SAMLSpecVersion: "OIO-SAML-3.0", claims.SAMLLoA: "Substantial", attrFullName: c.Name}
			for k, v := range want {
				if got := a[k]; len(got) != 1 || got[0] != v {
					t.Errorf("attribute %s = %v, want %q", k, got, v)
				}
			}
			if b := a[attrBirth]; len(b) != 1 || b[0] != c.CPR[0:2]+"-"+c.CPR[2:4]+"-19"+c.CPR[4:6] {
				t.Errorf("dateOfBirth %v for CPR %s", b, c.CPR)
			}
			if len(a[attrPID]) != 1 {
				t.Errorf("no pid for an OCES NemID: %v", a)
			}
			if got := a[attrCPR]; tc.pol.CPR != (len(got) == 1 && got[0] == c.CPR) {
				t.Errorf("cpr policy %v, cprNumber %v", tc.pol.CPR, got)
			}
		})
	}
	_ = http.StatusOK
}
