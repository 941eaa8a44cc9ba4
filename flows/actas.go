package flows

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/nemidp/nemidp/idp/store"
)

// Policy is what a client allows in a login. More fields join as the engine learns more of
// a client (an OCES requirement, …).
type Policy struct {
	// RequiresOCES refuses a bank-only NemID (the OCES gate).
	RequiresOCES bool
	// AllowOnBehalfOf lets a guardian act for a ward at this client (the act_as step).
	AllowOnBehalfOf bool
	// Name is the client's display name (the key app shows it in its approval request).
	Name string
}

// ClientPolicy tells the engine a client's policy. Implementations should answer from
// memory: it is asked once per completed login.
type ClientPolicy interface {
	Policy(ctx context.Context, clientID string) (Policy, error)
}

// PrincipalSelf is the act_as answer of a guardian acting for themselves.
const PrincipalSelf = "self"

// CodeUnknownWard answers an act_as choice that is not one this login offered (a ref of
// another login, a made-up one) or a guardianship that ended meanwhile.
const CodeUnknownWard = "unknown_ward"

// WardOption is one ward offered to a guardian at the act_as step.
type WardOption struct {
	// Ref names the ward in this flow's view: random, made when the step is offered.
	Ref  string `json:"ref"`
	Name string `json:"name"`
	// CitizenID is the ward's user id, kept in the flow only.
	CitizenID    string `json:"citizen_id"`
	Guardianship string `json:"guardianship"`
	Kind         string `json:"kind"`
}

// Principal is whom a login acts for when it is not the authenticated citizen: a ward, under
// a guardianship of the given kind ("full" or "partial").
type Principal struct {
	CitizenID    string `json:"citizen_id"`
	Guardianship string `json:"guardianship"`
	Kind         string `json:"kind"`
	// Cert is the ward's certificate snapshot, taken when the guardian chose the ward.
	Cert *Certificate `json:"cert,omitempty"`
}

// offerActAs moves a just-authenticated flow (f.Result set, f.Step done) to act_as when the
// client allows acting for others and the citizen has a current ward. A client without
// allow_on_behalf_of costs no round trip.
func (e *Engine) offerActAs(ctx context.Context, f *Flow) error {
	if e.Policy == nil || f.Result == nil || f.Purpose != "" {
		return nil
	}
	p, err := e.Policy.Policy(ctx, f.ClientID)
	if err != nil {
		return fmt.Errorf("flows: act as: policy of client %s: %w", f.ClientID, err)
	}
	if !p.AllowOnBehalfOf {
		return nil
	}
	gs, err := e.Store.CurrentWards(ctx, f.Result.CitizenID, e.now())
	if err != nil {
		return fmt.Errorf("flows: act as: wards of %s: %w", f.Result.CitizenID, err)
	}
	f.Wards = nil
	for _, g := range gs {
		f.Wards = append(f.Wards, WardOption{Ref: NewID(), Name: g.WardName, CitizenID: g.Ward,
			Guardianship: g.ID, Kind: g.Kind})
	}
	if len(f.Wards) > 0 {
		f.Step = StepActAs
	}
	return nil
}

// ---- act as (a guardian chooses for whom) ----

type actAsStep struct{}

func (actAsStep) prepare(context.Context, *Engine, *Flow) error { return nil }

func (actAsStep) check(ctx context.Context, e *Engine, f *Flow, a Answer) error {
	if a.Principal == "" {
		return Errorf(CodeInvalidRequest, "Choose whom you are logging on as.")
	}
	var chosen *WardOption
	if a.Principal != PrincipalSelf {
		for i := range f.Wards {
			if subtle.ConstantTimeCompare([]byte(f.Wards[i].Ref), []byte(a.Principal)) == 1 {
				chosen = &f.Wards[i]
			}
		}
		if chosen == nil {
			return Errorf(CodeUnknownWard, "You cannot log on for this person here.")
		}
		// Offered when the citizen authenticated; it may have ended since.
		g, err := e.Store.Guardianship(ctx, f.Result.CitizenID, chosen.Guardianship)
		if errors.Is(err, store.ErrNotFound) || (err == nil && (!g.CurrentAt(e.now()) || g.Ward != chosen.CitizenID)) {
			return Errorf(CodeUnknownWard, "You can no longer log on for this person.")
		}
		if err != nil {
			return fmt.Errorf("flows: act as: %w", err)
		}
	}
	var who *Principal
	if chosen != nil {
		// The ward's certificate as of this choice, kept for the grant like the guardian's own
		// login keeps theirs (a renewal shows at the next login, not in the middle of a grant).
		ward, err := e.Store.Citizen(ctx, chosen.CitizenID)
		if errors.Is(err, store.ErrNotFound) {
			return Errorf(CodeUnknownWard, "You can no longer log on for this person.")
		}
		if err != nil {
			return fmt.Errorf("flows: act as: ward: %w", err)
		}
		who = &Principal{CitizenID: chosen.CitizenID, Guardianship: chosen.Guardianship, Kind: chosen.Kind,
			Cert: CertificateOf(ward)}
	}
	return e.update(ctx, f, func(f *Flow) error {
		if f.Step != StepActAs {
			return Errorf(CodeWrongStep, "This login already moved on.")
		}
		f.Result.OnBehalfOf = who
		f.Step, f.Wards = StepDone, nil
		f.Result.Deferred = false // this answer completes the login, and gets its session
		return nil
	})
}
