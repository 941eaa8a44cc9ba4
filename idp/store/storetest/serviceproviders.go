package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/store"
)

// ---- SAML service providers ----

// testServiceProviders: a record saved is read back whole, a second registration of its
// entity id is refused unless it replaces, racing creations make exactly one record, the list
// names it, and a delete removes record and list entry (a second delete: ErrNotFound).
func testServiceProviders(t *testing.T, h *harness) {
	ctx := t.Context()
	id := "https://sp-" + newID() + ".example/saml/metadata?x=1&y=" + strings.Repeat("é", 40)
	sp := &store.ServiceProvider{EntityID: id, Name: "Kommune", Metadata: "<EntityDescriptor/>",
		ACS:          []store.SAMLEndpoint{{Binding: "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", Location: "https://sp.example/acs", Index: 1, Default: true}},
		SLO:          []store.SAMLEndpoint{{Binding: "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect", Location: "https://sp.example/slo", ResponseLocation: "https://sp.example/slo/r"}},
		SigningCerts: []string{"c2lnbg=="}, EncryptionCerts: []string{"ZW5j"}, AuthnRequestsSigned: true,
		CPR: true, Dialect: "broker", Subject: store.SubjectGlobal, CreatedAt: time.Now().UTC().Truncate(time.Second)}

	_, err := h.s.ServiceProvider(ctx, id)
	wantErr(t, "ServiceProvider(unknown)", err, store.ErrNotFound)
	replaced, err := h.s.PutServiceProvider(ctx, sp, false)
	noErr(t, "PutServiceProvider", err)
	if replaced {
		t.Fatal("a new SP reported as replaced")
	}
	got, err := h.s.ServiceProvider(ctx, id)
	noErr(t, "ServiceProvider", err)
	if got.EntityID != id || got.Name != sp.Name || !slices.Equal(got.ACS, sp.ACS) || !slices.Equal(got.SLO, sp.SLO) ||
		!slices.Equal(got.SigningCerts, sp.SigningCerts) || !slices.Equal(got.EncryptionCerts, sp.EncryptionCerts) ||
		!got.AuthnRequestsSigned || !got.CPR || got.Dialect != "broker" || got.Subject != store.SubjectGlobal ||
		!got.CreatedAt.Equal(sp.CreatedAt) || got.Metadata != "" {
		t.Fatalf("read back %+v, want %+v (the XML apart)", got, sp)
	}
	if x, err := h.s.ServiceProviderMetadata(ctx, id); err != nil || x != sp.Metadata {
		t.Fatalf("ServiceProviderMetadata: %q %v, want the registered XML", x, err)
	}

	// Not replaced without asking; replaced when asked.
	other := *sp
	other.Name, other.CPR = "Other", false
	_, err = h.s.PutServiceProvider(ctx, &other, false)
	wantErr(t, "PutServiceProvider(again)", err, store.ErrConflict)
	if got, _ := h.s.ServiceProvider(ctx, id); got.Name != "Kommune" || !got.CPR {
		t.Fatalf("a refused registration changed the record: %+v", got)
	}
	replaced, err = h.s.PutServiceProvider(ctx, &other, true)
	noErr(t, "PutServiceProvider(replace)", err)
	if !replaced {
		t.Fatal("replacing did not report it")
	}
	if got, _ := h.s.ServiceProvider(ctx, id); got.Name != "Other" || got.CPR {
		t.Fatalf("not replaced: %+v", got)
	}
	noErr(t, "SaveServiceProvider", h.s.SaveServiceProvider(ctx, sp))
	if got, _ := h.s.ServiceProvider(ctx, id); got.Name != "Kommune" {
		t.Fatalf("SaveServiceProvider did not replace: %+v", got)
	}

	// Racing creations of one new entity id: exactly one wins, the others conflict.
	raced := "https://race-" + newID() + ".example/"
	errs := race(Racers, func(i int) error {
		_, err := h.s.PutServiceProvider(ctx, &store.ServiceProvider{EntityID: raced, Name: fmt.Sprint(i)}, false)
		return err
	})
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !strings.Contains(err.Error(), store.ErrConflict.Error()):
			t.Fatalf("racer: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d racers created %s, want 1", won, raced)
	}

	ids, err := h.s.ServiceProviders(ctx)
	noErr(t, "ServiceProviders", err)
	if !slices.Contains(ids, id) || !slices.Contains(ids, raced) || !slices.IsSorted(ids) {
		t.Fatalf("list %q lacks %q or %q, or is not sorted", ids, id, raced)
	}

	noErr(t, "DeleteServiceProvider", h.s.DeleteServiceProvider(ctx, id))
	_, err = h.s.ServiceProvider(ctx, id)
	wantErr(t, "ServiceProvider(deleted)", err, store.ErrNotFound)
	_, err = h.s.ServiceProviderMetadata(ctx, id)
	wantErr(t, "ServiceProviderMetadata(deleted)", err, store.ErrNotFound)
	wantErr(t, "DeleteServiceProvider(again)", h.s.DeleteServiceProvider(ctx, id), store.ErrNotFound)
	ids, err = h.s.ServiceProviders(ctx)
	noErr(t, "ServiceProviders", err)
	if slices.Contains(ids, id) || !slices.Contains(ids, raced) {
		t.Fatalf("after the delete the list is %q", ids)
	}
	// Registered again after a delete: a new record, not a replacement.
	replaced, err = h.s.PutServiceProvider(ctx, sp, false)
	noErr(t, "PutServiceProvider(after delete)", err)
	if replaced {
		t.Fatal("a deleted SP's new registration reported as replaced")
	}
	_, err = h.s.PutServiceProvider(ctx, &store.ServiceProvider{}, true)
	if err == nil {
		t.Fatal("an SP without entity id was saved")
	}
}

