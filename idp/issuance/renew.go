package issuance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/codecard"
)

// Self-service renewal (issue 15 point 4): a citizen logged in with the NemID renews it in its
// last store.RenewalWindowDays days by a key from the code card, always the card (also for a
// citizen who logs in with the key app: the renewal proves the card is still in their hands).
// The key asked is the card's pending key number, as at login, so the renewal page cannot
// re-roll the number either. An operator renews any time (Renew).

// ErrNotDue: the NemID is not in its renewal window; self-service renewal is offered only
// there (an operator renews any time).
var ErrNotDue = errors.New("issuance: the NemID is not due for renewal yet")

// ErrExpired: the NemID has expired; it is renewed in person (borgerservice, the bank, an
// embassy), never online.
var ErrExpired = errors.New("issuance: the NemID has expired and is renewed in person only")

// Key refusal codes of KeyError, as the login's error codes where they mean the same.
const (
	KeyWrong   = "wrong_key"
	KeyUsed    = "used_key"
	KeyLocked  = "locked"
	KeyBlocked = "blocked"
	KeyBadCard = "bad_card"
)

// KeyError refuses a self-service renewal's card key. AttemptsLeft is the wrong answers the
// NemID has left before it locks (for wrong_key and used_key).
type KeyError struct {
	Code         string
	AttemptsLeft int
}

func (e *KeyError) Error() string {
	switch e.Code {
	case KeyWrong:
		return fmt.Sprintf("wrong key (%d attempts left)", e.AttemptsLeft)
	case KeyUsed:
		return fmt.Sprintf("that key has already been used (%d attempts left)", e.AttemptsLeft)
	case KeyLocked:
		return "the NemID is locked after too many failed attempts"
	case KeyBlocked:
		return "the NemID is blocked"
	}
	return "the code card cannot be used"
}

func (is *Issuer) maxFailures() int {
	if is.MaxFailures > 0 {
		return is.MaxFailures
	}
	return 5
}

// renewable loads the citizen and refuses a renewal by the citizen: not active, expired, or
// not in the window yet.
func (is *Issuer) renewable(ctx context.Context, uid string) (*store.Citizen, error) {
	c, err := is.Store.Citizen(ctx, uid)
	if err != nil {
		return nil, fmt.Errorf("issuance: renew: %w", err)
	}
	switch {
	case c.Status == store.StatusBlocked && c.BlockReason == store.BlockFailures:
		return nil, &KeyError{Code: KeyLocked}
	case c.Status == store.StatusBlocked:
		return nil, &KeyError{Code: KeyBlocked}
	case c.Status == store.StatusExpired:
		return nil, ErrExpired
	}
	x := store.ExpiryOf(c.ExpiresAt, is.now())
	if x.Expired {
		return nil, ErrExpired
	}
	if !x.Due {
		return nil, fmt.Errorf("%w: it expires on %s, renewal opens %d days before", ErrNotDue, c.ExpiresAt, store.RenewalWindowDays)
	}
	return c, nil
}

// RenewalKey is the key a self-service renewal asks: the citizen's active code card and its
// pending key number. ErrNotDue or ErrExpired when the citizen cannot renew now; a *KeyError
// (bad_card) when there is no card with unused keys, (blocked, locked) for a NemID not active.
func (is *Issuer) RenewalKey(ctx context.Context, uid string) (serial, number string, err error) {
	c, err := is.renewable(ctx, uid)
	if err != nil {
		return "", "", err
	}
	if c.ActiveCard == "" {
		return "", "", &KeyError{Code: KeyBadCard}
	}
	number, err = is.Store.PendingKey(ctx, uid, c.ActiveCard)
	if errors.Is(err, store.ErrNotFound) {
		return "", "", &KeyError{Code: KeyBadCard} // no unused keys left
	}
	if err != nil {
		return "", "", fmt.Errorf("issuance: renewal key: %w", err)
	}
	return c.ActiveCard, number, nil
}

// RenewWithKey renews the citizen's NemID (as Renew) after checking and consuming the key
// typed for key number of card serial, which must be the active card and its pending number
// (RenewalKey). The key is used at most once, also by two renewals at once. A wrong key counts
// as a failed attempt, as at login (the max-th in a row locks the NemID): a *KeyError says so,
// with the attempts left; so does a used key, a card that is not the active one and a NemID
// blocked or locked. ErrNotDue or ErrExpired, before any key is looked at, when the citizen
// cannot renew now. It returns the record as renewed.
func (is *Issuer) RenewWithKey(ctx context.Context, uid, serial, number, key string) (*store.Citizen, error) {
	c, err := is.renewable(ctx, uid)
	if err != nil {
		return nil, err
	}
	key = strings.TrimSpace(key)
	if serial == "" || serial != c.ActiveCard {
		return nil, &KeyError{Code: KeyBadCard}
	}
	if !codecard.ValidKey(key) {
		return nil, &ValidationError{"key", "a key is the 6 digits printed beside its key number"}
	}
	// Only the pending number is asked: another number would let the page be re-rolled until
	// it lands on a key the one asking holds.
	pending, err := is.Store.PendingKey(ctx, uid, serial)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &KeyError{Code: KeyBadCard}
	}
	if err != nil {
		return nil, fmt.Errorf("issuance: renew: %w", err)
	}
	limit := is.maxFailures()
	if number != pending {
		// Used meanwhile (by a login), or never asked: ask again, nothing counted.
		return nil, &KeyError{Code: KeyUsed, AttemptsLeft: max(0, limit-c.Failures)}
	}
	res, _, _, err := is.Store.UseCardKey(ctx, "", false, uid, serial, number, is.Cards.Hash(serial, number, key), limit, "", "")
	if err != nil {
		return nil, fmt.Errorf("issuance: renew: use key %s: %w", number, err)
	}
	switch res.Outcome {
	case store.KeyOK:
		if res.OrderClaim != "" {
			// This key brought the card to its threshold: order its successor now, as a login's
			// key does. A failure leaves the order to a later key use.
			if err := is.AutoOrderCard(context.WithoutCancel(ctx), uid, serial, res.OrderClaim); err != nil {
				slog.WarnContext(ctx, "renewal: the new card was not ordered; a later key use orders it", "user_id", uid, "err", err)
			}
		}
	case store.KeyWrong:
		return nil, &KeyError{Code: KeyWrong, AttemptsLeft: res.AttemptsLeft}
	case store.KeyUsed:
		return nil, &KeyError{Code: KeyUsed, AttemptsLeft: res.AttemptsLeft}
	case store.KeyUsedRight, store.KeyRepeat:
		// The right key, already used (a replay, or a login used it meanwhile): not a failure.
		return nil, &KeyError{Code: KeyUsed, AttemptsLeft: max(0, limit-c.Failures)}
	case store.KeyLocked:
		return nil, &KeyError{Code: KeyLocked}
	case store.KeyBlocked: // since it was read: locked by a parallel guess, or blocked
		if now, err := is.Store.Citizen(ctx, uid); err == nil && now.BlockReason == store.BlockFailures {
			return nil, &KeyError{Code: KeyLocked}
		}
		return nil, &KeyError{Code: KeyBlocked}
	case store.KeyNoPerson:
		return nil, fmt.Errorf("issuance: renew: %w", store.ErrNotFound)
	default:
		return nil, &KeyError{Code: KeyBadCard}
	}
	return is.Renew(ctx, uid)
}
