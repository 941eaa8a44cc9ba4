package web

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nemidp/nemidp/flows"
	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store/storetest"
)

// issueExpiring issues a NemID that expires daysLeft days after today (Danish date, real
// clock: the fixture's engine runs on it) and returns its user id and expiry.
func (f *fixture) issueExpiring(t *testing.T, daysLeft int) (string, string) {
	t.Helper()
	cph, _ := time.LoadLocation("Europe/Copenhagen")
	y, m, d := time.Now().In(cph).Date()
	expiry := time.Date(y, m, d+daysLeft, 0, 0, 0, 0, time.UTC)
	res, err := f.issuer.IssueWithPassword(context.Background(), issuance.Request{CPR: storetest.NewCPR(), Name: "Karen Jensen",
		IssuedAt: expiry.AddDate(-3, 0, 0).Format(time.DateOnly)}, appPassword)
	if err != nil {
		t.Fatal(err)
	}
	return res.UserID, expiry.Format(time.DateOnly)
}

// answerPassword opens a login in a new browser and answers pw for uid, as JSON (and returns
// the browser and flow for more).
func (f *fixture) answerPassword(t *testing.T, uid, pw string) (*http.Client, string, int, View) {
	t.Helper()
	id := f.flow(t)
	b := browser()
	if code, v, raw := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept); code != 200 || v.CSRFToken == "" {
		t.Fatalf("first view: %d %s", code, raw)
	}
	resp, v, _ := f.post(t, b, id, "password", `{"username":"`+uid+`","password":"`+pw+`"}`)
	return b, id, resp.StatusCode, v
}

// TestExpiredPage: an expired NemID's right password is answered 403 expired with its expiry
// date and the instructions, in JSON and on the page in Danish and English; a wrong one 401
// invalid_credentials, as to any NemID.
func TestExpiredPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	uid, exp := f.issueExpiring(t, -1)
	_, _, code, v := f.answerPassword(t, uid, "Forkert99x")
	if code != http.StatusUnauthorized || v.Error == nil || v.Error.Code != flows.CodeInvalidCredentials || v.Error.ExpiresAt != "" {
		t.Fatalf("wrong password to an expired NemID: %d %+v", code, v.Error)
	}
	b, id, code, v := f.answerPassword(t, uid, appPassword)
	if code != http.StatusForbidden || v.Error == nil || v.Error.Code != flows.CodeExpired || v.Error.ExpiresAt != exp ||
		!strings.Contains(v.Error.Message, "borgerservice") || v.Step != flows.StepPassword {
		t.Fatalf("right password to an expired NemID: %d %+v", code, v)
	}
	d, _ := time.Parse(time.DateOnly, exp)
	for _, tc := range []struct {
		lang string
		want []string
	}{
		{"da", []string{"Dit NemID er udløbet den " + d.Format("2.") + " " + danishMonths[d.Month()-1] + " " + d.Format("2006"),
			"kan ikke fornyes på nettet", "borgerservice", "din bank", "ambassade", "billedlegitimation"}},
		{"en", []string{"Your NemID expired on " + d.Format("2 January 2006"), "cannot be renewed online", "borgerservice",
			"your bank", "embassy", "photo ID"}},
	} {
		form := "username=" + uid + "&password=" + appPassword + "&csrf_token=" + f.tokenFor(b, id)
		code, _, page := do(t, b, "POST", f.srv.URL+"/login/"+id+"/password?lang="+tc.lang, "application/x-www-form-urlencoded", form, nil)
		if code != http.StatusForbidden || !strings.Contains(page, `data-code="expired"`) {
			t.Fatalf("%s page: %d %.300q", tc.lang, code, page)
		}
		for _, w := range tc.want {
			if !strings.Contains(page, w) {
				t.Errorf("%s page does not say %q", tc.lang, w)
			}
		}
	}
}

// TestRenewalDueView: the view after the password carries notice renewal_due at 60 days left,
// with its text, in JSON and on the page; not at 61.
func TestRenewalDueView(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, tc := range []struct {
		daysLeft int
		want     bool
	}{{61, false}, {60, true}, {0, true}} {
		uid, _ := f.issueExpiring(t, tc.daysLeft)
		b, id, code, v := f.answerPassword(t, uid, appPassword)
		if code != http.StatusOK || v.Step != flows.StepCodeCard {
			t.Fatalf("%d days left: password %d %+v", tc.daysLeft, code, v)
		}
		if got := v.Notice != nil && v.Notice.Code == flows.NoticeRenewalDue && strings.Contains(v.Notice.Message, "60 days"); got != tc.want {
			t.Fatalf("%d days left: notice %+v, want renewal_due %v", tc.daysLeft, v.Notice, tc.want)
		}
		_, _, page := do(t, b, "GET", f.srv.URL+"/login/"+id+"?lang=da", "", "", nil)
		if got := strings.Contains(page, `data-code="renewal_due"`) && strings.Contains(page, "udløber inden for 60 dage"); got != tc.want {
			t.Fatalf("%d days left: page shows the renewal notice %v, want %v", tc.daysLeft, got, tc.want)
		}
	}
}

// TestFillErrorText: {date} is the Danish or English date, or nothing without one.
func TestFillErrorText(tt *testing.T) {
	tt.Parallel()
	for _, tc := range []struct{ lang, exp, want string }{
		{langDA, "2026-03-09", "udløbet den 9. marts 2026."},
		{langEN, "2026-03-09", "expired on 9 March 2026."},
		{langDA, "", "Dit NemID er udløbet. "},
		{langEN, "junk", "Your NemID expired. "},
	} {
		got := fillErrorText(tc.lang, t(tc.lang, "err_expired"), &flows.Error{Code: flows.CodeExpired, ExpiresAt: tc.exp})
		if !strings.Contains(got, tc.want) || strings.Contains(got, "{date}") {
			tt.Errorf("%s %q: %q, want it to hold %q", tc.lang, tc.exp, got, tc.want)
		}
	}
}
