package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
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
	// Metadata is the XML as registered, kept for the operator (never parsed per request).
	Metadata string `json:"metadata"`

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
// and characters).
func (s *Store) spKey(entityID string) string {
	d := sha256.Sum256([]byte(entityID))
	return s.key("saml", "sp", base64.RawURLEncoding.EncodeToString(d[:18]))
}
func (s *Store) spIndexKey() string { return s.key("saml", "sps") }

// SaveServiceProvider registers (or replaces) a service provider.
func (s *Store) SaveServiceProvider(ctx context.Context, sp *ServiceProvider) error {
	if sp.EntityID == "" {
		return fmt.Errorf("store: service provider: no entity id")
	}
	raw, err := json.Marshal(sp)
	if err != nil {
		return fmt.Errorf("store: service provider %q: encode: %w", sp.EntityID, err)
	}
	p := s.rdb.TxPipeline()
	p.Set(ctx, s.spKey(sp.EntityID), raw, 0)
	p.SAdd(ctx, s.spIndexKey(), sp.EntityID)
	_, err = p.Exec(ctx)
	return wrap("save service provider", err)
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

// ServiceProviders lists the registered entity ids.
func (s *Store) ServiceProviders(ctx context.Context) ([]string, error) {
	ids, err := s.rdb.SMembers(ctx, s.spIndexKey()).Result()
	return ids, wrap("service providers", err)
}

// ClaimSAMLRequestID records that entityID sent an AuthnRequest (or LogoutRequest) with this
// ID, for ttl (the request's validity window): fresh is false when it was seen before (a
// replay). One SET NX: two copies racing cannot both be fresh.
func (s *Store) ClaimSAMLRequestID(ctx context.Context, entityID, requestID string, ttl time.Duration) (fresh bool, err error) {
	d := sha256.Sum256([]byte(entityID + "\x00" + requestID))
	ok, err := s.rdb.SetNX(ctx, s.key("saml", "req", base64.RawURLEncoding.EncodeToString(d[:18])), "1", ttl).Result()
	return ok, wrap("claim saml request id", err)
}
