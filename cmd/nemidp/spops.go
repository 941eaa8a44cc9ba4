package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/nemidp/nemidp/idp/admin"
	"github.com/nemidp/nemidp/idp/saml"
)

// spOp runs `nemidp sp add|list|show|remove`: the operator API's service-provider handlers
// in process (operatorCall), so the CLI registers exactly as POST /admin/v1/service-providers.
func spOp(ctx context.Context, op string, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("sp "+op, flag.ContinueOnError)
	var req admin.ServiceProviderRequest
	replace := false
	if op == "add" {
		fs.StringVar(&req.Name, "name", "", "display name (default: the entity id)")
		fs.BoolVar(&req.RequiresOCES, "requires-oces", false, "refuse bank-only NemIDs")
		fs.BoolVar(&req.AllowOnBehalfOf, "allow-on-behalf-of", false, "offer acting for a ward (OIO-BPP privilegesIntermediate)")
		fs.BoolVar(&req.CPR, "cpr", false, "release the CPR number attribute")
		fs.StringVar(&req.Dialect, "dialect", "", "attribute names: default (DESIGN.md §4) or another dialect")
		fs.StringVar(&req.Subject, "subject", "", "NameID: pairwise (default, per SP) or global")
		fs.BoolVar(&req.UnsignedRequests, "unsigned-requests", false, "accept unsigned AuthnRequests from this SP")
		fs.BoolVar(&replace, "replace", false, "replace a registration of the same entity id")
	}
	pos, err := parsePositional(fs, args)
	if err != nil {
		return err
	}
	want := map[string]int{"add": 1, "list": 0, "show": 1, "remove": 1}[op]
	if len(pos) != want {
		what := map[string]string{"add": "a metadata XML file", "show": "an entity id", "remove": "an entity id"}[op]
		if want == 0 {
			return fmt.Errorf("sp %s: takes no arguments", op)
		}
		return fmt.Errorf("sp %s: want %s, got %d arguments", op, what, len(pos))
	}
	method, path, body := http.MethodGet, "/admin/v1/service-providers", any(nil)
	switch op {
	case "add":
		raw, err := readFileCapped(pos[0], saml.MaxMetadataSize)
		if err != nil {
			return fmt.Errorf("sp add: %w", err)
		}
		req.Metadata = string(raw)
		method, body = http.MethodPost, req
		if replace {
			path += "?replace=true"
		}
	case "show":
		path += "/" + url.PathEscape(pos[0])
	case "remove":
		method, path = http.MethodDelete, path+"/"+url.PathEscape(pos[0])
	}
	res, err := operatorCall(ctx, getenv, method, path, body, "")
	if err != nil {
		return err
	}
	return printAnswer(res, out)
}

// parsePositional parses fs from args with the positional arguments before, between or
// after the flags, and returns them.
func parsePositional(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// readFileCapped reads a file of at most max bytes (a larger one is refused unread).
func readFileCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return raw, nil
}
