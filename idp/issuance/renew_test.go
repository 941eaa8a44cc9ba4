package issuance

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
)

// renewNow is the tests' clock: 1 May 2026, 12:00 in Denmark.
var renewNow = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

// renewCPR is born 10 January 2008: 15 when the NemID was issued on 1 June 2023 (the OCES
// carries the youth marker), 18 on renewNow.
const renewCPR = "1001084001"

// renewIssuer is an issuer at renewNow on a fresh prefix.
func renewIssuer(t *testing.T) (*Issuer, string) {
	t.Helper()
	is, prefix := prefixedIssuer(t)
	is.Now = func() time.Time { return renewNow }
	is.MaxFailures = 5
	return is, prefix
}

// issued is a NemID as its holder has it.
type issued struct {
	uid, serial string
	keys        map[string]string
}

// issueAt issues a NemID issued on date (so it expires 3 years after) to cpr.
func issueAt(t *testing.T, is *Issuer, cpr, date string) issued {
	t.Helper()
	r, err := is.IssueWithPassword(t.Context(), Request{CPR: cpr, Name: "Ung Jensen", IssuedAt: date}, "Hemmelig42")
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	out := issued{uid: r.UserID, serial: r.Card.Serial, keys: map[string]string{}}
	for _, k := range r.Card.Keys {
		out.keys[k.Number] = k.Key
	}
	return out
}

