package password

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	const cpr = "1506901234"
	tests := []struct {
		name, pw, cpr, code string // code "" means valid
	}{
		{"pin ok", "2580", cpr, ""},
		{"pin ok no cpr", "0690", "", ""},
		{"pin all alike", "1111", cpr, CodePINAllAlike},
		{"pin zeros", "0000", "", CodePINAllAlike},
		{"pin run up", "1234", "", CodePINRun},
		{"pin run up 6789", "6789", "", CodePINRun},
		{"pin run down", "9876", "", CodePINRun},
		{"pin run down 3210", "3210", "", CodePINRun},
		{"pin no wrap 7890", "7890", "", ""},
		{"pin no wrap 8901", "8901", "", ""},
		{"pin in cpr middle", "0690", cpr, CodePINInCPR},
		{"pin in cpr ddmm", "1506", cpr, CodePINInCPR},
		{"pin in cpr serial is run", "1234", cpr, CodePINRun},
		{"pin in dashed cpr", "0690", "150690-1234", CodePINInCPR},
		{"pin in cpr across dash", "9012", "150690-1234", CodePINInCPR},
		{"four letters", "abcd", "", CodeTooShort},
		{"five digits", "12345", "", CodeTooShort},
		{"too short", "abc12", "", CodeTooShort},
		{"empty", "", "", CodeTooShort},
		{"unicode 4 digits not pin", "١٢٣٤", "", CodeTooShort},
		{"letters only", "abcdefg", "", CodeNeedsLetterDigit},
		{"digits only", "123456", "", CodeNeedsLetterDigit},
		{"symbols and digit", "!!!!!1", "", CodeNeedsLetterDigit},
		{"min length", "abcde1", "", ""},
		{"max length", strings.Repeat("a", 39) + "1", "", ""},
		{"too long", strings.Repeat("a", 40) + "1", "", CodeTooLong},
		{"multibyte counts runes", strings.Repeat("æ", 39) + "1", "", ""},
		{"valid", "Walk1234abcd9", cpr, ""},
		{"space allowed", "walk the 1 dog", "", ""},
		{"danish letters", "rødgrød1", "", ""},
		{"control char", "abc\x00def1", "", CodeInvalidCharacters},
		{"newline", "abcdef1\n", "", CodeInvalidCharacters},
		{"zero width", "abc\u200bdef1", "", CodeInvalidCharacters},
		{"invalid utf8", "abc\xffdef1", "", CodeInvalidCharacters},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Validate(tt.pw, tt.cpr)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Validate(%q) = %v, want nil", tt.pw, err)
				}
				return
			}
			var re *RuleError
			if !errors.As(err, &re) {
				t.Fatalf("Validate(%q) = %v, want *RuleError %s", tt.pw, err, tt.code)
			}
			if re.Code != tt.code {
				t.Errorf("Validate(%q) code = %s, want %s", tt.pw, re.Code, tt.code)
			}
			if re.Message == "" || !strings.HasPrefix(re.Error(), "password: ") {
				t.Errorf("unhelpful error text %q", re.Error())
			}
		})
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"", "1111", "1234", "0690", "abc12", "Walk1234abcd9", "\x00", "\xff\xfe1a"} {
		f.Add(s, "1506901234")
	}
	f.Fuzz(func(t *testing.T, pw, cpr string) {
		err := Validate(pw, cpr)
		if err == nil {
			return
		}
		var re *RuleError
		if !errors.As(err, &re) {
			t.Fatalf("non-RuleError %T: %v", err, err)
		}
		switch re.Code {
		case CodeTooShort, CodeTooLong, CodeNeedsLetterDigit, CodePINAllAlike,
			CodePINRun, CodePINInCPR, CodeInvalidCharacters:
		default:
			t.Fatalf("unknown code %q", re.Code)
		}
	})
}
