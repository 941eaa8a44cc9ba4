// Command loadgen drives load against a running nemidp on this machine (loopback only): it
// registers its own client and citizens through the operator API, then runs complete logins,
// SSO re-logins, refresh grants, userinfo calls or key-app approvals from -c workers for -d or
// -n operations, and prints ops/s, per-step latency percentiles, errors by kind, and — given
// --pid and --redis — the server's CPU and Redis commands per operation. See README.md
// "Load driver".
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
