package selfservice

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
)

// pageData is what every page template gets.
type pageData struct {
	Lang string
	// Self is the page's own GET path (where the language switch leads).
	Self     string
	CSRF     string
	LoggedIn bool
	Error    *pageError
	Citizen  *store.Citizen

	// overview
	Cards          []Card
	CardsAvailable bool
	Devices        []store.Device
	AltAddress     string
	Flash          *flash
	RenewalDue     bool
	// renewal
	Serial, Number string
	// address form
	Address string
}

func (d pageData) T(key string) string { return t(d.Lang, key) }

// ErrorCode is the code of the page's error ("" for none).
func (d pageData) ErrorCode() string {
	if d.Error == nil {
		return ""
	}
	return d.Error.code
}

// ErrorText is the page's error in its language (the English fallback for a code without
// text of its own).
func (d pageData) ErrorText() string {
	if d.Error == nil {
		return ""
	}
	if s := t(d.Lang, "err_"+d.Error.code); s != "" {
		return s
	}
	if d.Lang == langEN && d.Error.msg != "" {
		return d.Error.msg
	}
	return t(d.Lang, "err_generic")
}

// AttemptsLeft is what the error says is left (0: nothing to say).
func (d pageData) AttemptsLeft() int {
	if d.Error == nil {
		return 0
	}
	return d.Error.attemptsLeft
}

// Date is a YYYY-MM-DD date as the page's language writes it.
func (d pageData) Date(s string) string {
	day, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return s
	}
	if d.Lang == langEN {
		return day.Format("2 January 2006")
	}
	return day.Format("02-01-2006")
}

// Lines are an address's lines.
func (d pageData) Lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func (h *Handler) render(req *request, status int, name string, d pageData) {
	d.Lang = req.lang
	if d.Self == "" {
		d.Self = backPath(req.r)
	}
	if req.sess != nil {
		d.LoggedIn, d.CSRF = true, h.csrfToken(req.sess)
		if d.Citizen == nil {
			d.Citizen = req.c
		}
	}
	req.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	req.w.WriteHeader(status)
	if err := pages.ExecuteTemplate(req.w, name, d); err != nil {
		slog.ErrorContext(req.r.Context(), "render self-service page", "page", name, "err", err)
	}
}

// done sends the browser to the overview after a change, which shows its outcome once.
func (h *Handler) done(req *request, f flash) error {
	h.setFlash(req, f)
	http.Redirect(req.w, req.r, Path, http.StatusSeeOther)
	return nil
}

// ---- overview ----

func (h *Handler) overview(req *request) error {
	return h.showOverview(req, http.StatusOK, nil)
}

// showOverview renders the overview, with the error of a change that was refused.
func (h *Handler) showOverview(req *request, status int, pe *pageError) error {
	ctx := req.r.Context()
	uid := req.sess.UserID
	d := pageData{Self: Path, Error: pe, Flash: req.sess.Flash}
	var err error
	if d.Devices, err = h.activeDevices(ctx, uid); err != nil {
		return err
	}
	if d.AltAddress, err = h.Store.AltAddress(ctx, uid); err != nil {
		return err
	}
	if h.LifeCycle != nil {
		cards, err := h.LifeCycle.Cards(ctx, uid)
		if err != nil {
			return err
		}
		d.Cards, d.CardsAvailable = cards, true
	}
	d.RenewalDue = renewalDue(req.c.ExpiresAt, h.now())
	h.render(req, status, "overview", d)
	return nil
}

func (h *Handler) activeDevices(ctx context.Context, uid string) ([]store.Device, error) {
	all, err := h.Store.Devices(ctx, uid)
	if err != nil {
		return nil, err
	}
	var out []store.Device
	for _, d := range all {
		if d.Active {
			out = append(out, d)
		}
	}
	return out, nil
}

// renewalDue: the NemID expires within 60 days on the Danish date (the login's renewal_due
// notice).
func renewalDue(expires string, now time.Time) bool { return store.ExpiryOf(expires, now).Due }

// ---- cards ----

func (h *Handler) lostCardPage(req *request) error {
	if h.LifeCycle == nil {
		return errNotAvailable
	}
	h.render(req, http.StatusOK, "lost_card", pageData{})
	return nil
}

func (h *Handler) orderCard(req *request) error {
	reason := req.r.PostFormValue("reason")
	if reason != ReasonExtra && reason != ReasonLost {
		return errorf(http.StatusBadRequest, "invalid_request", "Choose an extra card or report a lost one.")
	}
	if h.LifeCycle == nil {
		return errNotAvailable
	}
	serial, err := h.LifeCycle.OrderCard(req.r.Context(), req.sess.UserID, reason)
	var rf *Refusal
	if errors.As(err, &rf) {
		h.audit(req, "card.order_refused", map[string]any{"reason": reason, "outcome": rf.Code})
		return h.showOverview(req, refusalError(rf).status, refusalError(rf))
	}
	if err != nil {
		return err
	}
	h.audit(req, "card.ordered", map[string]any{"reason": reason, "card_serial": serial})
	code := "card_ordered"
	if reason == ReasonLost {
		code = "card_replaced"
	}
	return h.done(req, flash{Code: code, Serial: serial})
}

