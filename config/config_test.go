package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.Issuer != "http://127.0.0.1:8080" || !c.DemoMode() || !c.InsecureCookies() {
		t.Fatalf("defaults: %+v", c)
	}
	if c.Login.MaxFailures != 5 || c.Login.FlowTTL.D() != 15*time.Minute {
		t.Fatalf("login defaults: %+v", c.Login)
	}
}

func TestLoadYAMLAndEnvOverride(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "nemidp.yaml")
	yaml := "addr: 127.0.0.1:9000\nissuer: https://login.example.dk/\nredis_url: redis://r:6379/0\nlogin:\n  max_failures: 3\n  flow_ttl: 5m\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(env(map[string]string{
		"NEMIDP_CONFIG": path, "NEMIDP_ADDR": "127.0.0.1:9100", "NEMIDP_SECRET_FILE": secretFile,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9100" {
		t.Errorf("env did not override addr: %s", c.Addr)
	}
	if c.Issuer != "https://login.example.dk" {
		t.Errorf("issuer = %q, want trailing slash trimmed", c.Issuer)
	}
	if c.Secret != "0123456789abcdef0123456789abcdef" {
		t.Errorf("secret from file not read (or not trimmed)")
	}
	if c.Login.MaxFailures != 3 || c.Login.FlowTTL.D() != 5*time.Minute || c.DemoMode() || c.InsecureCookies() {
		t.Errorf("yaml not applied: %+v", c)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   map[string]string
		field string
	}{
		{"bad addr", map[string]string{"NEMIDP_ADDR": "nope"}, "addr"},
		{"http issuer off loopback", map[string]string{"NEMIDP_ISSUER": "http://login.example.dk"}, "issuer"},
		{"issuer with query", map[string]string{"NEMIDP_ISSUER": "https://x.dk/?a=1"}, "issuer"},
		{"short secret", map[string]string{"NEMIDP_SECRET": "short"}, "secret"},
		{"max failures", map[string]string{"NEMIDP_MAX_FAILURES": "0"}, "max_failures"},
		{"max failures not a number", map[string]string{"NEMIDP_MAX_FAILURES": "five"}, "NEMIDP_MAX_FAILURES"},
		{"demo not a bool", map[string]string{"NEMIDP_DEMO": "maybe"}, "NEMIDP_DEMO"},
		{"missing secret file", map[string]string{"NEMIDP_SECRET_FILE": "/nonexistent/secret"}, "NEMIDP_SECRET_FILE"},
		{"metrics addr", map[string]string{"NEMIDP_METRICS_ADDR": "x"}, "metrics_addr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(env(tc.env))
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.Contains(fe.Field, tc.field) {
				t.Fatalf("err = %v, want a FieldError naming %q", err, tc.field)
			}
		})
	}
}

func TestUnknownYAMLFieldRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("adr: 127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(env(map[string]string{"NEMIDP_CONFIG": path})); err == nil || !strings.Contains(err.Error(), "adr") {
		t.Fatalf("a misspelt field must be refused by name, got %v", err)
	}
}

