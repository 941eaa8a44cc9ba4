package issuance

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"unicode/utf8"

	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/codecard"
)

// ID checks at issuance (DESIGN.md §3), beside IDCheckPhoto (oces.go): a photo ID hands the
// card over at once.
const (
	IDCheckTwoIDs  = "two_ids" // two IDs without photo, one with the CPR number
	IDCheckWitness = "witness" // a witness's sworn statement
)

// Issuance channels.
const (
	ChannelBorgerservice = "borgerservice"
	ChannelBank          = "bank"
	ChannelEmbassy       = "embassy"
	ChannelOnline        = "online" // ordered online: the card is sent by post
)

// ErrCardLimit refuses an extra card past the limit (store.SelfExtraCards by self-service,
// store.OperatorExtraCards by an operator).
var ErrCardLimit = store.ErrCardLimit

// PrintPurpose is what the printed form of a posted card is sealed for (keys/secret).
const PrintPurpose = "card-print"

// validateCardRequest checks and records the ID check, channel, postal address and card
// threshold of an issuance on c.
func validateCardRequest(req Request, c *store.Citizen) error {
	c.IDCheck = cmp.Or(req.IDCheck, IDCheckPhoto)
	switch c.IDCheck {
	case IDCheckPhoto, IDCheckTwoIDs, IDCheckWitness:
	default:
		return &ValidationError{"id_check", `want "photo", "two_ids" or "witness"`}
	}
	c.Channel = cmp.Or(req.Channel, ChannelBorgerservice)
	switch c.Channel {
	case ChannelBorgerservice, ChannelBank, ChannelEmbassy, ChannelOnline:
	default:
		return &ValidationError{"channel", `want "borgerservice", "bank", "embassy" or "online"`}
	}
	// The public digital signature through a bank needs a photo ID check, as attaching OCES to a
	// bank-issued NemID does (AttachOCES): issuing it with OCES at once must not go round that.
	if c.Channel == ChannelBank && cmp.Or(req.Kind, "oces") == "oces" && c.IDCheck != IDCheckPhoto {
		return &ValidationError{"id_check", `an OCES NemID issued by a bank needs a photo ID check ("photo"); without one, issue kind "bank"`}
	}
	if utf8.RuneCountInString(req.PostalAddress) > 500 {
		return &ValidationError{"postal_address", "at most 500 characters"}
	}
	c.PostalAddress = req.PostalAddress
	if t := req.CardThreshold; t != nil {
		if *t < 1 || *t > codecard.KeysPerCard {
			return &ValidationError{"card_threshold", fmt.Sprintf("want 1 to %d keys left", codecard.KeysPerCard)}
		}
		c.CardThreshold = *t
	}
	post := c.IDCheck != IDCheckPhoto || c.Channel == ChannelOnline
	if post && c.PostalAddress == "" && c.Address == "" {
		return &ValidationError{"address", "the card is sent by post (no photo ID, or ordered online): give address or postal_address"}
	}
	return nil
}

// sealPrint seals a card as printed, for the print service to take once.
func (is *Issuer) sealPrint(card codecard.Card) ([]byte, error) {
	if len(is.Secret) == 0 {
		return nil, errors.New("issuance: no server secret to seal the printed card with")
	}
	raw, err := json.Marshal(card)
	if err != nil {
		return nil, fmt.Errorf("issuance: printed card: %w", err)
	}
	sealed, err := is.Secret.Seal(PrintPurpose, raw)
	if err != nil {
		return nil, fmt.Errorf("issuance: seal printed card: %w", err)
	}
	return sealed, nil
}

// OpenPrint opens a printed card that TakeCardPrint gave back.
func (is *Issuer) OpenPrint(sealed []byte) (codecard.Card, error) {
	raw, err := is.Secret.Open(PrintPurpose, sealed)
	if err != nil {
		return codecard.Card{}, fmt.Errorf("issuance: open printed card: %w", err)
	}
	var c codecard.Card
	if err := json.Unmarshal(raw, &c); err != nil {
		return codecard.Card{}, fmt.Errorf("issuance: printed card: %w", err)
	}
	return c, nil
}

