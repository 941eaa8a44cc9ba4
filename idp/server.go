// Package idp wires nemidp's HTTP server: the OIDC front end, the login pages, the operator
// API, health and metrics, behind one middleware chain (request ids, security headers, panic
// recovery, request metrics).
package idp

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/admin"
	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/claims"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/keyapp"
	"github.com/nemidp/nemidp/idp/oidc"
	"github.com/nemidp/nemidp/idp/saml"
	"github.com/nemidp/nemidp/idp/selfservice"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/throttle"
	"github.com/nemidp/nemidp/idp/web"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
	"github.com/nemidp/nemidp/keys/secret"
	"github.com/nemidp/nemidp/keys/signing"
)

// Server is the assembled IdP.
type Server struct {
	Config   config.Config
	Store    *store.Store
	Flows    *flows.Engine
	Issuer   *issuance.Issuer
	Storage  *oidc.Storage
	Provider *op.Provider
	Web      *web.Handler
	Keys     *signing.Set
	Registry *prometheus.Registry
	// Handler serves everything (and /metrics unless a separate metrics address is set).
	Handler http.Handler
	// MetricsHandler serves /metrics.
	MetricsHandler http.Handler
	// AdminHandler serves the operator API when it has its own listener (Config.AdminAddr);
	// nil otherwise (Handler serves it).
	AdminHandler http.Handler
	// Mux lets callers (demo mode) add routes before serving.
	Mux *http.ServeMux
	// Waiters wakes key-app long-polls; Close ends its subscription.
	Waiters *store.Waiters
	// SelfService serves /selvbetjening; its LifeCycle (cards, renewal) is nil until wired,
	// and the pages that need it answer 503 "not available".
	SelfService *selfservice.Handler
	// SAML is the SAML IdP (/saml/…).
	SAML *saml.Handler
}

// Close ends what the server runs beside its handlers (the long-poll subscription); the
// store is the caller's to close.
func (s *Server) Close() error { return s.Waiters.Close() }

// Options are what the caller decides beyond the configuration.
type Options struct {
	// PasswordParams overrides the KDF cost of login.password_kdf when any of its cost fields
	// is set (tests use password.TestParams); its Concurrency and Queue, when set, override
	// login.kdf_parallel and login.kdf_queue.
	PasswordParams password.Params
	// Logger receives warnings during assembly.
	Logger *slog.Logger
	// AuditOut receives the audit trail, one JSON line per event whatever the log format
	// (flushed at once when it has a Flush method); nil is os.Stderr.
	AuditOut io.Writer
}

