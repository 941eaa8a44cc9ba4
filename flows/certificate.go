package flows

import (
	"github.com/nemidp/nemidp/idp/store"
)

// Certificate is the OCES side of a NemID as one login saw it: a snapshot taken from the
// citizen's record when the citizen authenticated (the password step), carried by the flow's
// Result, the SSO session and the tokens. A login completed from an SSO session copies the
// session's snapshot, so a change to the record (OCES attached, renewal clearing the youth
// marker) shows at the next full login, not inside a live session (DESIGN.md §3: "renew, then
// log in again").
type Certificate struct {
	// OCES: the public digital signature is attached (kind "oces"); false for a bank-only NemID.
	OCES bool `json:"oces"`
	// PID is the OCES person id; empty when OCES is not attached.
	PID string `json:"pid,omitempty"`
	// YouthCert is the OCES youth marker ("ung under 18"): the OCES was issued before the
	// citizen's 18th birthday and has not been reissued since.
	YouthCert bool `json:"youth_cert,omitempty"`
}

// CertificateOf takes the snapshot of a citizen's record.
func CertificateOf(c *store.Citizen) *Certificate {
	if c.Kind != "oces" {
		return &Certificate{}
	}
	return &Certificate{OCES: true, PID: c.PID, YouthCert: c.YouthCert}
}

// Apply returns a copy of the citizen whose certificate fields (Kind, PID, YouthCert) are the
// snapshot's, for the claims mapping: claims then say what the login saw. A nil snapshot (a
// login from before snapshots were taken) leaves the citizen as it is.
func (s *Certificate) Apply(c *store.Citizen) *store.Citizen {
	if s == nil || c == nil {
		return c
	}
	cp := *c
	cp.Kind, cp.PID, cp.YouthCert = "bank", "", false
	if s.OCES {
		cp.Kind, cp.PID, cp.YouthCert = "oces", s.PID, s.YouthCert
	}
	return &cp
}

func (s *Certificate) hasOCES() bool { return s != nil && s.OCES }

// ocesRefused reports whether the OCES gate ends this authenticated flow: the client requires
// OCES and the citizen's NemID is bank-only.
func (f *Flow) ocesRefused() bool { return f.RequiresOCES && !f.Cert.hasOCES() }

func ocesRequiredError() *Error {
	return Errorf(CodeOCESRequired, "This service requires the public digital signature (OCES), and your NemID is bank-only. Attach OCES at borgerservice or in your netbank, with photo ID; then log in again.")
}
