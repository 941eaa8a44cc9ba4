package secret

import (
	"bytes"
	"errors"
	"testing"
)

func TestDeriveSeparatesPurposes(t *testing.T) {
	t.Parallel()
	s := Secret("0123456789abcdef0123456789abcdef")
	if bytes.Equal(s.Derive("a"), s.Derive("b")) {
		t.Fatal("two purposes derived the same key")
	}
	if !bytes.Equal(s.Derive("a"), s.Derive("a")) {
		t.Fatal("derive is not deterministic")
	}
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	s := Secret("0123456789abcdef0123456789abcdef")
	other := Secret("fedcba9876543210fedcba9876543210")
	sealed, err := s.Seal("keys", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		secret  Secret
		purpose string
		data    []byte
		wantErr bool
	}{
		{"same secret and purpose", s, "keys", sealed, false},
		{"other secret", other, "keys", sealed, true},
		{"other purpose", s, "cookies", sealed, true},
		{"truncated", s, "keys", sealed[:5], true},
		{"tampered", s, "keys", append(append([]byte{}, sealed[:len(sealed)-1]...), sealed[len(sealed)-1]^1), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.secret.Open(tc.purpose, tc.data)
			if tc.wantErr {
				if !errors.Is(err, ErrOpen) {
					t.Fatalf("want ErrOpen, got %v", err)
				}
				return
			}
			if err != nil || string(got) != "hello" {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}
