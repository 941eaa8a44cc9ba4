// Package keyapp is the key-app device API (/keyapp/v1/…, JSON): activating a device with the
// password and a code-card key, and, for an active device, listing the approval requests of
// its citizen's logins and deciding them. Every device call carries a JWT signed by the device
// key; every decision is a JWS by that key over one request.
package keyapp

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/throttle"
	"github.com/nemidp/nemidp/idp/web"
	"github.com/nemidp/nemidp/keys/device"
)

// MaxDevices is how many active devices a citizen may have.
const MaxDevices = 3

// MinKeysToActivate is how many unused keys the code card must have to activate a device: the
// activation uses one, and the citizen must still be able to log in with the card.
const MinKeysToActivate = 2

// API serves the key-app endpoints.
type API struct {
	Flows *flows.Engine
	Store *store.Store
	// Audience is what device JWTs must name as aud: <issuer>/keyapp.
	Audience string
	// Throttle counts failed activations per client address with the failed login answers.
	Throttle *throttle.Guard
	Metrics  *Metrics
	Waiters  *store.Waiters
	// Audit receives a line per activation answer, added device and decision (nil: none).
	Audit *audit.Logger
}

// Metrics counts key-app events.
type Metrics struct {
	Requests    *prometheus.CounterVec
	Refused     *prometheus.CounterVec
	Activations *prometheus.CounterVec
}

// NewMetrics registers the key-app metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nemidp_keyapp_requests_total",
			Help: "Key-app approval requests by event: created, approved, denied, expired."}, []string{"event"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nemidp_keyapp_refused_total",
			Help: "Key-app device calls and decisions refused, by reason."}, []string{"reason"}),
		Activations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nemidp_keyapp_activations_total",
			Help: "Key-app activation answers, by step and outcome (ok or error code)."}, []string{"step", "outcome"}),
	}
	reg.MustRegister(m.Requests, m.Refused, m.Activations)
	for _, e := range []string{"created", "approved", "denied", "expired"} {
		m.Requests.WithLabelValues(e)
	}
	return m
}

// Event counts a request event (the engine's OnKeyApp hook).
func (m *Metrics) Event(e string) {
	if m != nil {
		m.Requests.WithLabelValues(e).Inc()
	}
}

func (m *Metrics) refused(reason string) {
	if m != nil {
		m.Refused.WithLabelValues(reason).Inc()
	}
}

// Register adds the routes.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("POST /keyapp/v1/activations", a.handle(a.beginActivation))
	mux.Handle("POST /keyapp/v1/activations/{activation}", a.handle(a.completeActivation))
	mux.Handle("GET /keyapp/v1/requests", a.handle(a.device(a.listRequests)))
	mux.Handle("POST /keyapp/v1/requests/{id}", a.handle(a.device(a.decide)))
	mux.Handle("/keyapp/", a.handle(func(w http.ResponseWriter, r *http.Request) error {
		return &apiError{status: http.StatusNotFound, code: "not_found", message: "No such key-app endpoint."}
	}))
}

// apiError is an answer with its status; the one place errors are written is handle.
type apiError struct {
	status       int
	code         string
	message      string
	attemptsLeft *int
	reason       string // metric reason of a refusal, when it is one
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func (a *API) handle(fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		err := fn(w, r)
		if err == nil {
			return
		}
		var ae *apiError
		var fe *flows.Error
		switch {
		case errors.As(err, &ae):
		case errors.As(err, &fe):
			ae = &apiError{status: loginStatus(fe.Code), code: fe.Code, message: fe.Message, attemptsLeft: fe.AttemptsLeft}
		case errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			w.Header().Set("Retry-After", "2")
			ae = &apiError{status: http.StatusServiceUnavailable, code: flows.CodeUnavailable, message: "NemID is temporarily unavailable; nothing was changed. Try again shortly."}
		default:
			slog.ErrorContext(r.Context(), "key-app request failed", "path", r.URL.Path, "err", err)
			ae = &apiError{status: http.StatusInternalServerError, code: "internal", message: "Unexpected error."}
		}
		if ae.reason != "" {
			a.Metrics.refused(ae.reason)
		}
		if ae.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nemidp-keyapp", error="invalid_token"`)
		}
		body := map[string]any{"code": ae.code, "message": ae.message}
		if ae.attemptsLeft != nil {
			body["attempts_left"] = *ae.attemptsLeft
		}
		writeJSON(w, ae.status, map[string]any{"error": body})
	})
}

