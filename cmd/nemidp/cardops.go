package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"

	"github.com/nemidp/nemidp/idp/admin"
	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/throttle"
)

// operatorCall serves one operator-API request in process, as citizenOp does: the API's own
// handler, authenticated as operator "cli" by a token made for this process only.
func operatorCall(ctx context.Context, getenv func(string) string, method, path string, body any, accept string) (*httptest.ResponseRecorder, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	srv, done, err := operatorServer(ctx, getenv)
	if err != nil {
		return nil, err
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
	req := httptest.NewRequestWithContext(ctx, method, path, rd)
	req.RemoteAddr = "" // no client address: the audit lines have ip ""
	req.Header.Set("Authorization", "Bearer "+token)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec, nil
}

// citizenAdd runs `nemidp citizen add`: POST /admin/v1/citizens in process. It prints the
// user id, activation password and the card as printed (a card sent by post: its serial).
func citizenAdd(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("citizen add", flag.ContinueOnError)
	var req issuance.Request
	fs.StringVar(&req.CPR, "cpr", "", "CPR number (DDMMYY-SSSS)")
	fs.StringVar(&req.Name, "name", "", "full name")
	fs.StringVar(&req.Kind, "kind", "oces", "oces or bank")
	fs.StringVar(&req.IssuedAt, "issued-at", "", "YYYY-MM-DD when importing an existing NemID")
	fs.StringVar(&req.Address, "address", "", "register address")
	fs.StringVar(&req.IDCheck, "id-check", "", "photo (default: card handed over), two_ids or witness (card sent by post)")
	fs.StringVar(&req.Channel, "channel", "", "borgerservice (default), bank, embassy or online (card sent by post)")
	fs.StringVar(&req.PostalAddress, "postal-address", "", "where to post the card, for a citizen with no fixed address")
	threshold := fs.Int("card-threshold", 0, "keys left at which a new card is ordered (default 20)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("citizen add: unexpected argument %q", fs.Arg(0))
	}
	if *threshold != 0 {
		req.CardThreshold = threshold
	}
	rec, err := operatorCall(ctx, getenv, http.MethodPost, "/admin/v1/citizens", req, "")
	if err != nil {
		return err
	}
	return printAnswer(rec, out)
}

// cardOp runs `nemidp card issue <user_id> --reason extra|lost [--post [--address A]]` and
// `nemidp card print <user_id> <serial> [--html]`.
func cardOp(ctx context.Context, op string, args []string, getenv func(string) string, out io.Writer) error {
	switch op {
	case "issue":
		fs := flag.NewFlagSet("card issue", flag.ContinueOnError)
		var req admin.CardOrderRequest
		fs.StringVar(&req.Reason, "reason", "", "extra (beside the others) or lost (blocks every usable card)")
		post := fs.Bool("post", false, "send the card by post (printable once) instead of handing it over")
		fs.StringVar(&req.Address, "address", "", "where to post it, when not the register address")
		uid, err := parseWithUserID(fs, args)
		if err != nil {
			return err
		}
		if *post {
			req.Deliver = "post"
		}
		rec, err := operatorCall(ctx, getenv, http.MethodPost, "/admin/v1/citizens/"+url.PathEscape(uid)+"/cards", req, "")
		if err != nil {
			return err
		}
		return printAnswer(rec, out)
	case "print":
		fs := flag.NewFlagSet("card print", flag.ContinueOnError)
		html := fs.Bool("html", false, "print the HTML print view instead of JSON")
		var pos []string
		for {
			if err := fs.Parse(args); err != nil {
				return err
			}
			if fs.NArg() == 0 {
				break
			}
			pos = append(pos, fs.Arg(0))
			args = fs.Args()[1:]
		}
		if len(pos) != 2 {
			return fmt.Errorf("card print: want a user id and a card serial, got %d arguments", len(pos))
		}
		accept := "application/json"
		if *html {
			accept = "text/html"
		}
		rec, err := operatorCall(ctx, getenv, http.MethodGet,
			"/admin/v1/citizens/"+url.PathEscape(pos[0])+"/cards/"+url.PathEscape(pos[1])+"/print", nil, accept)
		if err != nil {
			return err
		}
		if *html && rec.Code == http.StatusOK {
			_, err := out.Write(rec.Body.Bytes())
			return err
		}
		return printAnswer(rec, out)
	}
	return fmt.Errorf("unknown command \"card %s\"", op)
}
