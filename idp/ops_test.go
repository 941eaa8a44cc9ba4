package idp_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/idp"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/password"
)

// TestNewRefusesRedisWithoutSecret: a caller that assembles the server from a configuration
// it did not validate still gets no generated secret on Redis outside demo mode.
func TestNewRefusesRedisWithoutSecret(t *testing.T) {
	t.Parallel()
	st := storetest.NewStore(t, storetest.Real().Client(t))
	cfg := config.Default()
	cfg.Issuer = "http://127.0.0.1:9"
	cfg.RedisURL = storetest.RedisURL()
	off := false
	cfg.Demo = &off
	_, err := idp.New(context.Background(), cfg, st, idp.Options{PasswordParams: password.TestParams})
	if !errors.Is(err, config.ErrSecretRequired) {
		t.Fatalf("err = %v, want ErrSecretRequired", err)
	}
}
