package flows

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nemidp/nemidp/idp/store"
)

// Answer loads flow id and judges an answer to its step name, as a browser sends it. guard
// sees the flow as loaded and may refuse it (the browser it is bound to, its purpose) before
// anything is judged; what the answer reserved is then given back. For the password and
// step the load shares its round trip with the answer's first store call. The flow
// is returned whenever it was loaded, also with an error; the SSO session an answer that
// completed the login started is in its SessionCookie. (A code-card answer reserves its flow
// attempt with the key's use, not with the load, so that duplicates of a right key in flight
// never make the flow look spent to each other.)
func (e *Engine) Answer(ctx context.Context, id string, name Step, a Answer, guard func(*Flow) error) (*Flow, error) {
	if !validID(id) {
		return nil, Errorf(CodeFlowExpired, "This login does not exist or has expired.")
	}
	if name == StepPassword {
		return e.password(ctx, id, nil, a, guard)
	}
	f, err := e.loadGuarded(ctx, id, name, guard)
	if err != nil {
		return f, err
	}
	f.wantSession = true
	err = steps[name].check(ctx, e, f, a)
	if err == nil && f.Step == StepFailed && f.Failure != nil {
		err = f.Failure
	}
	return f, err
}

// loadGuarded loads a flow that guard accepts and that can take an answer to step name.
func (e *Engine) loadGuarded(ctx context.Context, id string, name Step, guard func(*Flow) error) (*Flow, error) {
	f, err := e.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	return f, e.guarded(f, name, guard)
}

func (e *Engine) guarded(f *Flow, name Step, guard func(*Flow) error) error {
	if guard != nil {
		if err := guard(f); err != nil {
			return err
		}
	}
	return e.judgeable(f, name)
}

// Answering is what LoadAnswering found of a finished flow's one-time mark.
type Answering struct {
	// Claimed: this caller is the one to answer the flow's relying party (one code, one
	// response per login).
	Claimed bool
	// value is the claimed mark's value (for Release).
	value string
}

// Release gives back a claim whose answer failed before anything was sent (a store error, a
// failed signature), so the browser's retry can answer; a no-op when nothing was claimed.
func (e *Engine) Release(ctx context.Context, id, mark string, a Answering) error {
	if !a.Claimed {
		return nil
	}
	if err := e.Store.ReleaseFlowMark(ctx, id, mark, a.value); err != nil {
		return fmt.Errorf("flows: release %s: %w", id, err)
	}
	return nil
}

// LoadAnswering loads a flow and, in the same round trip, claims its one-time mark when the
// flow is done and bound to browser: exactly one caller gets Claimed, however many ask.
func (e *Engine) LoadAnswering(ctx context.Context, id, browser, mark string) (*Flow, Answering, error) {
	if !validID(id) {
		return nil, Answering{}, Errorf(CodeFlowExpired, "This login does not exist or has expired.")
	}
	now := e.now()
	value := strconv.FormatInt(now.UnixMilli(), 10)
	rec, c, err := e.Store.LoadFlowClaiming(ctx, id, mark, browser, value)
	if errors.Is(err, store.ErrNotFound) {
		return nil, Answering{}, Errorf(CodeFlowExpired, "This login does not exist or has expired.")
	}
	if err != nil {
		return nil, Answering{}, fmt.Errorf("flows: load %s: %w", id, err)
	}
	f, err := e.flowOf(id, rec)
	if err != nil {
		return nil, Answering{}, err
	}
	if !c.Judged && c.Value == "" && f.Done() && browser != "" && f.Browser == browser {
		// Saved without its state beside it (by an earlier release): judged here, claimed apart.
		ok, err := e.Store.ClaimFlowMarkAs(ctx, id, mark, value)
		if err != nil {
			return f, Answering{}, fmt.Errorf("flows: claim %s: %w", id, err)
		}
		c.Claimed = ok
	}
	return f, Answering{Claimed: c.Claimed, value: value}, nil
}

// MarkTime reads a one-time mark's value (milliseconds since the epoch; zero for another).
func MarkTime(v string) time.Time {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 1 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// FlowOf decodes a flow record a front end loaded with its own store call.
func (e *Engine) FlowOf(id string, rec store.FlowRecord) (*Flow, error) { return e.flowOf(id, rec) }
