package password

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DefaultKDF is the written form of the default parameters (DESIGN.md §5, NEMIDP_PASSWORD_KDF).
const DefaultKDF = "argon2id$m=19456,t=2,p=1"

// ErrBadParams is wrapped by every ParseParams error.
var ErrBadParams = errors.New("password: bad KDF parameters")

func badParams(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadParams, fmt.Sprintf(format, a...))
}

// ParseParams reads the written form of the argon2id cost, "argon2id$m=<KiB>,t=<passes>,p=<lanes>"
// (the algorithm and parameter parts of a PHC string): each of m, t and p exactly once, in any
// order, as a decimal number without sign or leading zero, within the bounds a stored hash is
// held to (t 1..64, p 1..255, m 8·p KiB..1 GiB). Only the cost is set: Concurrency and Queue
// stay zero (the defaults).
func ParseParams(s string) (Params, error) {
	alg, rest, ok := strings.Cut(s, "$")
	if !ok {
		return Params{}, badParams("%q: want argon2id$m=<KiB>,t=<n>,p=<n>", s)
	}
	if alg != "argon2id" {
		return Params{}, badParams("unknown algorithm %q (want argon2id)", alg)
	}
	var p Params
	seen := map[string]bool{}
	for field := range strings.SplitSeq(rest, ",") {
		name, val, ok := strings.Cut(field, "=")
		if !ok {
			return Params{}, badParams("%q is not name=value (want m=<KiB>,t=<n>,p=<n>)", field)
		}
		switch name {
		case "m", "t", "p":
		default:
			return Params{}, badParams("unknown parameter %q (want m, t and p)", name)
		}
		if seen[name] {
			return Params{}, badParams("parameter %s given twice", name)
		}
		seen[name] = true
		if val == "" || (len(val) > 1 && val[0] == '0') {
			return Params{}, badParams("%s=%q is not a decimal number without leading zeros", name, val)
		}
		// ParseUint refuses signs, spaces and anything not a digit.
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return Params{}, badParams("%s=%q is not a number up to 2^32-1", name, val)
		}
		switch name {
		case "m":
			p.MemoryKiB = uint32(n)
		case "t":
			if n < 1 || n > maxTime {
				return Params{}, badParams("t=%d out of range (want 1..%d passes)", n, maxTime)
			}
			p.Time = uint32(n)
		case "p":
			if n < 1 || n > 255 {
				return Params{}, badParams("p=%d out of range (want 1..255 lanes)", n)
			}
			p.Threads = uint8(n)
		}
	}
	for _, name := range []string{"m", "t", "p"} {
		if !seen[name] {
			return Params{}, badParams("parameter %s missing (want m=<KiB>,t=<n>,p=<n>)", name)
		}
	}
	if lo := 8 * uint32(p.Threads); p.MemoryKiB < lo || p.MemoryKiB > maxMemoryKiB {
		return Params{}, badParams("m=%d out of range (want %d..%d KiB: at least 8 KiB per lane, at most 1 GiB)", p.MemoryKiB, lo, maxMemoryKiB)
	}
	return p, nil
}

// withDefaults fills the zero cost fields as NewHasher does.
func (p Params) withDefaults() Params {
	if p.MemoryKiB == 0 {
		p.MemoryKiB = DefaultMemoryKiB
	}
	if p.Time == 0 {
		p.Time = DefaultTime
	}
	if p.Threads == 0 {
		p.Threads = DefaultThreads
	}
	return p
}

// String is the written form ParseParams reads, "argon2id$m=19456,t=2,p=1", with zero fields
// shown as the defaults they stand for. Concurrency and Queue are not part of it.
func (p Params) String() string {
	p = p.withDefaults()
	return fmt.Sprintf("argon2id$m=%d,t=%d,p=%d", p.MemoryKiB, p.Time, p.Threads)
}

// Params returns the hasher's parameters, defaults filled in.
func (h *Hasher) Params() Params { return h.p }

// NeedsRehash reports whether the stored PHC hash was made with a cost other than the
// hasher's (memory, passes or lanes), so a right password should be hashed again. A stored
// hash that does not parse reports false: it cannot verify, so there is nothing to rehash.
func (h *Hasher) NeedsRehash(stored string) bool {
	x, err := parsePHC(stored)
	if err != nil {
		return false
	}
	return x.memory != h.p.MemoryKiB || x.time != h.p.Time || x.threads != h.p.Threads
}

// owaspMinimums are the argon2id configurations the OWASP Password Storage Cheat Sheet lists
// as its minimum, all with one degree of parallelism and described there as "an equal level
// of defense" trading memory for passes
// (https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#argon2id):
// m=47104 (46 MiB) t=1, m=19456 (19 MiB) t=2, m=12288 (12 MiB) t=3, m=9216 (9 MiB) t=4,
// m=7168 (7 MiB) t=5.
var owaspMinimums = []struct{ memoryKiB, time uint32 }{
	{47104, 1}, {19456, 2}, {12288, 3}, {9216, 4}, {7168, 5},
}

// OWASPMinimum names OWASP's minimum argon2id configurations, for warnings.
const OWASPMinimum = "argon2id m=19456,t=2,p=1 (or m=47104,t=1 · m=12288,t=3 · m=9216,t=4 · m=7168,t=5)"

// BelowOWASP reports whether p (zero fields read as the defaults) falls short of every OWASP
// minimum configuration above: it is at or above the minimum when its memory and its passes
// both reach those of one listed configuration. Parallelism is not weighed: more lanes over
// the same memory and passes do not make a guess cheaper for an attacker who has the hash, and
// OWASP lists only p=1.
func BelowOWASP(p Params) bool {
	p = p.withDefaults()
	for _, m := range owaspMinimums {
		if p.MemoryKiB >= m.memoryKiB && p.Time >= m.time {
			return false
		}
	}
	return true
}
