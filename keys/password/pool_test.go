package password

import (
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/nemidp/nemidp/keys/password/internal/argon2id"
)

// TestHashesMatchXCrypto: hashes made here verify with x/crypto's argon2.IDKey, and hashes
// made with x/crypto (as every stored hash before the pooled KDF was) verify here, over costs
// NEMIDP_PASSWORD_KDF may name, lanes included.
func TestHashesMatchXCrypto(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, p := range []Params{
		TestParams,
		{MemoryKiB: 128, Time: 2, Threads: 2},
		{MemoryKiB: 1000, Time: 3, Threads: 3},
		{MemoryKiB: 2048, Time: 1, Threads: 4},
		{MemoryKiB: 7168, Time: 5, Threads: 1},
		{}, // the default, m=19456 t=2 p=1
	} {
		t.Run(p.String(), func(t *testing.T) {
			t.Parallel()
			h := NewHasher(p)
			const pw = "Walk1234abcd9"
			enc, err := h.Hash(ctx, pw)
			if err != nil {
				t.Fatal(err)
			}
			x, err := parsePHC(enc)
			if err != nil {
				t.Fatal(err)
			}
			if got := argon2.IDKey([]byte(pw), x.salt, x.time, x.memory, x.threads, uint32(len(x.key))); subtle.ConstantTimeCompare(got, x.key) != 1 {
				t.Fatalf("x/crypto does not verify %s", enc)
			}
			x.salt = []byte("another-salt-16b")
			x.key = argon2.IDKey([]byte(pw), x.salt, x.time, x.memory, x.threads, keyLen)
			for _, tt := range []struct {
				pw   string
				want bool
			}{{pw, true}, {pw + "x", false}} {
				if ok, err := h.Verify(ctx, x.String(), tt.pw); err != nil || ok != tt.want {
					t.Errorf("Verify(x/crypto's %s, %q) = %v, %v; want %v", x, tt.pw, ok, err, tt.want)
				}
			}
		})
	}
}

// pooled is h's pooled buffers; no hash may be running.
func pooled(t *testing.T, h *Hasher) []*argon2id.Buffer {
	t.Helper()
	h.poolMu.Lock()
	defer h.poolMu.Unlock()
	if len(h.free) != h.made {
		t.Fatalf("%d buffers made, %d in the pool: one was not given back", h.made, len(h.free))
	}
	return slices.Clone(h.free)
}

// TestPool: however many hashes, verifications and dummy verifications run, the hasher keeps
// at most Concurrency buffers, each of its own cost and zero between hashes; a stored hash
// with more memory than the hasher's verifies without a bigger buffer joining the pool, and
// one with less uses a pooled buffer.
func TestPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		p      Params
		stored []Params // costs of the stored hashes verified
	}{
		{"one slot", Params{MemoryKiB: 256, Time: 1, Threads: 1, Concurrency: 1, Queue: 16}, []Params{{MemoryKiB: 256, Time: 1, Threads: 1}}},
		{"three slots", Params{MemoryKiB: 512, Time: 1, Threads: 2, Concurrency: 3, Queue: 16},
			[]Params{{MemoryKiB: 512, Time: 1, Threads: 2}, {MemoryKiB: 64, Time: 2, Threads: 1}, {MemoryKiB: 2048, Time: 1, Threads: 4}}},
		{"old hashes bigger", Params{MemoryKiB: 64, Time: 1, Threads: 1, Concurrency: 2, Queue: 16},
			[]Params{{MemoryKiB: 1024, Time: 1, Threads: 1}, {MemoryKiB: 4096, Time: 1, Threads: 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := NewHasher(tt.p)
			var stored []string
			for i, sp := range tt.stored {
				enc, err := NewHasher(sp).Hash(ctx, fmt.Sprint("pw", i))
				if err != nil {
					t.Fatal(err)
				}
				stored = append(stored, enc)
			}
			var wg sync.WaitGroup
			for i := range 12 {
				wg.Go(func() {
					enc := stored[i%len(stored)]
					if ok, err := h.Verify(ctx, enc, fmt.Sprint("pw", i%len(stored))); err != nil || !ok {
						t.Errorf("Verify = %v, %v", ok, err)
					}
					if _, err := h.Hash(ctx, "Walk1234abcd9"); err != nil {
						t.Error(err)
					}
					h.VerifyDummy(ctx, "x")
				})
			}
			wg.Wait()
			bufs := pooled(t, h)
			for _, b := range bufs {
				if b.Len() != h.blocks {
					t.Errorf("a pooled buffer has %d blocks, want the hasher's %d", b.Len(), h.blocks)
				}
				if !b.IsZero() {
					t.Error("a pooled buffer was not cleared")
				}
			}
			if len(bufs) < 1 || len(bufs) > tt.p.Concurrency {
				t.Errorf("%d buffers made, want 1..%d", len(bufs), tt.p.Concurrency)
			}
		})
	}
}

// TestPoolReuse: hashes one after another use one buffer, whatever the number of slots.
func TestPoolReuse(t *testing.T) {
	t.Parallel()
	h := NewHasher(Params{MemoryKiB: 128, Time: 1, Threads: 1, Concurrency: 4})
	for range 5 {
		if _, err := h.Hash(context.Background(), "Walk1234abcd9"); err != nil {
			t.Fatal(err)
		}
	}
	if bufs := pooled(t, h); len(bufs) != 1 || !bufs[0].IsZero() {
		t.Fatalf("%d buffers after hashes one at a time, want 1, cleared", len(bufs))
	}
}

// TestPoolSafeguard: with every pooled buffer made and taken (which the slots never let
// happen), a hash still runs, in a buffer of its own.
func TestPoolSafeguard(t *testing.T) {
	t.Parallel()
	h := NewHasher(Params{MemoryKiB: 64, Time: 1, Threads: 1, Concurrency: 1})
	h.made = 1 // made and never given back
	enc, err := h.Hash(context.Background(), "Walk1234abcd9")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.Verify(context.Background(), enc, "Walk1234abcd9"); err != nil || !ok {
		t.Fatalf("Verify = %v, %v", ok, err)
	}
	if len(h.free) != 0 {
		t.Error("a buffer of its own joined the pool")
	}
}
