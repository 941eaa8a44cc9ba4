package claims

import (
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/cpr"
	"github.com/nemidp/nemidp/idp/store"
)

var cph = func() *time.Location {
	l, err := time.LoadLocation("Europe/Copenhagen")
	if err != nil {
		panic(err)
	}
	return l
}()

// at is a wall-clock instant in Copenhagen.
func at(y int, m time.Month, d, hh, mm int) time.Time { return time.Date(y, m, d, hh, mm, 0, 0, cph) }

func utc(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, time.UTC)
}

var ageConcepts = []Concept{AgeYears, Under18, AgeOver}

func over(a int) map[string]bool {
	return map[string]bool{"15": a >= 15, "16": a >= 16, "18": a >= 18, "21": a >= 21}
}

// TestAgeConcepts: age, under 18 and age_equal_or_over on and around birthdays, 29 February
// births, and Danish midnight in summer and winter time.
func TestAgeConcepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cpr  string // DDMMYY + serial (its 7th digit picks the century)
		now  time.Time
		age  int
	}{
		// born 2008-11-25 (7th digit 4, yy 08 ≤ 36: 2000s)
		{"day before the 18th birthday", "2511084321", at(2026, 11, 24, 23, 59), 17},
		{"on the 18th birthday", "2511084321", at(2026, 11, 25, 0, 0), 18},
		{"day after the 18th birthday", "2511084321", at(2026, 11, 26, 12, 0), 18},
		{"day before the 15th birthday", "2511084321", at(2023, 11, 24, 12, 0), 14},
		{"on the 15th birthday", "2511084321", at(2023, 11, 25, 12, 0), 15},
		{"day before the 16th birthday", "2511084321", at(2024, 11, 24, 12, 0), 15},
		{"on the 16th birthday", "2511084321", at(2024, 11, 25, 12, 0), 16},
		{"day before the 21st birthday", "2511084321", at(2029, 11, 24, 12, 0), 20},
		{"on the 21st birthday", "2511084321", at(2029, 11, 25, 12, 0), 21},
		{"day after the 21st birthday", "2511084321", at(2029, 11, 26, 12, 0), 21},
		// born 2008-02-29 (a leap year)
		{"29 Feb birth, 28 Feb of a non-leap year", "2902084321", at(2026, 2, 28, 12, 0), 17},
		{"29 Feb birth, 1 Mar of a non-leap year (18th birthday)", "2902084321", at(2026, 3, 1, 0, 0), 18},
		{"29 Feb birth, 28 Feb of a leap year", "2902044321", at(2020, 2, 28, 12, 0), 15},
		{"29 Feb birth, 29 Feb of a leap year (16th birthday)", "2902044321", at(2020, 2, 29, 0, 0), 16},
		{"29 Feb birth, 21st birthday in a non-leap year is 1 Mar", "2902044321", at(2025, 3, 1, 0, 0), 21},
		{"29 Feb birth, the day before that", "2902044321", at(2025, 2, 28, 23, 59), 20},
		// Danish midnight: 23:30 UTC on the eve is already the birthday in Denmark.
		{"winter: 23:30 UTC on the eve (00:30 CET)", "2511084321", utc(2026, 11, 24, 23, 30), 18},
		{"winter: 22:59 UTC on the eve (23:59 CET)", "2511084321", utc(2026, 11, 24, 22, 59), 17},
		{"summer: 23:30 UTC on the eve (01:30 CEST)", "1507084321", utc(2026, 7, 14, 23, 30), 18},
		{"summer: 21:59 UTC on the eve (23:59 CEST)", "1507084321", utc(2026, 7, 14, 21, 59), 17},
		{"summer: 22:00 UTC on the eve (00:00 CEST)", "1507084321", utc(2026, 7, 14, 22, 0), 18},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Values(&store.Citizen{CPR: tc.cpr}, Login{}, ageConcepts, tc.now)
			want := map[Concept]any{AgeYears: tc.age, Under18: tc.age < 18, AgeOver: over(tc.age)}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("at %v: got %v, want %v", tc.now, got, want)
			}
		})
	}
}

