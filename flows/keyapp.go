package flows

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"time"

	"github.com/nemidp/nemidp/idp/store"
)

// The keyapp step: the login waits for the citizen to approve a request in the key app. The
// engine writes the request (naming the relying party, with the browser's binding code among
// three the device offers); a device decision, judged once in Redis, is applied to the flow by
// whichever instance receives it, and wakes the browser's long-poll wherever it waits.

// PendingApproval is the key-app request a flow waits for.
type PendingApproval struct {
	ID        string    `json:"id"`
	Code      string    `json:"code"`
	Codes     []string  `json:"codes"`
	ExpiresAt time.Time `json:"expires_at"`
}

// maxRequests bounds the key-app requests one login may send: each one buzzes the citizen's
// phone.
const maxRequests = 5

// MaxWait bounds one long-poll.
const MaxWait = 30 * time.Second

// noWakeWait is how long a long-poll waits when it cannot be woken (the pub/sub subscription
// is down): it looks again after this, instead of at once.
const noWakeWait = 2 * time.Second

func (e *Engine) keyAppTTL() time.Duration {
	if e.KeyAppTTL > 0 {
		return e.KeyAppTTL
	}
	return 2 * time.Minute
}

func (e *Engine) observe(event string) {
	if e.OnKeyApp != nil {
		e.OnKeyApp(event)
	}
}

// newApproval sets up a new request for f (stored after the flow's next save), replacing the
// one before.
func (e *Engine) newApproval(f *Flow) error {
	if f.Requests >= maxRequests {
		return Errorf(CodeTooManyRequests, "This login has sent the most key-app requests it may. Use your code card, or start again.")
	}
	codes := bindingCodes()
	a := &PendingApproval{ID: NewID(), Code: codes[0], ExpiresAt: e.now().UTC().Add(e.keyAppTTL()).Truncate(time.Millisecond)}
	shuffle(codes)
	a.Codes = codes
	if f.Approval != nil {
		f.cancelApproval = f.Approval.ID
	}
	f.Approval, f.createApproval = a, a
	f.Requests++
	return nil
}

// afterSave stores the request a save set up, and cancels the one it replaced. A failure
// leaves the login at its keyapp step with a request the devices never see: its poll answers
// keyapp_timeout, and the citizen sends a new one or uses the card.
func (e *Engine) afterSave(ctx context.Context, f *Flow) {
	a, old := f.createApproval, f.cancelApproval
	f.createApproval, f.cancelApproval = nil, ""
	if a != nil && f.Approval == a && f.Step == StepKeyApp {
		err := e.Store.CreateApproval(ctx, &store.Approval{ID: a.ID, CitizenID: f.CitizenID, Flow: f.ID,
			ClientName: f.ClientName, Text: approvalText(f), Code: a.Code, Codes: a.Codes,
			CreatedAt: e.now().UTC(), ExpiresAt: a.ExpiresAt}, old)
		if err != nil {
			slog.WarnContext(ctx, "key-app request not stored", "flow", f.ID, "err", err)
			return
		}
		e.observe("created")
		return
	}
	if old != "" {
		if err := e.Store.CancelApproval(ctx, f.CitizenID, old); err != nil {
			slog.WarnContext(ctx, "key-app request not cancelled", "flow", f.ID, "err", err)
		}
	}
}

// approvalText is what the app shows, in the login's language.
func approvalText(f *Flow) string {
	name := f.ClientName
	if name == "" {
		name = "NemID"
	}
	for _, l := range f.Locales {
		switch {
		case strings.HasPrefix(l, "en"):
			return "Log in to " + name
		case strings.HasPrefix(l, "da"):
			return "Log på hos " + name
		}
	}
	return "Log på hos " + name
}

// bindingCodes draws three distinct 2-digit codes; the first is the browser's.
func bindingCodes() []string {
	out := make([]string, 0, 3)
	for len(out) < 3 {
		n, err := rand.Int(rand.Reader, big.NewInt(100))
		if err != nil {
			panic(fmt.Sprintf("crypto/rand: %v", err)) // unrecoverable: no randomness
		}
		c := fmt.Sprintf("%02d", n.Int64())
		dup := false
		for _, o := range out {
			dup = dup || o == c
		}
		if !dup {
			out = append(out, c)
		}
	}
	return out
}

func shuffle(s []string) {
	for i := len(s) - 1; i > 0; i-- {
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			panic(fmt.Sprintf("crypto/rand: %v", err))
		}
		s[i], s[j.Int64()] = s[j.Int64()], s[i]
	}
}

