package admin

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/nemidp/nemidp/idp/store"
)

// OutboxDefaultLimit is how many entries GET /admin/v1/outbox answers without a limit.
const OutboxDefaultLimit = 100

// OutboxResponse is a page of the outbox (GET /admin/v1/outbox, DESIGN.md §5). Next is an
// extension: the id to pass as after for the following page (the last entry's, or the after
// given when the page is empty), so a reader polls with it whatever the answer.
type OutboxResponse struct {
	Events []store.OutboxEvent `json:"events"`
	Next   string              `json:"next"`
}

// outbox answers the outbox entries after the entry id ?after= (exclusive; none: from the
// oldest kept), at most ?limit= (default 100; more than store.MaxOutboxLimit is read as that).
// A read changes nothing, so it writes no audit line.
func (a *API) outbox(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	after := q.Get("after")
	if !store.ValidOutboxID(after) {
		return &apiError{http.StatusBadRequest, "invalid_request",
			fmt.Sprintf("after: %q is not an outbox event id (<ms>-<seq>, as an entry's id or the answer's next)", after)}
	}
	limit := OutboxDefaultLimit
	if raw, ok := q["limit"]; ok {
		n, err := strconv.Atoi(raw[0])
		if err != nil || n < 1 {
			return &apiError{http.StatusBadRequest, "invalid_request",
				fmt.Sprintf("limit: %q is not a whole number from 1 to %d", raw[0], store.MaxOutboxLimit)}
		}
		limit = min(n, store.MaxOutboxLimit)
	}
	evs, err := a.Store.Outbox(r.Context(), after, limit)
	if err != nil {
		return err
	}
	next := after
	if len(evs) > 0 {
		next = evs[len(evs)-1].ID
	}
	writeJSON(w, http.StatusOK, OutboxResponse{Events: evs, Next: next})
	return nil
}
