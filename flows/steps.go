package flows

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nemidp/nemidp/idp/cpr"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
)

// Answer is what the citizen sent for a step; each step reads its own fields.
type Answer struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	Key         string `json:"key"`
	NewPassword string `json:"new_password"`
	// Method answers POST /login/{flow}/method: MethodCodeCard or MethodKeyApp.
	Method string `json:"method"`
	// Principal answers act_as: "self" or the ref of one of the offered wards.
	Principal string `json:"principal"`
	// Serial answers POST /login/{flow}/card: the usable card to ask a key from.
	Serial string `json:"serial"`
}

// step is one challenge: what it needs before it is shown, and how it checks an answer.
type step interface {
	// prepare fills in what the page asks (a key number); it may change f.
	prepare(ctx context.Context, e *Engine, f *Flow) error
	// check verifies the answer and, on success, moves f to its next step.
	check(ctx context.Context, e *Engine, f *Flow, a Answer) error
}

var steps = map[Step]step{
	StepPassword:    passwordStep{},
	StepCodeCard:    codecardStep{},
	StepNewPassword: newPasswordStep{},
	StepActAs:       actAsStep{},
}

// Prepare makes the flow's current step ready to show (choosing a fresh key number when the
// one asked was used meanwhile) and checks the flow has not expired.
func (e *Engine) Prepare(ctx context.Context, f *Flow) error {
	if f.Expired(e.now()) {
		return Errorf(CodeFlowExpired, "This login has expired.")
	}
	s, ok := steps[f.Step]
	if !ok {
		return nil
	}
	return s.prepare(ctx, e, f)
}

// Submit checks an answer to the step named by the URL.
func (e *Engine) Submit(ctx context.Context, f *Flow, name Step, a Answer) error {
	if err := e.judgeable(f, name); err != nil {
		return err
	}
	if err := steps[name].check(ctx, e, f, a); err != nil {
		return err
	}
	if f.Step == StepFailed && f.Failure != nil {
		return f.Failure // the answer was right, but the login ends here (the OCES gate)
	}
	return nil
}

// judgeable refuses an answer to step name that f cannot take now.
func (e *Engine) judgeable(f *Flow, name Step) error {
	if f.Expired(e.now()) {
		return Errorf(CodeFlowExpired, "This login has expired.")
	}
	if f.Step == StepFailed && f.Failure != nil {
		return f.Failure // a failed login answers why, whatever is sent to it
	}
	if f.Step != name {
		return Errorf(CodeWrongStep, "This login is at step %q, not %q.", f.Step, name)
	}
	if _, ok := steps[name]; !ok {
		return Errorf(CodeWrongStep, "Step %q takes no answer.", name)
	}
	return nil
}

// next is the step after a successful one: the engine, not the steps, decides the order.
func (e *Engine) next(f *Flow) Step {
	switch {
	case f.CitizenID == "":
		return StepPassword
	case !f.secondFactor():
		if f.Method == MethodKeyApp {
			return StepKeyApp
		}
		return StepCodeCard
	case f.MustChange:
		return StepNewPassword
	case f.ocesRefused(): // only once the citizen proved who they are
		return StepFailed
	}
	return StepDone
}