// New assembles the server on an open store.
func New(ctx context.Context, cfg config.Config, st *store.Store, opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	sec, err := serverSecret(ctx, cfg, st, log)
	if err != nil {
		return nil, err
	}
	st = st.WithPepper(sec.Derive("index"))
	// Before anything that would need closing on a failed start.
	if err := admin.RegisterServiceProviders(ctx, st, cfg.SAML.ServiceProviders, log); err != nil {
		return nil, err
	}

	var keys *signing.Set
	if cfg.SigningKeys != "" {
		if keys, err = signing.LoadDir(cfg.SigningKeys); err != nil {
			return nil, err
		}
	} else {
		var created bool
		if keys, created, err = signing.Shared(ctx, st, sec); err != nil {
			return nil, err
		}
		if created && cfg.RedisURL != "" {
			log.Warn("generated a token-signing key and kept it in Redis, sealed by the server secret; set NEMIDP_SIGNING_KEYS to manage keys yourself")
		}
	}

	cards, err := codecard.NewHasher(sec.Derive("codecard"))
	if err != nil {
		return nil, err
	}
	pp := opts.PasswordParams
	if pp.MemoryKiB == 0 && pp.Time == 0 && pp.Threads == 0 {
		cost, err := cfg.PasswordParams()
		if err != nil {
			return nil, err
		}
		pp.MemoryKiB, pp.Time, pp.Threads = cost.MemoryKiB, cost.Time, cost.Threads
	}
	if password.BelowOWASP(pp) {
		log.Warn("the password KDF for new hashes is below OWASP's minimum; set NEMIDP_PASSWORD_KDF to at least "+password.DefaultKDF+" outside tests and measurements",
			"kdf", pp.String(), "owasp_minimum", password.OWASPMinimum)
	}
	if pp.Concurrency == 0 {
		pp.Concurrency = cfg.Login.KDFParallel
	}
	if pp.Queue == 0 {
		pp.Queue = cfg.Login.KDFQueue
	}
	proxies, err := throttle.ParseProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, &config.FieldError{Field: "trusted_proxies (NEMIDP_TRUSTED_PROXIES)", Err: err}
	}
	auditOut := opts.AuditOut
	if auditOut == nil {
		auditOut = os.Stderr
	}
	auditLog := audit.New(auditOut, proxies)
	// Under the store's own prefix (the one it was opened with), so a store and its throttle
	// never part ways.
	failures := throttle.New(st.Redis(), st.Prefix()+"fail:ip:", cfg.Login.IPMaxFailures, cfg.Login.IPWindow.D())
	pws := password.NewHasher(pp)
	reg := prometheus.NewRegistry()
	waiters := st.NewWaiters()
	kaMetrics := keyapp.NewMetrics(reg)
	engine := &flows.Engine{
		Store: st, Passwords: pws, Cards: cards, MaxFailures: cfg.Login.MaxFailures,
		FlowTTL: cfg.Login.FlowTTL.D(), SessionTTL: cfg.Login.SessionTTL.D(), Grace: time.Hour,
		Policy: saml.Policy(selfservice.Policy(clientPolicy{st}), st), Waiters: waiters, OnKeyApp: kaMetrics.Event,
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nemidp_kdf_waiting",
			Help: "Password hashes waiting for a KDF slot (past login.kdf_queue, answers are shed with 503)."},
			func() float64 { return float64(pws.Waiting()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "nemidp_longpolls_waiting",
			Help: "Key-app long-polls (logins and devices) waiting on this instance."},
			func() float64 { return float64(waiters.Waiting()) }))

	s := &Server{Config: cfg, Store: st, Flows: engine, Keys: keys, Registry: reg, Waiters: waiters,
		Issuer: &issuance.Issuer{Store: st, Passwords: pws, Cards: cards, Secret: sec, MaxFailures: cfg.Login.MaxFailures, Audit: auditLog}}
	engine.CardOrders = s.Issuer // the new card a key use at the threshold orders
	s.Storage = &oidc.Storage{
		Store: st, Flows: engine, Keys: keys,
		Lifetimes: oidc.Lifetimes{Code: cfg.Tokens.CodeTTL.D(), AccessToken: cfg.Tokens.AccessTokenTTL.D(),
			IDToken: cfg.Tokens.IDTokenTTL.D(), RefreshToken: cfg.Tokens.RefreshTokenTTL.D(),
			Grant: cfg.Tokens.GrantMaxLifetime.D()},
	}
	var cryptoKey [32]byte
	copy(cryptoKey[:], sec.Derive("oidc-access-tokens"))
	opConfig := &op.Config{
		CryptoKey:                cryptoKey,
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
		SupportedUILocales:       []language.Tag{language.Danish, language.English},
		SupportedScopes:          append(slices.Clone(claims.ClaimScopes), zoidc.ScopeOfflineAccess),
		DefaultLogoutRedirectURI: oidc.LoggedOutPath,
		// The protocol's own claims, then every dialect's (DESIGN.md §4, idp/claims).
		SupportedClaims: append([]string{"sub", "aud", "exp", "iat", "iss", "nonce", "at_hash", "sid", claims.Act, claims.Guardianship},
			claims.AllNames()...),
	}
	// Codes and opaque access tokens: one XChaCha20-Poly1305 seal instead of zitadel's JWE
	// (opaque.go), which still reads the JWE values issued before.
	codes, err := newOpaqueCrypto(sec.Derive("oidc-opaque"), op.NewAES256GCMCrypto(cryptoKey, ""))
	if err != nil {
		return nil, err
	}
	popts := []op.Option{op.WithCrypto(codes)}
	if config.IsLoopbackIssuer(cfg.Issuer) {
		popts = append(popts, op.WithAllowInsecure())
	}
	provider, err := op.NewProvider(opConfig, s.Storage, op.StaticIssuer(cfg.Issuer), popts...)
	if err != nil {
		return nil, fmt.Errorf("idp: oidc provider: %w", err)
	}
	s.Provider = provider
	s.Storage.CallbackURL = func(ctx context.Context, id string) string {
		return op.AuthCallbackURL(provider)(ctx, id)
	}
	// Codes are opened as the provider seals them (authenticated only, see opaqueCrypto): a
	// code is a sealed grant id nobody else can make, and Redis keeps no copy of it
	// (oidc.Storage.SaveAuthCode).
	s.Storage.Codes = codes

	s.Web = &web.Handler{Flows: engine, Clients: saml.ClientNames(st, st), CSRFKey: sec.Derive("csrf"), Secure: !cfg.InsecureCookies(),
		Origin: web.OriginOf(cfg.Issuer), Metrics: web.NewMetrics(reg),
		Throttle: &throttle.Guard{Limiter: failures, Proxies: proxies, Purpose: "login"}, Audit: auditLog}
	api := &admin.API{Store: st, Issuer: s.Issuer, Token: cfg.AdminToken, SigningAlgs: keys.Algorithms(), PublicURL: cfg.Issuer,
		Throttle: &throttle.Guard{Limiter: failures, Proxies: proxies, Purpose: "admin"}, Audit: auditLog}
	operators, err := cfg.AdminTokens()
	if err != nil {
		return nil, err
	}
	if len(operators) == 0 {
		log.Warn("NEMIDP_ADMIN_TOKEN is not set: the operator API refuses every call")
	}
	for _, o := range operators {
		if len(o.Token) < 24 {
			log.Warn("an NEMIDP_ADMIN_TOKEN token is short; use at least 32 random characters in production", "operator", o.Label)
		}
	}

	mux := http.NewServeMux()
	s.Mux = mux
	s.Web.Register(mux)
	s.SelfService = &selfservice.Handler{Flows: engine, Store: st, Web: s.Web, Passwords: pws, Audit: auditLog, LifeCycle: lifeCycle{s.Issuer},
		Secret: secret.Secret(sec.Derive("selfservice")), Secure: !cfg.InsecureCookies(), Origin: web.OriginOf(cfg.Issuer)}
	s.SelfService.Register(mux)
	switch s.SAML, err = newSAML(s, cfg.Issuer); {
	case errors.Is(err, saml.ErrNoRSAKey):
		log.Warn("the signing keys have no RS256 key: the SAML IdP (/saml/…) is off")
	case err != nil:
		return nil, err
	default:
		s.SAML.Register(mux)
	}
	(&keyapp.API{Flows: engine, Store: st, Audience: strings.TrimSuffix(cfg.Issuer, "/") + "/keyapp", Metrics: kaMetrics,
		Waiters: waiters, Throttle: s.Web.Throttle, Audit: auditLog}).Register(mux)
	adminMux := s.registerAdmin(mux, api)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.HandleFunc("/authorize", s.authorize)
	mux.HandleFunc("/authorize/callback", s.callback)
	mux.HandleFunc("/end_session", s.endSession)
	mux.HandleFunc("POST /end_session/confirm", s.endSessionConfirm)
	mux.HandleFunc("GET "+oidc.LoggedOutPath, s.Web.LoggedOutPage)
	mux.HandleFunc("GET /.well-known/openid-configuration", oidc.Discovery(provider, s.Storage, cfg.Issuer))
	mux.HandleFunc("/device_authorization", http.NotFound) // no device grant
	mux.Handle("/oauth/token", storeOutage503(st.Ping, s.Storage.TokenEndpoint(provider)))
	mux.Handle("/oauth/introspect", storeOutage503(st.Ping, provider))
	mux.Handle("/revoke", storeOutage503(st.Ping, provider))
	mux.HandleFunc("GET /userinfo", oidc.Userinfo(provider, s.Storage))
	mux.HandleFunc("POST /userinfo", oidc.Userinfo(provider, s.Storage))
	mux.Handle("/", provider)

	s.MetricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", s.MetricsHandler)
	}
	hm := newHTTPMetrics(reg)
	s.Handler = chain(s.Web.CleanPaths(mux), hm)
	if adminMux != nil {
		s.AdminHandler = chain(adminMux, hm)
	}
	return s, nil
}