// TestGrantMaxLifetime: tokens.grant_max_lifetime defaults to 30 days, reads from YAML and
// must be positive.
func TestGrantMaxLifetime(t *testing.T) {
	t.Parallel()
	if c := Default(); c.Tokens.GrantMaxLifetime.D() != 720*time.Hour {
		t.Errorf("default grant_max_lifetime = %v, want 720h", c.Tokens.GrantMaxLifetime.D())
	}
	for _, tc := range []struct {
		value string
		want  time.Duration
	}{{"48h", 48 * time.Hour}, {"0s", 0}, {"-1h", 0}} {
		path := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(path, []byte("tokens:\n  grant_max_lifetime: "+tc.value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(env(map[string]string{"NEMIDP_CONFIG": path}))
		if tc.want == 0 {
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.Contains(fe.Error(), "tokens.grant_max_lifetime") {
				t.Errorf("grant_max_lifetime %s: err = %v, want a FieldError naming it", tc.value, err)
			}
			continue
		}
		if err != nil || c.Tokens.GrantMaxLifetime.D() != tc.want {
			t.Errorf("grant_max_lifetime %s: %v, %v", tc.value, c.Tokens.GrantMaxLifetime.D(), err)
		}
	}
}

// TestPasswordKDF: login.password_kdf defaults to DESIGN.md's argon2id$m=19456,t=2,p=1, reads
// from YAML, is overridden by NEMIDP_PASSWORD_KDF, and a wrong value is refused at load by a
// FieldError naming both the field and the variable.
func TestPasswordKDF(t *testing.T) {
	t.Parallel()
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Login.PasswordKDF != "argon2id$m=19456,t=2,p=1" {
		t.Errorf("default login.password_kdf = %q", c.Login.PasswordKDF)
	}
	if p, err := c.PasswordParams(); err != nil || p.MemoryKiB != 19456 || p.Time != 2 || p.Threads != 1 {
		t.Errorf("default PasswordParams = %+v, %v", p, err)
	}

	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("login:\n  password_kdf: argon2id$m=65536,t=3,p=4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(env(map[string]string{"NEMIDP_CONFIG": path}))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := c.PasswordParams(); err != nil || p.MemoryKiB != 65536 || p.Time != 3 || p.Threads != 4 {
		t.Errorf("YAML login.password_kdf: %+v, %v", p, err)
	}
	c, err = Load(env(map[string]string{"NEMIDP_CONFIG": path, "NEMIDP_PASSWORD_KDF": "argon2id$m=64,t=1,p=1"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Login.PasswordKDF != "argon2id$m=64,t=1,p=1" {
		t.Errorf("NEMIDP_PASSWORD_KDF did not override the YAML: %q", c.Login.PasswordKDF)
	}

	for _, bad := range []string{"bcrypt$cost=12", "argon2id$m=64,t=1", "argon2id$m=64,t=1,p=1,p=1", "argon2id$m=64,t=0,p=1", "argon2id$m=64,t=1,p=1,x=1", "19456"} {
		_, err := Load(env(map[string]string{"NEMIDP_PASSWORD_KDF": bad}))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "login.password_kdf (NEMIDP_PASSWORD_KDF)" {
			t.Errorf("NEMIDP_PASSWORD_KDF=%q: err = %v, want a FieldError naming login.password_kdf (NEMIDP_PASSWORD_KDF)", bad, err)
		}
	}
	if err := os.WriteFile(path, []byte("login:\n  password_kdf: \"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(env(map[string]string{"NEMIDP_CONFIG": path})); err == nil || !strings.Contains(err.Error(), "login.password_kdf") {
		t.Errorf("an empty login.password_kdf in YAML: err = %v, want it refused by name", err)
	}
}

// TestLogFormat: log_format defaults to text, reads from YAML, is overridden by
// NEMIDP_LOG_FORMAT, and anything but text or json is refused naming both.
func TestLogFormat(t *testing.T) {
	t.Parallel()
	c, err := Load(env(nil))
	if err != nil || c.LogFormat != "text" {
		t.Fatalf("default log_format = %q, %v", c.LogFormat, err)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("log_format: json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(env(map[string]string{"NEMIDP_CONFIG": path})); err != nil || c.LogFormat != "json" {
		t.Errorf("YAML log_format = %q, %v", c.LogFormat, err)
	}
	if c, err = Load(env(map[string]string{"NEMIDP_CONFIG": path, "NEMIDP_LOG_FORMAT": "text"})); err != nil || c.LogFormat != "text" {
		t.Errorf("NEMIDP_LOG_FORMAT did not override the YAML: %q, %v", c.LogFormat, err)
	}
	for _, bad := range []string{"JSON", "logfmt", "xml"} {
		_, err := Load(env(map[string]string{"NEMIDP_LOG_FORMAT": bad}))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "log_format (NEMIDP_LOG_FORMAT)" {
			t.Errorf("NEMIDP_LOG_FORMAT=%q: err = %v, want a FieldError naming log_format (NEMIDP_LOG_FORMAT)", bad, err)
		}
	}
}
