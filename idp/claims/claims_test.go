package claims

import (
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/store"
)

func TestForCitizen(t *testing.T) {
	t.Parallel()
	c := &store.Citizen{CPR: "1506901234", Name: "Karen Jensen", GivenName: "Karen", FamilyName: "Jensen", Kind: "bank"}
	youth := &store.Citizen{CPR: "2511084321", Name: "Ung Person", Kind: "oces"} // born 2008-11-25
	at := time.Date(2026, 11, 24, 23, 30, 0, 0, time.UTC)                        // 00:30 on 25 Nov in Copenhagen
	tests := []struct {
		name   string
		c      *store.Citizen
		scopes []string
		now    time.Time
		check  func(t *testing.T, p Person)
	}{
		{"profile", c, []string{"openid", "profile"}, at, func(t *testing.T, p Person) {
			if p.Name != "Karen Jensen" || p.BirthDate != "1990-06-15" || p.Extra[Age] != 36 || p.Extra[AgeUnder18] != false {
				t.Fatalf("%+v", p)
			}
			if p.Extra[OCES] != false {
				t.Fatal("a bank NemID must not claim OCES")
			}
			if _, ok := p.Extra[CPR]; ok {
				t.Fatal("CPR without scope ssn")
			}
		}},
		{"ssn", c, []string{"openid", ScopeSSN}, at, func(t *testing.T, p Person) {
			if p.Extra[CPR] != "1506901234" || p.Name != "" {
				t.Fatalf("%+v", p)
			}
		}},
		{"openid only", c, []string{"openid"}, at, func(t *testing.T, p Person) {
			if p.Name != "" || p.Extra[IDP] != ProviderName || len(p.Extra) != 1 {
				t.Fatalf("%+v", p)
			}
		}},
		{"18 at midnight in Denmark", youth, []string{"profile"}, at, func(t *testing.T, p Person) {
			if p.Extra[Age] != 18 || p.Extra[AgeUnder18] != false {
				t.Fatalf("%+v", p.Extra)
			}
		}},
		{"17 an hour before", youth, []string{"profile"}, at.Add(-time.Hour), func(t *testing.T, p Person) {
			if p.Extra[Age] != 17 || p.Extra[AgeUnder18] != true {
				t.Fatalf("%+v", p.Extra)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.check(t, ForCitizen(tc.c, tc.scopes, tc.now))
		})
	}
}
