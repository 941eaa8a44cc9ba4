package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"
)

// ServiceProvider is a SAML service provider as registered: its metadata parsed once (at
// registration) into what the IdP needs on every request, and its policy.
type ServiceProvider struct {
	EntityID string `json:"entity_id"`
	Name     string `json:"name"`
	// ACS are the AssertionConsumerService endpoints of the metadata.
	ACS []SAMLEndpoint `json:"acs"`
	// SLO are the SingleLogoutService endpoints of the metadata.
	SLO []SAMLEndpoint `json:"slo,omitempty"`
	// SigningCerts and EncryptionCerts are the metadata's certificates (base64 DER) for each
	// use; a KeyDescriptor without use is in both.
	SigningCerts    []string `json:"signing_certs,omitempty"`
	EncryptionCerts []string `json:"encryption_certs,omitempty"`
	// AuthnRequestsSigned and WantAssertionsSigned are the metadata's flags.
	AuthnRequestsSigned  bool `json:"authn_requests_signed,omitempty"`
	WantAssertionsSigned bool `json:"want_assertions_signed,omitempty"`
	// Metadata is the XML as registered, kept for the operator under its own key (never parsed
	// per request): ServiceProvider leaves it empty, ServiceProviderMetadata reads it.
	Metadata string `json:"metadata,omitempty"`

	// Policy (DESIGN.md §5).
	RequiresOCES     bool   `json:"requires_oces,omitempty"`
	AllowOnBehalfOf  bool   `json:"allow_on_behalf_of,omitempty"`
	CPR              bool   `json:"cpr,omitempty"` // the CPR attribute is released
	Dialect          string `json:"dialect,omitempty"`
	Subject          string `json:"subject,omitempty"` // SubjectPairwise (default) or SubjectGlobal
	UnsignedRequests bool   `json:"unsigned_requests,omitempty"`

	CreatedAt time.Time `json:"created_at"`
}

// SAMLEndpoint is one endpoint of an SP's metadata.
type SAMLEndpoint struct {
	Binding  string `json:"binding"`
	Location string `json:"location"`
	// ResponseLocation is an SLO endpoint's, when it differs from Location.
	ResponseLocation string `json:"response_location,omitempty"`
	Index            int    `json:"index,omitempty"`
	Default          bool   `json:"default,omitempty"`
}

// SAML subject kinds of a service provider.
const (
	SubjectPairwise = "pairwise"
	SubjectGlobal   = "global"
)

// spKey names an SP record by a digest of its entity id (an entity id is a URL of any length
// and characters). The records and their index share the hash tag {saml}, so one script or
// MULTI may change both on Redis Cluster (there are few SPs: one slot holds them all).
func (s *Store) spKey(entityID string) string {
	d := sha256.Sum256([]byte(entityID))
	return s.key("{saml}", "sp", base64.RawURLEncoding.EncodeToString(d[:18]))
}
func (s *Store) spIndexKey() string { return s.key("{saml}", "sps") }

// spMetadataKey holds an SP's metadata XML apart from its record: every SAML request reads the
// record, and none needs the XML (up to 256 KiB) again.
func (s *Store) spMetadataKey(entityID string) string {
	d := sha256.Sum256([]byte(entityID))
	return s.key("{saml}", "spmeta", base64.RawURLEncoding.EncodeToString(d[:18]))
}

// SaveServiceProvider registers (or replaces) a service provider.
func (s *Store) SaveServiceProvider(ctx context.Context, sp *ServiceProvider) error {
	_, err := s.PutServiceProvider(ctx, sp, true)
	return err
}

// putSPScript stores an SP record and indexes its entity id in one step: KEYS record, index;
// ARGV record JSON, entity id, "1" to replace. -1: it exists and may not be replaced; else
// whether it existed.
var putSPScript = redis.NewScript(`
local existed = redis.call('EXISTS', KEYS[1])
if existed == 1 and ARGV[3] ~= '1' then return -1 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[3], ARGV[4])
redis.call('SADD', KEYS[2], ARGV[2])
return existed
`)