// loginStatus is the status of a login error met during an activation: the login's own, and
// the activation's refusals (kept in the flow, so a replayed activation answers the same).
func loginStatus(code string) int {
	switch code {
	case "too_few_keys", "too_many_devices":
		return http.StatusConflict
	case "activation_refused":
		return http.StatusForbidden
	}
	return web.StatusFor(code)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

const maxBody = 16 << 10

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		return &apiError{status: http.StatusUnsupportedMediaType, code: "invalid_request", message: "Send Content-Type: application/json."}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return &apiError{status: http.StatusRequestEntityTooLarge, code: "invalid_request", message: "Request body too large."}
		case errors.Is(err, io.EOF):
			return &apiError{status: http.StatusBadRequest, code: "invalid_request", message: "Empty request body; send a JSON object."}
		}
		return &apiError{status: http.StatusBadRequest, code: "invalid_request", message: "Malformed JSON body: " + err.Error()}
	}
	return nil
}

// ---- activation ----

type beginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// throttled refuses an address past its limit of failed answers before anything is judged.
func (a *API) throttled(w http.ResponseWriter, r *http.Request) error {
	wait, ok := a.Throttle.Throttled(r)
	if !ok {
		return nil
	}
	w.Header().Set("Retry-After", throttle.RetryAfter(wait))
	return &apiError{status: http.StatusTooManyRequests, code: flows.CodeThrottled, reason: "throttled",
		message: fmt.Sprintf("Too many failed attempts from your network. Try again in %d minute(s).", max(int(math.Ceil(wait.Minutes())), 1))}
}

// counted counts a failed answer against the client address (as a login's would be).
func (a *API) counted(w http.ResponseWriter, r *http.Request, err error) error {
	var fe *flows.Error
	if errors.As(err, &fe) && fe.Failed() {
		over, terr := a.Throttle.Fail(r)
		if terr != nil {
			slog.WarnContext(r.Context(), "failed activation answer not counted for its address", "err", terr)
		}
		if over {
			return a.throttled(w, r)
		}
	}
	return err
}

func (a *API) count(step string, err error) {
	if a.Metrics == nil {
		return
	}
	a.Metrics.Activations.WithLabelValues(step, outcome(err)).Inc()
}

func (a *API) beginActivation(w http.ResponseWriter, r *http.Request) (err error) {
	var req beginRequest
	var f *flows.Flow
	defer func() {
		a.count("password", err)
		a.auditAnswer(w, r, "password", f, req.Username, err)
	}()
	if err := decode(w, r, &req); err != nil {
		return err
	}
	if err := a.throttled(w, r); err != nil {
		return err
	}
	ctx := r.Context()
	f, err = a.Flows.BeginActivation(ctx)
	if err != nil {
		return err
	}
	if err := a.Flows.Submit(ctx, f, flows.StepPassword, flows.Answer{Username: req.Username, Password: req.Password}); err != nil {
		return a.counted(w, r, err)
	}
	// Only now, with the password proven, does the answer tell anything about the NemID.
	if refusal := a.canActivate(ctx, f); refusal != nil {
		if ferr := a.Flows.Fail(context.WithoutCancel(ctx), f, flows.Errorf(refusal.code, "%s", refusal.message)); ferr != nil {
			slog.WarnContext(ctx, "refused activation left open; it expires", "err", ferr)
		}
		return refusal
	}
	writeJSON(w, http.StatusCreated, map[string]any{"activation": f.ID, "key_number": f.KeyNumber, "card_serial": f.CardSerial,
		"expires_at": f.ExpiresAt.Format(time.RFC3339)})
	return nil
}

