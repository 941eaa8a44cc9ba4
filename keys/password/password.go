// Package password validates NemID passwords and hashes them with argon2id.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nemidp/nemidp/keys/password/internal/argon2id"
)

// OWASP argon2id recommendation (m=19 MiB, t=2, p=1).
const (
	DefaultMemoryKiB = 19456
	DefaultTime      = 2
	DefaultThreads   = 1

	saltLen = 16
	keyLen  = 32
)

// Bounds on parameters read from a stored hash, so a corrupt or hostile
// record cannot make Verify allocate unbounded memory or spin forever.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxTime      = 64
	minSaltLen   = 8
	maxSaltLen   = 64
	minKeyLen    = 16
	maxKeyLen    = 64
)

// ErrMalformedHash is wrapped by Verify errors for an unparsable encoded hash.
var ErrMalformedHash = errors.New("password: malformed hash")

// Params tunes argon2id. Zero fields take the defaults; Concurrency
// defaults to runtime.GOMAXPROCS(0), Queue to 4 × Concurrency.
type Params struct {
	MemoryKiB   uint32
	Time        uint32
	Threads     uint8
	Concurrency int
	// Queue bounds how many hashes may wait for one of the Concurrency slots; past it a hash
	// is refused at once with ErrBusy (load shedding keeps a login storm's latency bounded).
	Queue int
}

// ErrBusy is returned when the hash queue is full.
var ErrBusy = errors.New("password: too many hashes waiting")

// TestParams is cheap (m=64 KiB, t=1) for other packages' tests.
var TestParams = Params{MemoryKiB: 64, Time: 1, Threads: 1}

// Hasher hashes and verifies passwords. At most Concurrency hashes run at
// once, so a login storm queues instead of multiplying memory use, and at
// most Queue more wait.
//
// Each running hash has its argon2 memory from a pool of at most Concurrency buffers of the
// hasher's own cost (m KiB each), made when all made are in use and then kept, instead of
// allocating m KiB per hash: a server holds at most Concurrency × m of KDF memory however many
// logins come, on unix outside the Go heap (keys/password/internal/argon2id). A buffer is
// zeroed before it goes back to the pool (0.8–1 ms a login): from the blocks a hash leaves, its
// later passes can be undone back to the first, whose blocks test a password guess with a few
// Blake2b calls instead of the whole KDF. A stored hash made with more memory than the
// hasher's is verified in a buffer of its own, zeroed and freed after.
type Hasher struct {
	p       Params
	sem     chan struct{} // running hashes
	tickets chan struct{} // running and waiting hashes
	waiting atomic.Int64  // waiting for a slot
	blocks  int           // the pooled buffers' size: argon2id.Blocks of the hasher's cost

	poolMu sync.Mutex
	free   []*argon2id.Buffer // last in, first out: light load keeps to few buffers
	made   int                // pooled buffers made, at most Concurrency
}

// Waiting reports how many hashes wait for a slot (the queue's depth, for metrics and tests).
func (h *Hasher) Waiting() int { return int(h.waiting.Load()) }

// NewHasher returns a Hasher with p, zero fields replaced by defaults.
func NewHasher(p Params) *Hasher {
	p = p.withDefaults()
	if p.Concurrency <= 0 {
		p.Concurrency = runtime.GOMAXPROCS(0)
	}
	if p.Queue <= 0 {
		p.Queue = 4 * p.Concurrency
	}
	return &Hasher{p: p, sem: make(chan struct{}, p.Concurrency), tickets: make(chan struct{}, p.Concurrency+p.Queue),
		blocks: argon2id.Blocks(p.MemoryKiB, p.Threads)}
}

// Ticket is a place in the hash queue: one hash, verification or dummy verification at a
// time, taken by Admit before any other work, so a full queue refuses a login at once.
type Ticket struct {
	h    *Hasher
	done bool
}

// Admit takes a place in the queue, or fails with ErrBusy when it is full.
func (h *Hasher) Admit() (*Ticket, error) {
	select {
	case h.tickets <- struct{}{}:
		return &Ticket{h: h}, nil
	default:
		return nil, ErrBusy
	}
}