func wrong(key string) string {
	b := []byte(key)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

func wantKeyError(t *testing.T, err error, code string, left int) {
	t.Helper()
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Code != code || ((code == KeyWrong || code == KeyUsed) && ke.AttemptsLeft != left) {
		t.Fatalf("err = %v (%T), want KeyError %s with %d attempts left", err, err, code, left)
	}
}

// TestRenewWithKey: the right key of the pending number renews (3 years from today, the OCES
// reissued today without the youth marker of an adult) and is then used: sent again it is
// refused and renews nothing.
func TestRenewWithKey(t *testing.T) {
	t.Parallel()
	is, prefix := renewIssuer(t)
	ctx := t.Context()
	c := issueAt(t, is, renewCPR, "2023-06-01") // expires 2026-06-01: 31 days left
	before, err := is.Store.Citizen(ctx, c.uid)
	if err != nil || !before.YouthCert || before.ExpiresAt != "2026-06-01" {
		t.Fatalf("as issued: %+v, %v", before, err)
	}
	serial, number, err := is.RenewalKey(ctx, c.uid)
	if err != nil || serial != c.serial || c.keys[number] == "" {
		t.Fatalf("RenewalKey = %q %q %v, want the card %s and one of its numbers", serial, number, err, c.serial)
	}
	if s2, n2, _ := is.RenewalKey(ctx, c.uid); s2 != serial || n2 != number {
		t.Fatalf("RenewalKey re-rolled: %s/%s then %s/%s", serial, number, s2, n2)
	}
	got, err := is.RenewWithKey(ctx, c.uid, serial, number, c.keys[number])
	if err != nil {
		t.Fatalf("RenewWithKey: %v", err)
	}
	if got.ExpiresAt != "2029-05-01" || got.OCESIssuedAt != "2026-05-01" || got.YouthCert || got.Status != store.StatusActive || got.PID != before.PID {
		t.Fatalf("renewed: expires %s, oces issued %s, youth %v, status %s, pid %s (was %s)",
			got.ExpiresAt, got.OCESIssuedAt, got.YouthCert, got.Status, got.PID, before.PID)
	}
	if unused, err := is.Store.KeyUnused(ctx, c.uid, serial, number); err != nil || unused {
		t.Fatalf("the renewal's key is unused after it: %v, %v", unused, err)
	}
	// Renewed: not due any more, so nothing is asked.
	if _, err := is.RenewWithKey(ctx, c.uid, serial, number, c.keys[number]); !errors.Is(err, ErrNotDue) {
		t.Fatalf("renewal right after renewal: %v, want ErrNotDue", err)
	}
	// Due again (the expiry put back): the used key is refused, counted as nothing, renews nothing.
	if err := is.Store.Redis().HSet(ctx, storetest.CitizenKey(prefix, c.uid), "expires_at", "2026-06-01").Err(); err != nil {
		t.Fatal(err)
	}
	_, err = is.RenewWithKey(ctx, c.uid, serial, number, c.keys[number])
	wantKeyError(t, err, KeyUsed, 5)
	if after, _ := is.Store.Citizen(ctx, c.uid); after.ExpiresAt != "2026-06-01" || after.Failures != 0 {
		t.Fatalf("a replayed key renewed or counted: expires %s, failures %d", after.ExpiresAt, after.Failures)
	}
}

// TestRenewWithKeyRefusals: what a renewal by the citizen refuses, and what each costs.
func TestRenewWithKeyRefusals(t *testing.T) {
	t.Parallel()
	is, prefix := renewIssuer(t)
	ctx := t.Context()
	other := issueAt(t, is, storetest.NewCPR(), "2023-06-01")
	for _, tc := range []struct {
		name     string
		issuedAt string
		status   string // set before the renewal ("": as issued)
		answer   func(c issued, number string) (serial, num, key string)
		want     error  // a sentinel, or nil for a *KeyError
		code     string // the KeyError's
		left     int
		failures int // counted against the NemID
	}{
		{"wrong key", "2023-06-01", "", func(c issued, n string) (string, string, string) { return c.serial, n, wrong(c.keys[n]) }, nil, KeyWrong, 4, 1},
		{"not the pending number", "2023-06-01", "", func(c issued, n string) (string, string, string) {
			for m, k := range c.keys {
				if m != n {
					return c.serial, m, k
				}
			}
			return "", "", ""
		}, nil, KeyUsed, 5, 0},
		{"another citizen's card", "2023-06-01", "", func(_ issued, n string) (string, string, string) { return other.serial, n, other.keys[n] }, nil, KeyBadCard, 0, 0},
		{"no card named", "2023-06-01", "", func(c issued, n string) (string, string, string) { return "", n, c.keys[n] }, nil, KeyBadCard, 0, 0},
		{"not a key", "2023-06-01", "", func(c issued, n string) (string, string, string) { return c.serial, n, "12ab56" }, &ValidationError{}, "", 0, 0},
		{"61 days left", "2023-07-01", "", func(c issued, n string) (string, string, string) { return c.serial, n, c.keys[n] }, ErrNotDue, "", 0, 0},
		{"expired yesterday", "2023-04-30", "", func(c issued, n string) (string, string, string) { return c.serial, n, c.keys[n] }, ErrExpired, "", 0, 0},
		{"stored expired", "2023-06-01", store.StatusExpired, func(c issued, n string) (string, string, string) { return c.serial, n, c.keys[n] }, ErrExpired, "", 0, 0},
		{"blocked", "2023-06-01", store.StatusBlocked, func(c issued, n string) (string, string, string) { return c.serial, n, c.keys[n] }, nil, KeyBlocked, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := issueAt(t, is, storetest.NewCPR(), tc.issuedAt)
			// The number asked, read before any state change (as the page read it).
			number, err := is.Store.PendingKey(ctx, c.uid, c.serial)
			if err != nil {
				t.Fatal(err)
			}
			if tc.status != "" {
				if err := is.Store.Redis().HSet(ctx, storetest.CitizenKey(prefix, c.uid), "status", tc.status, "block_reason", "operator").Err(); err != nil {
					t.Fatal(err)
				}
			}
			serial, num, key := tc.answer(c, number)
			_, err = is.RenewWithKey(ctx, c.uid, serial, num, key)
			var ve *ValidationError
			switch {
			case tc.want == nil:
				wantKeyError(t, err, tc.code, tc.left)
			case errors.As(tc.want, &ve):
				if !errors.As(err, &ve) || ve.Field != "key" {
					t.Fatalf("err = %v, want a ValidationError of the key", err)
				}
			case !errors.Is(err, tc.want):
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			after, err := is.Store.Citizen(ctx, c.uid)
			if err != nil {
				t.Fatal(err)
			}
			exp, _ := ExpiresAt(tc.issuedAt)
			if after.Failures != tc.failures || after.ExpiresAt != exp {
				t.Fatalf("after: failures %d (want %d), expires %s (want %s, not renewed)", after.Failures, tc.failures, after.ExpiresAt, exp)
			}
			if unused, _ := is.Store.KeyUnused(ctx, c.uid, c.serial, number); !unused {
				t.Fatal("a refused renewal used the pending key")
			}
		})
	}
	t.Run("not due at RenewalKey", func(t *testing.T) {
		t.Parallel()
		c := issueAt(t, is, storetest.NewCPR(), "2026-01-01")
		if _, _, err := is.RenewalKey(ctx, c.uid); !errors.Is(err, ErrNotDue) {
			t.Fatalf("RenewalKey of a NemID with years left: %v, want ErrNotDue", err)
		}
	})
	t.Run("unknown citizen", func(t *testing.T) {
		t.Parallel()
		if _, err := is.RenewWithKey(ctx, "123456789", "G1", "0001", "123456"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown citizen: %v, want ErrNotFound", err)
		}
	})
}

// TestRenewWithKeyLockout: wrong keys count as at login; the max-th in a row locks the NemID,
// and a locked NemID renews with no key.
func TestRenewWithKeyLockout(t *testing.T) {
	t.Parallel()
	is, _ := renewIssuer(t)
	ctx := t.Context()
	c := issueAt(t, is, storetest.NewCPR(), "2023-06-01")
	serial, number, err := is.RenewalKey(ctx, c.uid)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < is.MaxFailures; i++ {
		_, err := is.RenewWithKey(ctx, c.uid, serial, number, wrong(c.keys[number]))
		wantKeyError(t, err, KeyWrong, is.MaxFailures-i)
	}
	_, err = is.RenewWithKey(ctx, c.uid, serial, number, wrong(c.keys[number]))
	wantKeyError(t, err, KeyLocked, 0)
	_, err = is.RenewWithKey(ctx, c.uid, serial, number, c.keys[number])
	wantKeyError(t, err, KeyLocked, 0)
	if got, _ := is.Store.Citizen(ctx, c.uid); got.Status != store.StatusBlocked || got.BlockReason != store.BlockFailures || got.ExpiresAt != "2026-06-01" {
		t.Fatalf("after the lockout: %s/%s, expires %s", got.Status, got.BlockReason, got.ExpiresAt)
	}
}

// TestRenewWithKeyRace: two renewals with the one right key at once: one renews, the other is
// told the key was used.
func TestRenewWithKeyRace(t *testing.T) {
	t.Parallel()
	is, _ := renewIssuer(t)
	ctx := context.Background()
	c := issueAt(t, is, storetest.NewCPR(), "2023-06-01")
	serial, number, err := is.RenewalKey(ctx, c.uid)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			_, errs[i] = is.RenewWithKey(ctx, c.uid, serial, number, c.keys[number])
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		var ke *KeyError
		switch {
		case err == nil:
			ok++
		case errors.As(err, &ke) && ke.Code == KeyUsed, errors.Is(err, ErrNotDue):
			// lost the race: the key used, or the NemID renewed already
		default:
			t.Errorf("RenewWithKey: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d renewals with one key, want 1", ok)
	}
	if got, _ := is.Store.Citizen(ctx, c.uid); got.ExpiresAt != "2029-05-01" || got.Failures != 0 {
		t.Fatalf("after the race: expires %s, failures %d", got.ExpiresAt, got.Failures)
	}
}
