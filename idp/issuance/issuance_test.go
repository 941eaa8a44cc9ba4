package issuance

import (
	"errors"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	is := &Issuer{Now: func() time.Time { return time.Date(2026, 11, 24, 23, 30, 0, 0, time.UTC) }}
	tests := []struct {
		name                    string
		req                     Request
		field                   string // "" = valid
		given, family, kind, at string
	}{
		{"split name", Request{CPR: "150690-1234", Name: "Karen  Marie Jensen"}, "", "Karen Marie", "Jensen", "oces", "2026-11-25"},
		{"given names", Request{CPR: "1506901234", Name: "K J", GivenName: "Karen", FamilyName: "Jensen", Kind: "bank"}, "", "Karen", "Jensen", "bank", "2026-11-25"},
		{"one name", Request{CPR: "1506901234", Name: "Madonna"}, "", "", "Madonna", "oces", "2026-11-25"},
		{"import date", Request{CPR: "1506901234", Name: "Karen Jensen", IssuedAt: "2021-03-01"}, "", "Karen", "Jensen", "oces", "2021-03-01"},
		{"bad cpr", Request{CPR: "3102901234", Name: "X"}, "cpr", "", "", "", ""},
		{"no name", Request{CPR: "1506901234", Name: "  "}, "name", "", "", "", ""},
		{"bad kind", Request{CPR: "1506901234", Name: "X", Kind: "gold"}, "kind", "", "", "", ""},
		{"bad date", Request{CPR: "1506901234", Name: "X", IssuedAt: "01-03-2021"}, "issued_at", "", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := is.validate(tc.req)
			if tc.field != "" {
				var ve *ValidationError
				if !errors.As(err, &ve) || ve.Field != tc.field {
					t.Fatalf("err = %v, want a ValidationError on %s", err, tc.field)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// issued_at defaults to today in Denmark (already 25 Nov there).
			if c.GivenName != tc.given || c.FamilyName != tc.family || c.Kind != tc.kind || c.IssuedAt != tc.at || c.CPR != "1506901234" {
				t.Fatalf("got %+v", c)
			}
		})
	}
}

func TestNewUserIDIsNineDigits(t *testing.T) {
	t.Parallel()
	for range 1000 {
		id, err := newUserID()
		if err != nil || len(id) != 9 || id[0] == '0' {
			t.Fatalf("user id %q, %v", id, err)
		}
	}
}