// ---- block ----

func (h *Handler) blockPage(req *request) error {
	h.render(req, http.StatusOK, "block", pageData{})
	return nil
}

// block blocks the NemID for suspected misuse: its SSO sessions end (the store's cutoff), and
// so does this session, here and now.
func (h *Handler) block(req *request) error {
	if req.r.PostFormValue("confirm") != "yes" {
		return errorf(http.StatusBadRequest, "invalid_request", "Confirm that you want to block your NemID.")
	}
	ctx := req.r.Context()
	res, err := h.Store.Block(ctx, req.sess.UserID, store.BlockMisuse, "self", h.now())
	if err != nil {
		return err
	}
	h.audit(req, "citizen.blocked", map[string]any{"reason": store.BlockMisuse, "changed": res.Changed})
	h.endSessions(req)
	h.render(req, http.StatusOK, "blocked", pageData{})
	return nil
}

// endSessions logs the browser out: the SSO session (the block's cutoff ends it anyway, a
// logout must delete it) and the self-service session.
func (h *Handler) endSessions(req *request) {
	if c := h.Web.SessionCookie(req.r); c != "" {
		if err := h.Flows.EndSession(req.r.Context(), c); err != nil {
			slog.WarnContext(req.r.Context(), "sso session not ended", "err", err)
		}
		h.Web.ClearSession(req.w)
	}
	h.clearCookie(req.w)
	req.sess = nil
}

func (h *Handler) logout(req *request) error {
	h.audit(req, "selfservice.logout", nil)
	h.endSessions(req)
	h.render(req, http.StatusOK, "logged_out", pageData{Self: Path})
	return nil
}

// ---- renewal ----

func (h *Handler) renewPage(req *request) error {
	return h.showRenew(req, http.StatusOK, nil)
}

// showRenew asks the key renewal needs (the card's pending number), with the error of the
// last answer.
func (h *Handler) showRenew(req *request, status int, pe *pageError) error {
	if h.LifeCycle == nil {
		return errNotAvailable
	}
	d := pageData{Self: Path + "/fornyelse", Error: pe}
	serial, number, err := h.LifeCycle.RenewalKey(req.r.Context(), req.sess.UserID)
	var rf *Refusal
	switch {
	case errors.As(err, &rf):
		if pe == nil {
			d.Error = refusalError(rf)
			status = d.Error.status
		}
	case err != nil:
		return err
	default:
		d.Serial, d.Number = serial, number
	}
	h.render(req, status, "renew", d)
	return nil
}

func (h *Handler) renew(req *request) error {
	if h.LifeCycle == nil {
		return errNotAvailable
	}
	f := req.r.PostForm
	serial, number, key := f.Get("serial"), f.Get("number"), strings.TrimSpace(f.Get("key"))
	if !codecard.ValidKey(key) {
		return h.showRenew(req, http.StatusBadRequest, errorf(http.StatusBadRequest, "invalid_key", "A key is the 6 digits beside the key number."))
	}
	if len(serial) == 0 || len(serial) > 16 || len(number) != 4 {
		return errorf(http.StatusBadRequest, "invalid_request", "The form is incomplete; reload the page.")
	}
	err := h.LifeCycle.Renew(req.r.Context(), req.sess.UserID, serial, number, key)
	var rf *Refusal
	if errors.As(err, &rf) {
		h.audit(req, "citizen.renew_refused", map[string]any{"card_serial": serial, "outcome": rf.Code})
		pe := refusalError(rf)
		return h.showRenew(req, pe.status, pe)
	}
	if err != nil {
		return err
	}
	h.audit(req, "citizen.renewed", map[string]any{"card_serial": serial})
	return h.done(req, flash{Code: "renewed"})
}

// ---- key-app devices ----

func (h *Handler) removeDevice(req *request) error {
	ctx := req.r.Context()
	uid, id := req.sess.UserID, req.r.PostFormValue("device_id")
	// Only the citizen's own: a device id names its citizen, and the lookup is in this
	// citizen's records alone.
	if owner, ok := store.DeviceCitizen(id); !ok || owner != uid {
		h.audit(req, "device.remove_refused", map[string]any{"outcome": "not_own_device"})
		return h.showOverview(req, http.StatusForbidden, errorf(http.StatusForbidden, "not_own_device", "That is not one of your devices."))
	}
	d, err := h.Store.Device(ctx, uid, id)
	if errors.Is(err, store.ErrNotFound) {
		return h.showOverview(req, http.StatusNotFound, errorf(http.StatusNotFound, "no_device", "There is no such device."))
	}
	if err != nil {
		return err
	}
	if !d.Active {
		return h.done(req, flash{Code: "device_removed"})
	}
	if err := h.Store.RemoveDevice(ctx, uid, id, "self"); err != nil {
		return err
	}
	h.audit(req, "device.removed", map[string]any{"device_id": id})
	return h.done(req, flash{Code: "device_removed"})
}

