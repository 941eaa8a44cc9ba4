package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Kinds of session participants: who an SSO session answered, so that single logout can
// reach them.
const (
	// ParticipantSAML is a SAML SP that got an assertion (with its NameID and SessionIndex).
	ParticipantSAML = "saml"
	// ParticipantClient is the client id of a flow the session completed (an OIDC client,
	// self-service, or a SAML flow's "saml/<entity id>"), recorded by the flow's save.
	ParticipantClient = "client"
)

// SessionParticipant is a relying party an SSO session answered: a SAML SP (its entity id,
// the NameID and SessionIndex its assertion carried) or a flow's client (its client id).
type SessionParticipant struct {
	Kind         string `json:"-"`
	ID           string `json:"-"`
	NameID       string `json:"n,omitempty"`
	SessionIndex string `json:"i,omitempty"`
}

// participantsKey is the hash of one SSO session's participants, by the session's sid (which
// relying parties already know: it is never the cookie value).
func (s *Store) participantsKey(sid string) string { return s.key("sessp", sid) }

// AddSessionParticipant records p as a participant of the SSO session sid until expires (the
// session's own end: a participant list never outlives the session by more than the slack
// the caller adds). The same participant again overwrites its entry (an SP answered twice
// keeps the latest NameID and SessionIndex). One MULTI on one key: never half written.
func (s *Store) AddSessionParticipant(ctx context.Context, sid string, p SessionParticipant, expires time.Time) error {
	if sid == "" || p.ID == "" || (p.Kind != ParticipantSAML && p.Kind != ParticipantClient) {
		return errors.New("store: add session participant: no sid, kind or id")
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("store: add session participant: %w", err)
	}
	_, err = s.rdb.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		s.queueParticipant(ctx, tx, sid, p.Kind+":"+p.ID, raw, expires)
		return nil
	})
	return wrap("add session participant", err)
}

// ParticipantWrite is a session participant written with a flow's save (FlowSave), in its
// round trip.
type ParticipantWrite struct {
	SID         string
	Participant SessionParticipant
	Expires     time.Time
}

func (s *Store) queueParticipant(ctx context.Context, p redis.Pipeliner, sid, field string, raw []byte, expires time.Time) {
	k := s.participantsKey(sid)
	p.HSet(ctx, k, field, raw)
	p.PExpireAt(ctx, k, expires)
}

// queueParticipantWrite queues w in a flow save's pipeline (its two commands on one key, in
// order: the entry never outlives its expiry).
func (s *Store) queueParticipantWrite(ctx context.Context, p redis.Pipeliner, w *ParticipantWrite) {
	if w.SID == "" || w.Participant.ID == "" || (w.Participant.Kind != ParticipantSAML && w.Participant.Kind != ParticipantClient) {
		return
	}
	raw, err := json.Marshal(w.Participant)
	if err != nil {
		return
	}
	s.queueParticipant(ctx, p, w.SID, w.Participant.Kind+":"+w.Participant.ID, raw, w.Expires)
}

// SessionParticipants lists the participants of the SSO session sid (none when it has none,
// or has ended).
func (s *Store) SessionParticipants(ctx context.Context, sid string) ([]SessionParticipant, error) {
	if sid == "" {
		return nil, nil
	}
	all, err := s.rdb.HGetAll(ctx, s.participantsKey(sid)).Result()
	if err != nil {
		return nil, wrap("session participants", err)
	}
	out := make([]SessionParticipant, 0, len(all))
	for field, raw := range all {
		kind, id, ok := strings.Cut(field, ":")
		if !ok || (kind != ParticipantSAML && kind != ParticipantClient) {
			continue
		}
		var p SessionParticipant
		if json.Unmarshal([]byte(raw), &p) != nil {
			continue // an entry we cannot read names nobody we could reach
		}
		p.Kind, p.ID = kind, id
		out = append(out, p)
	}
	return out, nil
}

// EndSessionWithParticipants deletes the SSO session behind cookie and the participant list
// of its sid in one round trip (a pipeline, not a MULTI: the two keys are in different
// Cluster slots; a list left without its session lets nobody log in, and runs out with it).
func (s *Store) EndSessionWithParticipants(ctx context.Context, cookie, sid string) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if cookie != "" {
			p.Del(ctx, s.sessionKey(cookie))
		}
		if sid != "" {
			p.Del(ctx, s.participantsKey(sid))
		}
		return nil
	})
	return wrap("end session", err)
}
