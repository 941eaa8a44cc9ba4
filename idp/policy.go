package idp

import (
	"context"
	"fmt"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store"
)

// clientPolicy tells the login engine what a registered client demands and allows, from its
// registration (store.Client keeps registrations in an in-process cache, so a login asks
// Redis nothing more for it).
type clientPolicy struct{ st *store.Store }

var _ flows.ClientPolicy = clientPolicy{}

func (p clientPolicy) Policy(ctx context.Context, clientID string) (flows.Policy, error) {
	c, err := p.st.Client(ctx, clientID)
	if err != nil {
		return flows.Policy{}, fmt.Errorf("idp: client policy: %w", err)
	}
	return flows.Policy{RequiresOCES: c.RequiresOCES, AllowOnBehalfOf: c.AllowOnBehalfOf, Name: c.Name}, nil
}
