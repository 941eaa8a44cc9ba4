// Package flows runs the NemID login as a sequence of challenge steps (password, code-card
// key, new password, …) kept in Redis. It knows nothing of OIDC or SAML: a front end starts a
// flow with where to return, and reads the authenticated result when the flow is done.
package flows

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
)

// Step names, as in the JSON contract.
type Step string

// Steps.
const (
	StepPassword    Step = "password"
	StepCodeCard    Step = "codecard"
	StepNewPassword Step = "new_password"
	StepActAs       Step = "act_as"
	StepKeyApp      Step = "keyapp"
	StepDone        Step = "done"
	StepFailed      Step = "failed"
)

// Assurance and methods.
const (
	ACRSubstantial = "https://data.gov.dk/concept/core/nsis/Substantial"
	AMRPassword    = "pwd"
	AMROTP         = "otp"
	// The key app: a software key held by the device (swk) and the citizen's swipe (user).
	AMRSoftwareKey = "swk"
	AMRUser        = "user"
)

// Second-factor methods, as POST /login/{flow}/method names them.
const (
	MethodCodeCard = "codecard"
	MethodKeyApp   = "keyapp"
)

// Notices a login may carry (DESIGN.md §5, "notice").
const (
	// NoticeRenewalDue: the NemID expires within 60 days and must be renewed.
	NoticeRenewalDue = "renewal_due"
	// NoticeNewCardSent: a new code card is on its way (or has arrived); its first used key
	// makes it the active card.
	NoticeNewCardSent = "new_card_sent"
)

// AddNotice adds a notice once.
func (f *Flow) AddNotice(code string) {
	if !slices.Contains(f.Notices, code) {
		f.Notices = append(f.Notices, code)
	}
}

// PurposeActivation marks a flow that activates a key-app device: a password and a card key,
// asked by the key-app API, never shown to a browser nor finished into a protocol answer.
const PurposeActivation = "keyapp_activation"

