package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/password"
)

// BlockRequest blocks a NemID (POST /admin/v1/citizens/{user_id}/block).
type BlockRequest struct {
	Reason string `json:"reason"`
}

// TemporaryPasswordResponse is the temporary password, shown this once.
type TemporaryPasswordResponse struct {
	Password string `json:"password"`
}

// blockedBy names who blocked in the citizen's events: the operator's token label.
func blockedBy(r *http.Request) string {
	if l := Operator(r); l != "" {
		return l
	}
	return "operator"
}

func noCitizen(uid string) error {
	return &apiError{http.StatusNotFound, "not_found", fmt.Sprintf("No NemID with user id %q.", uid)}
}

// blockCitizen blocks the NemID for misuse, a lost card or by an operator and ends its SSO
// sessions and token grants; it answers the citizen as it is now. Blocking a blocked NemID
// again keeps it blocked (with the new reason) and answers the same; a NemID locked after
// failures or expired is blocked over, and an unblock gives it back as it was.
func (a *API) blockCitizen(w http.ResponseWriter, r *http.Request) error {
	var req BlockRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if !store.ValidBlockReason(req.Reason) {
		return &apiError{http.StatusBadRequest, "invalid_request", `reason: want "misuse", "lost_card" or "operator"`}
	}
	uid := r.PathValue("user_id")
	res, err := a.Store.Block(r.Context(), uid, req.Reason, blockedBy(r), time.Now())
	if errors.Is(err, store.ErrNotFound) {
		return noCitizen(uid)
	}
	if err != nil {
		return err
	}
	if res.Changed {
		slog.InfoContext(r.Context(), "nemid blocked", "user_id", uid, "reason", req.Reason, "by", blockedBy(r))
		a.audit(w, r, "citizen.blocked", uid, map[string]any{"reason": req.Reason})
	} else if res.Previous != req.Reason {
		slog.InfoContext(r.Context(), "nemid block reason changed", "user_id", uid, "reason", req.Reason, "was", res.Previous, "by", blockedBy(r))
		a.audit(w, r, "citizen.block_reason_changed", uid, map[string]any{"reason": req.Reason, "was": res.Previous})
	}
	return a.getCitizen(w, r)
}

// unblockCitizen lifts a block for misuse, a lost card or by an operator; it answers the
// citizen as it is now (active, expired, or still locked when it was locked after failures
// before the block). 409 for a NemID not blocked, and for a lockout after failures, which only
// a temporary password lifts.
func (a *API) unblockCitizen(w http.ResponseWriter, r *http.Request) error {
	uid := r.PathValue("user_id")
	st, err := a.Store.Unblock(r.Context(), uid, blockedBy(r), time.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return noCitizen(uid)
	case errors.Is(err, store.ErrLockedOut):
		return &apiError{http.StatusConflict, "locked",
			"This NemID is locked after too many failed attempts, not blocked: a temporary password lifts the lockout (POST /admin/v1/citizens/" + uid + "/temporary-password)."}
	case errors.Is(err, store.ErrNotBlocked):
		return &apiError{http.StatusConflict, "not_blocked", fmt.Sprintf("This NemID is not blocked (status %s).", st)}
	case err != nil:
		return err
	}
	slog.InfoContext(r.Context(), "nemid unblocked", "user_id", uid, "status", st, "by", blockedBy(r))
	a.audit(w, r, "citizen.unblocked", uid, map[string]any{"status": st})
	return a.getCitizen(w, r)
}

// temporaryPassword gives the NemID a new temporary password, answered this once: the citizen
// logs in with it (the old password no longer works) and chooses a new one. It resets the
// failed attempts, lifts a lockout after failures and ends the citizen's SSO sessions and
// token grants. 409 for a NemID blocked for misuse, a lost card or by an operator: unblock it
// first.
func (a *API) temporaryPassword(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	uid := r.PathValue("user_id")
	// Judged first so a refusal costs no KDF work; the script judges again.
	c, err := a.Store.Citizen(ctx, uid)
	if errors.Is(err, store.ErrNotFound) {
		return noCitizen(uid)
	}
	if err != nil {
		return err
	}
	if c.Status == store.StatusBlocked && c.BlockReason != store.BlockFailures {
		return blockedRefusal(c.BlockReason)
	}
	pw, err := password.GenerateActivationPassword()
	if err != nil {
		return fmt.Errorf("admin: temporary password: %w", err)
	}
	hash, err := a.Issuer.Passwords.Hash(ctx, pw)
	if err != nil {
		return fmt.Errorf("admin: temporary password: hash: %w", err)
	}
	_, err = a.Store.SetTemporaryPassword(ctx, uid, hash, blockedBy(r), time.Now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return noCitizen(uid)
	case errors.Is(err, store.ErrBlockedByReason):
		// Blocked meanwhile: read the reason for the message.
		reason := ""
		if c, cerr := a.Store.Citizen(ctx, uid); cerr == nil {
			reason = c.BlockReason
		}
		return blockedRefusal(reason)
	case err != nil:
		return err
	}
	slog.InfoContext(ctx, "temporary password set", "user_id", uid, "was", c.Status, "by", blockedBy(r))
	a.audit(w, r, "citizen.temporary_password", uid, map[string]any{"was": c.Status}) // never the password
	writeJSON(w, http.StatusOK, TemporaryPasswordResponse{Password: pw})
	return nil
}

func blockedRefusal(reason string) error {
	if reason == "" {
		reason = "no reason recorded"
	}
	return &apiError{http.StatusConflict, "blocked",
		"This NemID is blocked (" + reason + "); a temporary password does not lift a block: unblock it first (POST …/unblock)."}
}
