package flows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nemidp/nemidp/idp/store"
)

// StartSession stores an SSO session for a finished flow and returns the cookie value.
func (e *Engine) StartSession(ctx context.Context, r *Result) (string, error) {
	id := NewID() + NewID()
	w, err := e.sessionWrite(id, r)
	if err != nil {
		return "", err
	}
	if err := e.Store.PutSession(ctx, w.ID, w.Data, w.TTL); err != nil {
		return "", fmt.Errorf("flows: start session: %w", err)
	}
	return id, nil
}

// sessionWrite is the SSO session of a finished flow under the cookie value id.
func (e *Engine) sessionWrite(id string, r *Result) (*store.SessionWrite, error) {
	sid := r.SessionID
	if sid == "" {
		sid = NewID() // unrelated to the cookie value: a relying party never learns the cookie
	}
	raw, err := json.Marshal(SessionInfo{CitizenID: r.CitizenID, AMR: r.AMR, ACR: r.ACR, AuthTime: r.AuthTime, SID: sid,
		Cert: r.Cert})
	if err != nil {
		return nil, fmt.Errorf("flows: start session: %w", err)
	}
	return &store.SessionWrite{ID: id, Data: raw, TTL: e.SessionTTL}, nil
}

// Session loads the SSO session behind a cookie value; nil when there is none.
func (e *Engine) Session(ctx context.Context, id string) (*SessionInfo, error) {
	if id == "" || len(id) > 128 {
		return nil, nil
	}
	raw, err := e.Store.Session(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("flows: session: %w", err)
	}
	var s SessionInfo
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("flows: session: decode: %w", err)
	}
	return &s, nil
}

// LoadWithSession loads a flow and, in the same round trip, the SSO session behind a cookie
// value (nil when there is none, or no cookie).
func (e *Engine) LoadWithSession(ctx context.Context, id, cookie string) (*Flow, *SessionInfo, error) {
	if cookie == "" || len(cookie) > 128 {
		f, err := e.Load(ctx, id)
		return f, nil, err
	}
	if !validID(id) {
		return nil, nil, Errorf(CodeFlowExpired, "This login does not exist or has expired.")
	}
	rec, raw, err := e.Store.LoadFlowWithSession(ctx, id, cookie)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, Errorf(CodeFlowExpired, "This login does not exist or has expired.")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("flows: load %s: %w", id, err)
	}
	f, err := e.flowOf(id, rec)
	if err != nil || raw == nil {
		return f, nil, err
	}
	var s SessionInfo
	if err := json.Unmarshal(raw, &s); err != nil {
		return f, nil, fmt.Errorf("flows: session: decode: %w", err)
	}
	return f, &s, nil
}

// EndSession deletes an SSO session.
func (e *Engine) EndSession(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	return e.Store.DeleteSession(ctx, id)
}

// sessionCitizen loads the session's citizen with its pairwise subject at the flow's sector
// ("" when it has none yet), in one round trip; nil when the flow's subject hint names
// someone else, or the NemID expired since the session's login (its password login refuses
// it then, with the instructions).
func (e *Engine) sessionCitizen(ctx context.Context, f *Flow, s *SessionInfo) (*store.Citizen, string, error) {
	c, sub, err := e.Store.CitizenWithSubject(ctx, s.CitizenID, f.sector())
	if err != nil {
		return nil, "", err
	}
	if (f.SubjectHint != "" && sub != f.SubjectHint) || e.expired(c) {
		return nil, "", nil
	}
	return c, sub, nil
}

// ClaimSessionHandout reports whether this caller is the one to give the browser the SSO
// session of a done flow. A key-app login is completed by whichever instance got the device's
// decision, and its browser learns that from the next look (a poll, a page view), maybe more
// than one: exactly one of them starts the session, so a finished flow kept for the way back
// never mints another one (after the citizen logged out, say).
func (e *Engine) ClaimSessionHandout(ctx context.Context, f *Flow) (bool, error) {
	if !f.Done() || f.Result.FromSession || !f.Result.Deferred {
		return false, nil
	}
	ok, err := e.Store.ClaimFlowMark(ctx, f.ID, "session")
	if err != nil {
		return false, fmt.Errorf("flows: session handout: %w", err)
	}
	return ok, nil
}
