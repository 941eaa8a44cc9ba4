// Package config holds the typed configuration of nemidp: a YAML file (named by NEMIDP_CONFIG)
// overridden by NEMIDP_* environment variables, validated with errors that name the field.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nemidp/nemidp/keys/password"
)

// Config is the whole configuration. Durations are Go duration strings in YAML ("15m").
type Config struct {
	Addr        string `yaml:"addr"`
	Issuer      string `yaml:"issuer"`
	RedisURL    string `yaml:"redis_url"`
	RedisPrefix string `yaml:"redis_prefix"`
	// AdminToken is the operator API's bearer tokens: "label:token" pairs separated by
	// commas, or a bare token (labelled "operator"); see AdminTokens.
	AdminToken  string `yaml:"admin_token"`
	Secret      string `yaml:"secret"`
	SigningKeys string `yaml:"signing_keys"`
	MetricsAddr string `yaml:"metrics_addr"`
	// AdminAddr, when set, serves the operator API (/admin/v1) on its own listener only.
	AdminAddr string `yaml:"admin_addr"`
	// TrustedProxies are the CIDRs (or addresses) of reverse proxies whose X-Forwarded-For
	// names the client address.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// LogFormat is how serve writes its log to stderr: "text" (the default, slog's
	// key=value lines) or "json" (one object per line).
	LogFormat string `yaml:"log_format"`

	// Demo seeds a demo relying party and citizen and serves /demo pages. It is on by
	// default only when no Redis is configured (the embedded store).
	Demo *bool `yaml:"demo"`

	Login  Login  `yaml:"login"`
	Tokens Tokens `yaml:"tokens"`
	SAML   SAML   `yaml:"saml"`
}

// Login holds the login-flow policy.
type Login struct {
	MaxFailures int      `yaml:"max_failures"` // failed password/key attempts in a row before the NemID is blocked
	FlowTTL     Duration `yaml:"flow_ttl"`     // how long a citizen has to finish a login
	SessionTTL  Duration `yaml:"session_ttl"`  // SSO session lifetime
	KDFParallel int      `yaml:"kdf_parallel"` // password hashes at once; 0 = GOMAXPROCS
	KDFQueue    int      `yaml:"kdf_queue"`    // hashes that may wait for one; 0 = 4 × kdf_parallel
	// PasswordKDF is the hash for new passwords, "argon2id$m=<KiB>,t=<n>,p=<n>"
	// (NEMIDP_PASSWORD_KDF). Stored hashes keep their own parameters and are rehashed at the
	// next right login when they differ.
	PasswordKDF string `yaml:"password_kdf"`
	// IPMaxFailures failed answers per IPWindow from one client address, past which its
	// password and key answers are throttled (429).
	IPMaxFailures int      `yaml:"ip_max_failures"`
	IPWindow      Duration `yaml:"ip_window"`
}

// Tokens holds token lifetimes.
type Tokens struct {
	CodeTTL         Duration `yaml:"code_ttl"`
	AccessTokenTTL  Duration `yaml:"access_token_ttl"`
	IDTokenTTL      Duration `yaml:"id_token_ttl"`
	RefreshTokenTTL Duration `yaml:"refresh_token_ttl"`
	// GrantMaxLifetime bounds a grant from its code exchange, however often it is refreshed.
	GrantMaxLifetime Duration `yaml:"grant_max_lifetime"`
}

// Duration reads "15m"-style strings from YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Addr:        "127.0.0.1:8080",
		RedisPrefix: "nemidp:",
		LogFormat:   "text",
		Login: Login{
			MaxFailures:   5,
			PasswordKDF:   password.DefaultKDF,
			FlowTTL:       Duration(15 * time.Minute),
			SessionTTL:    Duration(time.Hour),
			IPMaxFailures: 30,
			IPWindow:      Duration(10 * time.Minute),
		},
		SAML: SAML{ClockSkew: Duration(3 * time.Minute), RequestValidity: Duration(10 * time.Minute)},
		Tokens: Tokens{
			CodeTTL:          Duration(time.Minute),
			AccessTokenTTL:   Duration(15 * time.Minute),
			IDTokenTTL:       Duration(time.Hour),
			RefreshTokenTTL:  Duration(30 * 24 * time.Hour),
			GrantMaxLifetime: Duration(30 * 24 * time.Hour),
		},
	}
}

// FieldError names the configuration field that is wrong.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return "config: " + e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Load reads the YAML file named by NEMIDP_CONFIG (if set), applies the environment and
// validates the result.
func Load(getenv func(string) string) (Config, error) {
	c := Default()
	if path := getenv("NEMIDP_CONFIG"); path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return c, &FieldError{"NEMIDP_CONFIG", err}
		}
		dec := yaml.NewDecoder(strings.NewReader(string(raw)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return c, &FieldError{path, err}
		}
		c.SAML.resolvePaths(filepath.Dir(path))
	}
	if err := c.applyEnv(getenv); err != nil {
		return c, err
	}
	if c.Issuer == "" {
		c.Issuer = "http://" + c.Addr
	}
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	return c, c.Validate()
}

