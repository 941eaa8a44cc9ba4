//go:build unix && !linux

package argon2id

func advise([]byte) {}
