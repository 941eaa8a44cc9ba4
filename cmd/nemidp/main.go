// Command nemidp is the NemID identity-provider gateway: `nemidp serve` runs it; the other
// subcommands are operator tools that work directly on the configured Redis.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/idp"
	"github.com/nemidp/nemidp/idp/admin"
	"github.com/nemidp/nemidp/idp/demo"
	"github.com/nemidp/nemidp/idp/logging"
	"github.com/nemidp/nemidp/idp/saml"
	"github.com/nemidp/nemidp/idp/store"
)

const usage = `nemidp — NemID identity-provider gateway

  nemidp serve                          run the IdP (embedded store and demo data unless NEMIDP_REDIS_URL is set)
  nemidp citizen add --cpr C --name N [--kind oces|bank] [--issued-at YYYY-MM-DD] [--address A]
                    [--id-check photo|two_ids|witness] [--channel borgerservice|bank|embassy|online]
                    [--postal-address A] [--card-threshold N]
                                        issue a NemID; prints user id, activation password and card (once;
                                        without a photo ID or online the card is posted: its serial only)
  nemidp citizen show <user_id>         the citizen as GET /admin/v1/citizens/{user_id} answers it
  nemidp citizen block <user_id> --reason misuse|lost_card|operator
                                        block the NemID (ends its SSO sessions and token grants)
  nemidp citizen unblock <user_id>      lift a block for misuse, a lost card or by an operator
  nemidp citizen renew <user_id>        renew the NemID
  nemidp citizen temporary-password <user_id>
                                        set a temporary password; prints it (once)
                                        (these run the operator API's handlers in process, as
                                        operator "cli"; a refusal exits 1 with its code and message)
  nemidp outbox [--after ID] [--limit N]
                                        the outbox (letters to send) as GET /admin/v1/outbox answers it
  nemidp card issue <user_id> --reason extra|lost [--post [--address A]]
                                        a new card, as printed (posted: its serial, printable once);
                                        lost blocks every usable card of the citizen at once
  nemidp card print <user_id> <serial> [--html]
                                        a posted card as printed, once (JSON, or the HTML print view)
  nemidp client add --id ID --redirect-uri URI [--redirect-uri …] [--name N] [--public] [--secret S]
                    [--scope S …] [--requires-oces] [--id-token-alg ES256|RS256] [--no-pkce]
                    [--dialect default|broker] [--sector-identifier SECTOR]
                                        register an OIDC relying party
  nemidp sp add <metadata.xml> [--name N] [--requires-oces] [--allow-on-behalf-of] [--cpr]
                [--dialect D] [--subject pairwise|global] [--unsigned-requests] [--replace]
                                        register a SAML service provider (as POST /admin/v1/service-providers)
  nemidp sp list | sp show <entity_id> | sp remove <entity_id>
                                        the registered SAML service providers

Configuration: NEMIDP_CONFIG (YAML) and NEMIDP_* environment variables; see README.md.
`

// logOut is the process's buffered stderr log (logging.Writer: flushed every
// logging.FlushInterval, warnings and errors at once); serve applies log_format to it. Nil in
// tests, which keep their own default logger.
var logOut *logging.Writer

func main() {
	logOut = logging.NewWriter(os.Stderr, logging.FlushInterval, logging.BufferSize)
	defer logOut.Close() // also while a panic of this goroutine unwinds
	logger, _ := logging.New(logOut, "text", slog.LevelInfo)
	slog.SetDefault(logger)
	// zitadel/oidc starts an OpenTelemetry span in most of its calls; nemidp exports no traces.
	idp.DisableTracing()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	// Every buffered line is out before the error and the exit (os.Exit runs no defers).
	_ = logOut.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nemidp:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(out, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, getenv, out)
	case "citizen":
		if len(args) > 1 && args[1] == "add" {
			return citizenAdd(ctx, args[2:], getenv, out)
		}
		if len(args) > 1 {
			if _, ok := citizenOps[args[1]]; ok {
				return citizenOp(ctx, args[1], args[2:], getenv, out)
			}
		}
	case "outbox":
		return outboxCmd(ctx, args[1:], getenv, out)
	case "card":
		if len(args) > 1 && (args[1] == "issue" || args[1] == "print") {
			return cardOp(ctx, args[1], args[2:], getenv, out)
		}
	case "client":
		if len(args) > 1 && args[1] == "add" {
			return clientAdd(ctx, args[2:], getenv, out)
		}
	case "sp":
		if len(args) > 1 && (args[1] == "add" || args[1] == "list" || args[1] == "show" || args[1] == "remove") {
			return spOp(ctx, args[1], args[2:], getenv, out)
		}
	case "help", "-h", "--help":
		fmt.Fprint(out, usage)
		return nil
	}
	fmt.Fprint(out, usage)
	return fmt.Errorf("unknown command %q", strings.Join(args, " "))
}

