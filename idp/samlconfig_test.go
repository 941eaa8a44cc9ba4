package idp_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/xml"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/nemidp/nemidp/config"
	"github.com/nemidp/nemidp/idp"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
)

// writeSPMetadata writes a crewjam/saml SP's metadata (a fresh RSA-2048 key, self-signed,
// requests signed) for entityID to dir and returns its path.
func writeSPMetadata(t *testing.T, dir, entityID string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: entityID},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	base, _ := url.Parse(entityID)
	sp := crewjam.ServiceProvider{EntityID: entityID, Key: key, Certificate: cert, AcsURL: *base.JoinPath("acs"),
		SignatureMethod: "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"}
	raw, err := xml.Marshal(sp.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.Base(base.Host)+".xml")
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServiceProvidersFromConfig: idp.New registers saml.service_providers (the IdP finds
// them with store.ServiceProvider), and a wrong entry stops the start naming its field.
func TestServiceProvidersFromConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := "https://a.sp.example/saml", "https://b.sp.example/saml"
	fa, fb := writeSPMetadata(t, dir, a), writeSPMetadata(t, dir, b)
	s := newTestServerWith(t, func(c *config.Config) {
		c.SAML.ServiceProviders = []config.ServiceProvider{{MetadataFile: fa, CPR: true}, {MetadataFile: fb, Subject: "global"}}
	}, idp.Options{})
	ctx := context.Background()
	spA, err := s.Store.ServiceProvider(ctx, a)
	if err != nil || !spA.CPR || spA.Subject != store.SubjectPairwise || len(spA.SigningCerts) != 1 {
		t.Fatalf("%s: %+v %v", a, spA, err)
	}
	if spB, err := s.Store.ServiceProvider(ctx, b); err != nil || spB.Subject != store.SubjectGlobal {
		t.Fatalf("%s: %+v %v", b, spB, err)
	}

	st := storetest.NewStore(t, storetest.Real().Client(t))
	cfg := s.Config
	cfg.SAML.ServiceProviders = []config.ServiceProvider{{MetadataFile: fa}, {MetadataFile: fb, Dialect: "klingon"}}
	_, err = idp.New(ctx, cfg, st, idp.Options{})
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Field != "saml.service_providers[1] ("+fb+")" {
		t.Fatalf("New with a bad entry: %v, want a FieldError naming saml.service_providers[1]", err)
	}
}
