package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"

	"github.com/nemidp/nemidp/idp/admin"
	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/throttle"
)

// cliOperator names the CLI in the audit trail and in a citizen's block events.
const cliOperator = "cli"

// citizenOps are the `nemidp citizen <op> <user_id>` subcommands that run an operator-API
// call in process: the method and the path under /admin/v1/citizens/{user_id}.
var citizenOps = map[string]struct{ method, suffix string }{
	"show":               {http.MethodGet, ""},
	"block":              {http.MethodPost, "/block"},
	"unblock":            {http.MethodPost, "/unblock"},
	"renew":              {http.MethodPost, "/renew"},
	"temporary-password": {http.MethodPost, "/temporary-password"},
}

// APIError is an operator-API refusal of a CLI call: its status, code and message.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// citizenOp runs `nemidp citizen <op> <user_id> [--reason R]`: the operator API's own handler
// serves one request made here, so the CLI has exactly the API's rules and answers. The
// request is authenticated by a token made for this process only, labelled "cli", so the
// audit trail and the citizen's events name the CLI. The answer is printed as indented JSON;
// a refusal is an *APIError.
func citizenOp(ctx context.Context, op string, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("citizen "+op, flag.ContinueOnError)
	reason := ""
	if op == "block" {
		fs.StringVar(&reason, "reason", "", "misuse, lost_card or operator")
	}
	uid, err := parseWithUserID(fs, args)
	if err != nil {
		return err
	}
	var body io.Reader
	if op == "block" {
		raw, err := json.Marshal(admin.BlockRequest{Reason: reason})
		if err != nil {
			return err
		}
		body = bytes.NewReader(raw)
	}
	srv, done, err := operatorServer(ctx, getenv)
	if err != nil {
		return err
	}
	defer done()
	token := rand.Text()
	var auditOut io.Writer = os.Stderr
	if logOut != nil {
		auditOut = logOut
	}
	api := &admin.API{Store: srv.Store, Issuer: srv.Issuer, Token: cliOperator + ":" + token,
		SigningAlgs: srv.Keys.Algorithms(), Audit: audit.New(auditOut, throttle.Proxies{})}
	mux := http.NewServeMux()
	api.Register(mux)

	o := citizenOps[op]
	req := httptest.NewRequestWithContext(ctx, o.method, "/admin/v1/citizens/"+url.PathEscape(uid)+o.suffix, body)
	req.RemoteAddr = "" // no client address: the audit lines have ip ""
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return printAnswer(rec, out)
}

// parseWithUserID parses fs from args holding one user id before, between or after the
// flags.
func parseWithUserID(fs *flag.FlagSet, args []string) (string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 || pos[0] == "" {
		return "", fmt.Errorf("%s: want one user id, got %d arguments", fs.Name(), len(pos))
	}
	return pos[0], nil
}

// printAnswer prints a 2xx answer's JSON indented, or gives a refusal as an *APIError.
func printAnswer(rec *httptest.ResponseRecorder, out io.Writer) error {
	raw := rec.Body.Bytes()
	if rec.Code < 200 || rec.Code > 299 {
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(raw, &e); err != nil || e.Error.Code == "" {
			return &APIError{Status: rec.Code, Code: "internal", Message: strings.TrimSpace(string(raw))}
		}
		return &APIError{Status: rec.Code, Code: e.Error.Code, Message: e.Error.Message}
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return errors.New("the operator API answered no JSON")
	}
	buf.WriteByte('\n')
	_, err := out.Write(buf.Bytes())
	return err
}