// testSAMLRequestIDs: a request id is fresh once per SP (the same id from another SP is its
// own), a replay is not fresh, N copies racing make exactly one fresh, and after the window
// the id may come again.
func testSAMLRequestIDs(t *testing.T, h *harness) {
	ctx := t.Context()
	sp, other := "https://sp-"+newID()+".example/", "https://other-"+newID()+".example/"
	reqID := "_" + newID()
	for _, tc := range []struct {
		sp, id string
		fresh  bool
	}{
		{sp, reqID, true},
		{sp, reqID, false},
		{other, reqID, true},
		{other, reqID, false},
		{sp, reqID + "x", true},
		// SP and id are kept apart: sp+"_" with the id's rest spells the same concatenation.
		{sp + "_", strings.TrimPrefix(reqID, "_"), true},
	} {
		fresh, err := h.s.ClaimSAMLRequestID(ctx, tc.sp, tc.id, time.Hour)
		noErr(t, "ClaimSAMLRequestID", err)
		if fresh != tc.fresh {
			t.Fatalf("ClaimSAMLRequestID(%s, %s) fresh = %v, want %v", tc.sp, tc.id, fresh, tc.fresh)
		}
	}
	// Given back (its request started nothing): fresh again, for that SP only.
	noErr(t, "ReleaseSAMLRequestID", h.s.ReleaseSAMLRequestID(ctx, sp, reqID))
	if fresh, err := h.s.ClaimSAMLRequestID(ctx, sp, reqID, time.Hour); err != nil || !fresh {
		t.Fatalf("claim after the release: %v %v, want fresh", fresh, err)
	}
	if fresh, err := h.s.ClaimSAMLRequestID(ctx, other, reqID, time.Hour); err != nil || fresh {
		t.Fatalf("another SP's claim after the release: %v %v, want not fresh", fresh, err)
	}

	raced := "_race" + newID()
	results := race(Racers, func(int) bool {
		fresh, err := h.s.ClaimSAMLRequestID(ctx, sp, raced, time.Hour)
		if err != nil {
			t.Errorf("ClaimSAMLRequestID: %v", err)
		}
		return fresh
	})
	if n := countTrue(results); n != 1 {
		t.Fatalf("%d of %d racing claims were fresh, want 1", n, Racers)
	}

	if _, err := h.s.ClaimSAMLRequestID(ctx, sp, "_"+newID(), 0); err == nil {
		t.Fatal("a claim without a window was accepted (it would be kept forever)")
	}

	h.ownClock(t)
	short := "_ttl" + newID()
	fresh, err := h.s.ClaimSAMLRequestID(ctx, sp, short, h.b.TTL)
	noErr(t, "ClaimSAMLRequestID(short)", err)
	if !fresh {
		t.Fatal("a new id was not fresh")
	}
	h.b.Advance(t, h.b.TTL)
	fresh, err = h.s.ClaimSAMLRequestID(ctx, sp, short, h.b.TTL)
	noErr(t, "ClaimSAMLRequestID(after the window)", err)
	if !fresh {
		t.Fatal("an id was still taken after its window")
	}
}
