package idp

import (
	"context"
	"errors"

	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/selfservice"
)

// lifeCycle gives the self-service pages the issuer's card and renewal services, with the
// issuer's refusals turned into what the citizen is shown.
type lifeCycle struct{ is *issuance.Issuer }

var _ selfservice.LifeCycle = lifeCycle{}

func (l lifeCycle) Cards(ctx context.Context, uid string) ([]selfservice.Card, error) {
	cs, err := l.is.Store.Cards(ctx, uid)
	if err != nil {
		return nil, err
	}
	out := make([]selfservice.Card, 0, len(cs))
	for _, c := range cs {
		out = append(out, selfservice.Card{Serial: c.Serial, Status: c.Status, KeysLeft: c.KeysLeft})
	}
	return out, nil
}

// OrderCard orders a card for the citizen: always by post, to the address letters go to.
func (l lifeCycle) OrderCard(ctx context.Context, uid, reason string) (string, error) {
	out, err := l.is.OrderCard(ctx, uid, issuance.CardOrder{Reason: reason, By: "self", Post: true})
	if err != nil {
		return "", refusal(err)
	}
	// The pages audit the order; the cards a lost-card report blocked are audited here, as the
	// operator API does.
	for _, s := range out.Blocked {
		l.is.Audit.Log(nil, nil, audit.Event{By: audit.ByCitizen, Who: uid, What: "card.blocked", UserID: uid,
			Detail: map[string]any{"serial": s, "reason": "lost", "replaced_by": out.Serial, "channel": "selfservice"}})
	}
	return out.Serial, nil
}

func (l lifeCycle) RenewalKey(ctx context.Context, uid string) (string, string, error) {
	serial, number, err := l.is.RenewalKey(ctx, uid)
	return serial, number, refusal(err)
}

func (l lifeCycle) Renew(ctx context.Context, uid, serial, number, key string) error {
	_, err := l.is.RenewWithKey(ctx, uid, serial, number, key)
	return refusal(err)
}

// refusal turns the issuer's typed refusals into a *selfservice.Refusal; other errors (the
// store unavailable, …) pass as they are.
func refusal(err error) error {
	var ke *issuance.KeyError
	var ve *issuance.ValidationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ke):
		code := ke.Code
		if code == issuance.KeyBadCard {
			code = "no_card"
		}
		return &selfservice.Refusal{Code: code, Message: ke.Error(), AttemptsLeft: ke.AttemptsLeft}
	case errors.As(err, &ve):
		return &selfservice.Refusal{Code: "invalid_key", Message: ve.Error()}
	case errors.Is(err, issuance.ErrCardLimit):
		return &selfservice.Refusal{Code: "card_limit", Message: "You already have as many extra code cards as you can order yourself."}
	case errors.Is(err, issuance.ErrNotDue):
		return &selfservice.Refusal{Code: "not_due", Message: "Your NemID can be renewed within 60 days of its expiry."}
	case errors.Is(err, issuance.ErrExpired):
		return &selfservice.Refusal{Code: "expired", Message: "Your NemID has expired; renew it at borgerservice."}
	}
	return err
}
