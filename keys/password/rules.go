package password

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Length bounds for the long (non-PIN) form.
const (
	MinLength = 6
	MaxLength = 40
	pinLength = 4
)

// Rule codes; stable identifiers the caller maps to localised text.
const (
	CodeTooShort          = "too_short"
	CodeTooLong           = "too_long"
	CodeNeedsLetterDigit  = "needs_letter_and_digit"
	CodePINAllAlike       = "pin_all_alike"
	CodePINRun            = "pin_run"
	CodePINInCPR          = "pin_in_cpr"
	CodeInvalidCharacters = "invalid_characters"
)

// RuleError reports why a password breaks the rules.
// Code is a stable machine-readable reason, shown to citizens via i18n by the caller.
type RuleError struct {
	Code    string
	Message string
}

func (e *RuleError) Error() string { return "password: " + e.Message }

func ruleErr(code, msg string) *RuleError { return &RuleError{Code: code, Message: msg} }

// Validate checks password against the NemID rules: either a 4-digit PIN
// that is not trivially guessable or found in the citizen's CPR number, or
// 6–40 characters with at least one letter and one digit. cpr may be ""
// to skip the CPR check. It returns a *RuleError or nil.
func Validate(password, cpr string) error {
	if !utf8.ValidString(password) {
		return ruleErr(CodeInvalidCharacters, "contains invalid characters")
	}
	for _, r := range password {
		// IsGraphic allows letters, marks, digits, punctuation, symbols and
		// spaces, but rejects control and invisible format characters.
		if !unicode.IsGraphic(r) {
			return ruleErr(CodeInvalidCharacters, "contains invalid characters")
		}
	}

	n := utf8.RuneCountInString(password)
	if n == pinLength && asciiDigits(password) {
		return validatePIN(password, cpr)
	}
	switch {
	case n < MinLength:
		return ruleErr(CodeTooShort, "must be a 4-digit PIN or at least 6 characters")
	case n > MaxLength:
		return ruleErr(CodeTooLong, "must be at most 40 characters")
	}

	var letter, digit bool
	for _, r := range password {
		letter = letter || unicode.IsLetter(r)
		digit = digit || unicode.IsDigit(r)
	}
	if !letter || !digit {
		return ruleErr(CodeNeedsLetterDigit, "must contain at least one letter and one digit")
	}
	return nil
}

func validatePIN(pin, cpr string) error {
	alike, up, down := true, true, true
	for i := 1; i < len(pin); i++ {
		d := int(pin[i]) - int(pin[i-1])
		alike = alike && d == 0
		up = up && d == 1
		down = down && d == -1
	}
	switch {
	case alike:
		return ruleErr(CodePINAllAlike, "PIN must not be four identical digits")
	case up || down:
		return ruleErr(CodePINRun, "PIN must not be a run of consecutive digits")
	}
	if cpr != "" && strings.Contains(digitsOnly(cpr), pin) {
		return ruleErr(CodePINInCPR, "PIN must not be part of your CPR number")
	}
	return nil
}

func asciiDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// digitsOnly drops the dash and spaces so "150690-1234" matches like "1506901234".
func digitsOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}
