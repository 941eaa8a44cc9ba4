// Command keyapp is a NemID key app (nøgleapp) in a terminal: it activates a device key at an
// IdP with the citizen's password and a code-card key, lists the login requests waiting for
// the citizen, and approves (choosing the binding code the browser shows) or denies them. It
// speaks the key-app API of DESIGN.md §5 through idp/keyapp/deviceclient; the device's id and
// private key live in a state file only its owner may read. See README.md "Key app (nøgleapp)
// in a terminal".
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := osApp().Run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
