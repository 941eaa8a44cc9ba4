package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/store"
)

// testSessionParticipants: an SSO session's participants are kept per sid (one entry per SP
// or client, the latest NameID and SessionIndex winning), apart from another session's; the
// list ends with its session (EndSessionWithParticipants) or at its expiry; bad input is
// refused and writes nothing.
func testSessionParticipants(t *testing.T, h *harness) {
	ctx := t.Context()
	sid, other, cookie := newID(), newID(), newID()
	until := time.Now().Add(time.Hour)
	noErr(t, "PutSession", h.s.PutSession(ctx, cookie, []byte("s"), time.Hour))
	for _, p := range []store.SessionParticipant{
		{Kind: store.ParticipantSAML, ID: "https://sp1/md", NameID: "n-old", SessionIndex: "_i-old"},
		{Kind: store.ParticipantSAML, ID: "https://sp1/md", NameID: "n1", SessionIndex: "_i1"},
		{Kind: store.ParticipantSAML, ID: "https://sp2/md", NameID: "n2", SessionIndex: "_i2"},
		{Kind: store.ParticipantClient, ID: "bank"},
	} {
		noErr(t, "AddSessionParticipant", h.s.AddSessionParticipant(ctx, sid, p, until))
	}
	noErr(t, "AddSessionParticipant(other)", h.s.AddSessionParticipant(ctx, other,
		store.SessionParticipant{Kind: store.ParticipantClient, ID: "shop"}, until))
	for _, bad := range []store.SessionParticipant{{Kind: "x", ID: "a"}, {Kind: store.ParticipantSAML}} {
		if err := h.s.AddSessionParticipant(ctx, sid, bad, until); err == nil {
			t.Errorf("AddSessionParticipant(%+v) accepted", bad)
		}
	}
	if err := h.s.AddSessionParticipant(ctx, "", store.SessionParticipant{Kind: store.ParticipantClient, ID: "a"}, until); err == nil {
		t.Error("AddSessionParticipant without a sid accepted")
	}
	got, err := h.s.SessionParticipants(ctx, sid)
	noErr(t, "SessionParticipants", err)
	slices.SortFunc(got, func(a, b store.SessionParticipant) int {
		if a.Kind+a.ID < b.Kind+b.ID {
			return -1
		}
		return 1
	})
	want := []store.SessionParticipant{
		{Kind: store.ParticipantClient, ID: "bank"},
		{Kind: store.ParticipantSAML, ID: "https://sp1/md", NameID: "n1", SessionIndex: "_i1"},
		{Kind: store.ParticipantSAML, ID: "https://sp2/md", NameID: "n2", SessionIndex: "_i2"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("SessionParticipants = %+v, want %+v", got, want)
	}
	if ttl := h.s.Redis().PTTL(ctx, h.prefix+"sessp:"+sid).Val(); ttl <= 0 || ttl > time.Hour+time.Minute {
		t.Errorf("participants TTL %v, want the session's end", ttl)
	}

	noErr(t, "EndSessionWithParticipants", h.s.EndSessionWithParticipants(ctx, cookie, sid))
	if got, err := h.s.SessionParticipants(ctx, sid); err != nil || len(got) != 0 {
		t.Errorf("after the end: %+v, %v", got, err)
	}
	_, err = h.s.Session(ctx, cookie)
	wantErr(t, "Session(ended)", err, store.ErrNotFound)
	if got, _ := h.s.SessionParticipants(ctx, other); len(got) != 1 {
		t.Errorf("ending one session's list touched another's: %+v", got)
	}

	// A session already over keeps no list.
	past := newID()
	noErr(t, "AddSessionParticipant(past)", h.s.AddSessionParticipant(ctx, past,
		store.SessionParticipant{Kind: store.ParticipantClient, ID: "bank"}, time.Now().Add(-time.Second)))
	if got, _ := h.s.SessionParticipants(ctx, past); len(got) != 0 {
		t.Errorf("a list past its session's end: %+v", got)
	}
	noErr(t, "EndSessionWithParticipants(other)", h.s.EndSessionWithParticipants(ctx, "", other))
}