// TestCenturyDigits: the birth date's century comes from the 7th digit of the CPR number.
func TestCenturyDigits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cpr, birth string
	}{
		{"0101000123", "1900-01-01"}, {"0101993123", "1999-01-01"},
		{"0101364123", "2036-01-01"}, {"0101374123", "1937-01-01"},
		{"0101369123", "2036-01-01"}, {"0101379123", "1937-01-01"},
		{"0101575123", "2057-01-01"}, {"0101585123", "1858-01-01"},
		{"0101008123", "2000-01-01"}, {"0101998123", "1899-01-01"},
	}
	for _, tc := range tests {
		t.Run(tc.cpr, func(t *testing.T) {
			t.Parallel()
			v := Values(&store.Citizen{CPR: tc.cpr}, Login{}, []Concept{BirthDate}, utc(2026, 1, 1, 12, 0))
			if got := Default.Named(v)["birthdate"]; got != tc.birth {
				t.Fatalf("birthdate %v, want %s", got, tc.birth)
			}
		})
	}
}

var (
	karen = &store.Citizen{CPR: "1506901234", Name: "Karen Jensen", GivenName: "Karen", FamilyName: "Jensen",
		Kind: "oces", PID: "9208-2002-2-123456789012"}
	youth = &store.Citizen{CPR: "2511084321", Name: "Ung Person", GivenName: "Ung", FamilyName: "Person",
		Kind: "oces", PID: "9208-2002-2-000000000001", YouthCert: true}
	bankOnly = &store.Citizen{CPR: "1506901234", Name: "Karen Jensen", GivenName: "Karen", FamilyName: "Jensen", Kind: "bank"}
	login    = Login{ACR: "https://data.gov.dk/concept/core/nsis/Substantial", AMR: []string{"pwd", "otp"}, AuthTime: utc(2026, 5, 1, 10, 0)}
	now      = utc(2026, 5, 1, 10, 0) // Karen is 35, the youth 17
)

func release(d *Dialect, c *store.Citizen, scopes ...string) map[string]any {
	return d.Named(Values(c, login, Allowed(scopes), now))
}

// TestScopes: each scope releases its claims and nothing else (default dialect).
func TestScopes(t *testing.T) {
	t.Parallel()
	auth := map[string]any{"acr": login.ACR, "amr": login.AMR, "auth_time": login.AuthTime.Unix(), "idp": "nemid"}
	profile := map[string]any{"name": "Karen Jensen", "given_name": "Karen", "family_name": "Jensen",
		"birthdate": "1990-06-15", "age": 35, "dk.age_under_18": false, "dk.youth_certificate": false,
		"nemid.oces": true, "nemid.pid": "9208-2002-2-123456789012"}
	age := map[string]any{"age": 35, "dk.age_under_18": false, "age_equal_or_over": over(35)}
	join := func(ms ...map[string]any) map[string]any {
		out := map[string]any{}
		for _, m := range ms {
			maps.Copy(out, m)
		}
		return out
	}
	tests := []struct {
		name   string
		c      *store.Citizen
		scopes []string
		want   map[string]any
	}{
		{"openid", karen, []string{"openid"}, auth},
		{"profile", karen, []string{"openid", "profile"}, join(auth, profile)},
		{"profile alone", karen, []string{"profile"}, profile},
		{"age", karen, []string{"openid", "age"}, join(auth, age)},
		{"age alone: no names, birth date, CPR or PID", karen, []string{"age"}, age},
		{"ssn", karen, []string{"openid", "ssn"}, join(auth, map[string]any{"dk.cpr": "1506901234"})},
		{"everything", karen, []string{"openid", "profile", "age", "ssn", "offline_access"},
			join(auth, profile, age, map[string]any{"dk.cpr": "1506901234"})},
		{"unknown scope releases nothing", karen, []string{"email", "offline_access"}, map[string]any{}},
		{"bank-only NemID: no OCES, no PID", bankOnly, []string{"profile"}, map[string]any{
			"name": "Karen Jensen", "given_name": "Karen", "family_name": "Jensen", "birthdate": "1990-06-15",
			"age": 35, "dk.age_under_18": false, "dk.youth_certificate": false, "nemid.oces": false}},
		{"youth certificate", youth, []string{"profile", "age"}, map[string]any{
			"name": "Ung Person", "given_name": "Ung", "family_name": "Person", "birthdate": "2008-11-25",
			"age": 17, "dk.age_under_18": true, "dk.youth_certificate": true, "nemid.oces": true,
			"nemid.pid": "9208-2002-2-000000000001", "age_equal_or_over": over(17)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := release(&Default, tc.c, tc.scopes...); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

// TestDialects: each dialect's names and formats, for everything every scope releases.
func TestDialects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dialect string
		want    map[string]any
	}{
		{"default", map[string]any{"acr": login.ACR, "amr": login.AMR, "auth_time": login.AuthTime.Unix(), "idp": "nemid",
			"name": "Ung Person", "given_name": "Ung", "family_name": "Person", "birthdate": "2008-11-25", "age": 17,
			"dk.age_under_18": true, "dk.youth_certificate": true, "nemid.oces": true,
			"nemid.pid": "9208-2002-2-000000000001", "age_equal_or_over": over(17), "dk.cpr": "2511084321"}},
		{"broker", map[string]any{"acr": login.ACR, "amr": login.AMR, "auth_time": login.AuthTime.Unix(), "idp": "nemid",
			"name": "Ung Person", "given_name": "Ung", "family_name": "Person", "dateofbirth": "2008-11-25", "age": "17",
			"isUnder18": true, "isYouthCert": true, "hasOCES": true,
			"pidNumberIdentifier": "PID:9208-2002-2-000000000001", "ageEqualOrOver": over(17), "cprNumberIdentifier": "2511084321"}},
	}
	for _, tc := range tests {
		t.Run(tc.dialect, func(t *testing.T) {
			t.Parallel()
			d, err := DialectNamed(tc.dialect)
			if err != nil {
				t.Fatal(err)
			}
			if got := release(d, youth, "openid", "profile", "age", "ssn"); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
	if d, err := DialectNamed(""); err != nil || d != &Default {
		t.Errorf(`DialectNamed("") = %v, %v; want the default`, d, err)
	}
	if _, err := DialectNamed("klingon"); err == nil {
		t.Error("an unknown dialect was found")
	}
}

// TestDialectTables: every dialect names every concept a scope releases, once each, and keeps
// the OIDC protocol claims' names; reverse lookup finds each concept.
func TestDialectTables(t *testing.T) {
	t.Parallel()
	var all []Concept
	for _, cs := range ScopeTable {
		all = append(all, cs...)
	}
	for name, d := range Dialects {
		seen := map[string]Concept{}
		for _, k := range all {
			c, ok := d.Claims[k]
			if !ok {
				t.Errorf("%s: no name for %s", name, k)
				continue
			}
			if prev, dup := seen[c.Name]; dup && prev != k {
				t.Errorf("%s: %q names both %s and %s", name, c.Name, prev, k)
			}
			seen[c.Name] = k
			if got, ok := d.Concept(c.Name); !ok || got != k {
				t.Errorf("%s: Concept(%q) = %s, want %s", name, c.Name, got, k)
			}
		}
		for k, want := range map[Concept]string{ACRLevel: "acr", Methods: "amr", AuthTime: "auth_time"} {
			if d.Claims[k].Name != want {
				t.Errorf("%s: %s is %q, want the OIDC name %q", name, k, d.Claims[k].Name, want)
			}
		}
	}
	if n := AllNames(); !slices.IsSorted(n) || !slices.Contains(n, "cprNumberIdentifier") || !slices.Contains(n, "dk.cpr") {
		t.Errorf("AllNames = %v", n)
	}
	if got := format(DateDanish, cpr.Date{Year: 1990, Month: 6, Day: 15}); got != "15-06-1990" {
		t.Errorf("DateDanish: %v", got)
	}
}
