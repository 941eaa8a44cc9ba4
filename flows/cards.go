package flows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/codecard"
)

// Error codes of a card that may no longer be used (not failed attempts).
const (
	CodeCardRetired = "card_retired" // replaced by a newer card, now in use
	CodeCardBlocked = "card_blocked" // reported lost
)

// CardOrderer orders the successor of a card whose key use brought it to the threshold and
// claimed its order (store.KeyResult.OrderClaim): draws it, stores it with its printed form
// for the print service and the card_sent event, or releases the claim when it cannot.
type CardOrderer interface {
	AutoOrderCard(ctx context.Context, uid, replaces, claim string) error
}

// cardRefused is the refusal of a key of a retired or blocked card.
func cardRefused(o store.KeyOutcome) *Error {
	if o == store.KeyRetired {
		return Errorf(CodeCardRetired, "This code card has been replaced by your new card; use the new one.")
	}
	return Errorf(CodeCardBlocked, "This code card is blocked because it was reported lost.")
}

// usedUpError is what a citizen whose usable cards have no unused keys is told: nothing is
// blocked or counted, and a new card cannot be ordered by self-service without a key.
func usedUpError(noCard bool) *Error {
	if noCard {
		return Errorf(CodeNoKeysLeft, "Your NemID has no usable code card. Contact borgerservice or NemID support for a new card, or log in with the key app.")
	}
	return Errorf(CodeNoKeysLeft, "Your code card is used up. Self-service needs a key, so get a new card from borgerservice or NemID support, or log in with the key app and order one under Self-service.")
}

// nextUsableCard moves a login whose card ran out of keys at its codecard step (another
// login used the last one) to another usable card of the citizen with keys, or refuses it as
// used up.
func (e *Engine) nextUsableCard(ctx context.Context, f *Flow) error {
	for _, serial := range f.Cards {
		if serial == f.CardSerial {
			continue
		}
		_, number, err := e.Store.UsableCardKey(ctx, f.CitizenID, serial)
		if err != nil || number == "" {
			continue // retired, blocked or used up since: try the next
		}
		return e.update(ctx, f, func(f *Flow) error {
			if f.Step == StepCodeCard {
				f.CardSerial, f.KeyNumber = serial, number
			}
			return nil
		})
	}
	return usedUpError(false)
}

// orderCard runs the automatic order a key use claimed ("" none), after the login's save: a
// failure costs the login nothing and releases the claim, so a later key use orders again.
func (e *Engine) orderCard(ctx context.Context, uid, serial, claim string) {
	if claim == "" {
		return
	}
	var err error
	if e.CardOrders != nil {
		err = e.CardOrders.AutoOrderCard(ctx, uid, serial, claim)
	} else {
		err = errors.New("no card orderer")
	}
	if err == nil {
		return
	}
	slog.WarnContext(ctx, "new code card not ordered at the threshold; a later key use orders it", "user", uid, "card", serial, "err", err)
	if rerr := e.Store.ReleaseCardOrder(ctx, uid, serial, claim); rerr != nil {
		slog.WarnContext(ctx, "card order claim not released; it goes stale", "user", uid, "card", serial, "err", rerr)
	}
}

// SwitchCard makes the codecard step ask a key of another usable card (active or sent) of the
// flow's citizen: a card of anyone else is not found, a retired or blocked one is refused.
// Nothing is counted: the serial is no secret, and a key is still asked.
func (e *Engine) SwitchCard(ctx context.Context, f *Flow, serial string) error {
	if err := e.live(f); err != nil {
		return err
	}
	if f.Step != StepCodeCard || f.CitizenID == "" {
		return Errorf(CodeWrongStep, "This login is at step %q: there is no card to choose.", f.Step)
	}
	if !codecard.ValidSerial(serial) {
		return Errorf(CodeInvalidRequest, "A card serial is G and 9 digits, as printed on the card.")
	}
	st, number, err := e.Store.UsableCardKey(ctx, f.CitizenID, serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Errorf(CodeInvalidRequest, "You have no code card %s.", serial)
	case errors.Is(err, store.ErrCardNotUsable):
		if st == store.CardRetired {
			return cardRefused(store.KeyRetired)
		}
		return cardRefused(store.KeyCardBlocked)
	case err != nil:
		return fmt.Errorf("flows: switch card: %w", err)
	case number == "":
		return Errorf(CodeNoKeysLeft, "Code card %s has no unused keys left.", serial)
	}
	return e.update(ctx, f, func(f *Flow) error {
		if f.Step != StepCodeCard {
			return Errorf(CodeWrongStep, "This login already moved on.")
		}
		f.CardSerial, f.KeyNumber, f.Method = serial, number, MethodCodeCard
		if !slices.Contains(f.Cards, serial) {
			f.Cards = append(f.Cards, serial)
			slices.Sort(f.Cards)
		}
		return nil
	})
}
