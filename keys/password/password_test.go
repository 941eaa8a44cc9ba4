package password

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHashVerify(t *testing.T) {
	t.Parallel()
	h := NewHasher(TestParams)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "Walk1234abcd9")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("unexpected encoding %q", enc)
	}
	if again, _ := h.Hash(ctx, "Walk1234abcd9"); again == enc {
		t.Error("two hashes of the same password are equal: salt not random")
	}

	tests := []struct {
		name, pw string
		want     bool
	}{
		{"right", "Walk1234abcd9", true},
		{"wrong", "Walk1234abcd8", false},
		{"empty", "", false},
		{"case", "walk1234abcd9", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok, err := h.Verify(ctx, enc, tt.pw)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.want {
				t.Errorf("Verify(%q) = %v, want %v", tt.pw, ok, tt.want)
			}
		})
	}
}

func TestVerifyUsesEncodedParams(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	old := NewHasher(Params{MemoryKiB: 128, Time: 2, Threads: 2})
	enc, err := old.Hash(ctx, "2580")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := NewHasher(TestParams).Verify(ctx, enc, "2580"); err != nil || !ok {
		t.Fatalf("Verify with changed params = %v, %v", ok, err)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	h := NewHasher(Params{})
	if h.p.MemoryKiB != 19456 || h.p.Time != 2 || h.p.Threads != 1 || h.p.Concurrency < 1 {
		t.Errorf("defaults = %+v", h.p)
	}
}

func TestVerifyMalformed(t *testing.T) {
	t.Parallel()
	const salt = "c2FsdHNhbHRzYWx0c2FsdA"                     // 16 bytes
	const key = "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g" // 32 bytes
	tests := []struct{ name, enc string }{
		{"empty", ""},
		{"garbage", "not a hash"},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuu"},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"old version", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"missing version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"params order", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key},
		{"negative", "$argon2id$v=19$m=-64,t=1,p=1$" + salt + "$" + key},
		{"zero time", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key},
		{"zero threads", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key},
		{"threads overflow", "$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key},
		{"huge memory", "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key},
		{"bad salt", "$argon2id$v=19$m=64,t=1,p=1$!!!$" + key},
		{"padded salt", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key},
		{"short salt", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key},
		{"short key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$aGFzaA"},
		{"extra field", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$x"},
	}
	h := NewHasher(TestParams)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok, err := h.Verify(context.Background(), tt.enc, "pw")
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Errorf("Verify(%q) = %v, %v; want false, ErrMalformedHash", tt.enc, ok, err)
			}
		})
	}
	// The well-formed base parses, so the cases above fail for their stated reason.
	if _, err := parsePHC("$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key); err != nil {
		t.Fatalf("base case: %v", err)
	}
}

func TestContextWhileSemaphoreFull(t *testing.T) {
	t.Parallel()
	h := NewHasher(Params{MemoryKiB: 64, Time: 1, Threads: 1, Concurrency: 1})
	enc, err := h.Hash(context.Background(), "Walk1234abcd9")
	if err != nil {
		t.Fatal(err)
	}
	h.sem <- struct{}{}  // occupy the only slot
	t.Cleanup(h.release) // after the parallel subtests, unlike defer

	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := tt.ctx()
			defer cancel()
			if _, err := h.Hash(ctx, "x"); !errors.Is(err, tt.want) {
				t.Errorf("Hash: %v, want %v", err, tt.want)
			}
			if _, err := h.Verify(ctx, enc, "x"); !errors.Is(err, tt.want) {
				t.Errorf("Verify: %v, want %v", err, tt.want)
			}
			h.VerifyDummy(ctx, "x") // must return, not block
		})
	}
}

func TestVerifyDummy(t *testing.T) {
	t.Parallel()
	h := NewHasher(TestParams)
	h.VerifyDummy(context.Background(), "anything")
	if len(h.sem) != 0 {
		t.Error("VerifyDummy leaked a semaphore slot")
	}
}

func TestGenerateActivationPassword(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 200 {
		pw, err := GenerateActivationPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != 8 {
			t.Fatalf("%q: length %d", pw, len(pw))
		}
		if strings.ContainsAny(pw, "0Oo1lI") {
			t.Fatalf("%q contains an ambiguous character", pw)
		}
		if err := Validate(pw, ""); err != nil {
			t.Fatalf("%q fails Validate: %v", pw, err)
		}
		if seen[pw] {
			t.Fatalf("%q repeated", pw)
		}
		seen[pw] = true
	}
}

func FuzzVerify(f *testing.F) {
	h := NewHasher(TestParams)
	enc, err := h.Hash(context.Background(), "Walk1234abcd9")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{enc, "", "$argon2id$v=19$m=64,t=1,p=1$$", "$argon2id$v=19$m=,t=,p=$a$b", "$$$$$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		x, err := parsePHC(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("error does not wrap ErrMalformedHash: %v", err)
			}
			return
		}
		// Re-encoding a parsed hash must parse to the same values.
		y, err := parsePHC(x.String())
		if err != nil || y.String() != x.String() {
			t.Fatalf("round trip of %q: %q, %v", s, y.String(), err)
		}
		// Only run the KDF when it is cheap, to keep the fuzzer fast.
		if x.memory <= 256 && x.time <= 2 {
			if _, err := h.Verify(context.Background(), s, "pw"); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func BenchmarkHashDefault(b *testing.B) {
	h := NewHasher(Params{})
	ctx := context.Background()
	b.ReportAllocs()
	c0 := readCost(b)
	for b.Loop() {
		if _, err := h.Hash(ctx, "Walk1234abcd9"); err != nil {
			b.Fatal(err)
		}
	}
	reportCost(b, c0)
}

func BenchmarkVerifyDefault(b *testing.B) {
	h := NewHasher(Params{})
	ctx := context.Background()
	enc, err := h.Hash(ctx, "Walk1234abcd9")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	c0 := readCost(b)
	for b.Loop() {
		if ok, err := h.Verify(ctx, enc, "Walk1234abcd9"); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
	reportCost(b, c0)
}
