package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoNeedsLoopbackIssuer: demo mode (seeded citizen with a published password and card)
// serves only on a loopback issuer.
func TestDemoNeedsLoopbackIssuer(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name    string
		env     map[string]string
		wantErr bool
	}{
		{"default demo on a public issuer", map[string]string{"NEMIDP_ISSUER": "https://login.example.dk"}, true},
		{"demo on with redis, public issuer", map[string]string{"NEMIDP_DEMO": "true", "NEMIDP_REDIS_URL": "redis://r:6379/0", "NEMIDP_ISSUER": "https://login.example.dk"}, true},
		{"demo on a public IP", map[string]string{"NEMIDP_ISSUER": "https://192.0.2.10:8443"}, true},
		{"demo on a name that merely starts like localhost", map[string]string{"NEMIDP_ISSUER": "https://localhost.example.dk"}, true},
		{"default demo on 127.0.0.1", map[string]string{}, false},
		{"demo on https localhost", map[string]string{"NEMIDP_ISSUER": "https://localhost:8443"}, false},
		{"demo on http [::1]", map[string]string{"NEMIDP_ADDR": "[::1]:8080"}, false},
		{"demo off on a public issuer", map[string]string{"NEMIDP_DEMO": "false", "NEMIDP_ISSUER": "https://login.example.dk"}, false},
		{"redis (no demo) on a public issuer", map[string]string{"NEMIDP_REDIS_URL": "redis://r:6379/0", "NEMIDP_SECRET": secret, "NEMIDP_ISSUER": "https://login.example.dk"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(env(tc.env))
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "demo (NEMIDP_DEMO)" || !strings.Contains(err.Error(), "loopback") {
				t.Fatalf("err = %v, want a FieldError on demo (NEMIDP_DEMO) saying why", err)
			}
		})
	}
}

// TestSecretRequiredWithRedis: with Redis and not in demo mode there is no generated secret.
func TestSecretRequiredWithRedis(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		wantErr bool
	}{
		{"redis, no secret", map[string]string{"NEMIDP_REDIS_URL": "redis://r:6379/0"}, true},
		{"redis, demo off explicitly, no secret", map[string]string{"NEMIDP_REDIS_URL": "redis://r:6379/0", "NEMIDP_DEMO": "false"}, true},
		{"redis, secret", map[string]string{"NEMIDP_REDIS_URL": "redis://r:6379/0", "NEMIDP_SECRET": "0123456789abcdef0123456789abcdef"}, false},
		{"redis, demo mode, no secret", map[string]string{"NEMIDP_REDIS_URL": "redis://r:6379/0", "NEMIDP_DEMO": "true"}, false},
		{"embedded store, no secret", map[string]string{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(env(tc.env))
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.Contains(fe.Field, "secret") || !errors.Is(err, ErrSecretRequired) {
				t.Fatalf("err = %v, want a FieldError on the secret wrapping ErrSecretRequired", err)
			}
			for _, want := range []string{"NEMIDP_SECRET", "NEMIDP_SECRET_FILE", "32", "Redis dump"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestAdminAddr: the operator API's own listener, from YAML or the environment, validated.
func TestAdminAddr(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("admin_addr: 127.0.0.1:9001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, want, errField string
		env                  map[string]string
	}{
		{"unset", "", "", map[string]string{}},
		{"yaml", "127.0.0.1:9001", "", map[string]string{"NEMIDP_CONFIG": path}},
		{"env overrides yaml", "127.0.0.1:9002", "", map[string]string{"NEMIDP_CONFIG": path, "NEMIDP_ADMIN_ADDR": "127.0.0.1:9002"}},
		{"not host:port", "", "admin_addr (NEMIDP_ADMIN_ADDR)", map[string]string{"NEMIDP_ADMIN_ADDR": "admin"}},
		{"same as addr", "", "admin_addr (NEMIDP_ADMIN_ADDR)", map[string]string{"NEMIDP_ADMIN_ADDR": "127.0.0.1:8080"}},
		{"same as metrics", "", "admin_addr (NEMIDP_ADMIN_ADDR)", map[string]string{"NEMIDP_ADMIN_ADDR": "127.0.0.1:9090", "NEMIDP_METRICS_ADDR": "127.0.0.1:9090"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(env(tc.env))
			if tc.errField != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != tc.errField {
					t.Fatalf("err = %v, want a FieldError on %s", err, tc.errField)
				}
				return
			}
			if err != nil || c.AdminAddr != tc.want {
				t.Fatalf("admin addr %q, err %v; want %q", c.AdminAddr, err, tc.want)
			}
		})
	}
}