func keyAppTimeout() *Error {
	return Errorf(CodeKeyAppTimeout, "The request in the key app ran out. Send a new request, or use your code card.")
}

func keyAppDenied() *Error {
	return Errorf(CodeKeyAppDenied, "The login was denied in the key app.")
}

// live refuses an answer to a flow that expired or failed.
func (e *Engine) live(f *Flow) error {
	if f.Expired(e.now()) {
		return Errorf(CodeFlowExpired, "This login has expired.")
	}
	if f.Step == StepFailed && f.Failure != nil {
		return f.Failure
	}
	return nil
}

// PollKeyApp looks whether the key-app request of f was decided, waiting up to wait (at most
// MaxWait) for the decision; f is left as it is then. A pending request answers nil with f at
// its keyapp step; a flow that moved on answers nil at its new step.
func (e *Engine) PollKeyApp(ctx context.Context, f *Flow, wait time.Duration) error {
	if err := e.live(f); err != nil {
		return err
	}
	if f.Step != StepKeyApp {
		return nil // moved on (approved elsewhere, or switched to the card)
	}
	pending, err := e.settle(ctx, f)
	if !pending || wait <= 0 || e.Waiters == nil {
		return err
	}
	// Watch before looking again: a decision made after this look wakes us; one made before
	// it is seen by it.
	woken, stop, werr := e.Waiters.Watch(ctx, store.TopicFlow(f.ID))
	if werr != nil {
		// No wake-ups (the subscription is down): wait a little and look again, so a client
		// polling in a loop does not spin.
		slog.WarnContext(ctx, "key-app poll cannot be woken; looking again shortly", "flow", f.ID, "err", werr)
		woken, stop = nil, func() {}
		wait = min(wait, noWakeWait)
	}
	defer stop()
	if pending, err = e.reloadAndSettle(ctx, f); !pending {
		return err
	}
	wait = min(wait, MaxWait, f.Approval.ExpiresAt.Sub(e.now())+50*time.Millisecond)
	t := time.NewTimer(max(wait, 0))
	defer t.Stop()
	select {
	case <-woken:
	case <-t.C:
	case <-ctx.Done():
		return nil // the browser went away; nothing changed
	}
	_, err = e.reloadAndSettle(ctx, f)
	return err
}

func (e *Engine) reloadAndSettle(ctx context.Context, f *Flow) (bool, error) {
	fresh, err := e.Load(ctx, f.ID)
	if err != nil {
		return false, err
	}
	*f = *fresh
	if err := e.live(f); err != nil {
		return false, err
	}
	if f.Step != StepKeyApp {
		return false, nil
	}
	return e.settle(ctx, f)
}

// settle applies the state of f's request to f: pending reports it is still open.
func (e *Engine) settle(ctx context.Context, f *Flow) (pending bool, err error) {
	a := f.Approval
	if a == nil {
		return false, keyAppTimeout()
	}
	st, err := e.Store.ApprovalState(ctx, f.CitizenID, a.ID)
	if err != nil {
		return false, fmt.Errorf("flows: keyapp: %w", err)
	}
	if st == store.ApprovalPending && !e.now().Before(a.ExpiresAt) {
		o, nst, err := e.Store.ExpireApproval(ctx, f.CitizenID, a.ID, e.now())
		if err != nil {
			return false, fmt.Errorf("flows: keyapp: %w", err)
		}
		if o == store.DecideExpired {
			e.observe("expired")
		}
		st = nst
	}
	return e.apply(ctx, f, a.ID, st, false)
}

// apply moves f on by its request's state.
// wake makes the save that records an approval or denial also wake the login's long-polls
// (the same round trip), for the instance that received the decision.
func (e *Engine) apply(ctx context.Context, f *Flow, id, state string, wake bool) (bool, error) {
	switch state {
	case store.ApprovalPending:
		return true, nil
	case store.ApprovalApproved:
		err := e.update(ctx, f, func(f *Flow) error {
			f.wake = wake
			if f.Step != StepKeyApp || f.Approval == nil || f.Approval.ID != id {
				return nil // applied already (another instance, another poll)
			}
			f.Methods = append(f.Methods, AMRSoftwareKey, AMRUser)
			f.Approval = nil
			if err := e.advance(ctx, f); err != nil {
				return err
			}
			if f.Result != nil {
				f.Result.Deferred = true
			}
			return nil
		})
		if err != nil {
			return false, err
		}
		if f.Step == StepFailed && f.Failure != nil {
			return false, f.Failure // approved, but the login ends here (the OCES gate)
		}
		return false, nil
	case store.ApprovalDenied:
		err := e.update(ctx, f, func(f *Flow) error {
			f.wake = wake
			if f.Step != StepKeyApp || f.Approval == nil || f.Approval.ID != id {
				return nil
			}
			f.Step, f.Failure, f.Approval = StepFailed, keyAppDenied(), nil
			return nil
		})
		if err != nil {
			return false, err
		}
		if f.Step == StepFailed {
			return false, f.Failure
		}
		return false, nil
	case store.ApprovalMismatch:
		return false, Errorf(CodeKeyAppWrongCode, "The code chosen in the key app was not the one shown here, so the request was stopped. Send a new request, or use your code card.")
	}
	return false, keyAppTimeout() // expired, cancelled or gone
}