// serve runs the IdP until ctx ends (SIGINT/SIGTERM), then drains connections.
func serve(ctx context.Context, getenv func(string) string, out io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	if logOut != nil && cfg.LogFormat != "text" {
		logger, err := logging.New(logOut, cfg.LogFormat, slog.LevelInfo)
		if err != nil {
			return err
		}
		slog.SetDefault(logger)
	}

	redisURL := cfg.RedisURL
	if redisURL == "" {
		emb, err := store.StartEmbedded()
		if err != nil {
			return err
		}
		defer emb.Close()
		redisURL = emb.URL()
		slog.Warn("no NEMIDP_REDIS_URL: using the embedded in-process store; every citizen, session and generated signing key vanishes on exit")
	}
	st, err := store.Open(redisURL, cfg.RedisPrefix)
	if err != nil {
		return err
	}
	defer st.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = st.Ping(pctx)
	cancel()
	if err != nil {
		return fmt.Errorf("redis at NEMIDP_REDIS_URL does not answer: %w", err)
	}
	if cfg.RedisURL != "" {
		checkEvictionPolicy(ctx, st, slog.Default())
	}
	// crewjam/saml's request windows are process-wide: set once, before anything is served.
	saml.SetWindows(cfg.SAML.ClockSkew.D(), cfg.SAML.RequestValidity.D())
	opts := idp.Options{}
	if logOut != nil {
		// The audit trail goes to the log output as JSON lines whatever log_format, each
		// written through at once (audit.New flushes a logging.Writer after every line).
		opts.AuditOut = logOut
	}
	srv, err := idp.New(ctx, cfg, st, opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	// Relays the outbox events a write left unrelayed (it died, or Redis failed, in between),
	// at once and every 10 s; stopped (a sweep under way finished) before the store closes.
	defer srv.Store.StartOutboxSweeper(store.OutboxSweepInterval, slog.Default())()
	var info *demo.Info
	if cfg.DemoMode() {
		seeder := &demo.Seeder{Store: srv.Store, Issuer: srv.Issuer, Base: cfg.Issuer}
		if info, err = seeder.Seed(ctx); err != nil {
			return err
		}
		seeder.Register(srv.Mux)
	}

	hs := &http.Server{Handler: srv.Handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 90 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 32 << 10}
	listeners := []listener{{"addr (NEMIDP_ADDR)", cfg.Addr, hs}}
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.MetricsHandler)
		listeners = append(listeners, listener{"metrics_addr (NEMIDP_METRICS_ADDR)", cfg.MetricsAddr,
			&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}})
	}
	if srv.AdminHandler != nil {
		listeners = append(listeners, listener{"admin_addr (NEMIDP_ADMIN_ADDR)", cfg.AdminAddr,
			&http.Server{Handler: srv.AdminHandler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
				WriteTimeout: 90 * time.Second, MaxHeaderBytes: 32 << 10}})
	}
	// Bind every address before serving any, so a taken port fails the start, not later.
	lns := make([]net.Listener, 0, len(listeners))
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for _, l := range listeners {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("listen on %s for %s: %w", l.addr, l.field, err)
		}
		lns = append(lns, ln)
	}
	errs := make(chan error, len(listeners))
	for i, l := range listeners {
		go func() { errs <- l.srv.Serve(lns[i]) }()
	}
	banner(out, cfg, info)

	select {
	case <-ctx.Done():
	case err := <-errs:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	slog.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	for _, l := range listeners[1:] {
		_ = l.srv.Shutdown(sctx)
	}
	return hs.Shutdown(sctx)
}

// listener is one address serve listens on, named by its configuration field.
type listener struct {
	field, addr string
	srv         *http.Server
}

