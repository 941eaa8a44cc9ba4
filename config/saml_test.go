package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSAMLSection: the saml section's defaults, the YAML form (relative metadata files from
// the configuration's directory), and each wrong value named by its field.
func TestSAMLSection(t *testing.T) {
	t.Parallel()
	c := Default()
	if c.SAML.ClockSkew.D() != 3*time.Minute || c.SAML.RequestValidity.D() != 10*time.Minute || len(c.SAML.ServiceProviders) != 0 {
		t.Fatalf("defaults: %+v", c.SAML)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "nemidp.yaml")
	yaml := `saml:
  clock_skew: 90s
  request_validity: 5m
  service_providers:
    - metadata_file: sp/kommune.xml
      name: Kommunen
      requires_oces: true
      allow_on_behalf_of: true
      cpr: true
      dialect: broker
      subject: global
      unsigned_requests: true
    - metadata_file: /etc/nemidp/borger.xml
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(env(map[string]string{"NEMIDP_CONFIG": path}))
	if err != nil {
		t.Fatal(err)
	}
	want := ServiceProvider{MetadataFile: filepath.Join(dir, "sp", "kommune.xml"), Name: "Kommunen", RequiresOCES: true,
		AllowOnBehalfOf: true, CPR: true, Dialect: "broker", Subject: "global", UnsignedRequests: true}
	if c.SAML.ClockSkew.D() != 90*time.Second || c.SAML.RequestValidity.D() != 5*time.Minute || len(c.SAML.ServiceProviders) != 2 ||
		c.SAML.ServiceProviders[0] != want || c.SAML.ServiceProviders[1] != (ServiceProvider{MetadataFile: "/etc/nemidp/borger.xml"}) {
		t.Fatalf("saml = %+v, want %+v first", c.SAML, want)
	}

	for _, tc := range []struct {
		name, field string
		mutate      func(*Config)
	}{
		{"negative skew", "saml.clock_skew", func(c *Config) { c.SAML.ClockSkew = Duration(-time.Second) }},
		{"zero skew", "saml.clock_skew", func(c *Config) { c.SAML.ClockSkew = 0 }},
		{"skew over an hour", "saml.clock_skew", func(c *Config) { c.SAML.ClockSkew = Duration(2 * time.Hour) }},
		{"zero validity", "saml.request_validity", func(c *Config) { c.SAML.RequestValidity = 0 }},
		{"validity over a day", "saml.request_validity", func(c *Config) { c.SAML.RequestValidity = Duration(25 * time.Hour) }},
		{"no metadata file", "saml.service_providers[1].metadata_file", func(c *Config) {
			c.SAML.ServiceProviders = []ServiceProvider{{MetadataFile: "a.xml"}, {Name: "x"}}
		}},
		{"one file twice", "saml.service_providers[1].metadata_file", func(c *Config) {
			c.SAML.ServiceProviders = []ServiceProvider{{MetadataFile: "a.xml"}, {MetadataFile: "a.xml"}}
		}},
		{"bad subject", "saml.service_providers[0].subject", func(c *Config) {
			c.SAML.ServiceProviders = []ServiceProvider{{MetadataFile: "a.xml", Subject: "transient"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.Issuer = "http://127.0.0.1:8080"
			if err := c.Validate(); err != nil {
				t.Fatalf("the default does not validate: %v", err)
			}
			tc.mutate(&c)
			err := c.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err = %v, want a FieldError naming %s", err, tc.field)
			}
		})
	}

	// An unknown key inside an entry is refused like any unknown field.
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("saml:\n  service_providers:\n    - metadata_file: a.xml\n      subjekt: global\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(env(map[string]string{"NEMIDP_CONFIG": bad})); err == nil || !strings.Contains(err.Error(), "subjekt") {
		t.Fatalf("unknown field: err = %v", err)
	}
}
