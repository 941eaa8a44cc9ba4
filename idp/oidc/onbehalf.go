package oidc

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nemidp/nemidp/idp/claims"
	"github.com/nemidp/nemidp/idp/store"
)

// actorRecord is the guardian of a grant that acts for a ward.
type actorRecord struct {
	CitizenID    string `json:"citizen_id"`
	Subject      string `json:"sub"` // the guardian's pairwise subject at the grant's client
	Guardianship string `json:"guardianship"`
	Kind         string `json:"kind"`
}

// errNoLongerGuardian is a grant for a ward whose guardianship has ended or expired, or whose
// guardian's NemID is no longer active.
var errNoLongerGuardian = errors.New("oidc: the guardianship has ended or the guardian's NemID is not active")

// actorClaims re-checks the guardianship of a grant that acts for a ward (at every token
// request, userinfo and introspection call) and returns its act and dk.guardianship claims;
// nil for a citizen's own grant.
// The guardian's name is identity data like any other: it goes with scope profile only (an
// age check on a ward names nobody).
func (s *Storage) actorClaims(ctx context.Context, rec *tokenRecord, scopes []string) (map[string]any, error) {
	a := rec.Actor
	if a == nil {
		return nil, nil
	}
	g, err := s.Store.Guardianship(ctx, a.CitizenID, a.Guardianship)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoLongerGuardian
	}
	if err != nil {
		return nil, fmt.Errorf("oidc: guardianship of grant %s: %w", rec.Grant, err)
	}
	if !g.CurrentAt(s.now()) || g.Ward != rec.CitizenID {
		return nil, errNoLongerGuardian
	}
	guardian, err := s.Store.Citizen(ctx, a.CitizenID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoLongerGuardian
	}
	if err != nil {
		return nil, fmt.Errorf("oidc: guardian of grant %s: %w", rec.Grant, err)
	}
	// The guardian's own block (or temporary password) since the login ends the grants the
	// guardian holds for a ward too, also once unblocked.
	if !guardian.ActiveOn(s.now()) || store.LoginEnded(guardian.SessionsEnded, rec.AuthTime) {
		return nil, errNoLongerGuardian
	}
	name := ""
	if slices.Contains(scopes, oidc.ScopeProfile) {
		name = guardian.Name
	}
	return claims.OnBehalfOf(a.Subject, name, g.Kind), nil
}

// refuseActor answers a token request whose guardianship no longer holds: the grant is
// revoked and the answer is invalid_grant; a store failure is a server error that leaves the
// grant as it is.
func (s *Storage) refuseActor(ctx context.Context, grant string, err error) error {
	if !errors.Is(err, errNoLongerGuardian) {
		return storeErr(err)
	}
	if rerr := s.Store.RevokeGrant(ctx, grant, s.Lifetimes.RefreshToken); rerr != nil {
		return storeErr(rerr)
	}
	return oidc.ErrInvalidGrant().WithDescription("the guardianship has ended; the grant is revoked")
}
