package argon2id

import "golang.org/x/sys/unix"

// advise keeps password-derived memory out of core dumps; failing, it changes nothing else.
// (Transparent huge pages, MADV_HUGEPAGE, made no measurable difference to the hash on the
// machine of BENCHMARKS.md, so the buffer keeps the kernel's default.)
func advise(mem []byte) {
	_ = unix.Madvise(mem, unix.MADV_DONTDUMP)
}
