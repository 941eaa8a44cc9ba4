// Package cpr parses Danish CPR numbers and derives birth date and age.
//
// A CPR number is personal data: errors and masked output never contain
// the full number.
package cpr

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	_ "time/tzdata" // embedded zoneinfo so Europe/Copenhagen loads in a scratch container
)

// ErrInvalid is wrapped by every Parse error.
var ErrInvalid = errors.New("cpr: invalid number")

// copenhagen is where birthdays begin; LoadLocation falls back to the
// embedded tzdata, so failure means a broken build.
var copenhagen = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Copenhagen")
	if err != nil {
		panic("cpr: load Europe/Copenhagen: " + err.Error())
	}
	return loc
}()

// Number is a CPR number in canonical form: 10 digits, no dash.
type Number string

// Date is a calendar date without time zone.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// String formats d as YYYY-MM-DD.
func (d Date) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

// DanishString formats d as DD-MM-YYYY, as in the OIOSAML dateOfBirth attribute.
func (d Date) DanishString() string { return fmt.Sprintf("%02d-%02d-%04d", d.Day, d.Month, d.Year) }

// Parse accepts "DDMMYY-SSSS" or "DDMMYYSSSS", surrounded by optional
// spaces. The modulus-11 check is not applied: it was abandoned in 2007.
func Parse(s string) (Number, error) {
	s = strings.TrimSpace(s)
	if len(s) == 11 && s[6] == '-' {
		s = s[:6] + s[7:]
	}
	if len(s) != 10 {
		return "", fmt.Errorf("%w: want 10 digits", ErrInvalid)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", fmt.Errorf("%w: want 10 digits", ErrInvalid)
		}
	}
	n := Number(s)
	d := n.BirthDate()
	if t := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC); t.Day() != d.Day || t.Month() != d.Month {
		return "", fmt.Errorf("%w: invalid date", ErrInvalid)
	}
	return n, nil
}

// BirthDate returns the birth date encoded in n, with the century taken
// from the 7th digit. It returns the zero Date if n is not 10 digits.
func (n Number) BirthDate() Date {
	if len(n) != 10 {
		return Date{}
	}
	dd, mm, yy := num2(n[0:2]), num2(n[2:4]), num2(n[4:6])
	var century int
	switch c := n[6]; {
	case c <= '3':
		century = 1900
	case c == '4' || c == '9':
		century = 1900
		if yy <= 36 {
			century = 2000
		}
	default: // 5–8
		century = 1800
		if yy <= 57 {
			century = 2000
		}
	}
	return Date{Year: century + yy, Month: time.Month(mm), Day: dd}
}

func num2(s Number) int { return int(s[0]-'0')*10 + int(s[1]-'0') }

// Masked returns "DDMMYY-xxxx" for operator displays.
func (n Number) Masked() string {
	if len(n) != 10 {
		return "xxxxxx-xxxx"
	}
	return string(n[:6]) + "-xxxx"
}

// LogValue makes slog log the masked form, so a stray log line does not
// leak the full number.
func (n Number) LogValue() slog.Value { return slog.StringValue(n.Masked()) }

// Age returns whole years since birth at instant now, judged in Danish
// time: a birthday begins at midnight in Denmark. Someone born 29 February
// has their birthday on 1 March in non-leap years. The result is negative
// if now precedes birth.
func Age(birth Date, now time.Time) int {
	y, m, d := now.In(copenhagen).Date()
	bm, bd := birth.Month, birth.Day
	if bm == time.February && bd == 29 && !isLeap(y) {
		bm, bd = time.March, 1
	}
	age := y - birth.Year
	if m < bm || (m == bm && d < bd) {
		age--
	}
	return age
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }
