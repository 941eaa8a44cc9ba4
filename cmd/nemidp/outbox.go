package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/nemidp/nemidp/idp/admin"
)

// outboxCmd runs `nemidp outbox [--after ID] [--limit N]`: the operator API's
// GET /admin/v1/outbox served in process (as citizenOp does), so the CLI reads the outbox
// with exactly the API's rules (after exclusive, limit 1..1000, default 100) and answers. The
// flags go to the API as typed, so a malformed one is the API's invalid_request. A read
// writes no audit line, so none is set up.
func outboxCmd(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("outbox", flag.ContinueOnError)
	fs.String("after", "", "read the entries after this event id (an entry's id, or the answer's next)")
	fs.String("limit", "", "at most this many entries (default 100, at most 1000)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("outbox: unexpected arguments %q", fs.Args())
	}
	q := url.Values{}
	fs.Visit(func(f *flag.Flag) { q.Set(f.Name, f.Value.String()) })

	srv, done, err := operatorServer(ctx, getenv)
	if err != nil {
		return err
	}
	defer done()
	token := rand.Text()
	api := &admin.API{Store: srv.Store, Issuer: srv.Issuer, Token: cliOperator + ":" + token, SigningAlgs: srv.Keys.Algorithms()}
	mux := http.NewServeMux()
	api.Register(mux)
	target := "/admin/v1/outbox"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	req.RemoteAddr = ""
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return printAnswer(rec, out)
}
