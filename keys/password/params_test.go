package password

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestParseParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Params
		wantErr string // a part of the message; "" = valid
	}{
		{in: DefaultKDF, want: Params{MemoryKiB: 19456, Time: 2, Threads: 1}},
		{in: "argon2id$m=64,t=1,p=1", want: Params{MemoryKiB: 64, Time: 1, Threads: 1}},
		{in: "argon2id$p=4,t=3,m=65536", want: Params{MemoryKiB: 65536, Time: 3, Threads: 4}},
		{in: "argon2id$m=8,t=1,p=1", want: Params{MemoryKiB: 8, Time: 1, Threads: 1}},
		{in: "argon2id$m=1048576,t=64,p=255", want: Params{MemoryKiB: 1 << 20, Time: 64, Threads: 255}},

		{in: "", wantErr: "want argon2id$"},
		{in: "argon2id", wantErr: "want argon2id$"},
		{in: "argon2i$m=64,t=1,p=1", wantErr: `unknown algorithm "argon2i"`},
		{in: "bcrypt$m=64,t=1,p=1", wantErr: "unknown algorithm"},
		{in: "ARGON2ID$m=64,t=1,p=1", wantErr: "unknown algorithm"},
		{in: "$argon2id$m=64,t=1,p=1", wantErr: "unknown algorithm"},
		{in: "argon2id$", wantErr: "not name=value"},
		{in: "argon2id$m=64,t=1", wantErr: "parameter p missing"},
		{in: "argon2id$t=1,p=1", wantErr: "parameter m missing"},
		{in: "argon2id$m=64,p=1", wantErr: "parameter t missing"},
		{in: "argon2id$m=64,t=1,p=1,x=2", wantErr: `unknown parameter "x"`},
		{in: "argon2id$m=64,t=1,p=1,", wantErr: "not name=value"},
		{in: "argon2id$m=64,t=1,p=1,m=64", wantErr: "m given twice"},
		{in: "argon2id$m=64,t=1,t=1,p=1", wantErr: "t given twice"},
		{in: "argon2id$v=19$m=64,t=1,p=1", wantErr: `unknown parameter "v"`},
		{in: "argon2id$m=64,t=1,p=1$salt", wantErr: "not a number"},
		{in: "argon2id$m=0,t=1,p=1", wantErr: "m=0 out of range"},
		{in: "argon2id$m=64,t=0,p=1", wantErr: "t=0 out of range"},
		{in: "argon2id$m=64,t=1,p=0", wantErr: "p=0 out of range"},
		{in: "argon2id$m=7,t=1,p=1", wantErr: "m=7 out of range"},
		{in: "argon2id$m=31,t=1,p=4", wantErr: "want 32..1048576 KiB"},
		{in: "argon2id$m=1048577,t=1,p=1", wantErr: "out of range"},
		{in: "argon2id$m=64,t=65,p=1", wantErr: "t=65 out of range"},
		{in: "argon2id$m=4096,t=1,p=256", wantErr: "p=256 out of range"},
		{in: "argon2id$m=99999999999,t=1,p=1", wantErr: "not a number"},
		{in: "argon2id$m=064,t=1,p=1", wantErr: "leading zeros"},
		{in: "argon2id$m=,t=1,p=1", wantErr: "leading zeros"},
		{in: "argon2id$m=+64,t=1,p=1", wantErr: "not a number"},
		{in: "argon2id$m=-64,t=1,p=1", wantErr: "not a number"},
		{in: "argon2id$m=64 ,t=1,p=1", wantErr: "not a number"},
		{in: " argon2id$m=64,t=1,p=1", wantErr: "unknown algorithm"},
		{in: "argon2id$m:64,t=1,p=1", wantErr: "not name=value"},
	}
	for _, tt := range tests {
		got, err := ParseParams(tt.in)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseParams(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrBadParams) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseParams(%q) = %+v, %v; want an ErrBadParams saying %q", tt.in, got, err, tt.wantErr)
		}
	}
}

