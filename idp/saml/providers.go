// Package saml is the SAML 2.0 identity provider (OIOSAML 3.0) on the login flows: it turns an
// AuthnRequest into a login flow and a finished flow into a Response, and knows nothing of how
// the citizen authenticated.
package saml

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"

	"github.com/nemidp/nemidp/idp/store"
)

// ErrMetadata is a service provider's metadata that cannot be registered.
var ErrMetadata = errors.New("saml: invalid service provider metadata")

// MaxMetadataSize bounds the metadata XML an operator may register.
const MaxMetadataSize = 256 << 10

// ParseMetadata parses a service provider's metadata once, at registration, into the record
// the IdP keeps (the policy fields are the caller's to set). It refuses metadata with no
// SPSSODescriptor or no AssertionConsumerService.
func ParseMetadata(xmlText []byte) (*store.ServiceProvider, error) {
	if len(xmlText) > MaxMetadataSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrMetadata, MaxMetadataSize)
	}
	ed, err := samlsp.ParseMetadata(xmlText)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMetadata, err)
	}
	if ed.EntityID == "" {
		return nil, fmt.Errorf("%w: no entityID", ErrMetadata)
	}
	if len(ed.SPSSODescriptors) == 0 {
		return nil, fmt.Errorf("%w: no SPSSODescriptor", ErrMetadata)
	}
	sp := &store.ServiceProvider{EntityID: ed.EntityID, Metadata: string(xmlText)}
	for _, d := range ed.SPSSODescriptors {
		if d.AuthnRequestsSigned != nil && *d.AuthnRequestsSigned {
			sp.AuthnRequestsSigned = true
		}
		if d.WantAssertionsSigned != nil && *d.WantAssertionsSigned {
			sp.WantAssertionsSigned = true
		}
		for _, a := range d.AssertionConsumerServices {
			sp.ACS = append(sp.ACS, store.SAMLEndpoint{Binding: a.Binding, Location: a.Location, Index: a.Index,
				Default: a.IsDefault != nil && *a.IsDefault})
		}
		for _, e := range d.SingleLogoutServices {
			sp.SLO = append(sp.SLO, store.SAMLEndpoint{Binding: e.Binding, Location: e.Location, ResponseLocation: e.ResponseLocation})
		}
		for _, k := range d.KeyDescriptors {
			for _, c := range k.KeyInfo.X509Data.X509Certificates {
				der := strings.Join(strings.Fields(c.Data), "")
				if _, err := base64.StdEncoding.DecodeString(der); err != nil {
					return nil, fmt.Errorf("%w: a certificate is not base64", ErrMetadata)
				}
				if k.Use == "" || k.Use == "signing" {
					sp.SigningCerts = append(sp.SigningCerts, der)
				}
				if k.Use == "" || k.Use == "encryption" {
					sp.EncryptionCerts = append(sp.EncryptionCerts, der)
				}
			}
		}
	}
	if len(sp.ACS) == 0 {
		return nil, fmt.Errorf("%w: no AssertionConsumerService", ErrMetadata)
	}
	return sp, nil
}

// Descriptor rebuilds the parts of an SP's EntityDescriptor crewjam/saml reads (endpoints and
// keys) from the stored record, without parsing the metadata again.
func Descriptor(sp *store.ServiceProvider) *saml.EntityDescriptor {
	d := saml.SPSSODescriptor{}
	d.ProtocolSupportEnumeration = "urn:oasis:names:tc:SAML:2.0:protocol"
	t := true
	if sp.AuthnRequestsSigned {
		d.AuthnRequestsSigned = &t
	}
	if sp.WantAssertionsSigned {
		d.WantAssertionsSigned = &t
	}
	for _, a := range sp.ACS {
		ep := saml.IndexedEndpoint{Binding: a.Binding, Location: a.Location, Index: a.Index}
		if a.Default {
			ep.IsDefault = &t
		}
		d.AssertionConsumerServices = append(d.AssertionConsumerServices, ep)
	}
	for _, e := range sp.SLO {
		d.SingleLogoutServices = append(d.SingleLogoutServices, saml.Endpoint{Binding: e.Binding, Location: e.Location, ResponseLocation: e.ResponseLocation})
	}
	key := func(use string, der string) saml.KeyDescriptor {
		return saml.KeyDescriptor{Use: use, KeyInfo: saml.KeyInfo{X509Data: saml.X509Data{X509Certificates: []saml.X509Certificate{{Data: der}}}}}
	}
	for _, c := range sp.SigningCerts {
		d.KeyDescriptors = append(d.KeyDescriptors, key("signing", c))
	}
	for _, c := range sp.EncryptionCerts {
		d.KeyDescriptors = append(d.KeyDescriptors, key("encryption", c))
	}
	return &saml.EntityDescriptor{EntityID: sp.EntityID, SPSSODescriptors: []saml.SPSSODescriptor{d}}
}
