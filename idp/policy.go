package idp

import (
	"context"
	"fmt"

	"github.com/nemidp/nemidp/idp/store"
)

// clientPolicy gives the login engine a relying party's policy from its registration (the
// store caches registrations in process: no Redis round trip per login).
type clientPolicy struct{ store *store.Store }

func (p clientPolicy) ClientPolicy(ctx context.Context, clientID string) (bool, error) {
	c, err := p.store.Client(ctx, clientID)
	if err != nil {
		return false, fmt.Errorf("client %q: %w", clientID, err)
	}
	return c.RequiresOCES, nil
}