func TestParamsString(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		p    Params
		want string
	}{
		{Params{}, DefaultKDF},
		{TestParams, "argon2id$m=64,t=1,p=1"},
		{Params{MemoryKiB: 65536, Time: 3, Threads: 4, Concurrency: 2, Queue: 9}, "argon2id$m=65536,t=3,p=4"},
		{Params{Time: 5}, "argon2id$m=19456,t=5,p=1"},
	} {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hash := func(p Params) string {
		t.Helper()
		enc, err := NewHasher(p).Hash(ctx, "Walk1234abcd9")
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	h := NewHasher(Params{MemoryKiB: 64, Time: 1, Threads: 1, Concurrency: 3, Queue: 1})
	for _, tt := range []struct {
		name, stored string
		want         bool
	}{
		{"same cost", hash(TestParams), false},
		{"same cost, other concurrency", hash(Params{MemoryKiB: 64, Time: 1, Threads: 1, Concurrency: 1}), false},
		{"other memory", hash(Params{MemoryKiB: 128, Time: 1, Threads: 1}), true},
		{"other passes", hash(Params{MemoryKiB: 64, Time: 2, Threads: 1}), true},
		{"other lanes", hash(Params{MemoryKiB: 64, Time: 1, Threads: 2}), true},
		{"malformed", "$argon2id$v=19$m=128,t=1,p=1$", false},
		{"empty", "", false},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuu", false},
	} {
		if got := h.NeedsRehash(tt.stored); got != tt.want {
			t.Errorf("%s: NeedsRehash(%q) = %v, want %v", tt.name, tt.stored, got, tt.want)
		}
	}
	if NewHasher(Params{}).NeedsRehash(hash(Params{MemoryKiB: DefaultMemoryKiB, Time: DefaultTime, Threads: DefaultThreads})) {
		t.Error("a default hasher wants to rehash a hash made with the default cost")
	}
}

func TestTicketHash(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := NewHasher(Params{MemoryKiB: 64, Time: 1, Threads: 1, Concurrency: 1, Queue: 0})
	tk, err := h.Admit()
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Release()
	enc, err := tk.Hash(ctx, "Walk1234abcd9")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := tk.Verify(ctx, enc, "Walk1234abcd9"); err != nil || !ok {
		t.Fatalf("Verify of the ticket's hash = %v, %v", ok, err)
	}
	if h.NeedsRehash(enc) {
		t.Error("the ticket's own hash needs a rehash")
	}
}

func TestBelowOWASP(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		p    Params
		want bool
	}{
		{Params{}, false}, // the defaults are OWASP's first choice
		{Params{MemoryKiB: 19456, Time: 2, Threads: 1}, false},
		{Params{MemoryKiB: 47104, Time: 1, Threads: 1}, false},
		{Params{MemoryKiB: 12288, Time: 3, Threads: 1}, false},
		{Params{MemoryKiB: 9216, Time: 4, Threads: 1}, false},
		{Params{MemoryKiB: 7168, Time: 5, Threads: 1}, false},
		{Params{MemoryKiB: 65536, Time: 3, Threads: 4}, false},
		{Params{MemoryKiB: 7168, Time: 64, Threads: 1}, false},
		{Params{MemoryKiB: 19456, Time: 2, Threads: 8}, false},
		{TestParams, true},
		{Params{MemoryKiB: 19455, Time: 2, Threads: 1}, true},
		{Params{MemoryKiB: 47103, Time: 1, Threads: 1}, true},
		{Params{MemoryKiB: 1 << 20, Time: 1, Threads: 1}, false},
		{Params{MemoryKiB: 12287, Time: 3, Threads: 1}, true},
		{Params{MemoryKiB: 9215, Time: 4, Threads: 1}, true},
		{Params{MemoryKiB: 7167, Time: 63, Threads: 1}, true},
		{Params{MemoryKiB: 19456, Time: 1, Threads: 1}, true},
	} {
		if got := BelowOWASP(tt.p); got != tt.want {
			t.Errorf("BelowOWASP(%s) = %v, want %v", tt.p, got, tt.want)
		}
	}
}

func FuzzParseParams(f *testing.F) {
	for _, s := range []string{DefaultKDF, "argon2id$m=64,t=1,p=1", "argon2id$p=4,t=3,m=65536", "", "argon2id$",
		"argon2id$m=0,t=0,p=0", "argon2id$m=1,m=2", "argon2i$m=64,t=1,p=1", "argon2id$m=064,t=1,p=1", "argon2id$m=4294967296,t=1,p=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseParams(s)
		if err != nil {
			if !errors.Is(err, ErrBadParams) {
				t.Fatalf("error does not wrap ErrBadParams: %v", err)
			}
			return
		}
		if p.MemoryKiB == 0 || p.Time == 0 || p.Threads == 0 || p.Concurrency != 0 || p.Queue != 0 {
			t.Fatalf("ParseParams(%q) = %+v: a zero cost field or a non-cost field set", s, p)
		}
		q, err := ParseParams(p.String())
		if err != nil || q != p {
			t.Fatalf("round trip of %q through %q: %+v, %v; want %+v", s, p.String(), q, err, p)
		}
		// What parses is what a stored hash may carry: the same bounds hold for both.
		x := phc{memory: p.MemoryKiB, time: p.Time, threads: p.Threads, salt: make([]byte, saltLen), key: make([]byte, keyLen)}
		if _, err := parsePHC(x.String()); err != nil {
			t.Fatalf("ParseParams(%q) accepts a cost a stored hash may not carry: %v", s, err)
		}
	})
}
