// Package idptest serves a whole IdP in-process for the tests of the programs that talk to one
// from outside (cmd/keyapp, cmd/loadgen): on the shared test Redis under a fresh key prefix,
// deleted after the test, with the near-free test KDF. Without Redis the test skips (with CI
// set, it fails), as storetest decides.
package idptest

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/idp"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/password"
)

// Server is a running IdP.
type Server struct {
	// URL is the issuer, http://127.0.0.1:<port>.
	URL        string
	AdminToken string
	IdP        *idp.Server
}

// Start serves an IdP until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	st, prefix := storetest.NewStorePrefixed(t, storetest.Real().Client(t)) // fresh prefix, deleted after; skips without Redis
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	demo := false
	cfg := config.Default()
	cfg.Addr = ln.Addr().String()
	cfg.Issuer = "http://" + cfg.Addr
	cfg.RedisURL, cfg.RedisPrefix = storetest.RedisURL(), prefix // the address throttle's keys under it too
	cfg.AdminToken = "admin-" + randHex(16)
	cfg.Secret = "secret-" + randHex(20)
	cfg.Demo = &demo
	if err := cfg.Validate(); err != nil {
		_ = ln.Close()
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := idp.New(t.Context(), cfg, st, idp.Options{PasswordParams: password.TestParams, Logger: quiet})
	if err != nil {
		_ = ln.Close()
		t.Fatalf("idp.New: %v", err)
	}
	hs := &http.Server{Handler: srv.Handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		<-served
		_ = srv.Close()
	})
	return &Server{URL: cfg.Issuer, AdminToken: cfg.AdminToken, IdP: srv}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
