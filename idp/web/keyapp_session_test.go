package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store"
	"github.com/nemidp/nemidp/idp/store/storetest"
)

// TestKeyAppThenNewPasswordSessionOnce: a key-app login that ends with new_password gets its
// session from that answer; a later look at the finished flow (after logout) gets none.
func TestKeyAppThenNewPasswordSessionOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	res, err := f.issuer.Issue(ctx, issuance.Request{CPR: storetest.NewCPR(), Name: "Karen Jensen"})
	if err != nil {
		t.Fatal(err)
	}
	c := appCitizen{uid: res.UserID, res: res, device: store.NewDeviceID(res.UserID)}
	if err := f.st.AddDevice(ctx, res.UserID, store.Device{ID: c.device, Name: "p", PublicKey: json.RawMessage(`{}`), CreatedAt: time.Now()}, 3); err != nil {
		t.Fatal(err)
	}
	id := f.flow(t)
	b := browser()
	_, v, _ := do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept)
	code, v, raw := do(t, b, "POST", f.srv.URL+"/login/"+id+"/password", "application/json",
		`{"username":"`+c.uid+`","password":"`+res.ActivationPassword+`"}`, jsonPost(v.CSRFToken))
	if code != 200 || v.Step != "keyapp" {
		t.Fatalf("password: %d %s", code, raw)
	}
	f.decide(t, c, id, store.ApprovalApproved, "")
	code, v, raw = f.poll(t, b, id, "", v.CSRFToken)
	if code != 200 || v.Step != "new_password" {
		t.Fatalf("poll after approval: %d %s", code, raw)
	}
	code, v, raw = do(t, b, "POST", f.srv.URL+"/login/"+id+"/new-password", "application/json",
		`{"new_password":"Karen2026nemidNew"}`, jsonPost(v.CSRFToken))
	if code != 200 || v.Step != "done" {
		t.Fatalf("new password: %d %s", code, raw)
	}
	s1 := ssoCookie(f, b)
	if s1 == "" {
		t.Fatal("no session after new-password")
	}
	// Log out: end the session and drop the cookie.
	if err := f.engine.EndSession(ctx, s1); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(f.srv.URL)
	b.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: "", MaxAge: -1, Path: "/"}})
	code, v, raw = do(t, b, "GET", f.srv.URL+"/login/"+id, "", "", jsonAccept)
	s2 := ssoCookie(f, b)
	if code != http.StatusOK || v.Step != "done" {
		t.Fatalf("GET after logout: %d %s", code, raw)
	}
	if s2 != "" {
		si, err := f.engine.Session(ctx, s2)
		t.Errorf("a finished key-app flow minted a second SSO session after logout: %+v %v", si, err)
	}
}