func containsAll(have []string, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// advance moves f to its next step and fills in the result once the citizen is
// authenticated; a guardian at a client that allows acting for others is then asked for
// whom (act_as) before the flow is done.
func (e *Engine) advance(ctx context.Context, f *Flow) error {
	f.Step = e.next(f)
	switch f.Step {
	case StepDone:
		f.Result = &Result{CitizenID: f.CitizenID, AMR: append([]string(nil), f.Methods...),
			ACR: ACRSubstantial, AuthTime: e.now().UTC(), SessionID: NewID(), Cert: f.Cert}
		return e.offerActAs(ctx, f)
	case StepKeyApp:
		return e.newApproval(f)
	case StepFailed:
		f.Failure = ocesRequiredError()
	}
	return nil
}

// secondFactor reports whether the citizen proved the second factor: a card key, or the key
// app's signed approval.
func (f *Flow) secondFactor() bool {
	return containsAll(f.Methods, AMRPassword, AMROTP) || containsAll(f.Methods, AMRPassword, AMRSoftwareKey, AMRUser)
}

// statusError is what a citizen who proved their password but may not log in is told.
func statusError(c *store.Citizen) *Error {
	switch {
	case c == nil:
		return nil
	case c.Status == store.StatusBlocked && c.BlockReason == store.BlockFailures:
		return Errorf(CodeLocked, "Your NemID is locked after too many failed attempts. Contact NemID support or borgerservice to have it unlocked.")
	case c.Status == store.StatusBlocked:
		return blockedError(c.BlockReason)
	case c.Status == store.StatusExpired:
		return expiredError(c.ExpiresAt)
	}
	return nil
}

// blockedError is the refusal of a NemID blocked for reason (store.ValidBlockReason): the code
// is blocked whatever the reason, the message names the reason's category and Reason carries
// it ("" for a block recorded without one).
func blockedError(reason string) *Error {
	var e *Error
	switch reason {
	case store.BlockMisuse:
		e = Errorf(CodeBlocked, "Your NemID is blocked because misuse was suspected. Contact NemID support to have it unblocked.")
	case store.BlockLostCard:
		e = Errorf(CodeBlocked, "Your NemID is blocked because its code card was reported lost. Contact NemID support or borgerservice for a new card and to have it unblocked.")
	case store.BlockOperator:
		e = Errorf(CodeBlocked, "Your NemID has been blocked by NemID support. Contact NemID support or borgerservice to have it unblocked.")
	default:
		return Errorf(CodeBlocked, "Your NemID is blocked. Contact NemID support.")
	}
	e.Reason = reason
	return e
}

// ---- password ----

type passwordStep struct{}

func (passwordStep) prepare(context.Context, *Engine, *Flow) error { return nil }

// maxPasswordLen bounds the KDF input; NemID passwords are at most 40 characters.
const maxPasswordLen = 256

func (passwordStep) check(ctx context.Context, e *Engine, f *Flow, a Answer) error {
	_, err := e.password(ctx, f.ID, f, a, nil)
	return err
}

func validPasswordAnswer(a Answer) (string, error) {
	username := strings.TrimSpace(a.Username)
	if username == "" || a.Password == "" || len(username) > 64 || len(a.Password) > maxPasswordLen {
		return "", Errorf(CodeInvalidRequest, "Type your user ID and password.")
	}
	return username, nil
}

// password judges a password answer to flow id: f as loaded, or nil to load it in the
// answer's first round trip, then refused by guard (if any) or a step it cannot take, with
// what the answer reserved given back. It returns the flow whenever it was loaded.
func (e *Engine) password(ctx context.Context, id string, f *Flow, a Answer, guard func(*Flow) error) (*Flow, error) {
	username, err := validPasswordAnswer(a)
	if err != nil {
		if f == nil {
			if f, err = e.loadGuarded(ctx, id, StepPassword, guard); err != nil {
				return f, err
			}
			_, err = validPasswordAnswer(a)
		}
		return f, err
	}
	// A place in the KDF queue first: when it is full the answer is "try again" at once,
	// before anything is looked up or counted.
	kdf, busy := e.Passwords.Admit()
	if busy != nil {
		if f == nil {
			if f, err = e.loadGuarded(ctx, id, StepPassword, guard); err != nil {
				return f, err
			}
		}
		return f, busyError(busy)
	}
	defer kdf.Release()
	// Settling outlives the request: a client that goes away must not leave a reservation
	// behind, nor skip counting a wrong password whose KDF already ran.
	settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()

	norm, _ := cpr.Parse(username)
	pa, err := e.Store.BeginPasswordAnswer(ctx, id, f == nil, username, string(norm), e.MaxFailures, e.now(), attemptHold)
	n, att := pa.FlowAttempt, pa.Reserved
	// Only what the lookup did reserve may be given back: a request that never reached Redis
	// (cancelled, no connection) must not forgive an earlier wrong answer.
	release := func() {
		if rerr := e.Store.Release(settle, id, n > 0, att); rerr == nil && n > 0 && f != nil {
			f.Failures = max(f.Failures-1, 0)
		}
	}
	if err != nil {
		release()
		return f, fmt.Errorf("flows: password: %w", err)
	}
	if n < 0 {
		n = 0
		release()
		return f, Errorf(CodeFlowExpired, "This login does not exist or has expired.")
	}
	if f == nil {
		if f, err = e.flowOf(id, pa.Flow); err != nil {
			release()
			return nil, err
		}
		if err := e.guarded(f, StepPassword, guard); err != nil {
			release()
			return f, err
		}
		f.wantSession = true
	}
	if n > e.MaxFailures {
		// Spent already (or by answers in flight): nothing is checked, nothing more counted.
		release()
		f.Failures = max(n-1, e.MaxFailures)
		e.failIfSpent(f)
		return f, f.Failure
	}
	// An unknown user ID takes the very path of a wrong password, with a counter of its own:
	// the same answers, the same KDF work and the same round trips, so user IDs cannot be
	// probed. A CPR number counts once however it is typed (with or without the dash).
	c := pa.Citizen
	who := username
	if norm != "" {
		who = string(norm)
	}
	if c != nil {
		who = c.UserID
	}
	// The attempt was reserved before the slow KDF: parallel guesses cannot all pass a check
	// made before any of them failed. Past the limit (locked, or an expired or operator-blocked
	// NemID that cannot be blocked for failures) no password is checked, so the answer never
	// tells a right password from a wrong one.
	if att.Busy {
		release()
		return f, Errorf(CodeUnavailable, "Another login attempt for this user ID is being checked. Try again in a moment.")
	}
	if att.Refused {
		if derr := kdf.VerifyDummy(ctx, a.Password); derr != nil {
			release()
			return f, busyError(derr)
		}
		ce := credentialsError(store.FailureResult{Locked: true})
		if c != nil {
			ce.citizen = c.UserID
		}
		return f, flowFailure(e, f, n, ce)
	}
	var ok bool
	if c != nil {
		ok, err = kdf.Verify(ctx, c.Password, a.Password)
	} else {
		err = kdf.VerifyDummy(ctx, a.Password)
	}
	if err != nil {
		// The password was never checked (the request went away while it waited): it costs
		// neither the citizen nor the flow anything. A reservation not given back runs out at
		// its deadline.
		release()
		if errors.Is(err, password.ErrBusy) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return f, busyError(err)
		}
		return f, fmt.Errorf("flows: password: verify for %s: %w", who, err)
	}
	if !ok {
		res, err := e.Store.FailReserved(settle, att, e.MaxFailures, e.now())
		if err != nil {
			return f, fmt.Errorf("flows: password: %w", err)
		}
		ce := credentialsError(res)
		if c != nil {
			ce.citizen = c.UserID
		}
		return f, flowFailure(e, f, n, ce)
	}
	// A right password. Refusals told only now: a NemID not active (the status read before the
	// KDF; the one read with the settling is checked after the save), no card to ask.
	number, serial := pa.KeyNumber, cmp.Or(pa.CardSerial, c.ActiveCard)
	useApp := pa.Devices > 0 && f.Purpose == "" // an activation always asks the card
	refuse := e.refusal(c)
	if refuse == nil && !useApp && (serial == "" || number == "") {
		refuse = usedUpError(serial == "" && len(pa.Cards) == 0)
	}
	if refuse != nil {
		refuse.citizen = c.UserID // for the audit line: the password was right
		acc, err := e.accept(settle, att)
		if n > 0 {
			e.release(settle, f)
		}
		if err != nil {
			return f, err
		}
		c.Status, c.BlockReason = acc.Status, acc.BlockReason
		if se := statusError(c); se != nil {
			return f, se // a parallel guess may have locked it meanwhile
		}
		return f, refuse
	}
	f.release = n > 0 // the right answer gives its flow attempt back in this save
	f.accept = &att   // and settles its reservation in the same round trip
	err = e.updateReleasing(settle, f, func(f *Flow) error {
		if f.Step != StepPassword {
			return Errorf(CodeWrongStep, "This login already moved on.")
		}
		f.CitizenID, f.MustChange = c.UserID, c.MustChange
		f.Cert = CertificateOf(c)
		f.Methods = []string{AMRPassword}
		f.CardSerial, f.KeyNumber, f.Cards = serial, number, pa.Cards
		if pa.CardSent {
			f.AddNotice(NoticeNewCardSent)
		}
		f.HasApp, f.Method = pa.Devices > 0, MethodCodeCard
		if useApp {
			f.Method = MethodKeyApp
		}
		e.renewalNotice(f, c)
		return e.advance(settle, f)
	})
	acc := f.accepted
	f.accepted = nil
	if f.accept != nil { // the change refused before any save: settle the reservation alone
		f.accept = nil
		a, aerr := e.accept(settle, att)
		if aerr != nil {
			return f, errors.Join(err, aerr)
		}
		acc = a
	}
	if err != nil {
		return f, err
	}
	if acc != nil {
		c.Status, c.BlockReason = acc.Status, acc.BlockReason
		if se := statusError(c); se != nil {
			// Blocked or locked while the KDF ran: the login the save moved on ends here.
			return f, e.failMovedOn(settle, f, c.UserID, se)
		}
	}
	e.renewalDueEvent(settle, c)
	if e.Passwords.NeedsRehash(c.Password) {
		e.rehash(ctx, settle, kdf, c, a.Password)
	}
	return f, nil
}

