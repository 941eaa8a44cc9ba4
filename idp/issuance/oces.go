package issuance

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/nemidp/nemidp/idp/cpr"
	"github.com/nemidp/nemidp/idp/store"
)

// Validity is how long a NemID (and its OCES) lasts from issue or renewal.
const validityYears = 3

// pidPrefix starts every OCES person id (PID).
const pidPrefix = "9208-2002-2-"

// newPID draws an OCES PID: the prefix and 12 random digits.
func newPID() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000_000_000))
	if err != nil {
		return "", fmt.Errorf("draw pid: %w", err)
	}
	return fmt.Sprintf("%s%012d", pidPrefix, n.Int64()), nil
}

// ExpiresAt is the date a NemID issued or renewed on date (YYYY-MM-DD) must be renewed by.
func ExpiresAt(date string) (string, error) {
	d, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return "", fmt.Errorf("issuance: expiry of %q: %w", date, err)
	}
	return d.AddDate(validityYears, 0, 0).Format(time.DateOnly), nil
}

// YouthMarker is the OCES youth rule: an OCES issued on date (YYYY-MM-DD, a Danish calendar
// day) to the holder of CPR number n carries the youth marker ("ung under 18") when the holder
// is not yet 18 on that day. The 18th birthday itself is adult: it begins at Danish midnight.
func YouthMarker(n cpr.Number, date string) (bool, error) {
	d, err := time.ParseInLocation(time.DateOnly, date, copenhagen)
	if err != nil {
		return false, fmt.Errorf("issuance: youth marker on %q: %w", date, err)
	}
	// Noon of that Danish day: the age is the day's, whatever the offset (DST) is.
	return cpr.Age(n.BirthDate(), d.Add(12*time.Hour)) < 18, nil
}

func (is *Issuer) now() time.Time {
	if is.Now != nil {
		return is.Now()
	}
	return time.Now()
}

// today is the current Danish calendar day.
func (is *Issuer) today() string { return is.now().In(copenhagen).Format(time.DateOnly) }

// ID checks an operator records (DESIGN.md §3); attaching OCES needs a photo ID.
const IDCheckPhoto = "photo"

// Renew renews a NemID today: it expires 3 years from today, an expired NemID is active again,
// and an OCES NemID's OCES is reissued (issued today, youth marker judged today: an adult's is
// cleared). It returns the record as renewed.
func (is *Issuer) Renew(ctx context.Context, uid string) (*store.Citizen, error) {
	c, err := is.Store.Citizen(ctx, uid)
	if err != nil {
		return nil, fmt.Errorf("issuance: renew: %w", err)
	}
	today := is.today()
	exp, err := ExpiresAt(today)
	if err != nil {
		return nil, err
	}
	youth, err := YouthMarker(cpr.Number(c.CPR), today)
	if err != nil {
		return nil, err
	}
	if err := is.Store.Renew(ctx, uid, exp, today, youth); err != nil {
		return nil, fmt.Errorf("issuance: renew: %w", err)
	}
	c, err = is.Store.Citizen(ctx, uid)
	if err != nil {
		return nil, fmt.Errorf("issuance: renew: reread: %w", err)
	}
	return c, nil
}

// AttachOCES attaches the public digital signature to a bank-only NemID after a photo ID
// check: kind "oces", a new PID, issued today, youth marker judged today. A missing or other
// ID check is a *ValidationError; a NemID with OCES already is store.ErrOCESAttached (a
// store.ErrConflict).
func (is *Issuer) AttachOCES(ctx context.Context, uid, idCheck string) (string, error) {
	if idCheck != IDCheckPhoto {
		return "", &ValidationError{"id_check", `attaching OCES needs a photo ID check: send "photo"`}
	}
	c, err := is.Store.Citizen(ctx, uid)
	if err != nil {
		return "", fmt.Errorf("issuance: attach oces: %w", err)
	}
	if c.Kind == "oces" {
		return "", fmt.Errorf("issuance: attach oces: %w", store.ErrOCESAttached)
	}
	today := is.today()
	youth, err := YouthMarker(cpr.Number(c.CPR), today)
	if err != nil {
		return "", err
	}
	for range 10 {
		pid, err := newPID()
		if err != nil {
			return "", fmt.Errorf("issuance: attach oces: %w", err)
		}
		err = is.Store.AttachOCES(ctx, uid, pid, today, youth)
		if errors.Is(err, store.ErrPIDTaken) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("issuance: attach oces: %w", err)
		}
		return pid, nil
	}
	return "", fmt.Errorf("issuance: attach oces: no free pid after 10 draws: %w", store.ErrPIDTaken)
}
