package cpr

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestParseCentury(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string // YYYY-MM-DD
	}{
		{"0101000000", "1900-01-01"},
		{"0101991999", "1999-01-01"},
		{"0101362999", "1936-01-01"},
		{"0101373999", "1937-01-01"},
		{"0101364000", "2036-01-01"},
		{"0101374000", "1937-01-01"},
		{"0101009999", "2000-01-01"},
		{"0101999999", "1999-01-01"},
		{"0101575000", "2057-01-01"},
		{"0101585000", "1858-01-01"},
		{"0101006999", "2000-01-01"},
		{"0101998999", "1899-01-01"},
		{"0101577000", "2057-01-01"},
		{"0101587999", "1858-01-01"},
		{"2911080000", "1908-11-29"},
		{"2511084123", "2008-11-25"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			n, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := n.BirthDate().String(); got != tt.want {
				t.Errorf("BirthDate = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     Number
		reason   string // error text fragment; "" means valid
	}{
		{"no dash", "1506901234", "1506901234", ""},
		{"dash", "150690-1234", "1506901234", ""},
		{"spaces", "  150690-1234\t\n", "1506901234", ""},
		{"mod11 not checked", "1506901235", "1506901235", ""},
		{"dash misplaced", "15069-01234", "", "want 10 digits"},
		{"two dashes", "150690--1234", "", "want 10 digits"},
		{"space inside", "150690 1234", "", "want 10 digits"},
		{"too short", "150690123", "", "want 10 digits"},
		{"too long", "15069012345", "", "want 10 digits"},
		{"letter", "15069O1234", "", "want 10 digits"},
		{"unicode digit", "150690123٤", "", "want 10 digits"},
		{"empty", "", "", "want 10 digits"},
		{"31 feb", "3102901234", "", "invalid date"},
		{"29 feb non-leap", "2902901234", "", "invalid date"},
		{"29 feb 1900 not leap", "2902000000", "", "invalid date"},
		{"29 feb 2000 leap", "2902004000", "2902004000", ""},
		{"29 feb 1996", "2902961234", "2902961234", ""},
		{"day zero", "0001901234", "", "invalid date"},
		{"month zero", "0100901234", "", "invalid date"},
		{"month 13", "0113901234", "", "invalid date"},
		{"31 apr", "3104901234", "", "invalid date"},
		{"day 32", "3201901234", "", "invalid date"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n, err := Parse(tt.in)
			if tt.reason == "" {
				if err != nil || n != tt.want {
					t.Fatalf("Parse(%q) = %q, %v; want %q", tt.in, n, err, tt.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("Parse(%q) error = %v, want ErrInvalid with %q", tt.in, err, tt.reason)
			}
			if n != "" {
				t.Errorf("Parse(%q) returned %q with error", tt.in, n)
			}
		})
	}
}

func TestDateStrings(t *testing.T) {
	t.Parallel()
	d := Date{Year: 2008, Month: time.November, Day: 5}
	if got := d.String(); got != "2008-11-05" {
		t.Errorf("String = %s", got)
	}
	if got := d.DanishString(); got != "05-11-2008" {
		t.Errorf("DanishString = %s", got)
	}
}

func TestMasked(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    Number
		want string
	}{
		{"1506901234", "150690-xxxx"},
		{"", "xxxxxx-xxxx"},
		{"123", "xxxxxx-xxxx"},
	}
	for _, tt := range tests {
		if got := tt.n.Masked(); got != tt.want {
			t.Errorf("Masked(%q) = %s, want %s", tt.n, got, tt.want)
		}
	}
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("x", "cpr", Number("1506901234"))
	if strings.Contains(sb.String(), "1234") || !strings.Contains(sb.String(), "150690-xxxx") {
		t.Errorf("slog output leaks or lacks mask: %s", sb.String())
	}
}

func TestAge(t *testing.T) {
	t.Parallel()
	utc := func(s string) time.Time {
		t.Helper()
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	born := Date{2008, time.November, 25}
	leap := Date{2004, time.February, 29}
	tests := []struct {
		name  string
		birth Date
		now   string
		want  int
	}{
		{"00:30 Copenhagen on birthday", born, "2026-11-24T23:30:00Z", 18},
		{"23:30 Copenhagen day before", born, "2026-11-24T22:30:00Z", 17},
		{"midnight exactly (CET)", born, "2026-11-24T23:00:00Z", 18},
		{"one second before", born, "2026-11-24T22:59:59Z", 17},
		{"summer time midnight (CEST)", Date{2008, time.June, 10}, "2026-06-09T22:00:00Z", 18},
		{"summer time before midnight", Date{2008, time.June, 10}, "2026-06-09T21:59:59Z", 17},
		{"offset in now is ignored", born, "2026-11-25T00:30:00+01:00", 18},
		{"leap: 28 feb non-leap year", leap, "2022-02-28T12:00:00Z", 17},
		{"leap: 1 mar non-leap year", leap, "2022-03-01T00:00:00+01:00", 18},
		{"leap: 29 feb leap year", leap, "2024-02-29T12:00:00Z", 20},
		{"leap: 28 feb leap year", leap, "2024-02-28T12:00:00Z", 19},
		{"newborn", born, "2008-11-25T12:00:00Z", 0},
		{"before birth", born, "2008-11-24T12:00:00Z", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Age(tt.birth, utc(tt.now)); got != tt.want {
				t.Errorf("Age(%s, %s) = %d, want %d", tt.birth, tt.now, got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1506901234", "150690-1234", " 2902004000 ", "3102901234", "", "-", "01010-00000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			if trimmed := strings.TrimSpace(s); len(trimmed) >= 10 && strings.Contains(err.Error(), trimmed) {
				t.Fatalf("error echoes input: %v", err)
			}
			return
		}
		if len(n) != 10 {
			t.Fatalf("non-canonical %q", n)
		}
		if again, err := Parse(string(n)); err != nil || again != n {
			t.Fatalf("reparse %q: %q, %v", n, again, err)
		}
		d := n.BirthDate()
		if d.Year < 1858 || d.Year > 2057 {
			t.Fatalf("year %d out of range", d.Year)
		}
		if got := n.Masked(); len(got) != 11 || got[:6] != string(n[:6]) {
			t.Fatalf("Masked = %q", got)
		}
	})
}