// accept settles a right password's reservation alone and returns the citizen's status as
// it is now.
func (e *Engine) accept(ctx context.Context, att store.Attempt) (*store.Accepted, error) {
	status, reason, _, err := e.Store.AcceptPasswordSaving(ctx, att, store.FlowSave{})
	if err != nil {
		return nil, fmt.Errorf("flows: password: %w", err)
	}
	return &store.Accepted{Status: status, BlockReason: reason}, nil
}

// failMovedOn ends a login that a right password moved on while its NemID was blocked or
// locked (by a parallel guess): its answer is se, and so is every later look at it. A key-app
// request it made is cancelled.
func (e *Engine) failMovedOn(ctx context.Context, f *Flow, uid string, se *Error) error {
	err := e.update(ctx, f, func(f *Flow) error {
		if f.CitizenID != uid || f.Step == StepDone || f.Step == StepFailed {
			return nil
		}
		if f.Approval != nil {
			f.cancelApproval = f.Approval.ID
		}
		f.Step, f.Failure = StepFailed, se
		return nil
	})
	if err != nil {
		return errors.Join(se, err)
	}
	return se
}

// rehash stores a right password hashed anew with the hasher's cost, in the KDF place its
// verification was admitted to, when the stored hash was made with another cost (a changed
// NEMIDP_PASSWORD_KDF). It runs only once the login moved on, and the store replaces the hash
// only while it is still the one verified, so a password chosen meanwhile is never
// overwritten. A failure costs nothing but the upgrade, tried again at the next right login.
func (e *Engine) rehash(ctx, settle context.Context, kdf *password.Ticket, c *store.Citizen, pw string) {
	hash, err := kdf.Hash(ctx, pw)
	if err == nil {
		_, err = e.Store.RehashPassword(settle, c.UserID, c.Password, hash)
	}
	if err != nil {
		slog.WarnContext(ctx, "password not rehashed with the current KDF; the login goes on", "user", c.UserID, "err", err)
	}
}

