package config

import (
	"fmt"
	"strings"
)

// DefaultOperatorLabel names the operator of a bare admin token (one without "label:").
const DefaultOperatorLabel = "operator"

// AdminToken is one operator bearer token and the label that names its holder in the audit
// trail.
type AdminToken struct {
	Label string
	Token string
}

const adminTokenField = "admin_token (NEMIDP_ADMIN_TOKEN)"

// AdminTokens parses admin_token: comma-separated entries, each "label:token" or a bare token
// (labelled "operator"). The first ':' of an entry ends its label, so a token that holds a
// ':' is written "operator:<token>". Spaces around an entry are ignored. Empty: no token (the
// operator API refuses every call). An error names the field and never a token.
func (c Config) AdminTokens() ([]AdminToken, error) {
	toks, err := ParseAdminTokens(c.AdminToken)
	if err != nil {
		return nil, &FieldError{adminTokenField, err}
	}
	return toks, nil
}

// ParseAdminTokens parses the admin_token syntax (see Config.AdminTokens); its errors name
// entries by position, never by token.
func ParseAdminTokens(s string) ([]AdminToken, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	entries := strings.Split(s, ",")
	out := make([]AdminToken, 0, len(entries))
	labels := make(map[string]bool, len(entries))
	tokens := make(map[string]bool, len(entries))
	for i, e := range entries {
		e = strings.TrimSpace(e)
		n := i + 1
		if e == "" {
			return nil, fmt.Errorf("entry %d is empty (want label:token or a bare token, separated by commas)", n)
		}
		label, token, paired := strings.Cut(e, ":")
		if !paired {
			label, token = DefaultOperatorLabel, e
		}
		if !validLabel(label) {
			return nil, fmt.Errorf("entry %d: the label before ':' must be 1–64 characters of a-z, 0-9, '.', '_', '-'", n)
		}
		if token == "" {
			return nil, fmt.Errorf("entry %d (label %q) has an empty token", n, label)
		}
		if labels[label] {
			return nil, fmt.Errorf("entry %d: label %q is used twice (a bare token is labelled %q)", n, label, DefaultOperatorLabel)
		}
		if tokens[token] {
			return nil, fmt.Errorf("entry %d (label %q): its token is also another entry's; each operator needs its own", n, label)
		}
		labels[label], tokens[token] = true, true
		out = append(out, AdminToken{Label: label, Token: token})
	}
	return out, nil
}

func validLabel(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
