package password

import (
	"context"
	"testing"
)

// The production parameters' Verify is BenchmarkVerifyDefault (password_test.go); this file
// adds the cheap one, so the two together split a check into KDF and everything else.

// BenchmarkVerifyTestParams: one op is one right-password Verify at TestParams (m=64 KiB,
// t=1): the check's cost outside the KDF (PHC parsing, queue slot, comparison).
func BenchmarkVerifyTestParams(b *testing.B) {
	ctx := context.Background()
	h := NewHasher(TestParams)
	const pw = "Hemmelig42nemid"
	enc, err := h.Hash(ctx, pw)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		ok, err := h.Verify(ctx, enc, pw)
		if err != nil || !ok {
			b.Fatalf("Verify = %v, %v", ok, err)
		}
	}
}

// BenchmarkVerifyDefaultParallel: right-password Verify at the default cost from GOMAXPROCS
// goroutines at once, as the server's login.kdf_parallel slots (GOMAXPROCS by default) run
// in a login storm: the hashes share caches and memory bandwidth, so one costs more CPU than
// in BenchmarkVerifyDefault, where one runs at a time.
func BenchmarkVerifyDefaultParallel(b *testing.B) {
	ctx := context.Background()
	h := NewHasher(Params{})
	const pw = "Walk1234abcd9"
	enc, err := h.Hash(ctx, pw)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	c0 := readCost(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, err := h.Verify(ctx, enc, pw); err != nil || !ok {
				b.Errorf("Verify = %v, %v", ok, err)
				return
			}
		}
	})
	reportCost(b, c0)
}