// attemptHold is how long a reserved password attempt counts without being settled: far
// longer than a bounded KDF queue and one hash take, short enough that an attempt abandoned
// by a crash does not stand in the citizen's way for long.
const attemptHold = 15 * time.Second

// settleTimeout bounds the writes that settle an answer after its request may have gone.
const settleTimeout = 5 * time.Second

// updateReleasing is update for a right answer: its save gives back the flow attempt the
// answer reserved, and when nothing is saved (the login moved on meanwhile: a duplicate of the
// winning answer) the attempt is given back all the same, since no wrong answer was given.
func (e *Engine) updateReleasing(ctx context.Context, f *Flow, change func(*Flow) error) error {
	err := e.update(ctx, f, change)
	if f.release {
		f.release = false
		e.release(ctx, f)
	}
	return err
}

// release gives back a flow attempt that was reserved for an answer never judged. A failure
// to do so costs the flow one attempt, nothing more.
func (e *Engine) release(ctx context.Context, f *Flow) {
	if err := e.Store.ReleaseFlowAttempt(ctx, f.ID); err == nil {
		f.Failures = max(f.Failures-1, 0)
	}
}

// flowFailure is a wrong answer's error; the max-th wrong answer of a flow, whichever user
// IDs the answers named, ends the flow: it is answered too_many_attempts, unless it also
// locked a NemID, which the citizen needs to know more.
func flowFailure(e *Engine, f *Flow, n int, err *Error) error {
	f.Failures = max(n, f.Failures)
	e.failIfSpent(f)
	if f.Step == StepFailed && err.Code != CodeLocked {
		return f.Failure
	}
	return err
}