// canActivate refuses an activation the NemID cannot have: still on its temporary password,
// expired, with a card short of keys, or with the most devices already.
func (a *API) canActivate(ctx context.Context, f *flows.Flow) *apiError {
	if f.Step != flows.StepCodeCard {
		return &apiError{status: http.StatusConflict, code: flows.CodeWrongStep, message: "This activation cannot go on; start again."}
	}
	if f.MustChange {
		return &apiError{status: http.StatusForbidden, code: "activation_refused", reason: "must_change_password",
			message: "Log in once with your temporary password and choose your own before you activate the key app."}
	}
	st, err := a.Store.ActivationState(ctx, f.CitizenID, f.CardSerial)
	if err != nil {
		return &apiError{status: http.StatusServiceUnavailable, code: flows.CodeUnavailable, message: "NemID is temporarily unavailable. Try again shortly."}
	}
	if store.ExpiryOf(st.ExpiresAt, a.Flows.Time()).Expired { // the Danish date decides
		return &apiError{status: http.StatusForbidden, code: flows.CodeExpired, reason: "expired",
			message: "Your NemID has expired and must be renewed before you can activate the key app."}
	}
	if st.KeysLeft < MinKeysToActivate {
		return &apiError{status: http.StatusConflict, code: "too_few_keys", reason: "too_few_keys",
			message: fmt.Sprintf("Your code card has %d unused key(s) left; activating the key app needs at least %d. Order a new card first.", st.KeysLeft, MinKeysToActivate)}
	}
	if st.Devices >= MaxDevices {
		return &apiError{status: http.StatusConflict, code: "too_many_devices", reason: "too_many_devices",
			message: fmt.Sprintf("You already have %d active key-app devices. Remove one before you add another.", MaxDevices)}
	}
	return nil
}

type completeRequest struct {
	Key        string          `json:"key"`
	PublicKey  json.RawMessage `json:"public_key"`
	DeviceName string          `json:"device_name"`
}

func (a *API) completeActivation(w http.ResponseWriter, r *http.Request) (err error) {
	var f *flows.Flow
	defer func() {
		a.count("codecard", err)
		a.auditAnswer(w, r, "codecard", f, "", err)
	}()
	var req completeRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	// Everything that can be refused without the key is refused first, so a bad request never
	// costs the citizen a key.
	_, jwk, err := device.ParseJWK(req.PublicKey)
	if err != nil {
		return &apiError{status: http.StatusBadRequest, code: "invalid_public_key", message: "public_key must be the device's EC P-256 public key as a JWK (kty EC, crv P-256, x, y)."}
	}
	name := strings.TrimSpace(req.DeviceName)
	if !validName(name) {
		return &apiError{status: http.StatusBadRequest, code: "invalid_request", message: "device_name must be 1 to 64 printable characters."}
	}
	if err := a.throttled(w, r); err != nil {
		return err
	}
	ctx := r.Context()
	f, err = a.Flows.Load(ctx, r.PathValue("activation"))
	if err != nil {
		return err
	}
	if f.Purpose != flows.PurposeActivation {
		return &apiError{status: http.StatusNotFound, code: "not_found", message: "No such activation."}
	}
	if f.Step == flows.StepCodeCard {
		if refusal := a.canActivate(ctx, f); refusal != nil {
			return refusal
		}
	}
	if err := a.Flows.Submit(ctx, f, flows.StepCodeCard, flows.Answer{Key: req.Key}); err != nil {
		return a.counted(w, r, err)
	}
	if !f.Done() {
		return &apiError{status: http.StatusConflict, code: flows.CodeWrongStep, message: "This activation cannot go on; start again."}
	}
	raw, _ := json.Marshal(jwk)
	d := store.Device{ID: store.NewDeviceID(f.CitizenID), Name: name, PublicKey: raw, CreatedAt: a.Flows.Time().UTC()}
	// The key is spent now; the device is added in the step that checks the cap again (a
	// parallel activation may have taken the last place meanwhile).
	settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.Store.AddDevice(settle, f.CitizenID, d, MaxDevices); err != nil {
		switch {
		case errors.Is(err, store.ErrTooManyDevices):
			return &apiError{status: http.StatusConflict, code: "too_many_devices", reason: "too_many_devices",
				message: fmt.Sprintf("You already have %d active key-app devices. Remove one before you add another.", MaxDevices)}
		case errors.Is(err, store.ErrNotActive):
			return &apiError{status: http.StatusForbidden, code: flows.CodeBlocked, reason: "blocked", message: "Your NemID is blocked."}
		}
		return err
	}
	slog.InfoContext(ctx, "key-app device activated", "user_id", f.CitizenID, "device_id", d.ID)
	a.Audit.Log(w, r, audit.Event{By: audit.ByCitizen, Who: f.CitizenID, What: "device.added", UserID: f.CitizenID,
		Detail: map[string]any{"device_id": d.ID}})
	writeJSON(w, http.StatusCreated, map[string]any{"device_id": d.ID})
	return nil
}

