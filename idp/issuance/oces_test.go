package issuance

import (
	"context"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/cpr"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
)

func prefixedIssuer(t *testing.T) (*Issuer, string) {
	t.Helper()
	st, prefix := storetest.NewStorePrefixed(t, storetest.Real().Client(t))
	cards, err := codecard.NewHasher([]byte("codecard-test-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	return &Issuer{Store: st, Passwords: password.NewHasher(password.TestParams), Cards: cards}, prefix
}

// TestYouthMarker: the OCES youth rule at the 18th birthday (a Danish calendar day).
func TestYouthMarker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, cpr, issued string
		want              bool
	}{
		{"day before 18th birthday", "150608-4001", "2026-06-14", true},
		{"on 18th birthday", "150608-4001", "2026-06-15", false},
		{"day after", "150608-4001", "2026-06-16", false},
		{"child", "150615-4001", "2021-01-01", true},
		{"adult long ago", "150690-1234", "2020-01-01", false},
		{"29 Feb born, 28 Feb of a common year", "290208-4001", "2026-02-28", true},
		{"29 Feb born, 1 Mar of a common year", "290208-4001", "2026-03-01", false},
		{"winter birthday (CET)", "010108-4001", "2025-12-31", true},
		{"winter birthday on the day", "010108-4001", "2026-01-01", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := cpr.Parse(tc.cpr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := YouthMarker(n, tc.issued)
			if err != nil || got != tc.want {
				t.Fatalf("YouthMarker(%s, %s) = %v, %v; want %v", tc.cpr, tc.issued, got, err, tc.want)
			}
		})
	}
}

// TestIssueOCESFields: issuance sets expires_at (3 years on), and for an OCES NemID a PID,
// the OCES issue date and the youth marker judged on the Danish issue day: at 23:30 UTC the
// day before the 18th birthday it is already the birthday in Denmark.
func TestIssueOCESFields(t *testing.T) {
	t.Parallel()
	pidRE := regexp.MustCompile(`^9208-2002-2-[0-9]{12}$`)
	tests := []struct {
		name          string
		now           time.Time
		req           Request
		youth         bool
		issued, until string
		pid           bool
	}{
		{"issued the day before the 18th birthday", time.Date(2026, 6, 14, 10, 0, 0, 0, time.UTC),
			Request{CPR: "150608-4001", Name: "Ung Jensen"}, true, "2026-06-14", "2029-06-14", true},
		{"issued on the 18th birthday", time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC),
			Request{CPR: "150608-4001", Name: "Ung Jensen"}, false, "2026-06-15", "2029-06-15", true},
		{"Danish midnight: 23:30 UTC the day before is the birthday", time.Date(2026, 6, 14, 23, 30, 0, 0, time.UTC),
			Request{CPR: "150608-4001", Name: "Ung Jensen"}, false, "2026-06-15", "2029-06-15", true},
		{"import issued at 16", time.Date(2026, 6, 14, 10, 0, 0, 0, time.UTC),
			Request{CPR: "150608-4001", Name: "Ung Jensen", IssuedAt: "2024-06-01"}, true, "2024-06-01", "2027-06-01", true},
		{"bank-only: no PID, no marker", time.Date(2026, 6, 14, 10, 0, 0, 0, time.UTC),
			Request{CPR: "150608-4001", Name: "Ung Jensen", Kind: "bank"}, false, "2026-06-14", "2029-06-14", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			is, _ := testIssuer(t)
			is.Now = func() time.Time { return tc.now }
			out, err := is.Issue(context.Background(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			c, err := is.Store.Citizen(context.Background(), out.UserID)
			if err != nil {
				t.Fatal(err)
			}
			if c.IssuedAt != tc.issued || c.ExpiresAt != tc.until || c.YouthCert != tc.youth {
				t.Fatalf("issued %s expires %s youth %v; want %s %s %v", c.IssuedAt, c.ExpiresAt, c.YouthCert, tc.issued, tc.until, tc.youth)
			}
			if tc.pid != pidRE.MatchString(c.PID) || (tc.pid && c.OCESIssuedAt != tc.issued) || (!tc.pid && c.OCESIssuedAt != "") {
				t.Fatalf("pid %q oces issued %q (want pid: %v)", c.PID, c.OCESIssuedAt, tc.pid)
			}
		})
	}
}