// busyError is the answer when the KDF queue is full or the request went away while it
// waited: nothing was checked, so the citizen may simply try again.
func busyError(err error) error {
	if errors.Is(err, password.ErrBusy) {
		return Errorf(CodeUnavailable, "NemID is very busy right now. Try again in a moment.")
	}
	return fmt.Errorf("flows: password: %w", err)
}

func credentialsError(res store.FailureResult) *Error {
	if res.Locked {
		return Errorf(CodeLocked, "Your NemID is locked after too many failed attempts. Contact NemID support or borgerservice to have it unlocked.")
	}
	return attemptsError(CodeInvalidCredentials, "Wrong user ID or password.", res.AttemptsLeft)
}

// ---- code card ----

type codecardStep struct{}

func (codecardStep) prepare(ctx context.Context, e *Engine, f *Flow) error {
	// The card's pending number, the same for every login of the card until its key is used:
	// the number only changes when another login used the key meanwhile.
	number, err := e.Store.PendingKey(ctx, f.CitizenID, f.CardSerial)
	if errors.Is(err, store.ErrNotFound) {
		return e.nextUsableCard(ctx, f)
	}
	if err != nil {
		return fmt.Errorf("flows: codecard: %w", err)
	}
	if number == f.KeyNumber {
		return nil
	}
	return e.update(ctx, f, func(f *Flow) error {
		if f.Step == StepCodeCard {
			f.KeyNumber = number
		}
		return nil
	})
}

