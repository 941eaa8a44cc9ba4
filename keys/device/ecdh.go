package device

import "crypto/ecdh"

// ecdhP256 parses an uncompressed P-256 point, refusing one off the curve.
func ecdhP256(point []byte) (*ecdh.PublicKey, error) { return ecdh.P256().NewPublicKey(point) }
