package admin

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/device"
)

// DeviceView is a key-app device as the operator sees it (never its key, only the key's
// thumbprint, which the citizen's app can show to compare).
type DeviceView struct {
	ID         string `json:"device_id"`
	Name       string `json:"name"`
	Status     string `json:"status"` // "active" or "removed"
	CreatedAt  string `json:"created_at"`
	RemovedAt  string `json:"removed_at,omitempty"`
	Thumbprint string `json:"key_thumbprint,omitempty"`
}

func deviceViews(ds []store.Device) []DeviceView {
	out := make([]DeviceView, 0, len(ds))
	for _, d := range ds {
		v := DeviceView{ID: d.ID, Name: d.Name, Status: "active", CreatedAt: d.CreatedAt.UTC().Format(time.RFC3339)}
		if !d.Active {
			v.Status = "removed"
			if d.RemovedAt != nil {
				v.RemovedAt = d.RemovedAt.UTC().Format(time.RFC3339)
			}
		}
		var jwk device.JWK
		if json.Unmarshal(d.PublicKey, &jwk) == nil && jwk.X != "" {
			v.Thumbprint = jwk.Thumbprint()
		}
		out = append(out, v)
	}
	return out
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	uid := r.PathValue("user_id")
	if _, err := a.Store.Citizen(ctx, uid); err != nil {
		return err
	}
	ds, err := a.Store.Devices(ctx, uid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": deviceViews(ds)})
	return nil
}

// removeDevice deactivates a device at once: its next call is refused, and logins ask the
// code card unless another device is active.
func (a *API) removeDevice(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	uid, id := r.PathValue("user_id"), r.PathValue("device_id")
	if owner, ok := store.DeviceCitizen(id); !ok || owner != uid {
		return &apiError{http.StatusNotFound, "not_found", "No such device for this citizen."}
	}
	if err := a.Store.RemoveDevice(ctx, uid, id, "operator"); err != nil {
		return err
	}
	a.audit(w, r, "device.removed", uid, map[string]any{"device_id": id})
	w.WriteHeader(http.StatusNoContent)
	return nil
}