// Hold takes one hash slot without hashing until release is called: for draining hashes
// before maintenance, and for tests that need the KDF busy for exactly as long as they say.
func (h *Hasher) Hold(ctx context.Context) (release func(), err error) {
	t, err := h.Admit()
	if err != nil {
		return nil, err
	}
	if err := h.acquire(ctx); err != nil {
		t.Release()
		return nil, err
	}
	return func() { h.release(); t.Release() }, nil
}

// Release gives the place back; calling it again does nothing.
func (t *Ticket) Release() {
	if t != nil && !t.done {
		t.done = true
		<-t.h.tickets
	}
}

// Verify is Hasher.Verify within the ticket's place.
func (t *Ticket) Verify(ctx context.Context, encoded, password string) (bool, error) {
	return t.h.verify(ctx, encoded, password)
}

// VerifyDummy is Hasher.VerifyDummy within the ticket's place; it fails only when ctx ends
// while it waits for a slot.
func (t *Ticket) VerifyDummy(ctx context.Context, password string) error {
	return t.h.verifyDummy(ctx, password)
}

func (h *Hasher) acquire(ctx context.Context) error {
	// Checked first because select picks randomly when both cases are ready.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("password: waiting for hash slot: %w", err)
	}
	select {
	case h.sem <- struct{}{}:
		return nil
	default:
	}
	h.waiting.Add(1)
	defer h.waiting.Add(-1)
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("password: waiting for hash slot: %w", ctx.Err())
	}
}

func (h *Hasher) release() { <-h.sem }

// phc is a decoded argon2id PHC string.
type phc struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

func (x phc) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2id.Version,
		x.memory, x.time, x.threads,
		base64.RawStdEncoding.EncodeToString(x.salt),
		base64.RawStdEncoding.EncodeToString(x.key))
}

// derive is x's key for password (len(x.key) bytes), in one of the hash slots: it waits for a
// slot as acquire does, and runs in a pooled buffer.
func (h *Hasher) derive(ctx context.Context, x phc, password string) ([]byte, error) {
	if err := h.acquire(ctx); err != nil {
		return nil, err
	}
	defer h.release()
	need := argon2id.Blocks(x.memory, x.threads)
	buf, put := h.buffer(need)
	defer put()
	return argon2id.IDKey(buf, []byte(password), x.salt, x.time, x.memory, x.threads, uint32(len(x.key))), nil
}

// buffer is argon2 memory of at least need blocks for a hash holding a slot, and put, which
// zeroes what the hash used and gives the buffer back. The most recently used buffer is taken
// first, and a new one is made only when all made are in use: at most one per slot, since a
// slot takes one at a time (the limit is only a safeguard). A need above the hasher's own cost
// (a stored hash made with more memory) gets a buffer of its own, which put frees.
func (h *Hasher) buffer(need int) (buf *argon2id.Buffer, put func()) {
	if need <= h.blocks {
		h.poolMu.Lock()
		mine := false
		if n := len(h.free); n > 0 {
			buf, h.free, mine = h.free[n-1], h.free[:n-1], true
		} else if h.made < h.p.Concurrency {
			h.made, mine = h.made+1, true
		}
		h.poolMu.Unlock()
		if mine {
			if buf == nil {
				buf = argon2id.NewBuffer(h.blocks)
			}
			return buf, func() {
				buf.Clear(need)
				h.poolMu.Lock()
				h.free = append(h.free, buf)
				h.poolMu.Unlock()
			}
		}
	}
	buf = argon2id.NewBuffer(need)
	return buf, buf.Free
}

// Hash returns password's argon2id hash in PHC string format.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	t, err := h.Admit()
	if err != nil {
		return "", err
	}
	defer t.Release()
	return h.hash(ctx, password)
}

// Hash is Hasher.Hash within the ticket's place: a verification that finds its stored hash
// made with other parameters rehashes the password without queueing a second time.
func (t *Ticket) Hash(ctx context.Context, password string) (string, error) {
	return t.h.hash(ctx, password)
}

func (h *Hasher) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	x := phc{memory: h.p.MemoryKiB, time: h.p.Time, threads: h.p.Threads, salt: salt, key: make([]byte, keyLen)}
	key, err := h.derive(ctx, x, password) // derive sizes its output by len(x.key)
	if err != nil {
		return "", err
	}
	x.key = key
	return x.String(), nil
}

// Verify reports whether password matches encoded. Parameters come from
// encoded, so hashes made under older Params still verify.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (bool, error) {
	t, err := h.Admit()
	if err != nil {
		return false, err
	}
	defer t.Release()
	return h.verify(ctx, encoded, password)
}

