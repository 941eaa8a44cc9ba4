package storetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/nemidp/nemidp/idp/store"
)

// testAltAddress: an alternative address is stored cleaned, read back, replaced and cleared;
// one refused (too long, too many lines, a control character) changes nothing; a citizen who
// does not exist gets no record.
func testAltAddress(t *testing.T, h *harness) {
	ctx := t.Context()
	c, _ := h.citizen(t, 1)
	get := func() string {
		t.Helper()
		v, err := h.s.AltAddress(ctx, c.UserID)
		noErr(t, "AltAddress", err)
		return v
	}
	if v := get(); v != "" {
		t.Fatalf("new citizen has alt address %q", v)
	}
	noErr(t, "set", h.s.SetAltAddress(ctx, c.UserID, "  c/o Hansen \r\n\r\nStorgade 1, 2. th.\r8000 Aarhus C  "))
	if v, want := get(), "c/o Hansen\nStorgade 1, 2. th.\n8000 Aarhus C"; v != want {
		t.Fatalf("stored %q, want %q", v, want)
	}
	noErr(t, "replace", h.s.SetAltAddress(ctx, c.UserID, "Poste restante\n1000 København K"))
	if v := get(); v != "Poste restante\n1000 København K" {
		t.Fatalf("after replace: %q", v)
	}
	for _, tc := range []struct{ name, addr, code string }{
		{"too long", strings.Repeat("å", store.MaxAltAddress+1), store.AddressTooLong},
		{"too many lines", strings.Repeat("a\n", store.MaxAltAddressLines+1), store.AddressTooManyLines},
		{"control character", "Gade 1\x00", store.AddressInvalidChars},
		{"escape", "Gade \x1b[31m1", store.AddressInvalidChars},
		{"invisible format character", "Gade\u200e 1", store.AddressInvalidChars},
		{"invalid UTF-8", "Gade \xff", store.AddressInvalidChars},
	} {
		err := h.s.SetAltAddress(ctx, c.UserID, tc.addr)
		var ae *store.AddressError
		if !errors.As(err, &ae) || ae.Code != tc.code {
			t.Errorf("%s: %v, want AddressError %s", tc.name, err, tc.code)
		}
	}
	if v := get(); v != "Poste restante\n1000 København K" {
		t.Fatalf("a refused address changed it: %q", v)
	}
	if _, err := store.CleanAltAddress(strings.Repeat("å", store.MaxAltAddress)); err != nil {
		t.Errorf("exactly %d characters refused: %v", store.MaxAltAddress, err)
	}
	noErr(t, "clear", h.s.SetAltAddress(ctx, c.UserID, " \n "))
	if v := get(); v != "" {
		t.Fatalf("after clear: %q", v)
	}
	if h.load(t, c.UserID).Name != c.Name {
		t.Fatal("the citizen record changed beside alt_address")
	}

	ghost := NewUserID()
	if err := h.s.SetAltAddress(ctx, ghost, "Gade 1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown citizen: %v, want ErrNotFound", err)
	}
	if h.exists(t, h.citizenKey(ghost)) {
		t.Fatal("SetAltAddress created a record for a citizen who does not exist")
	}
}