func validName(s string) bool {
	if s == "" || utf8.RuneCountInString(s) > 64 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// ---- device calls ----

// authed is a device call that proved itself.
type authed struct {
	citizen string
	device  *store.Device
	key     *ecdsa.PublicKey
}

// device authenticates the device JWT of a call: signed by an active device's key, for this
// audience, short-lived, and not seen before.
func (a *API) device(fn func(http.ResponseWriter, *http.Request, *authed) error) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		refuse := func(code, reason, msg string) error {
			return &apiError{status: http.StatusUnauthorized, code: code, reason: reason, message: msg}
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" || len(tok) > 4096 {
			return refuse("invalid_token", "no_token", "A device JWT is required: Authorization: Bearer <device JWT>.")
		}
		claimed, err := device.Peek(tok)
		if err != nil {
			return refuse("invalid_token", "malformed_token", "The device JWT cannot be read.")
		}
		uid, ok := store.DeviceCitizen(claimed.Issuer)
		if !ok {
			return refuse("unknown_device", "unknown_device", "No such device.")
		}
		ctx := r.Context()
		now := a.Flows.Time()
		// The jti is marked in the round trip that reads the device, for as long as a token
		// this device signed could be valid (exp at most MaxLifetime after an iat at most Skew
		// ahead, judged without leeway), capped whatever the unverified exp says.
		ttl := min(max(claimed.Expiry.Sub(now), 0), device.MaxLifetime+device.Skew) + device.Skew
		d, fresh, err := a.Store.DeviceCall(ctx, uid, claimed.Issuer, claimed.ID, ttl)
		if errors.Is(err, store.ErrNotFound) {
			return refuse("unknown_device", "unknown_device", "No such device.")
		}
		if err != nil {
			return err
		}
		var jwk device.JWK
		if err := json.Unmarshal(d.PublicKey, &jwk); err != nil {
			return fmt.Errorf("keyapp: device %s: stored key: %w", d.ID, err)
		}
		pub, err := jwk.Public()
		if err != nil {
			return fmt.Errorf("keyapp: device %s: stored key: %w", d.ID, err)
		}
		if _, err := device.Verify(tok, pub, d.ID, a.Audience, now); err != nil {
			reason, msg := tokenRefusal(err)
			return refuse("invalid_token", reason, msg)
		}
		// Only a token the device's key signed learns that the device was removed, or that it
		// was replayed.
		if !d.Active {
			return refuse("device_deactivated", "device_deactivated", "This device has been removed from the NemID; activate it again.")
		}
		if !fresh {
			return refuse("invalid_token", "replayed_token", "This device JWT was used before; sign a new one for every call.")
		}
		return fn(w, r, &authed{citizen: uid, device: d, key: pub})
	}
}

// tokenRefusal names why a device JWT was refused.
func tokenRefusal(err error) (reason, msg string) {
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad_signature", "The device JWT is not signed by this device's key."
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong_audience", "The device JWT is for another audience."
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired_token", "The device JWT has expired."
	case errors.Is(err, device.ErrLifetime):
		return "long_lived_token", "A device JWT may live at most 2 minutes."
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		return "future_token", "The device JWT is issued in the future; check the device's clock."
	}
	return "invalid_token", "The device JWT is not valid: " + err.Error()
}

// RequestView is one pending request as the device sees it.
type RequestView struct {
	ID           string   `json:"id"`
	ClientName   string   `json:"client_name"`
	Text         string   `json:"text"`
	BindingCodes []string `json:"binding_codes"`
	ExpiresAt    string   `json:"expires_at"`
}

