package argon2id

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/crypto/argon2"
)

// dirty fills b with a pattern no Argon2 memory holds, as a buffer reused from another hash
// would be.
func dirty(b *Buffer, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 17))
	for i := range b.blocks {
		for j := range b.blocks[i] {
			b.blocks[i][j] = r.Uint64()
		}
	}
}

// implementations runs f with the assembly (where this CPU has it) and with the generic code.
func implementations(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	impls := []bool{false}
	if useSSE4 {
		impls = append(impls, true)
	}
	saved := useSSE4
	t.Cleanup(func() { useSSE4 = saved })
	for _, sse := range impls {
		t.Run(fmt.Sprintf("sse4=%v", sse), func(t *testing.T) {
			useSSE4 = sse
			f(t)
		})
	}
}

// TestIDKeyMatchesXCrypto: IDKey in one reused buffer, dirty before the first case and left
// as each case leaves it for the next, gives x/crypto's argon2.IDKey bit for bit, over time,
// memory (multiples of 4·p and not, below 8·p, the production 19 MiB), lanes 1–8, and key,
// salt and password lengths (keys over 64 bytes take blake2bHash's long path).
func TestIDKeyMatchesXCrypto(t *testing.T) {
	tests := []struct {
		time, memory uint32
		threads      uint8
		keyLen       uint32
		pw, salt     int
	}{
		{1, 8, 1, 32, 8, 16},
		{1, 64, 1, 32, 13, 16},
		{2, 64, 1, 32, 0, 8},
		{3, 100, 1, 16, 64, 16},
		{1, 64, 2, 32, 10, 16},
		{2, 63, 2, 32, 10, 16}, // rounded down to 56
		{2, 7, 2, 32, 10, 16},  // below 8·p: 16 blocks
		{3, 256, 3, 64, 20, 32},
		{2, 1000, 4, 65, 20, 16},
		{4, 1024, 4, 100, 7, 16},
		{1, 4096, 8, 32, 12, 64},
		{2, 333, 5, 48, 5, 16},
		{1, 2048, 1, 1024, 16, 16},
		{2, 19456, 1, 32, 13, 16}, // production
		{1, 47104 / 8, 2, 32, 13, 16},
	}
	need := 0
	for _, tt := range tests {
		need = max(need, Blocks(tt.memory, tt.threads))
	}
	implementations(t, func(t *testing.T) {
		buf := NewBuffer(need)
		defer buf.Free()
		dirty(buf, 1)
		for i, tt := range tests {
			pw, salt := make([]byte, tt.pw), make([]byte, tt.salt)
			r := rand.New(rand.NewPCG(uint64(i), 99))
			for j := range pw {
				pw[j] = byte(r.Uint32())
			}
			for j := range salt {
				salt[j] = byte(r.Uint32())
			}
			want := argon2.IDKey(pw, salt, tt.time, tt.memory, tt.threads, tt.keyLen)
			got := IDKey(buf, pw, salt, tt.time, tt.memory, tt.threads, tt.keyLen)
			if !bytes.Equal(got, want) {
				t.Errorf("t=%d m=%d p=%d len=%d: got %x, x/crypto %x", tt.time, tt.memory, tt.threads, tt.keyLen, got, want)
			}
			// The same again in a buffer of exactly the size needed, just made.
			exact := NewBuffer(Blocks(tt.memory, tt.threads))
			if got := IDKey(exact, pw, salt, tt.time, tt.memory, tt.threads, tt.keyLen); !bytes.Equal(got, want) {
				t.Errorf("t=%d m=%d p=%d in a new exact buffer: got %x, x/crypto %x", tt.time, tt.memory, tt.threads, got, want)
			}
			exact.Free()
		}
	})
}

// genKat* are the inputs of RFC 9106's test vectors (§5: P = 32 × 0x01, S = 16 × 0x02,
// K = 8 × 0x03, X = 12 × 0x04).
var (
	genKatPassword = bytes.Repeat([]byte{0x01}, 32)
	genKatSalt     = bytes.Repeat([]byte{0x02}, 16)
	genKatSecret   = bytes.Repeat([]byte{0x03}, 8)
	genKatAAD      = bytes.Repeat([]byte{0x04}, 12)
)