// newSAML builds the SAML IdP on the server's flows, signing with its RS256 key.
func newSAML(s *Server, issuer string) (*saml.Handler, error) {
	keys, err := saml.KeysFrom(s.Keys, "nemidp SAML "+web.OriginOf(issuer))
	if err != nil {
		return nil, err
	}
	return saml.New(&saml.Handler{Store: s.Store, Flows: s.Flows, Web: s.Web, Keys: keys, Issuer: issuer})
}

// serverSecret is NEMIDP_SECRET; unset, it is generated: per process on the embedded store,
// and in demo mode on Redis once and kept there (so a demo restart finds its citizen), with a
// warning either way. On Redis outside demo mode there is no generated secret
// (config.ErrSecretRequired says why); config.Validate refuses that already.
func serverSecret(ctx context.Context, cfg config.Config, st *store.Store, log *slog.Logger) (secret.Secret, error) {
	if cfg.Secret != "" {
		return secret.Secret(cfg.Secret), nil
	}
	gen := secret.Generate()
	if cfg.RedisURL == "" {
		log.Warn("NEMIDP_SECRET is not set: generated one for this process; card-key hashes and cookies do not survive a restart")
		return secret.Secret(gen), nil
	}
	if !cfg.DemoMode() {
		return nil, &config.FieldError{Field: "secret (NEMIDP_SECRET)", Err: config.ErrSecretRequired}
	}
	raw, created, err := st.GetOrCreateMeta(ctx, "secret", []byte(gen))
	if err != nil {
		return nil, fmt.Errorf("idp: server secret: %w", err)
	}
	log.Warn("NEMIDP_SECRET is not set: demo mode keeps a generated secret in Redis, beside the hashes it keys; never run a real deployment like this",
		"generated_now", created)
	return secret.Secret(raw), nil
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain")
	if err := s.Store.Ping(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("redis: not answering\n"))
		return
	}
	if s.Keys == nil || len(s.Keys.Keys) == 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("signing keys: not loaded\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// authorize answers an unknown client or a redirect_uri that is not exactly registered with
// an error page — never a redirect — before zitadel/oidc handles the request.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.Web.ErrorPage(w, r, http.StatusBadRequest, "invalid_request", "The authorization request could not be read.")
		return
	}
	id, uri := r.Form.Get("client_id"), r.Form.Get("redirect_uri")
	if id == "" {
		s.Web.ErrorPage(w, r, http.StatusBadRequest, "invalid_request", "The authorization request has no client_id.")
		return
	}
	c, err := s.Store.Client(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.Web.ErrorPage(w, r, http.StatusBadRequest, "unknown_client", "The service that sent you here is not registered with NemID.")
		return
	case err != nil:
		s.Web.ErrorPage(w, r, http.StatusServiceUnavailable, flows.CodeUnavailable, "NemID is temporarily unavailable. Please try again shortly.")
		return
	}
	if !oidc.ExactRedirect(c, uri) {
		s.Web.ErrorPage(w, r, http.StatusBadRequest, "invalid_redirect_uri", "The service sent you here with a return address it has not registered.")
		return
	}
	r = r.WithContext(oidc.WithClaimsParameter(r.Context(), r.Form.Get("claims")))
	s.Provider.ServeHTTP(w, s.Web.BindBrowser(w, r))
}

