package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// SAML holds the SAML IdP's settings.
type SAML struct {
	// ClockSkew is how far an AuthnRequest's IssueInstant may lie in the future (and how early
	// our assertions' NotBefore is), for a clock that differs from ours; at least 1s.
	ClockSkew Duration `yaml:"clock_skew"`
	// RequestValidity is how long after its IssueInstant an AuthnRequest is accepted (its ID
	// is remembered as long, against replays).
	RequestValidity Duration `yaml:"request_validity"`
	// ServiceProviders are registered at every start (replacing a record of the same entity
	// id), as POST /admin/v1/service-providers would register them.
	ServiceProviders []ServiceProvider `yaml:"service_providers"`
}

// ServiceProvider is a SAML SP of the configuration: its metadata file and its policy
// (DESIGN.md §5).
type ServiceProvider struct {
	// MetadataFile is the SP's metadata XML; a relative path is taken from the directory of
	// the configuration file.
	MetadataFile     string `yaml:"metadata_file"`
	Name             string `yaml:"name"`
	RequiresOCES     bool   `yaml:"requires_oces"`
	AllowOnBehalfOf  bool   `yaml:"allow_on_behalf_of"`
	CPR              bool   `yaml:"cpr"`
	Dialect          string `yaml:"dialect"`
	Subject          string `yaml:"subject"` // pairwise (default) or global
	UnsignedRequests bool   `yaml:"unsigned_requests"`
}

// resolvePaths makes relative metadata files relative to dir (the configuration file's).
func (s *SAML) resolvePaths(dir string) {
	for i := range s.ServiceProviders {
		if p := s.ServiceProviders[i].MetadataFile; p != "" && !filepath.IsAbs(p) {
			s.ServiceProviders[i].MetadataFile = filepath.Join(dir, p)
		}
	}
}

// validate checks what needs no other package: durations, the subject, a metadata file per
// entry named once. The metadata itself and the dialect are checked when the SPs are
// registered at start (admin.RegisterServiceProviders), with errors naming the entry too.
func (s SAML) validate() error {
	if d := s.ClockSkew.D(); d < time.Second || d > time.Hour {
		return &FieldError{"saml.clock_skew", errors.New("want 1s..1h")}
	}
	if d := s.RequestValidity.D(); d <= 0 || d > 24*time.Hour {
		return &FieldError{"saml.request_validity", errors.New("want a positive duration up to 24h")}
	}
	files := map[string]int{}
	for i, sp := range s.ServiceProviders {
		field := fmt.Sprintf("saml.service_providers[%d]", i)
		if sp.MetadataFile == "" {
			return &FieldError{field + ".metadata_file", errors.New("required: the SP's metadata XML")}
		}
		if j, ok := files[sp.MetadataFile]; ok {
			return &FieldError{field + ".metadata_file", fmt.Errorf("%s is also saml.service_providers[%d]'s", sp.MetadataFile, j)}
		}
		files[sp.MetadataFile] = i
		switch sp.Subject {
		case "", "pairwise", "global":
		default:
			return &FieldError{field + ".subject", errors.New(`want "pairwise" (the default) or "global"`)}
		}
	}
	return nil
}
