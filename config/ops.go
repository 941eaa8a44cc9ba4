package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
)

// ErrSecretRequired is why a server on Redis, outside demo mode, does not start without
// NEMIDP_SECRET: a generated secret would have to be kept in Redis, beside the card-key hashes
// it keys, and one dump of that Redis would then recover every card (a key has only 10⁶
// values, so each HMAC falls to 10⁶ guesses once its key is known).
var ErrSecretRequired = errors.New("with NEMIDP_REDIS_URL and not in demo mode, set NEMIDP_SECRET (or NEMIDP_SECRET_FILE) " +
	"to at least 32 random characters, the same on every instance: a secret generated and kept in Redis beside the " +
	"card-key hashes it keys would let one Redis dump recover every card (10⁶ guesses per key hash)")

// validateAdminAddr checks admin_addr: host:port, and not an address another listener has.
func (c Config) validateAdminAddr() error {
	if c.AdminAddr == "" {
		return nil
	}
	const field = "admin_addr (NEMIDP_ADMIN_ADDR)"
	if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
		return &FieldError{field, err}
	}
	if c.AdminAddr == c.Addr || c.AdminAddr == c.MetricsAddr {
		return &FieldError{field, fmt.Errorf("%s is already the address of another listener (addr or metrics_addr)", c.AdminAddr)}
	}
	return nil
}

// validateSecretAndDemo refuses a Redis deployment without a secret, and demo mode (a seeded
// citizen whose password and card anyone can read at /demo/card) on an issuer off loopback.
// u is the parsed, already validated issuer.
func (c Config) validateSecretAndDemo(u *url.URL) error {
	if c.Secret == "" && c.RedisURL != "" && !c.DemoMode() {
		msg := ErrSecretRequired
		if c.RedisPrefix != "" {
			msg = fmt.Errorf("%w; if an earlier nemidp generated one, it is in Redis under %smeta:secret: "+
				"move that value into NEMIDP_SECRET (cards and sealed signing keys stay valid) and delete the key", ErrSecretRequired, c.RedisPrefix)
		}
		return &FieldError{"secret (NEMIDP_SECRET)", msg}
	}
	if c.DemoMode() && !IsLoopback(u.Hostname()) {
		return &FieldError{"demo (NEMIDP_DEMO)", fmt.Errorf("demo mode publishes a citizen's password and code card, so it serves "+
			"only on a loopback issuer (host 127.0.0.1, localhost or [::1]), not %q; set NEMIDP_DEMO=false, "+
			"or NEMIDP_REDIS_URL and NEMIDP_SECRET for a real deployment", u.Host)}
	}
	return nil
}
