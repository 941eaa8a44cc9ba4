package issuance

import (
	"context"
	"errors"
	"fmt"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
)

// drawCard draws a card and its stored form (keyed hashes of the keys).
func (is *Issuer) drawCard() (codecard.Card, store.CardRecord, error) {
	gen := is.NewCard
	if gen == nil {
		gen = codecard.Generate
	}
	card, err := gen()
	if err != nil {
		return codecard.Card{}, store.CardRecord{}, fmt.Errorf("issuance: %w", err)
	}
	rec := store.CardRecord{Serial: card.Serial, Status: store.CardActive, Hashes: make(map[string]string, len(card.Keys))}
	for _, k := range card.Keys {
		rec.Hashes[k.Number] = is.Cards.Hash(card.Serial, k.Number, k.Key)
	}
	return card, rec, nil
}

// ReplaceCard issues a citizen a new active card and retires the cards they had (active or
// sent); the card is returned once, as printed. A serial that is already taken is drawn again.
func (is *Issuer) ReplaceCard(ctx context.Context, uid string) (codecard.Card, error) {
	var err error
	for range 10 {
		var card codecard.Card
		var rec store.CardRecord
		if card, rec, err = is.drawCard(); err != nil {
			return codecard.Card{}, err
		}
		err = is.Store.ReplaceActiveCard(ctx, uid, rec)
		if err == nil {
			return card, nil
		}
		if !errors.Is(err, store.ErrSerialTaken) {
			break
		}
	}
	return codecard.Card{}, fmt.Errorf("issuance: replace card: %w", err)
}

// ResetPassword gives a citizen a chosen password (no activation password) and makes the
// NemID active again with no failed attempts (demo reseeding).
func (is *Issuer) ResetPassword(ctx context.Context, uid, cpr, pw string) error {
	if err := password.Validate(pw, cpr); err != nil {
		return &ValidationError{"password", err.Error()}
	}
	hash, err := is.Passwords.Hash(ctx, pw)
	if err != nil {
		return fmt.Errorf("issuance: hash password: %w", err)
	}
	if err := is.Store.ResetLogin(ctx, uid, hash); err != nil {
		return fmt.Errorf("issuance: reset password: %w", err)
	}
	return nil
}