// ---- password ----

func (h *Handler) passwordPage(req *request) error {
	h.render(req, http.StatusOK, "password", pageData{Self: Path + "/adgangskode"})
	return nil
}

// attemptHold is how long a password attempt counts unsettled (as at login).
const attemptHold = 15 * time.Second

// changePassword replaces the password after the current one is given. The current one is
// judged as at login: one of the citizen's attempts is reserved before the KDF, a wrong
// password counts (the max-th in a row locks the NemID), a locked NemID is not checked.
func (h *Handler) changePassword(req *request) error {
	f := req.r.PostForm
	current, next, repeat := f.Get("current_password"), f.Get("new_password"), f.Get("repeat_password")
	show := func(pe *pageError) error {
		h.render(req, pe.status, "password", pageData{Self: Path + "/adgangskode", Error: pe})
		return nil
	}
	if current == "" || len(current) > 256 || next == "" || len(next) > 256 {
		return show(errorf(http.StatusBadRequest, "invalid_request", "Fill in both passwords."))
	}
	if next != repeat {
		return show(errorf(http.StatusBadRequest, "passwords_differ", "The new password and its repetition differ."))
	}
	c := req.c
	var re *password.RuleError
	if err := password.Validate(next, c.CPR); errors.As(err, &re) {
		return show(errorf(http.StatusBadRequest, "password_"+re.Code, "The new password breaks the rules: "+re.Message+"."))
	} else if err != nil {
		return err
	}
	kdf, err := h.Passwords.Admit()
	if err != nil {
		return err // ErrBusy: 503, try again
	}
	defer kdf.Release()
	ctx := req.r.Context()
	// Settling outlives the request, as at login: a wrong password whose KDF ran is counted.
	settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	uid, max := c.UserID, h.Flows.MaxFailures
	att, err := h.Store.BeginAttempt(ctx, uid, max, h.Flows.Time(), attemptHold)
	if err != nil {
		return err
	}
	switch {
	case att.Refused:
		return show(errorf(http.StatusForbidden, "locked", "Your NemID is locked after too many failed attempts."))
	case att.Busy:
		return show(errorf(http.StatusServiceUnavailable, "unavailable", "Another attempt is being checked. Try again in a moment."))
	}
	ok, err := kdf.Verify(ctx, c.Password, current)
	if err != nil {
		_ = h.Store.CancelAttempt(settle, uid, att)
		return err
	}
	if !ok {
		res, err := h.Store.FailAttempt(settle, uid, max, att, h.Flows.Time())
		if err != nil {
			return err
		}
		h.audit(req, "citizen.password_change_refused", map[string]any{"outcome": "invalid_credentials", "locked": res.Locked})
		if res.Locked {
			h.endSessions(req) // the NemID is locked now: this session is over
			return show(errorf(http.StatusForbidden, "locked", "Your NemID is locked after too many failed attempts."))
		}
		pe := errorf(http.StatusUnauthorized, "wrong_password", "Wrong current password.")
		pe.attemptsLeft = res.AttemptsLeft
		return show(pe)
	}
	if err := h.Store.CancelAttempt(settle, uid, att); err != nil {
		slog.WarnContext(ctx, "password attempt not given back; it runs out by itself", "user", uid, "err", err)
	}
	hash, err := kdf.Hash(ctx, next)
	if err != nil {
		return err
	}
	// Only while the hash is still the one just verified: a password an operator set meanwhile
	// (a temporary one) is never overwritten.
	replaced, err := h.Store.RehashPassword(settle, uid, c.Password, hash)
	if err != nil {
		return err
	}
	if !replaced {
		return show(errorf(http.StatusConflict, "conflict", "Your password was changed meanwhile. Reload the page."))
	}
	h.audit(req, "citizen.password_changed", nil)
	return h.done(req, flash{Code: "password_changed"})
}

// ---- alternative address ----

func (h *Handler) addressPage(req *request) error {
	addr, err := h.Store.AltAddress(req.r.Context(), req.sess.UserID)
	if err != nil {
		return err
	}
	h.render(req, http.StatusOK, "address", pageData{Self: Path + "/adresse", Address: addr})
	return nil
}

func (h *Handler) setAddress(req *request) error {
	raw := req.r.PostFormValue("address")
	if req.r.PostFormValue("clear") == "1" {
		raw = ""
	}
	err := h.Store.SetAltAddress(req.r.Context(), req.sess.UserID, raw)
	var ae *store.AddressError
	if errors.As(err, &ae) {
		pe := errorf(http.StatusBadRequest, "address_"+ae.Code, ae.Error())
		h.render(req, pe.status, "address", pageData{Self: Path + "/adresse", Address: raw, Error: pe})
		return nil
	}
	if err != nil {
		return err
	}
	clean, _ := store.CleanAltAddress(raw)
	if clean == "" {
		h.audit(req, "citizen.alt_address_cleared", nil)
		return h.done(req, flash{Code: "address_cleared"})
	}
	h.audit(req, "citizen.alt_address_set", nil)
	return h.done(req, flash{Code: "address_set"})
}
