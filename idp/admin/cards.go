package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/nemidp/nemidp/idp/cardprint"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/web"
	"github.com/nemidp/nemidp/keys/codecard"
)

// CardOrderRequest orders a card (POST /admin/v1/citizens/{user_id}/cards).
type CardOrderRequest struct {
	Reason  string `json:"reason"`            // "extra" or "lost"
	Deliver string `json:"deliver,omitempty"` // "hand" (default) or "post"
	Address string `json:"address,omitempty"` // where to post it, when not the register address
}

// CardOrderResponse is the card ordered: as printed when handed over, else its serial.
type CardOrderResponse struct {
	Serial string         `json:"serial"`
	Status string         `json:"status"`
	Card   *codecard.Card `json:"card,omitempty"`
	// Blocked are the cards a lost-card order blocked.
	Blocked []string `json:"blocked,omitempty"`
}

// cardViews lists every card of c, the default one marked.
func cardViews(ctx context.Context, st *store.Store, c *store.Citizen) ([]CardView, error) {
	cards, err := st.Cards(ctx, c.UserID)
	if err != nil {
		return nil, err
	}
	out := make([]CardView, 0, len(cards))
	for _, k := range cards {
		out = append(out, CardView{Serial: k.Serial, Status: k.Status, KeysLeft: k.KeysLeft, Origin: k.Origin,
			Replaces: k.Replaces, OrderedBy: k.OrderedBy, Printable: k.Printable, Default: k.Serial == c.ActiveCard})
	}
	return out, nil
}

// orderCard issues an extra card or one for a lost card (which blocks every usable card of
// the citizen at once), handed over (201 with the card as printed) or sent by post (201 with
// the serial, printable once).
func (a *API) orderCard(w http.ResponseWriter, r *http.Request) error {
	var req CardOrderRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	post := false
	switch req.Deliver {
	case "", "hand":
	case "post":
		post = true
	default:
		return &apiError{http.StatusBadRequest, "invalid_request", `deliver: want "hand" or "post"`}
	}
	if req.Address != "" && !post {
		return &apiError{http.StatusBadRequest, "invalid_request", `address: only for a card sent by post ("deliver": "post")`}
	}
	uid := r.PathValue("user_id")
	out, err := a.Issuer.OrderCard(r.Context(), uid, issuance.CardOrder{Reason: req.Reason, By: blockedBy(r),
		Operator: true, Post: post, Address: req.Address})
	var ve *issuance.ValidationError
	switch {
	case errors.As(err, &ve):
		return &apiError{http.StatusBadRequest, "invalid_request", ve.Error()}
	case errors.Is(err, issuance.ErrCardLimit):
		return &apiError{http.StatusConflict, "card_limit", fmt.Sprintf(
			"This NemID already has %d usable extra cards with keys left, the most an operator may order; a used-up card frees its place, and a lost card is replaced with reason \"lost\".", store.OperatorExtraCards)}
	case errors.Is(err, store.ErrNotFound):
		return noCitizen(uid)
	case err != nil:
		return err
	}
	slog.InfoContext(r.Context(), "code card issued", "user_id", uid, "serial", out.Serial, "reason", req.Reason, "status", out.Status)
	a.audit(w, r, "card.issued", uid, map[string]any{"serial": out.Serial, "reason": req.Reason, "status": out.Status, "post": post})
	for _, s := range out.Blocked {
		a.audit(w, r, "card.blocked", uid, map[string]any{"serial": s, "reason": "lost", "replaced_by": out.Serial})
	}
	writeJSON(w, http.StatusCreated, CardOrderResponse{Serial: out.Serial, Status: out.Status, Card: out.Card, Blocked: out.Blocked})
	return nil
}

// printCard answers a card issued by the system (sent by post) as printed, once, for the
// print service: JSON {"serial","keys"} when asked for, else the HTML print view; 410 after.
func (a *API) printCard(w http.ResponseWriter, r *http.Request) error {
	uid, serial := r.PathValue("user_id"), r.PathValue("serial")
	sealed, err := a.Store.TakeCardPrint(r.Context(), uid, serial)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &apiError{http.StatusNotFound, "not_found", fmt.Sprintf("NemID %q has no card %q.", uid, serial)}
	case errors.Is(err, store.ErrPrintTaken):
		return &apiError{http.StatusGone, "gone", "This card's printed form was taken already (or the card was handed over); it is given out once."}
	case err != nil:
		return err
	}
	card, err := a.Issuer.OpenPrint(sealed)
	if err != nil {
		return err
	}
	a.audit(w, r, "card.printed", uid, map[string]any{"serial": serial}) // never a key
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, http.StatusOK, card)
		return nil
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The stylesheet from the issuer's public listener, which serves /static/ (an operator
	// listener of its own does not); the page's CSP allows just that.
	css := strings.TrimSuffix(a.PublicURL, "/") + cardprint.Stylesheet
	if a.PublicURL != "" {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src "+web.OriginOf(a.PublicURL)+"; base-uri 'none'; frame-ancestors 'none'")
	}
	return cardprint.RenderPage(w, cardprint.Page{Card: card, Lang: cardprint.Lang(r), StylesheetURL: css})
}