func (codecardStep) check(ctx context.Context, e *Engine, f *Flow, a Answer) error {
	key := strings.TrimSpace(a.Key)
	if !codecard.ValidKey(key) {
		return Errorf(CodeInvalidRequest, "A key is the 6 digits printed beside key number %s.", f.KeyNumber)
	}
	settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	hash := e.Cards.Hash(f.CardSerial, f.KeyNumber, key)
	// The key's use reserves one of the flow's attempts (given back by the save of a right key)
	// and brings the pairwise subject, in one round trip.
	res, n, subject, err := e.Store.UseCardKey(settle, f.ID, true, f.CitizenID, f.CardSerial, f.KeyNumber, hash,
		e.MaxFailures, f.sector(), NewSubject())
	if err != nil {
		return fmt.Errorf("flows: codecard: use key %s: %w", f.KeyNumber, err)
	}
	if n < 0 {
		return Errorf(CodeFlowExpired, "This login does not exist or has expired.")
	}
	switch res.Outcome {
	case store.KeyOK:
	case store.KeyWrong:
		return flowFailure(e, f, n, attemptsError(CodeWrongKey, "Wrong key. Type the key printed beside key number "+f.KeyNumber+".", res.AttemptsLeft))
	case store.KeyUsed:
		return flowFailure(e, f, n, attemptsError(CodeUsedKey, "That key has already been used.", res.AttemptsLeft))
	case store.KeyUsedRight:
		// Another login of this card (another tab) used the key meanwhile: no wrong answer.
		// Ask the card's next pending number at once.
		e.release(settle, f)
		if err := (codecardStep{}).prepare(settle, e, f); err != nil {
			return err
		}
		return &Error{Code: CodeUsedKey, Message: "That key was just used by another login. Type the key beside key number " + f.KeyNumber + ".", notCounted: true}
	case store.KeyRepeat:
		// This login's own right key, sent again after its first answer was lost (a double
		// click, an aborted request): the key was accepted, so the login moves on.
	case store.KeyLocked:
		return flowFailure(e, f, n, Errorf(CodeLocked, "Your NemID is locked after too many failed attempts. Contact NemID support or borgerservice to have it unlocked."))
	case store.KeyRetired, store.KeyCardBlocked:
		e.release(settle, f) // not a guess: the card itself is refused
		// The login moves on to another usable card of the citizen, if any, so it is not stuck
		// asking a card that can never answer; the refusal still says why.
		if err := e.nextUsableCard(settle, f); err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				return err
			}
		}
		return cardRefused(res.Outcome)
	case store.KeyBlocked:
		e.release(settle, f)
		c, err := e.Store.Citizen(ctx, f.CitizenID)
		if err != nil {
			return fmt.Errorf("flows: codecard: %w", err)
		}
		if se := statusError(c); se != nil {
			return se
		}
		return Errorf(CodeBlocked, "Your NemID is blocked.")
	default:
		e.release(settle, f)
		return Errorf(CodeWrongKey, "This key number cannot be used; reload the page for another.")
	}
	number := f.KeyNumber
	f.release = n > 0 // a right (or repeated right) key gives its flow attempt back
	defer e.orderCard(settle, f.CitizenID, f.CardSerial, res.OrderClaim)
	return e.updateReleasing(settle, f, func(f *Flow) error {
		if f.Step != StepCodeCard || f.KeyNumber != number {
			return Errorf(CodeWrongStep, "This login already moved on.")
		}
		f.Methods = append(f.Methods, AMROTP)
		f.KeyNumber = ""
		if err := e.advance(settle, f); err != nil {
			return err
		}
		if f.Result != nil {
			f.Result.Subject = subject
		}
		return nil
	})
}

// ---- new password (after the temporary activation password) ----

type newPasswordStep struct{}

func (newPasswordStep) prepare(context.Context, *Engine, *Flow) error { return nil }

func (newPasswordStep) check(ctx context.Context, e *Engine, f *Flow, a Answer) error {
	pw := a.NewPassword
	if pw == "" {
		pw = a.Password // the contract names the field "password"
	}
	if pw == "" || len(pw) > maxPasswordLen {
		return Errorf(CodeInvalidRequest, "Choose a new password.")
	}
	c, err := e.Store.Citizen(ctx, f.CitizenID)
	if err != nil {
		return fmt.Errorf("flows: new password: %w", err)
	}
	if se := e.refusal(c); se != nil {
		return se // blocked, locked or expired since the key was accepted
	}
	if err := password.Validate(pw, c.CPR); err != nil {
		var re *password.RuleError
		if errors.As(err, &re) {
			return &Error{Code: CodeWeakPassword, Message: re.Message}
		}
		return fmt.Errorf("flows: new password: %w", err)
	}
	same, err := e.Passwords.Verify(ctx, c.Password, pw)
	if err != nil {
		return fmt.Errorf("flows: new password: %w", err)
	}
	if same {
		return &Error{Code: CodeWeakPassword, Message: "Choose a password other than the temporary activation password."}
	}
	hash, err := e.Passwords.Hash(ctx, pw)
	if err != nil {
		return fmt.Errorf("flows: new password: %w", err)
	}
	if err := e.Store.SetPassword(ctx, c.UserID, hash); err != nil {
		return fmt.Errorf("flows: new password: %w", err)
	}
	return e.update(ctx, f, func(f *Flow) error {
		f.MustChange = false
		return e.advance(ctx, f)
	})
}