// TestVectors: RFC 9106 §5.3 (Argon2id, m=32 t=3 p=4, with secret and associated data), and
// the Argon2id vectors of the reference implementation that x/crypto tests with ("password",
// "somesalt"), each in a dirty buffer.
func TestVectors(t *testing.T) {
	tests := []struct {
		name                string
		pw, salt, key, data []byte
		time, memory        uint32
		threads             uint8
		want                string
	}{
		{"RFC 9106 5.3", genKatPassword, genKatSalt, genKatSecret, genKatAAD, 3, 32, 4,
			"0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"},
		{"ref t=1 m=64 p=1", []byte("password"), []byte("somesalt"), nil, nil, 1, 64, 1,
			"655ad15eac652dc59f7170a7332bf49b8469be1fdb9c28bb"},
		{"ref t=2 m=64 p=1", []byte("password"), []byte("somesalt"), nil, nil, 2, 64, 1,
			"068d62b26455936aa6ebe60060b0a65870dbfa3ddf8d41f7"},
		{"ref t=2 m=64 p=2", []byte("password"), []byte("somesalt"), nil, nil, 2, 64, 2,
			"350ac37222f436ccb5c0972f1ebd3bf6b958bf2071841362"},
		{"ref t=3 m=256 p=2", []byte("password"), []byte("somesalt"), nil, nil, 3, 256, 2,
			"4668d30ac4187e6878eedeacf0fd83c5a0a30db2cc16ef0b"},
		{"ref t=4 m=4096 p=4", []byte("password"), []byte("somesalt"), nil, nil, 4, 4096, 4,
			"145db9733a9f4ee43edf33c509be96b934d505a4efb33c5a"},
		{"ref t=4 m=1024 p=8", []byte("password"), []byte("somesalt"), nil, nil, 4, 1024, 8,
			"8dafa8e004f8ea96bf7c0f93eecf67a6047476143d15577f"},
		{"ref t=2 m=64 p=3", []byte("password"), []byte("somesalt"), nil, nil, 2, 64, 3,
			"4a15b31aec7c2590b87d1f520be7d96f56658172deaa3079"},
		{"ref t=3 m=1024 p=6", []byte("password"), []byte("somesalt"), nil, nil, 3, 1024, 6,
			"1640b932f4b60e272f5d2207b9a9c626ffa1bd88d2349016"},
	}
	implementations(t, func(t *testing.T) {
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				want, err := hex.DecodeString(tt.want)
				if err != nil {
					t.Fatal(err)
				}
				buf := NewBuffer(Blocks(tt.memory, tt.threads) + 3)
				defer buf.Free()
				dirty(buf, uint64(i))
				got := deriveKey(buf, tt.pw, tt.salt, tt.key, tt.data, tt.time, tt.memory, tt.threads, uint32(len(want)))
				if !bytes.Equal(got, want) {
					t.Errorf("got %x, want %x", got, want)
				}
			})
		}
	})
}

func TestBlocks(t *testing.T) {
	tests := []struct {
		memory  uint32
		threads uint8
		want    int
	}{
		{19456, 1, 19456}, {19457, 1, 19456}, {64, 1, 64}, {7, 1, 8}, {0, 1, 8},
		{63, 2, 56}, {7, 2, 16}, {1000, 3, 996}, {47104, 4, 47104}, {8, 255, 2040},
	}
	for _, tt := range tests {
		if got := Blocks(tt.memory, tt.threads); got != tt.want {
			t.Errorf("Blocks(%d, %d) = %d, want %d", tt.memory, tt.threads, got, tt.want)
		}
	}
}

// TestBuffer: a new buffer is zero, IDKey leaves password-derived blocks, Clear(n) zeroes
// the first n and no more, Free empties it; a buffer too small is refused.
func TestBuffer(t *testing.T) {
	zero := func(b []block) bool {
		for i := range b {
			if b[i] != (block{}) {
				return false
			}
		}
		return true
	}
	for _, n := range []int{8, 64, 1000, 19456} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			b := NewBuffer(n + 5)
			if b.Len() != n+5 || !zero(b.blocks) {
				t.Fatalf("new buffer: Len %d, zero %v", b.Len(), zero(b.blocks))
			}
			IDKey(b, []byte("Walk1234abcd9"), []byte("saltsaltsaltsalt"), 1, uint32(n), 1, 32)
			b.blocks[n+2][0] = 7 // past what IDKey used: Clear(n) must leave it
			if zero(b.blocks[:n]) {
				t.Fatal("IDKey left the buffer zero")
			}
			b.Clear(n)
			if !zero(b.blocks[:n]) || b.blocks[n+2][0] != 7 {
				t.Fatal("Clear(n) did not zero exactly the first n blocks")
			}
			b.Free()
			if b.Len() != 0 {
				t.Fatalf("Len after Free = %d", b.Len())
			}
			b.Free() // again: nothing
		})
	}
	if NewBuffer(0).Len() != 0 {
		t.Error("NewBuffer(0) not empty")
	}
	defer func() {
		if recover() == nil {
			t.Error("IDKey in a buffer too small did not panic")
		}
	}()
	IDKey(NewBuffer(63), []byte("pw"), []byte("saltsalt"), 1, 64, 1, 32)
}

func BenchmarkIDKey(b *testing.B) {
	buf := NewBuffer(Blocks(19456, 1))
	defer buf.Free()
	pw, salt := []byte("Walk1234abcd9"), []byte("saltsaltsaltsalt")
	b.ReportAllocs()
	for b.Loop() {
		IDKey(buf, pw, salt, 2, 19456, 1, 32)
		buf.Clear(19456)
	}
}

func BenchmarkXCryptoIDKey(b *testing.B) {
	pw, salt := []byte("Walk1234abcd9"), []byte("saltsaltsaltsalt")
	b.ReportAllocs()
	for b.Loop() {
		argon2.IDKey(pw, salt, 2, 19456, 1, 32)
	}
}

// TestProcessBlockGeneric: the generic block function (the code of non-amd64 and purego
// builds) gives what processBlock and processBlockXOR give on this build (the assembly on
// amd64), writing and XORing.
func TestProcessBlockGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 50 {
		var in1, in2, out block
		for j := range in1 {
			in1[j], in2[j], out[j] = r.Uint64(), r.Uint64(), r.Uint64()
		}
		for _, xor := range []bool{false, true} {
			want, got := out, out
			if xor {
				processBlockXOR(&want, &in1, &in2)
			} else {
				processBlock(&want, &in1, &in2)
			}
			processBlockGeneric(&got, &in1, &in2, xor)
			if got != want {
				t.Fatalf("block %d, xor %v: the generic code differs", i, xor)
			}
		}
	}
}
