//go:build unix

package argon2id

import "golang.org/x/sys/unix"

// mapBytes maps size bytes of private anonymous memory (zero, page-aligned), or reports false
// when the kernel refuses (the caller falls back to the Go heap).
func mapBytes(size int) (mem []byte, unmap func(), ok bool) {
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, nil, false
	}
	advise(mem)
	return mem, func() { _ = unix.Munmap(mem) }, true
}
