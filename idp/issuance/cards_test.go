package issuance

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
	keysecret "github.com/nemidp/nemidp/keys/secret"
)

// TestOrderCardLimits: a self-service order always goes by post and is refused at the 4th
// usable extra card; an operator's goes on to the 10th and is refused at the 11th; orders
// racing at the limit: exactly one passes.
func TestOrderCardLimits(t *testing.T) {
	t.Parallel()
	is, _ := prefixedIssuer(t)
	is.Secret = keysecret.Secret("card-print-secret-0123456789abcdef")
	ctx := context.Background()
	res, err := is.Issue(ctx, Request{CPR: storetest.NewCPR(), Name: "Karen Jensen"})
	if err != nil {
		t.Fatal(err)
	}
	self := CardOrder{Reason: "extra", By: "self", Post: false} // asks to hand over: self-service cannot
	for i := range store.SelfExtraCards {
		out, err := is.OrderCard(ctx, res.UserID, self)
		if err != nil || out.Status != store.CardSent || out.Card != nil {
			t.Fatalf("self-service extra card %d: %+v %v, want sent without keys", i+1, out, err)
		}
	}
	if _, err := is.OrderCard(ctx, res.UserID, self); !errors.Is(err, ErrCardLimit) {
		t.Fatalf("4th self-service extra card: %v, want ErrCardLimit", err)
	}
	op := CardOrder{Reason: "extra", By: "desk", Operator: true}
	for i := store.SelfExtraCards; i < store.OperatorExtraCards-1; i++ {
		if out, err := is.OrderCard(ctx, res.UserID, op); err != nil || out.Status != store.CardActive || out.Card == nil {
			t.Fatalf("operator extra card %d: %+v %v", i+1, out, err)
		}
	}
	// The 10th, racing: exactly one passes; the 11th is refused.
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, storetest.Racers)
	for i := range errs {
		wg.Go(func() {
			<-start
			_, errs[i] = is.OrderCard(ctx, res.UserID, op)
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, ErrCardLimit) {
			t.Fatalf("racing order: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d racing orders for the 10th extra card passed, want 1", ok)
	}
	if _, err := is.OrderCard(ctx, res.UserID, op); !errors.Is(err, ErrCardLimit) {
		t.Fatalf("11th operator extra card: %v, want ErrCardLimit", err)
	}
	var ve *ValidationError
	if _, err := is.OrderCard(ctx, res.UserID, CardOrder{Reason: "spare"}); !errors.As(err, &ve) || ve.Field != "reason" {
		t.Fatalf("unknown reason: %v", err)
	}
}
