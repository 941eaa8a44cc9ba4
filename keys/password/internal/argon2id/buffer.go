package argon2id

// This file and mem_*.go are nemidp's, not copied from x/crypto.

import (
	"runtime"
	"unsafe"
)

// Buffer is Argon2 memory kept for reuse: Len 1 KiB blocks. On unix it is mapped outside the
// Go heap (mem_unix.go), so memory the KDF holds for good neither counts towards the heap the
// garbage collector paces with GOGC nor is ever scanned or zeroed by the runtime; on Linux it
// is also left out of core dumps. Elsewhere it is an ordinary slice. A Buffer is not safe for
// concurrent use: one IDKey at a time.
type Buffer struct {
	blocks  []block
	unmap   func() // gives the mapping back; nil for heap memory or once freed
	cleanup runtime.Cleanup
}

// NewBuffer returns a buffer of n blocks (n KiB), all zero.
func NewBuffer(n int) *Buffer {
	if n <= 0 {
		return &Buffer{}
	}
	b := &Buffer{}
	if mem, unmap, ok := mapBytes(n * int(unsafe.Sizeof(block{}))); ok {
		b.blocks = unsafe.Slice((*block)(unsafe.Pointer(unsafe.SliceData(mem))), n)
		b.unmap = unmap
		// A buffer dropped without Free gives its mapping back once unreachable; IDKey keeps
		// its buffer reachable while it runs.
		b.cleanup = runtime.AddCleanup(b, func(unmap func()) { unmap() }, unmap)
		return b
	}
	b.blocks = make([]block, n)
	return b
}

// Len is the buffer's size in blocks (KiB).
func (b *Buffer) Len() int { return len(b.blocks) }

// Clear zeroes the first n blocks (all of them when n ≥ Len): what IDKey left there is derived
// from the password.
func (b *Buffer) Clear(n int) {
	clear(b.blocks[:min(max(n, 0), len(b.blocks))])
}

// IsZero reports whether every block is zero (a check that a buffer was cleared).
func (b *Buffer) IsZero() bool {
	for i := range b.blocks {
		if b.blocks[i] != (block{}) {
			return false
		}
	}
	return true
}

// Free zeroes the buffer and gives its memory back now; Len is 0 afterwards.
func (b *Buffer) Free() {
	b.Clear(len(b.blocks))
	b.blocks = nil
	if b.unmap != nil {
		b.cleanup.Stop()
		b.unmap()
		b.unmap = nil
	}
}