// PutServiceProvider registers a service provider. An entity id registered already is
// replaced when replace is set (replaced then reports it), else ErrConflict and nothing
// changes: one script, so two registrations racing cannot both create.
func (s *Store) PutServiceProvider(ctx context.Context, sp *ServiceProvider, replace bool) (replaced bool, err error) {
	if sp.EntityID == "" {
		return false, fmt.Errorf("store: service provider: no entity id")
	}
	rec := *sp
	rec.Metadata = "" // kept under its own key
	raw, err := json.Marshal(&rec)
	if err != nil {
		return false, fmt.Errorf("store: service provider %q: encode: %w", sp.EntityID, err)
	}
	flag := "0"
	if replace {
		flag = "1"
	}
	n, err := putSPScript.Run(ctx, s.rdb, []string{s.spKey(sp.EntityID), s.spIndexKey(), s.spMetadataKey(sp.EntityID)},
		raw, sp.EntityID, flag, sp.Metadata).Int()
	if err != nil {
		return false, wrap("save service provider", err)
	}
	if n < 0 {
		return false, fmt.Errorf("store: service provider %q: %w", sp.EntityID, ErrConflict)
	}
	return n == 1, nil
}

// DeleteServiceProvider removes a service provider and its index entry in one MULTI;
// ErrNotFound for an unknown one.
func (s *Store) DeleteServiceProvider(ctx context.Context, entityID string) error {
	p := s.rdb.TxPipeline()
	del := p.Del(ctx, s.spKey(entityID))
	p.Del(ctx, s.spMetadataKey(entityID))
	p.SRem(ctx, s.spIndexKey(), entityID)
	if _, err := p.Exec(ctx); err != nil {
		return wrap("delete service provider", err)
	}
	if del.Val() == 0 {
		return fmt.Errorf("store: delete service provider %q: %w", entityID, ErrNotFound)
	}
	return nil
}

// ServiceProvider returns a registered service provider; ErrNotFound for an unknown one.
func (s *Store) ServiceProvider(ctx context.Context, entityID string) (*ServiceProvider, error) {
	raw, err := s.rdb.Get(ctx, s.spKey(entityID)).Bytes()
	if err != nil {
		return nil, wrap("service provider", err)
	}
	var sp ServiceProvider
	if err := json.Unmarshal(raw, &sp); err != nil {
		return nil, fmt.Errorf("store: service provider %q: decode: %w", entityID, err)
	}
	return &sp, nil
}

// ServiceProviderMetadata is the metadata XML an SP was registered with; ErrNotFound for an
// unknown one.
func (s *Store) ServiceProviderMetadata(ctx context.Context, entityID string) (string, error) {
	x, err := s.rdb.Get(ctx, s.spMetadataKey(entityID)).Result()
	return x, wrap("service provider metadata", err)
}

// ServiceProviders lists the registered entity ids, sorted.
func (s *Store) ServiceProviders(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, s.spIndexKey()).Result()
	slices.Sort(ids)
	return ids, wrap("service providers", err)
}

// ClaimSAMLRequestID records that entityID sent an AuthnRequest (or LogoutRequest) with this
// ID, for ttl (the request's validity window): fresh is false when it was seen before (a
// replay). One SET NX: two copies racing cannot both be fresh.
func (s *Store) ClaimSAMLRequestID(ctx context.Context, entityID, requestID string, ttl time.Duration) (fresh bool, err error) {
	if ttl <= 0 {
		// SET NX without an expiry would keep the id forever.
		return false, fmt.Errorf("store: claim saml request id: window %v is not positive", ttl)
	}
	ok, err := s.rdb.SetNX(ctx, s.samlRequestKey(entityID, requestID), "1", ttl).Result()
	return ok, wrap("claim saml request id", err)
}

// ReleaseSAMLRequestID gives back a request id whose request started nothing (the store failed
// before its login flow was saved), so the SP's retry of it is not taken for a replay.
func (s *Store) ReleaseSAMLRequestID(ctx context.Context, entityID, requestID string) error {
	return wrap("release saml request id", s.rdb.Del(ctx, s.samlRequestKey(entityID, requestID)).Err())
}

func (s *Store) samlRequestKey(entityID, requestID string) string {
	d := sha256.Sum256([]byte(entityID + "\x00" + requestID))
	return s.key("saml", "req", base64.RawURLEncoding.EncodeToString(d[:18]))
}