// callback answers the relying party when a flow ended: a failed flow gets its protocol error
// back; a done flow gets its code, but only in the browser the flow is bound to.
func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// The flow and, when it is done and bound to this browser, its one-time code mark, in one
	// round trip: SaveAuthCode then writes nothing.
	f, answering, err := s.Flows.LoadAnswering(ctx, r.URL.Query().Get("id"), s.Web.BrowserOf(r), oidc.CodeMark)
	if errors.Is(err, store.ErrUnavailable) {
		s.Web.ErrorPage(w, r, http.StatusServiceUnavailable, flows.CodeUnavailable, "NemID is temporarily unavailable. Please try again shortly.")
		return
	}
	if err != nil {
		s.Web.ErrorPage(w, r, http.StatusGone, flows.CodeFlowExpired, "This login does not exist or has expired.")
		return
	}
	r = r.WithContext(oidc.WithAnsweredFlow(ctx, f, answering))
	if !s.Web.BoundTo(r, f) {
		s.Web.ErrorPage(w, r, http.StatusForbidden, flows.CodeWrongBrowser, "This login was started in another browser.")
		return
	}
	if !oidc.IsFlow(f) {
		s.Web.ErrorPage(w, r, http.StatusBadRequest, "wrong_front_end", "This login was not started by a service using OpenID Connect; go back to where you started it.")
		return
	}
	if f.Step == flows.StepFailed || f.Expired(s.Flows.Time()) {
		ar, err := s.Storage.AuthRequestByID(ctx, f.ID)
		if err != nil {
			s.Web.ErrorPage(w, r, http.StatusGone, flows.CodeFlowExpired, "This login does not exist or has expired.")
			return
		}
		op.AuthRequestError(w, r, ar, oidc.FlowError(f), s.Provider)
		return
	}
	op.AuthorizeCallback(w, r, s.Provider)
}