// Flow is one login in progress.
type Flow struct {
	ID        string    `json:"id"`
	ClientID  string    `json:"client_id"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// ReturnURL is where the browser goes when the flow is done or failed; the front end that
	// started the flow owns it.
	ReturnURL string   `json:"return_url"`
	Prompt    []string `json:"prompt,omitempty"`
	MaxAge    *int64   `json:"max_age,omitempty"`
	Locales   []string `json:"locales,omitempty"`
	LoginHint string   `json:"login_hint,omitempty"`
	// SubjectHint is the subject the relying party knows the citizen as (from a hint it sent):
	// an SSO session of another citizen does not complete this flow.
	SubjectHint string `json:"subject_hint,omitempty"`
	// SubjectSector is the pairwise sector SubjectHint is a subject of ("": the client id).
	SubjectSector string `json:"subject_sector,omitempty"`
	Browser       string `json:"browser,omitempty"` // digest of the browser cookie the flow is bound to

	// Purpose is "" for a login, PurposeActivation for a key-app activation.
	Purpose string `json:"purpose,omitempty"`
	// ClientName is the relying party's display name, read when the flow began.
	ClientName string `json:"client_name,omitempty"`

	Step       Step     `json:"step"`
	CitizenID  string   `json:"citizen_id,omitempty"`
	MustChange bool     `json:"must_change,omitempty"`
	CardSerial string   `json:"card_serial,omitempty"`
	KeyNumber  string   `json:"key_number,omitempty"`
	Methods    []string `json:"methods,omitempty"`

	// Cards are the citizen's usable cards (active or sent) when the password was accepted:
	// the codecard step may switch to any of them (SwitchCard).
	Cards []string `json:"cards,omitempty"`
	// HasApp: the citizen had an active key-app device when the password was accepted.
	HasApp bool `json:"has_app,omitempty"`
	// Method is the second factor the login asks for now (MethodCodeCard or MethodKeyApp).
	Method string `json:"method,omitempty"`
	// Approval is the key-app request the keyapp step waits for.
	Approval *PendingApproval `json:"approval,omitempty"`
	// Requests counts the key-app requests this login has sent.
	Requests int `json:"requests,omitempty"`
	// RequiresOCES is the client's policy, read when the flow began (Engine.Policy).
	RequiresOCES bool `json:"requires_oces,omitempty"`
	// Cert is the citizen's certificate as the password step read it (see Certificate).
	Cert    *Certificate `json:"cert,omitempty"`
	Result  *Result      `json:"result,omitempty"`
	Failure *Error       `json:"failure,omitempty"`
	// Wards are the guardian's current wards offered at the act_as step, each under a random
	// ref of this flow only (never a user id or CPR number in the view).
	Wards []WardOption `json:"wards,omitempty"`
	// Notices are things the citizen should hear of during this login that are not errors
	// (NoticeRenewalDue, NoticeNewCardSent), most urgent first; the JSON view carries the first.
	Notices []string `json:"notices,omitempty"`
	// Protocol is the front end's own state (the OIDC auth request, …), opaque here.
	Protocol json.RawMessage `json:"protocol,omitempty"`

	// Failures is the flow's wrong answers so far (with those in flight), whichever user IDs
	// they named; kept beside the record, not in it.
	Failures int `json:"-"`

	version int64
	release bool // the next save gives back the attempt reserved for a right answer
	// After the next save: the approval request to store (and wake the devices for), and a
	// request of this flow to cancel. Done after the save so a retried change makes no stray
	// request, and a device never sees a request its login does not know.
	createApproval *PendingApproval
	cancelApproval string
	wake           bool // the next save also wakes the flow's long-polls (store.TopicFlow)
	// accept, when set, is a right password's reservation: the next save settles it in its
	// round trip and leaves the citizen's status as it is now in accepted.
	accept   *store.Attempt
	accepted *store.Accepted
	// wantSession: a save that finds the flow done by this answer stores its SSO session in
	// the same round trip and keeps the cookie value in sessionCookie.
	wantSession   bool
	sessionCookie string
}

// SessionCookie is the cookie value of the SSO session the answer that completed the flow
// started ("" when none did).
func (f *Flow) SessionCookie() string { return f.sessionCookie }

// Result is the authenticated subject of a finished flow.
type Result struct {
	CitizenID   string    `json:"citizen_id"`
	AMR         []string  `json:"amr"`
	ACR         string    `json:"acr"`
	AuthTime    time.Time `json:"auth_time"`
	FromSession bool      `json:"from_session,omitempty"`
	// SessionID names the SSO session the login belongs to: random, made when the login
	// completes (never derived from the session cookie), kept by the session for the logins it
	// completes. Front ends hand it to relying parties (OIDC's sid).
	SessionID string `json:"sid,omitempty"`
	// Cert is the certificate snapshot the claims mapping uses (nemid.oces, nemid.pid,
	// dk.youth_certificate): what the real login read, copied by a login from its SSO session;
	// nil only for logins from before snapshots (use the citizen's record then).
	Cert *Certificate `json:"cert,omitempty"`
	// OnBehalfOf is the ward the citizen (a guardian) chose to act for; nil when acting for
	// themselves. CitizenID stays the guardian: the one who authenticated and whose SSO
	// session this is.
	OnBehalfOf *Principal `json:"on_behalf_of,omitempty"`
	// Deferred: the login was completed by a key-app decision, applied by whichever instance
	// received it, not by an answer of the browser; the browser's first look that follows gets
	// the SSO session (ClaimSessionHandout). A login completed by a browser's answer gets its
	// session in that answer, and never from a later look.
	Deferred bool `json:"deferred,omitempty"`
	// Subject is the citizen's pairwise subject at the flow's sector, when the step that
	// completed the login found it on its way ("" otherwise: the front end finds it).
	Subject string `json:"subject,omitempty"`
}

// sector is where the flow's pairwise subject lives: SubjectSector, or the client id.
func (f *Flow) sector() string {
	if f.SubjectSector != "" {
		return f.SubjectSector
	}
	return f.ClientID
}

// NewSubject draws a pairwise subject: a random (version 4) UUID.
func NewSubject() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Done reports whether the flow ended with an authenticated subject.
func (f *Flow) Done() bool { return f.Step == StepDone && f.Result != nil }

// Expired reports whether the citizen ran out of time (a finished flow does not expire here:
// the front end's own code/token lifetimes take over).
func (f *Flow) Expired(now time.Time) bool {
	return f.Step != StepDone && f.Step != StepFailed && now.After(f.ExpiresAt)
}

// Start is what a front end asks for when it starts a login.
type Start struct {
	ClientID string
	// ReturnURL gives, for the new flow's id, where the browser goes when it ends.
	ReturnURL func(flowID string) string
	Prompt    []string
	MaxAge    *int64
	Locales   []string
	LoginHint string
	// SubjectHint: see Flow.SubjectHint.
	SubjectHint string
	// SubjectSector: see Flow.SubjectSector.
	SubjectSector string
	Protocol      json.RawMessage
}

// Engine runs flows.
type Engine struct {
	Store       *store.Store
	Passwords   *password.Hasher
	Cards       *codecard.Hasher
	MaxFailures int
	FlowTTL     time.Duration
	SessionTTL  time.Duration
	// Grace keeps a flow's record after it expired, so an expired login can still offer the
	// way back to its relying party.
	Grace time.Duration
	Now   func() time.Time
	// Policy tells what each client demands and allows (nil: nothing beyond a plain login).
	Policy ClientPolicy
	// KeyAppTTL is how long a key-app approval request waits for its decision (default 2
	// minutes).
	KeyAppTTL time.Duration
	// Waiters wakes a long-poll of the keyapp step when the decision arrives, on any instance
	// (nil: polls answer at once).
	Waiters *store.Waiters
	// OnKeyApp observes key-app request events ("created", "expired"), for metrics.
	OnKeyApp func(event string)
	// CardOrders orders the new card a key use brought to the threshold (nil: the order is
	// given up, and a later key use claims it again).
	CardOrders CardOrderer
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// Time is the engine's clock, for callers that judge a flow's expiry themselves.
func (e *Engine) Time() time.Time { return e.now() }

// NewID returns a random URL-safe identifier with 128 bits of entropy.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // unrecoverable: no randomness
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

type browserKey struct{}

// WithBrowser marks ctx with the browser (cookie digest) that asked for a login, so Begin binds
// the new flow to it at once: no other browser can ever claim the flow, not even first.
func WithBrowser(ctx context.Context, browser string) context.Context {
	return context.WithValue(ctx, browserKey{}, browser)
}

// Begin creates a flow at its first step.
func (e *Engine) Begin(ctx context.Context, s Start) (*Flow, error) {
	now := e.now().UTC()
	id := NewID()
	f := &Flow{
		ID: id, ClientID: s.ClientID, CreatedAt: now, ExpiresAt: now.Add(e.FlowTTL),
		ReturnURL: s.ReturnURL(id), Prompt: s.Prompt, MaxAge: s.MaxAge, Locales: s.Locales,
		LoginHint: s.LoginHint, SubjectHint: s.SubjectHint, SubjectSector: s.SubjectSector, Protocol: s.Protocol, Step: StepPassword,
	}
	f.Browser, _ = ctx.Value(browserKey{}).(string)
	if e.Policy != nil {
		p, err := e.Policy.Policy(ctx, s.ClientID)
		if err != nil {
			return nil, fmt.Errorf("flows: begin: client policy: %w", err)
		}
		f.RequiresOCES, f.ClientName = p.RequiresOCES, p.Name
	}
	if err := e.save(ctx, f); err != nil {
		return nil, fmt.Errorf("flows: begin: %w", err)
	}
	return f, nil
}

// Load returns a flow; a missing one is ErrFlowExpired.
func (e *Engine) Load(ctx context.Context, id string) (*Flow, error) {
	if !validID(id) {
		return nil, Errorf(CodeFlowExpired, "This login does not exist or has expired.")
	}
	rec, err := e.Store.LoadFlow(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, Errorf(CodeFlowExpired, "This login does not exist or has expired.")
	}
	if err != nil {
		return nil, fmt.Errorf("flows: load %s: %w", id, err)
	}
	return e.flowOf(id, rec)
}

// flowOf decodes a stored flow.
func (e *Engine) flowOf(id string, rec store.FlowRecord) (*Flow, error) {
	var f Flow
	if err := json.Unmarshal(rec.Data, &f); err != nil {
		return nil, fmt.Errorf("flows: load %s: decode: %w", id, err)
	}
	f.version, f.Failures = rec.Version, rec.Failures
	e.failIfSpent(&f)
	return &f, nil
}

// failIfSpent ends a flow that has had max wrong answers. The count lives outside the flow's
// record, so the wrong answer that reaches it costs no extra write: every reader sees the
// flow failed from then on.
func (e *Engine) failIfSpent(f *Flow) {
	if f.Failures >= e.MaxFailures && f.Step != StepDone && f.Step != StepFailed {
		f.Step, f.Failure = StepFailed, tooManyAttempts()
	}
}

func tooManyAttempts() *Error {
	return Errorf(CodeTooManyAttempts, "Too many wrong answers in this login. Start again from the service you came from.")
}

func validID(id string) bool {
	if len(id) != 22 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(id)
	return err == nil
}

// save writes f if nobody else changed it since it was loaded, with what rides in its round
// trip: the release of the answer's attempt, the wake of its long-polls, the settling of a
// right password, the SSO session of the answer that completed it.
func (e *Engine) save(ctx context.Context, f *Flow) error {
	raw, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode flow: %w", err)
	}
	ttl := f.ExpiresAt.Sub(e.now()) + e.Grace
	if f.Step == StepDone || f.Step == StepFailed || ttl < time.Minute {
		// Finished flows stay for the code exchange and the way back.
		ttl = max(ttl, e.Grace, time.Minute)
	}
	fs := store.FlowSave{ID: f.ID, Prev: f.version, Data: raw, TTL: ttl, Release: f.release, Done: f.Done(), Browser: f.Browser}
	if f.wake {
		fs.Wake, f.wake = store.TopicFlow(f.ID), false
	}
	if f.Done() && f.Result != nil && f.Result.SessionID != "" { // single logout: the session served this client
		fs.Participant = &store.ParticipantWrite{SID: f.Result.SessionID, Expires: f.Result.AuthTime.Add(e.SessionTTL + time.Minute),
			Participant: store.SessionParticipant{Kind: store.ParticipantClient, ID: f.ClientID}}
	}
	var cookie string
	if f.wantSession && f.Done() && !f.Result.FromSession && !f.Result.Deferred {
		cookie = NewID() + NewID()
		w, err := e.sessionWrite(cookie, f.Result)
		if err != nil {
			return err
		}
		fs.Session = w
	}
	var v int64
	if a := f.accept; a != nil {
		f.accept = nil // settled by this round trip, whatever the save's fate
		var acc store.Accepted
		acc.Status, acc.BlockReason, v, err = e.Store.AcceptPasswordSaving(ctx, *a, fs)
		f.accepted = &acc
	} else {
		v, err = e.Store.SaveFlowWith(ctx, fs)
	}
	if err != nil {
		if !errors.Is(err, store.ErrConflict) {
			// Whether the save (and its release) happened is unknown: never give back twice.
			f.release = false
		}
		f.createApproval, f.cancelApproval = nil, ""
		return err
	}
	if f.release {
		f.release, f.Failures = false, max(f.Failures-1, 0)
	}
	if cookie != "" {
		f.sessionCookie, f.wantSession = cookie, false
	}
	f.version = v
	e.afterSave(ctx, f)
	return nil
}

// update applies change to the flow and saves it; when another request changed the flow in
// between, it reloads and applies change again, so a success (a consumed key) is never lost.
func (e *Engine) update(ctx context.Context, f *Flow, change func(*Flow) error) error {
	for range 5 {
		if err := change(f); err != nil {
			return err
		}
		err := e.save(ctx, f)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
		fresh, lerr := e.Load(ctx, f.ID)
		if lerr != nil {
			return lerr
		}
		// What the answer carries over to the retry: the attempt to give back, the status the
		// first save's round trip settled the password with, and the wish for a session.
		fresh.release, fresh.accept, fresh.accepted, fresh.wantSession = f.release, f.accept, f.accepted, f.wantSession
		*f = *fresh // the change, applied again, decides any approval anew
	}
	return Errorf(CodeConflict, "This login changed in another window; reload the page.")
}

// Bind ties the flow to the browser that first opens it; other browsers are refused.
func (e *Engine) Bind(ctx context.Context, f *Flow, browser string) error {
	if f.Browser == browser {
		return nil
	}
	if f.Browser != "" {
		return Errorf(CodeWrongBrowser, "This login was started in another browser.")
	}
	return e.update(ctx, f, func(f *Flow) error {
		if f.Browser != "" && f.Browser != browser {
			return Errorf(CodeWrongBrowser, "This login was started in another browser.")
		}
		f.Browser = browser
		return nil
	})
}

// Claim moves a flow bound to a one-login claim to the browser that proved it holds the claim.
func (e *Engine) Claim(ctx context.Context, f *Flow, claim, browser string) error {
	return e.update(ctx, f, func(f *Flow) error {
		if f.Browser != claim && f.Browser != browser {
			return Errorf(CodeWrongBrowser, "This login was started in another browser.")
		}
		f.Browser = browser
		return nil
	})
}

// Fail ends the flow with an error the front end reports back to the relying party.
func (e *Engine) Fail(ctx context.Context, f *Flow, fe *Error) error {
	return e.update(ctx, f, func(f *Flow) error {
		if f.Step == StepDone {
			return nil
		}
		f.Step, f.Failure = StepFailed, fe
		return nil
	})
}

// SessionInfo is the part of an SSO session a flow can be completed from.
type SessionInfo struct {
	CitizenID string    `json:"citizen_id"`
	AMR       []string  `json:"amr"`
	ACR       string    `json:"acr"`
	AuthTime  time.Time `json:"auth_time"`
	SID       string    `json:"sid,omitempty"`
	// Cert is the certificate snapshot of the login that started the session.
	Cert *Certificate `json:"cert,omitempty"`
}

// CanReuse reports whether the flow's prompt and max_age allow an existing SSO session.
func (f *Flow) CanReuse(s *SessionInfo, now time.Time) bool {
	if s == nil || slices.Contains(f.Prompt, "login") || slices.Contains(f.Prompt, "select_account") {
		return false
	}
	if f.MaxAge != nil && now.Sub(s.AuthTime) > time.Duration(*f.MaxAge)*time.Second {
		return false
	}
	return true
}

// PromptNone reports whether the relying party asked for no interaction.
func (f *Flow) PromptNone() bool { return slices.Contains(f.Prompt, "none") }

// Resume completes a fresh flow from an SSO session, if the citizen is still active and is
// the one the flow's subject hint names (if any).
func (e *Engine) Resume(ctx context.Context, f *Flow, s *SessionInfo) (bool, error) {
	if f.Step != StepPassword || !f.CanReuse(s, e.now()) {
		return false, nil
	}
	c, sub, err := e.sessionCitizen(ctx, f, s)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("flows: resume: %w", err)
	}
	// A block (or a temporary password) since the session's login ended it for good, also
	// once the NemID is unblocked.
	if c == nil || c.Status != store.StatusActive || c.MustChange || store.LoginEnded(c.SessionsEnded, s.AuthTime) {
		return false, nil
	}
	// The session's own snapshot, as its login saw it (a session from before snapshots gets
	// one now). A client requiring OCES is not served from a bank-only snapshot: the citizen
	// logs in again, and the OCES gate judges the record as it is then.
	cert := s.Cert
	if cert == nil {
		cert = CertificateOf(c)
	}
	if f.RequiresOCES && !cert.hasOCES() {
		return false, nil
	}
	return true, e.update(ctx, f, func(f *Flow) error {
		if f.Step != StepPassword {
			return nil
		}
		f.CitizenID, f.Step, f.Cert = s.CitizenID, StepDone, cert
		f.Result = &Result{CitizenID: s.CitizenID, AMR: s.AMR, ACR: s.ACR, AuthTime: s.AuthTime, FromSession: true,
			SessionID: s.SID, Cert: cert, Subject: sub}
		if f.PromptNone() {
			return nil // no interaction asked for: the guardian's own login
		}
		return e.offerActAs(ctx, f)
	})
}