func (h *Hasher) verify(ctx context.Context, encoded, password string) (bool, error) {
	x, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	key, err := h.derive(ctx, x, password)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(key, x.key) == 1, nil
}

// dummySalt is fixed: VerifyDummy only needs to cost the same, not to match.
var dummySalt = []byte("nemidp-dummy-slt")

// VerifyDummy spends the same work as Verify against a fixed dummy hash,
// so an unknown user costs the same time as a wrong password.
func (h *Hasher) VerifyDummy(ctx context.Context, password string) {
	if t, err := h.Admit(); err == nil {
		defer t.Release()
		_ = h.verifyDummy(ctx, password)
	}
}

func (h *Hasher) verifyDummy(ctx context.Context, password string) error {
	x := phc{memory: h.p.MemoryKiB, time: h.p.Time, threads: h.p.Threads, salt: dummySalt, key: make([]byte, keyLen)}
	key, err := h.derive(ctx, x, password)
	if err != nil {
		return err
	}
	subtle.ConstantTimeCompare(key, x.key)
	return nil
}

func malformed(what string) error { return fmt.Errorf("%w: %s", ErrMalformedHash, what) }

// parsePHC decodes "$argon2id$v=19$m=..,t=..,p=..$salt$hash".
func parsePHC(s string) (phc, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return phc{}, malformed("want 5 $-separated fields")
	}
	if parts[1] != "argon2id" {
		return phc{}, malformed("algorithm is not argon2id")
	}
	if parts[2] != "v="+strconv.Itoa(argon2id.Version) {
		return phc{}, malformed("unsupported version")
	}

	var x phc
	kv := strings.Split(parts[3], ",")
	if len(kv) != 3 {
		return phc{}, malformed("want parameters m,t,p")
	}
	for i, name := range []string{"m", "t", "p"} {
		val, ok := strings.CutPrefix(kv[i], name+"=")
		if !ok {
			return phc{}, malformed("want parameters m,t,p")
		}
		// ParseUint rejects signs and empty values; 32-bit fits every field.
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return phc{}, malformed("bad parameter " + name)
		}
		switch name {
		case "m":
			x.memory = uint32(n)
		case "t":
			x.time = uint32(n)
		case "p":
			if n > 255 {
				return phc{}, malformed("parallelism out of range")
			}
			x.threads = uint8(n)
		}
	}
	switch {
	case x.threads < 1:
		return phc{}, malformed("parallelism out of range")
	case x.time < 1 || x.time > maxTime:
		return phc{}, malformed("time out of range")
	case x.memory < 8*uint32(x.threads) || x.memory > maxMemoryKiB:
		return phc{}, malformed("memory out of range")
	}

	var err error
	if x.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil {
		return phc{}, malformed("bad salt encoding")
	}
	if len(x.salt) < minSaltLen || len(x.salt) > maxSaltLen {
		return phc{}, malformed("salt length out of range")
	}
	if x.key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil {
		return phc{}, malformed("bad hash encoding")
	}
	if len(x.key) < minKeyLen || len(x.key) > maxKeyLen {
		return phc{}, malformed("hash length out of range")
	}
	return x, nil
}

// Unambiguous alphabet: no 0/O/o, 1/l/I, so it survives being read aloud or
// copied from a letter.
const (
	activationLetters = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
	activationDigits  = "23456789"
	activationChars   = activationLetters + activationDigits
	activationLen     = 8
)

// GenerateActivationPassword returns a temporary 8-character activation
// password from crypto/rand with at least one letter and one digit, so it
// passes Validate.
func GenerateActivationPassword() (string, error) {
	limit := big.NewInt(int64(len(activationChars)))
	buf := make([]byte, activationLen)
	// Redrawing whole strings that lack a letter or digit keeps the result
	// uniform over the valid strings; about 3 in 10 draws lack a digit.
	for {
		for i := range buf {
			n, err := rand.Int(rand.Reader, limit)
			if err != nil {
				return "", fmt.Errorf("password: activation password: %w", err)
			}
			buf[i] = activationChars[n.Int64()]
		}
		s := string(buf)
		if strings.ContainsAny(s, activationLetters) && strings.ContainsAny(s, activationDigits) {
			return s, nil
		}
	}
}
