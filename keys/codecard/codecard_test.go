package codecard

import (
	"errors"
	"regexp"
	"slices"
	"testing"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func TestGenerate(t *testing.T) {
	t.Parallel()
	c, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if !ValidSerial(c.Serial) {
		t.Errorf("serial %q invalid", c.Serial)
	}
	if len(c.Keys) != KeysPerCard {
		t.Fatalf("got %d keys, want %d", len(c.Keys), KeysPerCard)
	}
	nums := make([]string, len(c.Keys))
	for i, k := range c.Keys {
		if !ValidNumber(k.Number) {
			t.Errorf("number %q invalid", k.Number)
		}
		if !ValidKey(k.Key) {
			t.Errorf("key %q invalid", k.Key)
		}
		nums[i] = k.Number
	}
	// Fixed-width numbers sort the same as strings and as integers.
	if !slices.IsSorted(nums) {
		t.Error("numbers not sorted")
	}
	if len(slices.Compact(slices.Clone(nums))) != KeysPerCard {
		t.Error("numbers not distinct")
	}
}

func TestGenerateDistinctSerials(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 50 {
		c, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		if seen[c.Serial] {
			t.Fatalf("serial %s repeated", c.Serial)
		}
		seen[c.Serial] = true
	}
}

func TestValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fn   func(string) bool
		in   string
		want bool
	}{
		{"key ok", ValidKey, "012345", true},
		{"key short", ValidKey, "01234", false},
		{"key long", ValidKey, "0123456", false},
		{"key letter", ValidKey, "01234a", false},
		{"key unicode digit", ValidKey, "01234٥", false},
		{"key empty", ValidKey, "", false},
		{"number ok", ValidNumber, "0001", true},
		{"number max", ValidNumber, "9999", true},
		{"number zero", ValidNumber, "0000", false},
		{"number short", ValidNumber, "001", false},
		{"number sign", ValidNumber, "+001", false},
		{"serial ok", ValidSerial, "G750159724", true},
		{"serial lower g", ValidSerial, "g750159724", false},
		{"serial short", ValidSerial, "G75015972", false},
		{"serial long", ValidSerial, "G7501597240", false},
		{"serial letter", ValidSerial, "G75015972X", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.fn(tt.in); got != tt.want {
				t.Errorf("%q: got %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewHasherShortSecret(t *testing.T) {
	t.Parallel()
	if _, err := NewHasher(make([]byte, 15)); !errors.Is(err, ErrShortSecret) {
		t.Fatalf("got %v, want ErrShortSecret", err)
	}
}

func TestHash(t *testing.T) {
	t.Parallel()
	h, err := NewHasher(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewHasher([]byte("another-secret-of-enough-length"))
	if err != nil {
		t.Fatal(err)
	}
	base := h.Hash("G750159724", "0042", "123456")
	if again := h.Hash("G750159724", "0042", "123456"); again != base {
		t.Fatalf("not deterministic: %s vs %s", base, again)
	}
	if !h.Verify("G750159724", "0042", "123456", base) {
		t.Error("Verify rejected own hash")
	}

	tests := []struct {
		name string
		got  string
	}{
		{"serial", h.Hash("G750159725", "0042", "123456")},
		{"number", h.Hash("G750159724", "0043", "123456")},
		{"key", h.Hash("G750159724", "0042", "123457")},
		{"secret", other.Hash("G750159724", "0042", "123456")},
		// Field boundaries are part of the input, so shifting digits across them changes the hash.
		{"shifted", h.Hash("G75015972", "40042", "123456")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.got == base {
				t.Errorf("changing %s did not change the hash", tt.name)
			}
			if h.Verify("G750159724", "0042", "123456", tt.got) {
				t.Errorf("Verify accepted hash with changed %s", tt.name)
			}
		})
	}
}

func TestHasherCopiesSecret(t *testing.T) {
	t.Parallel()
	secret := slices.Clone(testSecret)
	h, err := NewHasher(secret)
	if err != nil {
		t.Fatal(err)
	}
	before := h.Hash("G000000001", "0001", "000000")
	secret[0] ^= 0xff
	if after := h.Hash("G000000001", "0001", "000000"); after != before {
		t.Error("hasher aliased caller's secret")
	}
}

var (
	reKey    = regexp.MustCompile(`^[0-9]{6}$`)
	reNumber = regexp.MustCompile(`^[0-9]{4}$`)
	reSerial = regexp.MustCompile(`^G[0-9]{9}$`)
)

func FuzzValid(f *testing.F) {
	for _, s := range []string{"", "0000", "0001", "123456", "G750159724", "G12345678\x00", "١٢٣٤"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidKey(s), reKey.MatchString(s); got != want {
			t.Errorf("ValidKey(%q) = %v, want %v", s, got, want)
		}
		if got, want := ValidNumber(s), reNumber.MatchString(s) && s != "0000"; got != want {
			t.Errorf("ValidNumber(%q) = %v, want %v", s, got, want)
		}
		if got, want := ValidSerial(s), reSerial.MatchString(s); got != want {
			t.Errorf("ValidSerial(%q) = %v, want %v", s, got, want)
		}
	})
}