// endSession is RP-initiated logout. The browser's SSO session ends at once only when the
// request carries an id_token_hint of ours (expired or not) issued to the session's own
// citizen: its sid names the session, or its pairwise sub at its audience is the session
// citizen's. Otherwise the citizen confirms on a page first, so neither a cross-site link
// nor another citizen's ID token can log anyone out. zitadel/oidc then validates
// post_logout_redirect_uri and redirects (to the logged-out page without one).
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	cookie := s.Web.SessionCookie(r)
	if cookie == "" {
		s.Provider.ServeHTTP(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.Web.ErrorPage(w, r, http.StatusBadRequest, "invalid_request", "The logout request could not be read.")
		return
	}
	ctx := op.ContextWithIssuer(r.Context(), s.Config.Issuer)
	if hint := r.Form.Get("id_token_hint"); hint != "" {
		claims, err := op.VerifyIDTokenHint[*zoidc.IDTokenClaims](ctx, hint, s.Provider.IDTokenHintVerifier(ctx))
		if err == nil || errors.As(err, &op.IDTokenHintExpiredError{}) {
			own, err := s.hintNamesSession(ctx, claims, cookie)
			if err != nil {
				s.Web.ErrorPage(w, r, http.StatusServiceUnavailable, flows.CodeUnavailable, "NemID is temporarily unavailable. Please try again shortly.")
				return
			}
			if own {
				if !s.logout(w, r, cookie, "/end_session?"+r.Form.Encode()) {
					s.Provider.ServeHTTP(w, r)
				}
				return
			}
		}
	}
	s.Web.LogoutPage(w, r, r.Form)
}

// hintNamesSession reports whether a verified ID token was issued to the citizen of the SSO
// session behind cookie: by its sid, or by its pairwise sub at its audience (tokens issued
// before sid existed). A cookie without a live session has nothing to protect.
func (s *Server) hintNamesSession(ctx context.Context, claims *zoidc.IDTokenClaims, cookie string) (bool, error) {
	sess, err := s.Flows.Session(ctx, cookie)
	if err != nil {
		return false, fmt.Errorf("idp: end session: %w", err)
	}
	if sess == nil {
		return true, nil
	}
	if claims.SessionID != "" && sess.SID != "" && subtle.ConstantTimeCompare([]byte(claims.SessionID), []byte(sess.SID)) == 1 {
		return true, nil
	}
	if claims.Subject == "" {
		return false, nil
	}
	for i, aud := range claims.Audience {
		if i == 3 { // our ID tokens have one audience
			break
		}
		sector := aud
		if c, err := s.Store.Client(ctx, aud); err == nil {
			sector = c.Sector()
		}
		sub, err := s.Store.KnownPairwiseSubject(ctx, sess.CitizenID, sector)
		if err != nil {
			return false, fmt.Errorf("idp: end session: %w", err)
		}
		if sub != "" && sub == claims.Subject {
			return true, nil
		}
	}
	return false, nil
}

// endSessionConfirm is the POST of the logout confirmation page.
func (s *Server) endSessionConfirm(w http.ResponseWriter, r *http.Request) {
	params, ok := s.Web.CheckLogout(w, r)
	if !ok {
		return
	}
	then := "/end_session?" + params.Encode()
	if cookie := s.Web.SessionCookie(r); cookie != "" && s.logout(w, r, cookie, then) {
		return
	}
	http.Redirect(w, r, then, http.StatusSeeOther)
}

// logout ends the SSO session; when SAML SPs took part in it, the browser is first sent to
// each of them (saml.Handler.LogoutSession) and then to then: true when that was answered.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, cookie, then string) bool {
	if s.SAML != nil && s.SAML.LogoutSession(w, r, cookie, then) {
		return true
	}
	if err := s.Flows.EndSession(r.Context(), cookie); err != nil {
		slog.WarnContext(r.Context(), "end session", "err", err)
	}
	s.Web.ClearSession(w)
	return false
}
