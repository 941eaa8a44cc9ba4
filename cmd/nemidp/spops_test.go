package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/xml"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/nemidp/nemidp/idp/admin"
)

// spMetadataFile writes a crewjam/saml SP's metadata for entityID (RSA 2048, self-signed,
// signed requests unless unsigned) and returns its path.
func spMetadataFile(t *testing.T, entityID string, unsigned bool) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cli sp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	base, _ := url.Parse(entityID)
	sp := crewjam.ServiceProvider{EntityID: entityID, Key: key, Certificate: cert, AcsURL: *base.JoinPath("acs")}
	if !unsigned {
		sp.SignatureMethod = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	}
	raw, err := xml.Marshal(sp.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "metadata.xml")
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSPOps: `nemidp sp add|show|list|remove` answer as the operator API does (its view, its
// refusals); flags may follow the file.
func TestSPOps(t *testing.T) {
	t.Parallel()
	getenv := cliEnv(t)
	ctx := context.Background()
	id := "https://cli-sp.example/saml"
	signed, unsigned := spMetadataFile(t, id, false), spMetadataFile(t, id, true)

	view := func(t *testing.T, args ...string) admin.ServiceProviderView {
		t.Helper()
		var out bytes.Buffer
		if err := run(ctx, args, getenv, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		var v admin.ServiceProviderView
		if err := json.Unmarshal(out.Bytes(), &v); err != nil {
			t.Fatalf("%v printed %q: %v", args, out.String(), err)
		}
		return v
	}
	refused := func(t *testing.T, code string, args ...string) {
		t.Helper()
		var out bytes.Buffer
		err := run(ctx, args, getenv, &out)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Code != code || ae.Message == "" {
			t.Fatalf("%v: err = %v, want the API's %s", args, err, code)
		}
		if out.Len() != 0 {
			t.Fatalf("%v: printed %q on a refusal", args, out.String())
		}
	}

	refused(t, "invalid_metadata", "sp", "add", unsigned) // must sign, and its metadata has no signing key
	v := view(t, "sp", "add", "--name", "Kommunen", signed, "--cpr", "--subject", "global", "--dialect", "default")
	if v.EntityID != id || v.Name != "Kommunen" || !v.Policy.CPR || v.Policy.Subject != "global" || v.Policy.Dialect != "default" || v.Replaced {
		t.Fatalf("add: %+v", v)
	}
	refused(t, "conflict", "sp", "add", signed)
	if v := view(t, "sp", "add", unsigned, "--unsigned-requests", "--replace"); !v.Replaced || !v.Policy.UnsignedRequests || v.Policy.CPR {
		t.Fatalf("add --replace: %+v", v)
	}
	if v := view(t, "sp", "show", id); v.EntityID != id || !v.Policy.UnsignedRequests {
		t.Fatalf("show: %+v", v)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"sp", "list"}, getenv, &out); err != nil || !strings.Contains(out.String(), `"`+id+`"`) {
		t.Fatalf("list: %q %v", out.String(), err)
	}
	out.Reset()
	if err := run(ctx, []string{"sp", "remove", id}, getenv, &out); err != nil || !strings.Contains(out.String(), `"deleted": true`) {
		t.Fatalf("remove: %q %v", out.String(), err)
	}
	refused(t, "not_found", "sp", "show", id)
	refused(t, "invalid_request", "sp", "add", signed, "--subject", "transient")

	for _, args := range [][]string{{"sp", "add"}, {"sp", "add", "a.xml", "b.xml"}, {"sp", "show"}, {"sp", "list", "x"},
		{"sp", "add", filepath.Join(t.TempDir(), "missing.xml")}} {
		err := run(ctx, args, getenv, &bytes.Buffer{})
		var ae *APIError
		if err == nil || errors.As(err, &ae) {
			t.Fatalf("%v: err = %v, want a usage error before any API call", args, err)
		}
	}
}
