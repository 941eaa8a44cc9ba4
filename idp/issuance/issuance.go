// Package issuance creates NemIDs: user id, temporary activation password and the first code
// card, stored in one go. The operator API, the CLI and demo seeding all issue through it.
package issuance

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/cpr"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
	keysecret "github.com/nemidp/nemidp/keys/secret"
)

// Request is what an operator sends to issue a NemID (POST /admin/v1/citizens).
type Request struct {
	CPR        string `json:"cpr"`
	Name       string `json:"name"`
	GivenName  string `json:"given_name,omitempty"`
	FamilyName string `json:"family_name,omitempty"`
	Kind       string `json:"kind,omitempty"`      // "oces" (default) or "bank"
	IssuedAt   string `json:"issued_at,omitempty"` // YYYY-MM-DD, when importing an existing NemID
	Address    string `json:"address,omitempty"`
	// IDCheck is the ID check made (IDCheckPhoto, the default; IDCheckTwoIDs; IDCheckWitness),
	// Channel where the NemID is issued (ChannelBorgerservice, the default; ChannelBank,
	// ChannelEmbassy, ChannelOnline). Only a photo ID at a desk hands the card over; otherwise
	// it is sent by post, to PostalAddress when given (a citizen with no fixed address), else
	// to Address.
	IDCheck       string `json:"id_check,omitempty"`
	Channel       string `json:"channel,omitempty"`
	PostalAddress string `json:"postal_address,omitempty"`
	// CardThreshold is the keys left at which a new card is ordered (default 20).
	CardThreshold *int `json:"card_threshold,omitempty"`
	// By names who issues, for the card_sent event ("" is "operator").
	By string `json:"-"`
}

// Result is returned once: the activation password and the card are never shown again.
type Result struct {
	UserID             string        `json:"user_id"`
	ActivationPassword string        `json:"activation_password,omitempty"`
	Card               codecard.Card `json:"card"`
	// CardSent: the card goes by post (printable once for the print service); Card then has
	// its serial only, and the answer's card is {"serial"}.
	CardSent bool `json:"card_sent,omitempty"`
}

// ValidationError names the field that is wrong.
type ValidationError struct{ Field, Problem string }

func (e *ValidationError) Error() string { return e.Field + ": " + e.Problem }

// Issuer issues NemIDs.
type Issuer struct {
	Store     *store.Store
	Passwords *password.Hasher
	Cards     *codecard.Hasher
	// Secret seals the printed form of a card sent by post, kept once for the print service.
	Secret keysecret.Secret
	Now    func() time.Time
	// Audit receives the lines of what the issuer does on its own (a card ordered at the
	// threshold); nil: none.
	Audit *audit.Logger
	// MaxFailures is the lockout limit of wrong card keys, the login's (login.max_failures):
	// self-service renewal counts a wrong key as a login does (0: 5).
	MaxFailures int
	// NewCard draws a card; nil is codecard.Generate (tests force serial collisions).
	NewCard func() (codecard.Card, error)
}

// Issue creates a NemID with a temporary activation password.
func (is *Issuer) Issue(ctx context.Context, req Request) (*Result, error) {
	return is.issue(ctx, req, "")
}

// IssueWithPassword creates a NemID whose password is already chosen (demo seeding, imports).
func (is *Issuer) IssueWithPassword(ctx context.Context, req Request, pw string) (*Result, error) {
	return is.issue(ctx, req, pw)
}

