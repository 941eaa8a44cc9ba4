package flows

import "fmt"

// Error codes of the JSON contract (DESIGN.md §5), plus a few of our own.
const (
	CodeInvalidCredentials = "invalid_credentials"
	CodeWrongKey           = "wrong_key"
	CodeUsedKey            = "used_key"
	CodeLocked             = "locked"
	CodeBlocked            = "blocked"
	CodeExpired            = "expired"
	CodeOCESRequired       = "oces_required"
	CodeFlowExpired        = "flow_expired"
	CodeUnavailable        = "unavailable"
	CodeInvalidRequest     = "invalid_request"  // malformed answer (not 6 digits, missing field)
	CodeWeakPassword       = "invalid_password" // new password breaks the NemID rules
	CodeWrongStep          = "wrong_step"       // answer to a step the flow is not at
	CodeWrongBrowser       = "wrong_browser"    // flow bound to another browser
	CodeConflict           = "conflict"         // changed concurrently
	CodeLoginRequired      = "login_required"   // prompt=none without a session
	CodeNoKeysLeft         = "no_keys_left"
	CodeTooManyAttempts    = "too_many_attempts" // this flow had max wrong answers
	CodeThrottled          = "throttled"         // too many failed answers from one address
	CodeKeyAppDenied       = "keyapp_denied"     // the citizen denied the request in the app: the login fails
	CodeKeyAppTimeout      = "keyapp_timeout"    // the request ran out: send a new one or use the card
	CodeKeyAppWrongCode    = "keyapp_wrong_code" // the app chose another binding code: the request is spent
	CodeNoDevice           = "no_device"         // switching to the key app without an active device
	CodeTooManyRequests    = "too_many_requests" // this login sent the most key-app requests it may
)

// Failed reports whether this error answered a failed guess: a wrong password or unknown user
// ID, a wrong or used key, an answer to a locked NemID or a spent flow. Failed answers count
// against the client address. The one exception the engine marks: the right key of a card,
// used by another login of it meanwhile (a second tab).
func (e *Error) Failed() bool {
	if e == nil || e.notCounted {
		return false
	}
	switch e.Code {
	case CodeInvalidCredentials, CodeWrongKey, CodeUsedKey, CodeLocked, CodeTooManyAttempts:
		return true
	}
	return false
}

// Error is a login error the citizen (or app) is shown. It is a value the flow can also end
// with, and the front end maps it to its protocol's error.
type Error struct {
	Code         string `json:"code"`
	Message      string `json:"message"`
	AttemptsLeft *int   `json:"attempts_left,omitempty"`
	// Reason is a blocked NemID's block category (misuse, lost_card, operator).
	Reason string `json:"reason,omitempty"`
	// ExpiresAt is an expired NemID's last valid day (YYYY-MM-DD), for the page's text.
	ExpiresAt  string `json:"expires_at,omitempty"`
	notCounted bool   // a code that usually is a failed answer, here not one
	// citizen is the NemID a wrong password counted against ("" for a user ID with no NemID):
	// for the audit trail, never shown to the browser.
	citizen string
}

// Citizen is the user id of the NemID a wrong password (or a lockout it caused) counted
// against, or whose right password was refused (blocked, expired, no usable card); "" for a
// user ID with no NemID and for every other error.
func (e *Error) Citizen() string { return e.citizen }

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf makes an Error.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func attemptsError(code, msg string, left int) *Error {
	return &Error{Code: code, Message: msg, AttemptsLeft: &left}
}