// TestRenew: renewal moves expires_at 3 years from today and reissues the OCES: the youth
// marker of an OCES issued at 16 is cleared once the holder is 18, kept when still 17; an
// expired NemID becomes active; a bank-only NemID gets no OCES from renewal.
func TestRenew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		kind      string
		today     time.Time
		status    string
		youth     bool
		oces      bool
		wantState string
	}{
		{"adult: marker cleared", "oces", time.Date(2026, 6, 15, 8, 0, 0, 0, time.UTC), store.StatusActive, false, true, store.StatusActive},
		{"still 17: marker kept", "oces", time.Date(2026, 6, 14, 8, 0, 0, 0, time.UTC), store.StatusActive, true, true, store.StatusActive},
		{"Danish midnight: 22:30 UTC the day before is the birthday", "oces", time.Date(2026, 6, 14, 22, 30, 0, 0, time.UTC), store.StatusActive, false, true, store.StatusActive},
		{"expired becomes active", "oces", time.Date(2027, 7, 1, 8, 0, 0, 0, time.UTC), store.StatusExpired, false, true, store.StatusActive},
		{"blocked stays blocked", "oces", time.Date(2027, 7, 1, 8, 0, 0, 0, time.UTC), store.StatusBlocked, false, true, store.StatusBlocked},
		{"bank-only", "bank", time.Date(2027, 7, 1, 8, 0, 0, 0, time.UTC), store.StatusActive, false, false, store.StatusActive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			is, prefix := prefixedIssuer(t)
			is.Now = func() time.Time { return tc.today }
			out, err := is.Issue(ctx, Request{CPR: "150608-4001", Name: "Ung Jensen", Kind: tc.kind, IssuedAt: "2024-06-01"})
			if err != nil {
				t.Fatal(err)
			}
			before, _ := is.Store.Citizen(ctx, out.UserID)
			if tc.kind == "oces" && !before.YouthCert {
				t.Fatalf("issued at 16 without the youth marker")
			}
			if tc.status != store.StatusActive {
				if err := is.Store.Redis().HSet(ctx, storetest.CitizenKey(prefix, out.UserID), "status", tc.status).Err(); err != nil {
					t.Fatal(err)
				}
			}
			c, err := is.Renew(ctx, out.UserID)
			if err != nil {
				t.Fatal(err)
			}
			today := tc.today.In(copenhagen)
			wantExp := time.Date(today.Year()+3, today.Month(), today.Day(), 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
			if c.ExpiresAt != wantExp || c.Status != tc.wantState || c.YouthCert != tc.youth {
				t.Fatalf("expires %s status %s youth %v; want %s %s %v", c.ExpiresAt, c.Status, c.YouthCert, wantExp, tc.wantState, tc.youth)
			}
			if tc.oces && (c.OCESIssuedAt != today.Format(time.DateOnly) || c.PID != before.PID) {
				t.Fatalf("oces issued %s pid %s; want today and the same pid %s", c.OCESIssuedAt, c.PID, before.PID)
			}
			if !tc.oces && (c.PID != "" || c.OCESIssuedAt != "" || c.Kind != "bank") {
				t.Fatalf("bank-only NemID got OCES from renewal: %+v", c)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		is, _ := testIssuer(t)
		if _, err := is.Renew(context.Background(), "123456789"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
}

// TestAttachOCES: OCES attaches to a bank-only NemID after a photo ID check only, once; the
// youth marker is judged on the day it is attached.
func TestAttachOCES(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	is, _ := testIssuer(t)
	is.Now = func() time.Time { return time.Date(2026, 6, 14, 10, 0, 0, 0, time.UTC) } // the day before 18
	out, err := is.Issue(ctx, Request{CPR: "150608-4001", Name: "Ung Jensen", Kind: "bank"})
	if err != nil {
		t.Fatal(err)
	}
	for _, check := range []string{"", "two_ids", "witness"} {
		var ve *ValidationError
		if _, err := is.AttachOCES(ctx, out.UserID, check); !errors.As(err, &ve) || ve.Field != "id_check" {
			t.Fatalf("id_check %q: err = %v, want a ValidationError", check, err)
		}
	}
	pid, err := is.AttachOCES(ctx, out.UserID, IDCheckPhoto)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := is.Store.Citizen(ctx, out.UserID)
	if c.Kind != "oces" || c.PID != pid || c.OCESIssuedAt != "2026-06-14" || !c.YouthCert {
		t.Fatalf("after attach: %+v", c)
	}
	if _, err := is.AttachOCES(ctx, out.UserID, IDCheckPhoto); !errors.Is(err, store.ErrOCESAttached) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second attach: err = %v, want ErrOCESAttached", err)
	}
	if _, err := is.AttachOCES(ctx, "123456789", IDCheckPhoto); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown: err = %v, want ErrNotFound", err)
	}
}

func TestPIDUnique(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		p, err := newPID()
		if err != nil || !regexp.MustCompile(`^9208-2002-2-[0-9]{12}$`).MatchString(p) || seen[p] {
			t.Fatalf("pid %q, %v", p, err)
		}
		seen[p] = true
	}
}
