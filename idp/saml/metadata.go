package saml

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
)

// MetadataValidity is how long published metadata is valid (validUntil), from the start of
// the day it was made; SPs should fetch it again well before (cacheDuration).
const (
	MetadataValidity = 7 * 24 * time.Hour
	metadataCacheFor = 24 * time.Hour
)

// metadataCache keeps the signed metadata of one day: every instance makes the same bytes
// that day (the ID and validUntil are derived from the day and the certificates, and an RSA
// PKCS #1 v1.5 signature is deterministic).
type metadataCache struct {
	mu   sync.Mutex
	day  time.Time
	body []byte
}

func (h *Handler) metadata(w http.ResponseWriter, r *http.Request) {
	body, err := h.signedMetadata(h.now())
	if err != nil {
		h.onError(w, r, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(body)
}

// signedMetadata is the IdP's EntityDescriptor, signed (enveloped, rsa-sha256, exclusive
// c14n), for the day of now.
func (h *Handler) signedMetadata(now time.Time) ([]byte, error) {
	day := now.UTC().Truncate(24 * time.Hour)
	h.meta.mu.Lock()
	defer h.meta.mu.Unlock()
	if h.meta.body != nil && h.meta.day.Equal(day) {
		return h.meta.body, nil
	}
	ed := h.idp.Metadata()
	d := &ed.IDPSSODescriptors[0]
	// Signing keys only: the IdP decrypts nothing (yet).
	var kds []saml.KeyDescriptor
	for _, k := range d.KeyDescriptors {
		if k.Use == "signing" {
			kds = append(kds, k)
		}
	}
	d.KeyDescriptors = kds
	want := true
	d.WantAuthnRequestsSigned = &want // OIOSAML 3.0; SPs registered with unsigned_requests are the exception
	ed.ValidUntil = day.Add(MetadataValidity)
	ed.CacheDuration = metadataCacheFor
	id := sha256.New()
	id.Write([]byte(ed.ValidUntil.Format(time.RFC3339)))
	id.Write(h.Keys.Current.Cert.Raw)
	for _, c := range h.Keys.Next {
		id.Write(c.Raw)
	}
	ed.ID = "_" + hex.EncodeToString(id.Sum(nil)[:20])

	raw, err := xml.Marshal(ed)
	if err != nil {
		return nil, fmt.Errorf("saml: metadata: %w", err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, fmt.Errorf("saml: metadata: %w", err)
	}
	ctx, err := dsig.NewSigningContext(h.Keys.Current.Signer, [][]byte{h.Keys.Current.Cert.Raw})
	if err != nil {
		return nil, fmt.Errorf("saml: metadata: %w", err)
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		return nil, fmt.Errorf("saml: metadata: %w", err)
	}
	root := doc.Root()
	sig, err := ctx.ConstructSignature(root, true)
	if err != nil {
		return nil, fmt.Errorf("saml: sign metadata: %w", err)
	}
	root.InsertChildAt(0, sig) // the schema wants ds:Signature first
	out := etree.NewDocument()
	out.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	out.SetRoot(root)
	body, err := out.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("saml: metadata: %w", err)
	}
	h.meta.day, h.meta.body = day, body
	return body, nil
}