func (a *API) listRequests(w http.ResponseWriter, r *http.Request, d *authed) error {
	wait, err := waitParam(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	list, err := a.Store.PendingApprovals(ctx, d.citizen, a.Flows.Time())
	if err != nil {
		return err
	}
	if len(list) == 0 && wait > 0 && a.Waiters != nil {
		// Watch before looking again: a request made after that look wakes this poll.
		woken, stop, werr := a.Waiters.Watch(ctx, store.TopicCitizen(d.citizen))
		if werr != nil {
			// No wake-ups (the subscription is down): wait a little, then look again, so a
			// device polling in a loop does not spin.
			slog.WarnContext(ctx, "device poll cannot be woken; looking again shortly", "err", werr)
			woken, stop, wait = nil, func() {}, min(wait, 2*time.Second)
		}
		defer stop()
		if list, err = a.Store.PendingApprovals(ctx, d.citizen, a.Flows.Time()); err != nil {
			return err
		}
		if len(list) == 0 {
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-woken:
			case <-t.C:
			case <-ctx.Done():
				return nil
			}
			if list, err = a.Store.PendingApprovals(ctx, d.citizen, a.Flows.Time()); err != nil {
				return err
			}
		}
	}
	out := make([]RequestView, 0, len(list))
	for _, q := range list {
		out = append(out, RequestView{ID: q.ID, ClientName: q.ClientName, Text: q.Text, BindingCodes: q.Codes,
			ExpiresAt: q.ExpiresAt.UTC().Format(time.RFC3339)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": out})
	return nil
}

func waitParam(r *http.Request) (time.Duration, error) {
	q := r.URL.Query()
	if !q.Has("wait") {
		return 0, nil
	}
	v := q.Get("wait")
	n, err := strconv.ParseInt(v, 10, 64)
	if errors.Is(err, strconv.ErrRange) && !strings.HasPrefix(v, "-") {
		return flows.MaxWait, nil // clamped as any other long wait
	}
	if err != nil || n < 0 {
		return 0, &apiError{status: http.StatusBadRequest, code: "invalid_request", message: "wait must be a whole number of seconds."}
	}
	return time.Duration(min(n, int64(flows.MaxWait/time.Second))) * time.Second, nil
}

type decisionRequest struct {
	Decision string `json:"decision"`
}

func (a *API) decide(w http.ResponseWriter, r *http.Request, d *authed) (err error) {
	decided := "" // approved or denied, once recorded
	defer func() { a.auditDecision(w, r, d, decided, err) }()
	var req decisionRequest
	if err := decode(w, r, &req); err != nil {
		return err
	}
	id := r.PathValue("id")
	now := a.Flows.Time()
	dec, err := device.VerifyDecision(req.Decision, d.key, id, now)
	if err != nil {
		return &apiError{status: http.StatusBadRequest, code: "invalid_decision", reason: "invalid_decision",
			message: "The decision must be a JWS by this device's key over this request: " + err.Error()}
	}
	ctx := r.Context()
	outcome, state, flow, err := a.Store.Decide(ctx, d.citizen, id, dec.Decision, dec.BindingCode, d.device.ID, now)
	if err != nil {
		return err
	}
	switch outcome {
	case store.DecideNotFound:
		return &apiError{status: http.StatusNotFound, code: "unknown_request", reason: "unknown_request", message: "No such request for this device's NemID."}
	case store.DecideDecided:
		return &apiError{status: http.StatusConflict, code: "already_decided", reason: "already_decided",
			message: "This request was decided already (" + state + ")."}
	case store.DecideNotActive:
		return &apiError{status: http.StatusForbidden, code: flows.CodeBlocked, reason: "blocked", message: "The NemID is blocked; nothing can be approved."}
	case store.DecideDeviceInactive:
		return &apiError{status: http.StatusUnauthorized, code: "device_deactivated", reason: "device_deactivated",
			message: "This device has been removed from the NemID; activate it again."}
	}
	if outcome == store.DecideMismatch {
		// A wrong code is what a citizen approving a push they did not start does: it counts
		// toward the lockout like a wrong key, so pushes from someone holding the password
		// cannot be retried until one is approved by chance.
		if _, err := a.Store.RecordFailure(context.WithoutCancel(ctx), d.citizen, a.Flows.MaxFailures); err != nil {
			slog.WarnContext(ctx, "wrong binding code not counted toward the lockout", "user_id", d.citizen, "err", err)
		}
	}
	// The decision is recorded; moving the login on is the next step, and a failure there is
	// made good by the login's own poll, which reads the same record.
	settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.Flows.ApplyDecision(settle, flow, id, state); err != nil {
		slog.WarnContext(ctx, "decided key-app request not applied to its login yet", "flow", flow, "err", err)
	}
	switch outcome {
	case store.DecideExpired:
		a.Metrics.Event("expired")
		return &apiError{status: http.StatusGone, code: "request_expired", reason: "expired", message: "The request ran out before it was decided."}
	case store.DecideMismatch:
		return &apiError{status: http.StatusConflict, code: "wrong_binding_code", reason: "wrong_binding_code",
			message: "That is not the code the login shows; the request was stopped. If you did not start this login, deny the next one and change your password."}
	}
	status := "denied"
	if state == store.ApprovalApproved {
		status = "approved"
	}
	a.Metrics.Event(status)
	decided = status
	slog.InfoContext(ctx, "key-app request decided", "user_id", d.citizen, "device_id", d.device.ID, "decision", status)
	writeJSON(w, http.StatusOK, map[string]any{"request": id, "status": status})
	return nil
}
