package oidc

import (
	"errors"
	"slices"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/store"
)

func TestGrantedScopes(t *testing.T) {
	t.Parallel()
	c := &store.Client{Scopes: []string{"openid", "profile", "offline_access"}}
	tests := []struct {
		asked, want []string
	}{
		{[]string{"openid", "profile"}, []string{"openid", "profile"}},
		{[]string{"openid", "ssn"}, []string{"openid"}}, // ssn only when registered
		{[]string{"profile", "openid", "profile"}, []string{"profile", "openid"}},
		{[]string{"email"}, nil},
	}
	for _, tc := range tests {
		if got := grantedScopes(c, tc.asked); !slices.Equal(got, tc.want) {
			t.Errorf("grantedScopes(%v) = %v, want %v", tc.asked, got, tc.want)
		}
	}
}

func TestFlowError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		failure *flows.Error
		want    string
	}{
		{flows.Errorf(flows.CodeLoginRequired, "x"), string(oidc.LoginRequired)},
		{nil, string(oidc.LoginRequired)}, // expired without a recorded failure
		{flows.Errorf(flows.CodeFlowExpired, "x"), string(oidc.LoginRequired)},
		{flows.Errorf(flows.CodeLocked, "x"), string(oidc.AccessDenied)},
	}
	for _, tc := range tests {
		var oe *oidc.Error
		if err := FlowError(&flows.Flow{Failure: tc.failure}); !errors.As(err, &oe) || string(oe.ErrorType) != tc.want {
			t.Errorf("FlowError(%v) = %v, want %s", tc.failure, err, tc.want)
		}
	}
}

func TestSplitTokenID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		ok   bool
		g, r string
	}{
		{"grant.rest", true, "grant", "rest"},
		{"grant.", false, "", ""},
		{".rest", false, "", ""},
		{"nodot", false, "", ""},
	} {
		g, r, ok := splitTokenID(tc.in)
		if ok != tc.ok || (ok && (g != tc.g || r != tc.r)) {
			t.Errorf("splitTokenID(%q) = %q %q %v", tc.in, g, r, ok)
		}
	}
}

func TestStoreErr(t *testing.T) {
	t.Parallel()
	var oe *oidc.Error
	if err := storeErr(store.ErrUnavailable); !errors.As(err, &oe) || oe.ErrorType != oidc.ServerError {
		t.Fatalf("unavailable store: %v, want server_error", err)
	}
	if err := storeErr(store.ErrNotFound); errors.As(err, &oe) {
		t.Fatalf("a missing record must stay a plain error, got %v", err)
	}
}
