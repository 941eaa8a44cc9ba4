//go:build !unix

package argon2id

// mapBytes reports false: without mmap the buffer is an ordinary Go slice.
func mapBytes(int) ([]byte, func(), bool) { return nil, nil, false }
