package admin

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store"
)

// renewCitizen renews a NemID (POST /admin/v1/citizens/{user_id}/renew): 3 more years from
// today, the OCES reissued, an expired NemID active again. It answers the renewed record.
func (a *API) renewCitizen(w http.ResponseWriter, r *http.Request) error {
	uid := r.PathValue("user_id")
	if _, err := a.Issuer.Renew(r.Context(), uid); err != nil {
		return err
	}
	slog.InfoContext(r.Context(), "nemid renewed", "user_id", uid)
	a.audit(w, r, "citizen.renewed", uid, nil)
	return a.getCitizen(w, r)
}

// OCESRequest attaches OCES to a bank-only NemID: the ID check the operator made.
type OCESRequest struct {
	IDCheck string `json:"id_check"`
}

// attachOCES attaches the public digital signature (POST /admin/v1/citizens/{user_id}/oces)
// and answers {"pid"}.
func (a *API) attachOCES(w http.ResponseWriter, r *http.Request) error {
	var req OCESRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	uid := r.PathValue("user_id")
	pid, err := a.Issuer.AttachOCES(r.Context(), uid, req.IDCheck)
	if err != nil {
		var ve *issuance.ValidationError
		switch {
		case errors.As(err, &ve):
			return &apiError{http.StatusBadRequest, "invalid_request", ve.Error()}
		case errors.Is(err, store.ErrOCESAttached):
			return &apiError{http.StatusConflict, "conflict", "This NemID has OCES already."}
		}
		return err
	}
	slog.InfoContext(r.Context(), "oces attached", "user_id", uid)
	a.audit(w, r, "oces.attached", uid, nil)
	writeJSON(w, http.StatusOK, map[string]string{"pid": pid})
	return nil
}
