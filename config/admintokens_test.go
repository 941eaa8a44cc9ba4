package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestAdminTokens: NEMIDP_ADMIN_TOKEN holds one bare token (labelled "operator", as before)
// or several label:token pairs; wrong values are refused at start naming the field, and the
// error never repeats a token.
func TestAdminTokens(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value string
		want        []AdminToken
		errHas      string // "" = valid
	}{
		{"unset: API off", "", nil, ""},
		{"bare token as today", "tok-0123456789abcdef0123456789", []AdminToken{{"operator", "tok-0123456789abcdef0123456789"}}, ""},
		{"one pair", "borgerservice:s3cret-aaaaaaaaaaaaaaaaaaaaaaaa", []AdminToken{{"borgerservice", "s3cret-aaaaaaaaaaaaaaaaaaaaaaaa"}}, ""},
		{"pairs and a bare token, spaces trimmed", " bank.dk:tok-one , emb_1-x:tok-two,tok-three ",
			[]AdminToken{{"bank.dk", "tok-one"}, {"emb_1-x", "tok-two"}, {"operator", "tok-three"}}, ""},
		{"token holding a colon", "operator:ab:cd", []AdminToken{{"operator", "ab:cd"}}, ""},
		{"empty entry", "a:tok-one,,b:tok-two", nil, "entry 2 is empty"},
		{"trailing comma", "a:tok-one,", nil, "entry 2 is empty"},
		{"empty label", ":tok-secret-1", nil, "entry 1: the label"},
		{"empty token", "bank:", nil, "empty token"},
		{"label with capitals", "Bank:tok-secret-1", nil, "the label"},
		{"label with space", "my bank:tok-secret-1", nil, "the label"},
		{"label too long", strings.Repeat("a", 65) + ":tok-secret-1", nil, "the label"},
		{"duplicate label", "bank:tok-secret-1,bank:tok-secret-2", nil, `label "bank" is used twice`},
		{"two bare tokens", "tok-secret-1,tok-secret-2", nil, `label "operator" is used twice`},
		{"duplicate token", "a:tok-secret-1,b:tok-secret-1", nil, "also another entry's"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(env(map[string]string{"NEMIDP_ADMIN_TOKEN": tc.value}))
			if tc.errHas != "" {
				var fe *FieldError
				if !errors.As(err, &fe) || fe.Field != "admin_token (NEMIDP_ADMIN_TOKEN)" || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("Load(%q) = %v, want a FieldError of admin_token containing %q", tc.value, err, tc.errHas)
				}
				if strings.Contains(err.Error(), "tok-secret") {
					t.Fatalf("the error repeats a token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.AdminTokens()
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("AdminTokens() = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