// CardOrder is an order of a new card (POST /admin/v1/citizens/{user_id}/cards, self-service).
type CardOrder struct {
	Reason   string // "extra" or "lost"
	By       string // "self" or the operator's label
	Operator bool   // ordered by an operator (the extra-card limit is theirs)
	Post     bool   // sent by post; otherwise handed over (active at once)
	Address  string // where to post it, when not the register address
}

// CardIssued is the card an order made: its keys only when handed over.
type CardIssued struct {
	Serial  string
	Status  string
	Card    *codecard.Card
	Blocked []string // the cards a lost-card order blocked
}

// OrderCard issues a card for o: an extra card beside the others (refused with ErrCardLimit at
// the limit of usable extra cards, checked and written in one step), or a card for a lost
// one, which blocks every usable card of the citizen at once. A self-service order always
// goes by post. ErrNotFound (wrapped) when the citizen does not exist.
func (is *Issuer) OrderCard(ctx context.Context, uid string, o CardOrder) (*CardIssued, error) {
	mode := ""
	switch o.Reason {
	case "extra":
		mode = store.OriginExtra
	case "lost":
		mode = store.OriginLost
	default:
		return nil, &ValidationError{"reason", `want "extra" or "lost"`}
	}
	if utf8.RuneCountInString(o.Address) > 500 {
		return nil, &ValidationError{"address", "at most 500 characters"}
	}
	if !o.Operator {
		o.Post = true // self-service cannot hand a card over
	}
	limit := store.SelfExtraCards
	if o.Operator {
		limit = store.OperatorExtraCards
	}
	by := cmp.Or(o.By, "operator")
	var err error
	for range 10 {
		var card codecard.Card
		var rec store.CardRecord
		if card, rec, err = is.drawCard(); err != nil {
			return nil, err
		}
		if o.Post {
			rec.Status = store.CardSent
			if rec.Print, err = is.sealPrint(card); err != nil {
				return nil, err
			}
		}
		var blocked []string
		blocked, err = is.Store.WriteCardOrder(ctx, uid, store.CardOrder{Mode: mode, Card: rec, By: by, Limit: limit,
			Post: o.Post, Address: o.Address}, is.now())
		if err == nil {
			out := &CardIssued{Serial: card.Serial, Status: rec.Status, Blocked: blocked}
			if !o.Post {
				out.Card = &card
			}
			return out, nil
		}
		if !errors.Is(err, store.ErrSerialTaken) {
			break
		}
	}
	return nil, fmt.Errorf("issuance: order card: %w", err)
}

// AutoOrderCard orders the successor of card replaces, whose key use reached the citizen's
// threshold and claimed the order (claim): sent by post, printable once, with a card_sent
// event (to the citizen's postal address when they have one: the store's script reads it). The flows engine calls it
// (flows.CardOrderer); on an error it releases the claim.
func (is *Issuer) AutoOrderCard(ctx context.Context, uid, replaces, claim string) error {
	var err error
	var serial string
	for range 10 {
		var card codecard.Card
		var rec store.CardRecord
		if card, rec, err = is.drawCard(); err != nil {
			return err
		}
		rec.Status = store.CardSent
		if rec.Print, err = is.sealPrint(card); err != nil {
			return err
		}
		serial = card.Serial
		_, err = is.Store.WriteCardOrder(ctx, uid, store.CardOrder{Mode: store.OriginAuto, Card: rec, By: "system",
			Claim: claim, Post: true}, is.now())
		if !errors.Is(err, store.ErrSerialTaken) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("issuance: auto order card for %s: %w", replaces, err)
	}
	slog.InfoContext(ctx, "code card ordered at the threshold of keys left", "user_id", uid, "replaces", replaces, "serial", serial)
	is.Audit.Log(nil, nil, audit.Event{By: audit.BySystem, Who: audit.BySystem, What: "card.ordered", UserID: uid,
		Detail: map[string]any{"card_serial": serial, "replaces": replaces, "reason": "threshold"}})
	return nil
}

// MarshalJSON answers a posted card as {"serial"} only: its keys go to the print service.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	if !r.CardSent {
		return json.Marshal(plain(r))
	}
	return json.Marshal(struct {
		plain
		Card struct {
			Serial string `json:"serial"`
		} `json:"card"`
	}{plain: plain(r), Card: struct {
		Serial string `json:"serial"`
	}{r.Card.Serial}})
}
