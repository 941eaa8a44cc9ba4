package main

import (
	"context"
	"os"

	"golang.org/x/term"
)

func stdinIsTerminal() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

// readSecret reads a password from the terminal without echo. When ctx ends first (Ctrl-C)
// the terminal's echo is turned back on before returning.
func readSecret(ctx context.Context) (string, error) {
	fd := int(os.Stdin.Fd())
	old, err := term.GetState(fd)
	if err != nil {
		return "", err
	}
	ch := make(chan lineResult, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		ch <- lineResult{string(b), err}
	}()
	select {
	case r := <-ch:
		return r.line, r.err
	case <-ctx.Done():
		_ = term.Restore(fd, old)
		return "", ctx.Err()
	}
}