// ApplyDecision moves the flow of a just-decided request on (the instance that received the
// decision does it, so the login is done even before its browser polls) and wakes the browser's
// long-poll wherever it waits.
func (e *Engine) ApplyDecision(ctx context.Context, flowID, requestID, state string) error {
	f, err := e.Load(ctx, flowID)
	if err != nil {
		var fe *Error
		if errors.As(err, &fe) {
			return nil // the login is gone; nothing to move on
		}
		return err
	}
	if f.Step == StepKeyApp && f.Approval != nil && f.Approval.ID == requestID {
		_, err := e.apply(ctx, f, requestID, state, true)
		var fe *Error
		if err != nil && !errors.As(err, &fe) {
			return err
		}
		if state == store.ApprovalApproved || state == store.ApprovalDenied {
			return nil // its save woke the login's long-polls
		}
	}
	return e.Store.Wake(ctx, store.TopicFlow(flowID))
}

// SwitchMethod changes the second factor the login asks: to the key app (a new request; also
// the way to send a new one after one ran out) or to the code card (the card's pending key).
func (e *Engine) SwitchMethod(ctx context.Context, f *Flow, method string) error {
	if err := e.live(f); err != nil {
		return err
	}
	if f.Step != StepKeyApp && f.Step != StepCodeCard {
		return Errorf(CodeWrongStep, "This login is at step %q: there is no method to choose.", f.Step)
	}
	switch method {
	case MethodKeyApp:
		if f.Purpose != "" {
			return Errorf(CodeInvalidRequest, "Activating the key app needs a key from your code card.")
		}
		n, err := e.Store.ActiveDevices(ctx, f.CitizenID)
		if err != nil {
			return fmt.Errorf("flows: switch to keyapp: %w", err)
		}
		if n == 0 {
			return Errorf(CodeNoDevice, "You have no active key app. Use your code card.")
		}
		return e.update(ctx, f, func(f *Flow) error {
			if f.Step != StepKeyApp && f.Step != StepCodeCard {
				return Errorf(CodeWrongStep, "This login already moved on.")
			}
			f.Method, f.HasApp, f.KeyNumber = MethodKeyApp, true, ""
			f.Step = StepKeyApp
			return e.newApproval(f)
		})
	case MethodCodeCard:
		if f.CardSerial == "" {
			return Errorf(CodeNoKeysLeft, "Your NemID has no usable code card. Use the key app.")
		}
		number, err := e.Store.PendingKey(ctx, f.CitizenID, f.CardSerial)
		if errors.Is(err, store.ErrNotFound) {
			return Errorf(CodeNoKeysLeft, "Your code card has no unused keys left. Use the key app, or order a new card.")
		}
		if err != nil {
			return fmt.Errorf("flows: switch to codecard: %w", err)
		}
		return e.update(ctx, f, func(f *Flow) error {
			if f.Step != StepKeyApp && f.Step != StepCodeCard {
				return Errorf(CodeWrongStep, "This login already moved on.")
			}
			if f.Approval != nil {
				f.cancelApproval = f.Approval.ID
			}
			f.Method, f.Step, f.KeyNumber, f.Approval = MethodCodeCard, StepCodeCard, number, nil
			return nil
		})
	}
	return Errorf(CodeInvalidRequest, "Choose the method %q or %q.", MethodCodeCard, MethodKeyApp)
}

// BeginActivation starts the flow of a key-app activation: the password, then a card key.
func (e *Engine) BeginActivation(ctx context.Context) (*Flow, error) {
	now := e.now().UTC()
	f := &Flow{ID: NewID(), Purpose: PurposeActivation, CreatedAt: now, ExpiresAt: now.Add(e.FlowTTL), Step: StepPassword}
	if err := e.save(ctx, f); err != nil {
		return nil, fmt.Errorf("flows: begin activation: %w", err)
	}
	return f, nil
}
