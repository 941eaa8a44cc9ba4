package oidc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/nemidp/nemidp/idp/held"
	"github.com/nemidp/nemidp/idp/store"
)

// A token request is answered in two halves. While zitadel/oidc builds the answer, the
// storage only prepares what the answer carries (token ids, their data) and keeps it in the
// request's pending issue. Once zitadel/oidc produced a 200 — client authenticated, PKCE
// checked, ID token signed, citizen read — TokenEndpoint commits it: one Lua script consumes
// the code or rotates the refresh token and stores the new tokens. Anything failing before
// that leaves the code or refresh token as it was, so the client's retry is no replay.

// pendingIssue is what one token request will write, once its answer is ready.
type pendingIssue struct {
	issue *store.TokenIssue
	// citizenChecked is set when the citizen's record was read and found active while the
	// answer was built (the ID token's claims).
	citizenChecked bool
	citizenID      string
}

type pendingKey struct{}

func pendingOf(ctx context.Context) *pendingIssue {
	p, _ := ctx.Value(pendingKey{}).(*pendingIssue)
	return p
}

// TokenEndpoint wraps zitadel/oidc's token endpoint: it marks the request with the client it
// authenticates as (the ID token's algorithm), holds zitadel's answer back, and commits the
// prepared tokens only when that answer is a success. When the commit fails the tokens are
// thrown away: a replayed code or reused refresh token answers invalid_grant (the script has
// revoked the grant), an unreachable Redis 503 temporarily_unavailable with the code or
// refresh token still usable.
func (s *Storage) TokenEndpoint(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if id := tokenClientID(r); id != "" {
			ctx = WithClient(ctx, id)
		}
		p := &pendingIssue{}
		ctx = context.WithValue(ctx, pendingKey{}, p)
		bw := held.Apart()
		next.ServeHTTP(bw, r.WithContext(ctx))
		bw.Done()
		if bw.Status == http.StatusOK && p.issue != nil {
			if err := s.commit(ctx, p); err != nil {
				writeCommitError(w, r, err)
				return
			}
		}
		bw.Send(w)
	})
}

// commit writes the prepared tokens. A citizen not read while the answer was built (zitadel
// asks for the ID token's claims on every grant with scopes, so this is a safety net) is
// checked here.
func (s *Storage) commit(ctx context.Context, p *pendingIssue) error {
	if !p.citizenChecked {
		if err := s.checkCitizenStatus(ctx, p.issue.Grant, p.citizenID); err != nil {
			return err
		}
	}
	if err := s.Store.IssueTokens(ctx, *p.issue); err != nil {
		return fmt.Errorf("oidc: commit tokens of grant %s: %w", p.issue.Grant, err)
	}
	return nil
}

// checkCitizenStatus refuses (and revokes the grant of) a NemID blocked or expired since the
// login.
func (s *Storage) checkCitizenStatus(ctx context.Context, grant, citizenID string) error {
	st, err := s.Store.CitizenStatus(ctx, citizenID, s.now())
	if errors.Is(err, store.ErrNotFound) { // a server error, not a dead grant: the retry may work
		return fmt.Errorf("oidc: citizen status: the record cannot be read (%v)", err)
	}
	if err != nil {
		return fmt.Errorf("oidc: citizen status: %w", err)
	}
	if st != store.StatusActive {
		return s.refuseInactive(ctx, grant)
	}
	return nil
}

// errInactive is a NemID blocked or expired since the login.
var errInactive = errors.New("the NemID is blocked or expired")

func (s *Storage) refuseInactive(ctx context.Context, grant string) error {
	if err := s.Store.RevokeGrant(ctx, grant, s.Lifetimes.RefreshToken); err != nil {
		return fmt.Errorf("oidc: revoke grant of an inactive NemID: %w", err)
	}
	return errInactive
}

// writeCommitError answers a token request whose commit failed, in the OAuth error format.
func writeCommitError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, desc := commitErrorAnswer(err)
	if status >= 500 {
		slog.ErrorContext(r.Context(), "token commit failed", "err", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "5")
	}
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"error":%q,"error_description":%q}`+"\n", code, desc)
}

func commitErrorAnswer(err error) (status int, code, desc string) {
	switch {
	case errors.Is(err, errInactive):
		return http.StatusBadRequest, "invalid_grant", errInactive.Error()
	case errors.Is(err, store.ErrReplay):
		return http.StatusBadRequest, "invalid_grant", "the code or refresh token was already used; the grant is revoked"
	case errors.Is(err, store.ErrNotFound): // revoked grant, expired code, unknown refresh token
		return http.StatusBadRequest, "invalid_grant", "the grant is no longer valid"
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "temporarily_unavailable", "the login service is temporarily unavailable"
	}
	return http.StatusInternalServerError, "server_error", "the tokens could not be stored"
}

// tokenClientID is the client id a token request authenticates with (Basic auth or form).
func tokenClientID(r *http.Request) string {
	if id, _, ok := r.BasicAuth(); ok {
		id, _ = url.QueryUnescape(id)
		return id
	}
	if err := r.ParseForm(); err == nil {
		return r.PostForm.Get("client_id")
	}
	return ""
}