func (is *Issuer) issue(ctx context.Context, req Request, chosen string) (*Result, error) {
	c, err := is.validate(req)
	if err != nil {
		return nil, err
	}
	pw, mustChange := chosen, false
	if pw == "" {
		if pw, err = password.GenerateActivationPassword(); err != nil {
			return nil, fmt.Errorf("issuance: %w", err)
		}
		mustChange = true
	} else if err := password.Validate(pw, c.CPR); err != nil {
		return nil, &ValidationError{"password", err.Error()}
	}
	hash, err := is.Passwords.Hash(ctx, pw)
	if err != nil {
		return nil, fmt.Errorf("issuance: hash password: %w", err)
	}
	c.Password, c.MustChange = hash, mustChange
	post := c.IDCheck != IDCheckPhoto || c.Channel == ChannelOnline
	draw := func() (codecard.Card, store.CardRecord, error) {
		card, rec, err := is.drawCard()
		if err != nil || !post {
			return card, rec, err
		}
		rec.Status = store.CardSent
		if rec.Print, err = is.sealPrint(card); err != nil {
			return card, rec, err
		}
		rec.Sent = &store.CardPost{By: cmp.Or(req.By, "operator"), Address: cmp.Or(c.PostalAddress, c.Address)}
		return card, rec, nil
	}
	card, rec, err := draw()
	if err != nil {
		return nil, err
	}
	rec.Origin, rec.OrderedBy = store.OriginFirst, cmp.Or(req.By, "operator")
	for range 10 {
		if c.UserID, err = newUserID(); err != nil {
			return nil, fmt.Errorf("issuance: %w", err)
		}
		if c.Kind == "oces" {
			if c.PID, err = newPID(); err != nil {
				return nil, fmt.Errorf("issuance: %w", err)
			}
		}
		err = is.Store.CreateCitizen(ctx, c, rec)
		if errors.Is(err, store.ErrPIDTaken) {
			continue
		}
		if errors.Is(err, store.ErrSerialTaken) {
			var derr error
			if card, rec, derr = draw(); derr != nil {
				return nil, derr
			}
			rec.Origin, rec.OrderedBy = store.OriginFirst, cmp.Or(req.By, "operator")
			continue
		}
		if !errors.Is(err, store.ErrUserIDTaken) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("issuance: %w", err)
	}
	out := &Result{UserID: c.UserID, Card: card}
	if post {
		out.Card, out.CardSent = codecard.Card{Serial: card.Serial}, true
	}
	if mustChange {
		out.ActivationPassword = pw
	}
	return out, nil
}

func (is *Issuer) validate(req Request) (*store.Citizen, error) {
	n, err := cpr.Parse(req.CPR)
	if err != nil {
		return nil, &ValidationError{"cpr", "want a valid CPR number DDMMYY-SSSS"}
	}
	name := strings.Join(strings.Fields(req.Name), " ")
	if name == "" || utf8.RuneCountInString(name) > 200 {
		return nil, &ValidationError{"name", "required, at most 200 characters"}
	}
	given, family := req.GivenName, req.FamilyName
	if given == "" && family == "" {
		if i := strings.LastIndex(name, " "); i > 0 {
			given, family = name[:i], name[i+1:]
		} else {
			family = name
		}
	}
	kind := req.Kind
	switch kind {
	case "":
		kind = "oces"
	case "oces", "bank":
	default:
		return nil, &ValidationError{"kind", `want "oces" or "bank"`}
	}
	now := time.Now
	if is.Now != nil {
		now = is.Now
	}
	issued := req.IssuedAt
	if issued == "" {
		issued = now().In(copenhagen).Format(time.DateOnly)
	} else if _, err := time.Parse(time.DateOnly, issued); err != nil {
		return nil, &ValidationError{"issued_at", "want YYYY-MM-DD"}
	}
	if utf8.RuneCountInString(req.Address) > 500 {
		return nil, &ValidationError{"address", "at most 500 characters"}
	}
	c := &store.Citizen{
		CPR: string(n), Name: name, GivenName: given, FamilyName: family, Kind: kind,
		Status: store.StatusActive, IssuedAt: issued, CreatedAt: now().UTC(), Address: req.Address,
	}
	if err := validateCardRequest(req, c); err != nil {
		return nil, err
	}
	if c.ExpiresAt, err = ExpiresAt(issued); err != nil {
		return nil, err
	}
	if kind == "oces" { // the OCES is issued with the NemID (its PID is drawn in issue)
		c.OCESIssuedAt = issued
		if c.YouthCert, err = YouthMarker(n, issued); err != nil {
			return nil, err
		}
	}
	return c, nil
}

var copenhagen = func() *time.Location {
	l, err := time.LoadLocation("Europe/Copenhagen")
	if err != nil {
		return time.UTC
	}
	return l
}()

// newUserID draws a 9-digit NemID number (never starting with 0), so it cannot be mistaken
// for a 10-digit CPR number.
func newUserID() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(900_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprint(100_000_000 + n.Int64()), nil
}