func (c *Config) applyEnv(getenv func(string) string) error {
	strs := []struct {
		name   string
		dst    *string
		secret bool
	}{
		{"NEMIDP_ADDR", &c.Addr, false},
		{"NEMIDP_ISSUER", &c.Issuer, false},
		{"NEMIDP_REDIS_URL", &c.RedisURL, true}, // may carry a password
		{"NEMIDP_REDIS_PREFIX", &c.RedisPrefix, false},
		{"NEMIDP_ADMIN_TOKEN", &c.AdminToken, true},
		{"NEMIDP_SECRET", &c.Secret, true},
		{"NEMIDP_SIGNING_KEYS", &c.SigningKeys, false},
		{"NEMIDP_METRICS_ADDR", &c.MetricsAddr, false},
		{"NEMIDP_ADMIN_ADDR", &c.AdminAddr, false},
		{"NEMIDP_PASSWORD_KDF", &c.Login.PasswordKDF, false},
		{"NEMIDP_LOG_FORMAT", &c.LogFormat, false},
	}
	for _, s := range strs {
		if v := getenv(s.name); v != "" {
			*s.dst = v
		}
		if s.secret {
			if path := getenv(s.name + "_FILE"); path != "" {
				raw, err := os.ReadFile(path)
				if err != nil {
					return &FieldError{s.name + "_FILE", err}
				}
				*s.dst = strings.TrimSpace(string(raw))
			}
		}
	}
	if v := getenv("NEMIDP_DEMO"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return &FieldError{"NEMIDP_DEMO", err}
		}
		c.Demo = &b
	}
	if v := getenv("NEMIDP_TRUSTED_PROXIES"); v != "" {
		c.TrustedProxies = strings.Split(v, ",")
	}
	if v := getenv("NEMIDP_MAX_FAILURES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return &FieldError{"NEMIDP_MAX_FAILURES", err}
		}
		c.Login.MaxFailures = n
	}
	return nil
}

// Validate checks every field and names the first wrong one.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return &FieldError{"addr (NEMIDP_ADDR)", err}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return &FieldError{"metrics_addr (NEMIDP_METRICS_ADDR)", err}
		}
	}
	if err := c.validateAdminAddr(); err != nil {
		return err
	}
	if _, err := c.AdminTokens(); err != nil {
		return err
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		return &FieldError{"log_format (NEMIDP_LOG_FORMAT)", errors.New(`want "text" (the default) or "json"`)}
	}
	u, err := url.Parse(c.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return &FieldError{"issuer (NEMIDP_ISSUER)", errors.New("want an absolute http(s) URL without query or fragment")}
	}
	if u.Scheme == "http" && !IsLoopback(u.Hostname()) {
		return &FieldError{"issuer (NEMIDP_ISSUER)", errors.New("http is only allowed for 127.0.0.1/localhost; use https")}
	}
	if c.RedisURL != "" {
		if _, err := url.Parse(c.RedisURL); err != nil {
			return &FieldError{"redis_url (NEMIDP_REDIS_URL)", errors.New("not a URL")}
		}
	}
	if c.Secret != "" && len(c.Secret) < 32 {
		return &FieldError{"secret (NEMIDP_SECRET)", errors.New("want at least 32 characters")}
	}
	if err := c.validateSecretAndDemo(u); err != nil {
		return err
	}
	if c.Login.MaxFailures < 1 || c.Login.MaxFailures > 100 {
		return &FieldError{"login.max_failures", errors.New("want 1..100")}
	}
	if c.Login.IPMaxFailures < 1 || c.Login.IPMaxFailures > 1_000_000 {
		return &FieldError{"login.ip_max_failures", errors.New("want 1..1000000")}
	}
	if c.Login.KDFParallel < 0 || c.Login.KDFQueue < 0 {
		return &FieldError{"login.kdf_parallel / login.kdf_queue", errors.New("want 0 (the default) or more")}
	}
	if _, err := c.PasswordParams(); err != nil {
		return err
	}
	if err := c.SAML.validate(); err != nil {
		return err
	}

	for name, d := range map[string]Duration{
		"login.flow_ttl": c.Login.FlowTTL, "login.session_ttl": c.Login.SessionTTL, "login.ip_window": c.Login.IPWindow,
		"tokens.code_ttl": c.Tokens.CodeTTL, "tokens.access_token_ttl": c.Tokens.AccessTokenTTL,
		"tokens.id_token_ttl": c.Tokens.IDTokenTTL, "tokens.refresh_token_ttl": c.Tokens.RefreshTokenTTL,
		"tokens.grant_max_lifetime": c.Tokens.GrantMaxLifetime,
	} {
		if d.D() <= 0 {
			return &FieldError{name, errors.New("want a positive duration")}
		}
	}
	return nil
}

// PasswordParams is the cost for new password hashes read from login.password_kdf; a wrong
// value is a FieldError naming the field.
func (c Config) PasswordParams() (password.Params, error) {
	p, err := password.ParseParams(c.Login.PasswordKDF)
	if err != nil {
		return p, &FieldError{"login.password_kdf (NEMIDP_PASSWORD_KDF)", err}
	}
	return p, nil
}

// DemoMode reports whether demo seeding and pages are on.
func (c Config) DemoMode() bool {
	if c.Demo != nil {
		return *c.Demo
	}
	return c.RedisURL == ""
}

// InsecureCookies reports whether cookies may go without the Secure flag: only for a
// loopback http issuer, where browsers would otherwise drop them.
func (c Config) InsecureCookies() bool { return IsLoopbackIssuer(c.Issuer) }

// IsLoopbackIssuer reports whether the issuer is http on a loopback host (demo, tests).
func IsLoopbackIssuer(issuer string) bool {
	u, err := url.Parse(issuer)
	return err == nil && u.Scheme == "http" && IsLoopback(u.Hostname())
}

// IsLoopback reports whether host is localhost or a loopback IP.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
