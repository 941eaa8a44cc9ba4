// Package demo seeds the embedded default with a demo relying party and a demo citizen, and
// serves pages that exist in demo mode only: the citizen's code card and a relying party that
// logs in through the IdP with zitadel/oidc's rp package.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nemidp/nemidp/idp/cardprint"
	"github.com/nemidp/nemidp/idp/issuance"
	idpoidc "github.com/nemidp/nemidp/idp/oidc"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/keys/codecard"
)

// Demo citizen and relying party.
const (
	ClientID      = "demo-rp"
	CitizenCPR    = "2902884321" // born on a leap day, 1988
	CitizenName   = "Karen Demo Jensen"
	CitizenSecret = "Demo2026nemid"
)

// Info is what the start banner prints.
type Info struct {
	UserID   string
	Password string
	CardURL  string
	RPURL    string
}

// Seeder seeds and serves the demo.
type Seeder struct {
	Store  *store.Store
	Issuer *issuance.Issuer
	Base   string // the issuer URL

	mu       sync.Mutex
	card     codecard.Card
	uid      string
	rp       rp.RelyingParty
	rpSecret string
}

// Seed creates the demo relying party and citizen, or, on a restart on the same Redis, finds
// them: the client is rewritten (new secret, this issuer's URIs) and the citizen found gets a
// fresh card (the old one's keys are only stored as hashes) and the demo password back,
// unlocked.
func (s *Seeder) Seed(ctx context.Context) (*Info, error) {
	s.rpSecret = uuid.NewString()
	c := &store.Client{
		ID: ClientID, Name: "Demo Netbank", RedirectURIs: []string{s.Base + "/demo/callback"},
		PostLogoutRedirectURIs: []string{s.Base + "/demo/"}, SecretHash: idpoidc.HashSecret(s.rpSecret),
		Scopes: []string{"openid", "profile", "offline_access", "ssn"}, CreatedAt: time.Now().UTC(),
	}
	if err := s.Store.PutClient(ctx, c); err != nil {
		return nil, fmt.Errorf("demo: seed client: %w", err)
	}
	if err := s.seedCitizen(ctx); err != nil {
		return nil, err
	}
	return &Info{UserID: s.uid, Password: CitizenSecret, CardURL: s.Base + "/demo/card", RPURL: s.Base + "/demo/"}, nil
}

func (s *Seeder) seedCitizen(ctx context.Context) error {
	found, err := s.Store.CitizenByUsername(ctx, "", CitizenCPR)
	switch {
	case errors.Is(err, store.ErrNotFound):
		res, err := s.Issuer.IssueWithPassword(ctx, issuance.Request{CPR: CitizenCPR, Name: CitizenName, Kind: "oces"}, CitizenSecret)
		if err != nil {
			return fmt.Errorf("demo: seed citizen: %w", err)
		}
		s.card, s.uid = res.Card, res.UserID
		return nil
	case err != nil:
		return fmt.Errorf("demo: find the seeded citizen: %w", err)
	}
	if err := s.Issuer.ResetPassword(ctx, found.UserID, found.CPR, CitizenSecret); err != nil {
		return fmt.Errorf("demo: reset the seeded citizen %s: %w", found.UserID, err)
	}
	card, err := s.Issuer.ReplaceCard(ctx, found.UserID)
	if err != nil {
		return fmt.Errorf("demo: new card for the seeded citizen %s: %w", found.UserID, err)
	}
	s.card, s.uid = card, found.UserID
	slog.InfoContext(ctx, "demo: found the seeded citizen; gave it a new card and the demo password", "user_id", found.UserID, "card", card.Serial)
	return nil
}

// Register adds the demo pages.
func (s *Seeder) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /demo/card", s.cardPage)
	mux.HandleFunc("GET /demo/{$}", s.start)
	mux.HandleFunc("GET /demo/login", s.login)
	mux.HandleFunc("GET /demo/callback", s.callback)
}

func (s *Seeder) cardPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Header.Get("Accept") == "application/json" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"user_id": s.uid, "card": s.card})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	lang := cardprint.Lang(r)
	note := "Demo mode only. User ID " + s.uid + "."
	if lang == cardprint.LangDA {
		note = "Kun i demo-tilstand. Bruger-id " + s.uid + "."
	}
	if err := cardprint.RenderPage(w, cardprint.Page{Card: s.card, Lang: lang, Note: note}); err != nil {
		slog.WarnContext(r.Context(), "demo: card page", "err", err)
	}
}

// relyingParty is made on first use: it reads the IdP's discovery, which needs the server up.
func (s *Seeder) relyingParty(ctx context.Context) (rp.RelyingParty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rp != nil {
		return s.rp, nil
	}
	key := []byte(uuid.NewString()[:32])
	cookies := httphelper.NewCookieHandler(key, key, httphelper.WithUnsecure())
	p, err := rp.NewRelyingPartyOIDC(ctx, s.Base, ClientID, s.rpSecret, s.Base+"/demo/callback",
		[]string{"openid", "profile", "offline_access", "ssn"}, rp.WithPKCE(cookies))
	if err != nil {
		return nil, err
	}
	s.rp = p
	return p, nil
}

func (s *Seeder) start(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, `<!doctype html><html><head><meta charset="utf-8"><title>Demo Netbank</title><link rel="stylesheet" href="/static/nemid.css"></head>
<body><main><h1>Demo Netbank</h1><p>A relying party that exists in demo mode only.</p><a class="button" href="/demo/login">Log på med NemID</a></main></body></html>`)
}

func (s *Seeder) login(w http.ResponseWriter, r *http.Request) {
	p, err := s.relyingParty(r.Context())
	if err != nil {
		http.Error(w, "demo relying party: "+err.Error(), http.StatusBadGateway)
		return
	}
	rp.AuthURLHandler(uuid.NewString, p)(w, r)
}

var resultTmpl = template.Must(template.New("r").Parse(`<!doctype html><html><head><meta charset="utf-8"><title>Logged in</title>
<link rel="stylesheet" href="/static/nemid.css"></head><body><main><h1>Logged in</h1><p>ID token claims, verified against the JWKS:</p>
<pre>{{.}}</pre><a class="button" href="/demo/">Again</a></main></body></html>`))

func (s *Seeder) callback(w http.ResponseWriter, r *http.Request) {
	p, err := s.relyingParty(r.Context())
	if err != nil {
		http.Error(w, "demo relying party: "+err.Error(), http.StatusBadGateway)
		return
	}
	rp.CodeExchangeHandler(func(w http.ResponseWriter, r *http.Request, tokens *oidc.Tokens[*oidc.IDTokenClaims], state string, p rp.RelyingParty) {
		raw, _ := json.MarshalIndent(tokens.IDTokenClaims, "", "  ")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = resultTmpl.Execute(w, string(raw))
	}, p)(w, r)
}
