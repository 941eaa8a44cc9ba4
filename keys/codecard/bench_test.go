package codecard

import "testing"

// BenchmarkHash: one op is the keyed hash of one typed card key (HMAC-SHA256 + base64), what
// a login computes before the store compares it.
func BenchmarkHash(b *testing.B) {
	h, err := NewHasher(testSecret)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(h.Hash("G123456789", "0042", "123456")) == 0 {
			b.Fatal("empty hash")
		}
	}
}