// checkEvictionPolicy warns when Redis may evict keys: citizens and cards are records without
// a TTL, and an allkeys-* policy drops them when a flood of login flows fills the memory
// (volatile-* drops live flows, sessions and codes instead). A Redis that refuses CONFIG
// (managed services) is noted and accepted.
func checkEvictionPolicy(ctx context.Context, st *store.Store, log *slog.Logger) {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	p, err := st.MaxmemoryPolicy(cctx)
	switch {
	case err != nil:
		log.Info("could not read Redis's maxmemory-policy (managed Redis?); make sure it is noeviction", "err", err)
	case p != "noeviction":
		log.Warn("Redis's maxmemory-policy is not noeviction: when memory fills it evicts keys (allkeys-*: citizens and cards; volatile-*: logins in progress and sessions); set maxmemory-policy noeviction",
			"maxmemory-policy", p)
	default:
		log.Debug("Redis's maxmemory-policy is noeviction", "maxmemory-policy", p)
	}
}

func banner(out io.Writer, cfg config.Config, info *demo.Info) {
	fmt.Fprintf(out, "nemidp serving at %s\n", cfg.Issuer)
	fmt.Fprintf(out, "  discovery: %s/.well-known/openid-configuration\n", cfg.Issuer)
	if info != nil {
		fmt.Fprintf(out, "  demo relying party: %s\n", info.RPURL)
		fmt.Fprintf(out, "  demo citizen: user ID %s, password %s\n", info.UserID, info.Password)
		fmt.Fprintf(out, "  demo citizen's code card: %s\n", info.CardURL)
	}
	if cfg.AdminToken == "" {
		fmt.Fprintln(out, "  operator API disabled: set NEMIDP_ADMIN_TOKEN")
	} else if cfg.AdminAddr != "" {
		fmt.Fprintf(out, "  operator API: http://%s/admin/v1 only\n", cfg.AdminAddr)
	}
	if cfg.MetricsAddr != "" {
		fmt.Fprintf(out, "  metrics: http://%s/metrics only\n", cfg.MetricsAddr)
	}
}

// operatorServer opens the configured Redis for a CLI subcommand.
func operatorServer(ctx context.Context, getenv func(string) string) (*idp.Server, func(), error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return nil, nil, err
	}
	if cfg.RedisURL == "" {
		return nil, nil, errors.New("set NEMIDP_REDIS_URL: the embedded store lives inside a running `nemidp serve`; use its operator API (/admin/v1) instead")
	}
	st, err := store.Open(cfg.RedisURL, cfg.RedisPrefix)
	if err != nil {
		return nil, nil, err
	}
	srv, err := idp.New(ctx, cfg, st, idp.Options{})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return srv, func() { srv.Close(); st.Close() }, nil
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func clientAdd(ctx context.Context, args []string, getenv func(string) string, out io.Writer) error {
	fs := flag.NewFlagSet("client add", flag.ContinueOnError)
	var req admin.ClientRequest
	var uris, scopes multi
	fs.StringVar(&req.ClientID, "id", "", "client_id")
	fs.StringVar(&req.Name, "name", "", "display name")
	fs.Var(&uris, "redirect-uri", "redirect URI (repeatable)")
	fs.Var(&scopes, "scope", "allowed scope (repeatable; default openid profile)")
	fs.BoolVar(&req.Public, "public", false, "public client (native/SPA; PKCE required, no secret)")
	fs.StringVar(&req.Secret, "secret", "", "client secret (generated if omitted for confidential clients)")
	fs.BoolVar(&req.RequiresOCES, "requires-oces", false, "refuse bank-only NemIDs")
	noPKCE := fs.Bool("no-pkce", false, "let this confidential client omit PKCE (require_pkce false; refused for public clients)")
	fs.StringVar(&req.Dialect, "dialect", "", "claim names: default (DESIGN.md §4) or broker")
	fs.StringVar(&req.SectorIdentifier, "sector-identifier", "", "share one pairwise sub per citizen with the clients registered with the same sector identifier")
	fs.StringVar(&req.IDTokenSignedResponseAlg, "id-token-alg", "", "ID-token algorithm, ES256 (default) or RS256; a loaded key must sign it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	req.RedirectURIs, req.Scopes = uris, scopes
	if *noPKCE {
		req.RequirePKCE = new(false)
	}
	srv, done, err := operatorServer(ctx, getenv)
	if err != nil {
		return err
	}
	defer done()
	c, generated, err := admin.BuildClient(req, srv.Keys.Algorithms())
	if err != nil {
		return err
	}
	if err := srv.Store.CreateClient(ctx, c); err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(admin.ResponseOf(c, generated))
}
