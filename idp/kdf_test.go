package idp_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/idp"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/password"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPasswordKDFFromConfig: the hasher for new passwords takes login.password_kdf, unless
// Options.PasswordParams names a cost; a cost below OWASP's minimum is warned about at start,
// naming it and OWASP's minimum, and the default is not.
func TestPasswordKDFFromConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		kdf      string
		override password.Params
		want     password.Params
		warn     bool
	}{
		{"default", password.DefaultKDF, password.Params{}, password.Params{MemoryKiB: 19456, Time: 2, Threads: 1}, false},
		{"stronger", "argon2id$m=65536,t=3,p=2", password.Params{}, password.Params{MemoryKiB: 65536, Time: 3, Threads: 2}, false},
		{"OWASP equal, more passes", "argon2id$m=7168,t=5,p=1", password.Params{}, password.Params{MemoryKiB: 7168, Time: 5, Threads: 1}, false},
		{"cheap", "argon2id$m=128,t=1,p=1", password.Params{}, password.Params{MemoryKiB: 128, Time: 1, Threads: 1}, true},
		{"options override", password.DefaultKDF, password.TestParams, password.TestParams, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := storetest.NewStore(t, storetest.Embedded().Client(t))
			cfg := config.Default()
			cfg.Issuer = "http://127.0.0.1:9"
			cfg.Secret = "test-secret-0123456789abcdef0123456789"
			cfg.AdminToken = "test-admin-token-0123456789abcdef"
			cfg.Login.PasswordKDF = tc.kdf
			cfg.Login.KDFParallel, cfg.Login.KDFQueue = 3, 5
			var logs syncBuffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			srv, err := idp.New(context.Background(), cfg, st, idp.Options{PasswordParams: tc.override, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = srv.Close() })
			got := srv.Flows.Passwords.Params()
			if got.MemoryKiB != tc.want.MemoryKiB || got.Time != tc.want.Time || got.Threads != tc.want.Threads ||
				got.Concurrency != 3 || got.Queue != 5 {
				t.Errorf("hasher params %+v, want the cost of %s with concurrency 3, queue 5", got, tc.want)
			}
			if srv.Issuer.Passwords != srv.Flows.Passwords {
				t.Error("issuance and logins hash with different hashers")
			}
			var warning string
			for line := range strings.SplitSeq(logs.String(), "\n") {
				if strings.Contains(line, "OWASP") {
					warning = line
				}
			}
			switch {
			case tc.warn && warning == "":
				t.Errorf("no warning for %s below OWASP's minimum; logs:\n%s", tc.want, logs.String())
			case tc.warn && (!strings.Contains(warning, "level=WARN") || !strings.Contains(warning, tc.want.String()) ||
				!strings.Contains(warning, "m=19456,t=2,p=1") || !strings.Contains(warning, "NEMIDP_PASSWORD_KDF")):
				t.Errorf("the warning does not name the cost, OWASP's minimum and NEMIDP_PASSWORD_KDF: %s", warning)
			case !tc.warn && warning != "":
				t.Errorf("a warning for %s, at or above OWASP's minimum: %s", tc.want, warning)
			}
		})
	}
}

// TestPasswordKDFRefusedByNew: a caller that assembles the server from a configuration it did
// not validate still gets the field named.
func TestPasswordKDFRefusedByNew(t *testing.T) {
	t.Parallel()
	st := storetest.NewStore(t, storetest.Embedded().Client(t))
	cfg := config.Default()
	cfg.Issuer = "http://127.0.0.1:9"
	cfg.Secret = "test-secret-0123456789abcdef0123456789"
	cfg.Login.PasswordKDF = "argon2id$m=64,t=1"
	_, err := idp.New(context.Background(), cfg, st, idp.Options{})
	if err == nil || !strings.Contains(err.Error(), "login.password_kdf (NEMIDP_PASSWORD_KDF)") {
		t.Fatalf("err = %v, want the field named", err)
	}
}
