package keyapp

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/cpr"
	"github.com/nemidp/nemidp/idp/store"
)

// outcome is an answer's outcome as the metrics and the audit trail name it.
func outcome(err error) string {
	var fe *flows.Error
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae.code
	case errors.As(err, &fe):
		return fe.Code
	case err != nil:
		return "error"
	}
	return "ok"
}

// auditAnswer writes keyapp.activation.<step> for an activation answer: by the citizen once
// the activation's password was accepted, else anonymous; a wrong password names the NemID
// the typed user ID belongs to (never the typed user ID), or says unknown_user.
func (a *API) auditAnswer(w http.ResponseWriter, r *http.Request, step string, f *flows.Flow, username string, err error) {
	if a.Audit == nil {
		return
	}
	ev := audit.Event{By: audit.ByAnonymous, What: "keyapp.activation." + step, Detail: map[string]any{"outcome": outcome(err)}}
	if f != nil && f.CitizenID != "" {
		ev.By, ev.Who, ev.UserID = audit.ByCitizen, f.CitizenID, f.CitizenID
		if f.CardSerial != "" {
			ev.Detail["card_serial"] = f.CardSerial
		}
	}
	var fe *flows.Error
	if step == "password" && ev.UserID == "" && errors.As(err, &fe) &&
		(fe.Code == flows.CodeInvalidCredentials || fe.Code == flows.CodeLocked) {
		if ev.UserID = a.namedCitizen(r.Context(), username); ev.UserID == "" {
			ev.Detail["outcome"], ev.Detail["code"] = "unknown_user", fe.Code
		}
	}
	a.Audit.Log(w, r, ev)
}

func (a *API) namedCitizen(ctx context.Context, username string) string {
	username = strings.TrimSpace(username)
	norm, _ := cpr.Parse(username)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	c, err := a.Store.CitizenByUsername(ctx, username, string(norm))
	switch {
	case err == nil && c != nil:
		return c.UserID
	case err != nil && !errors.Is(err, store.ErrNotFound):
		slog.WarnContext(ctx, "audit: citizen of a failed activation password not looked up", "err", err)
	}
	return ""
}

// auditDecision writes keyapp.decision for a device's decision: approved, denied, or the
// refusal's code (wrong_binding_code, request_expired, already_decided, …).
func (a *API) auditDecision(w http.ResponseWriter, r *http.Request, d *authed, decided string, err error) {
	if a.Audit == nil {
		return
	}
	out := outcome(err)
	if decided != "" {
		out = decided
	}
	a.Audit.Log(w, r, audit.Event{By: audit.ByCitizen, Who: d.citizen, What: "keyapp.decision", UserID: d.citizen,
		Detail: map[string]any{"outcome": out, "device_id": d.device.ID}})
}
