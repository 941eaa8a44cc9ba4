package flows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nemidp/nemidp/idp/issuance"
	"github.com/nemidp/nemidp/idp/store/storetest"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/password"
)

// FuzzSubmit sends random answers and step names to flows standing at each step: the engine
// must never panic, and whatever it refuses it refuses with a *Error (which the web layer
// turns into the JSON error), never with an internal error.
func FuzzSubmit(f *testing.F) {
	s := storetest.NewStore(f, storetest.Embedded().Client(f))
	cards, err := codecard.NewHasher([]byte("card-secret-0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	pw := password.NewHasher(password.TestParams)
	e := &Engine{Store: s, Passwords: pw, Cards: cards, MaxFailures: 3, FlowTTL: 10 * time.Minute,
		SessionTTL: time.Hour, Grace: time.Hour}
	ctx := context.Background()
	cpr := storetest.NewCPR()
	iss, err := (&issuance.Issuer{Store: s, Passwords: pw, Cards: cards}).Issue(ctx, issuance.Request{CPR: cpr, Name: "Fuzz Fuzzesen"})
	if err != nil {
		f.Fatal(err)
	}
	uid, serial := iss.UserID, iss.Card.Serial
	aKey := iss.Card.Keys[0]

	for _, seed := range []struct {
		at                             uint8
		step, user, pass, key, newPass string
	}{
		{0, "password", uid, iss.ActivationPassword, "", ""},
		{0, "password", uid, "wrong", "", ""},
		{0, "password", cpr, "x", "", ""},
		{0, "password", "nobody", "x", "", ""},
		{0, "password", "", "", "", ""},
		{0, "password", "\x00\xff", "\xff\xfe", "", ""},
		{0, "codecard", uid, "x", "123456", ""},
		{1, "codecard", "", "", aKey.Key, ""},
		{1, "codecard", "", "", "000000", ""},
		{1, "codecard", "", "", "12345", ""},
		{1, "codecard", "", "", "١٢٣٤٥٦", ""},
		{1, "password", uid, iss.ActivationPassword, "", ""},
		{2, "new_password", "", "1234", "", ""},
		{2, "new_password", "", "", "", "Hemmelig42"},
		{2, "new_password", "", iss.ActivationPassword, "", ""},
		{2, "new_password", "", "", "", "\x00abc123"},
		{3, "done", "", "", "", ""},
		{3, "password", uid, "x", "", ""},
		{4, "failed", "", "", "", ""},
		{0, "keyapp", "", "", "", ""},
		{0, "../password", "", "", "", ""},
	} {
		f.Add(seed.at, seed.step, seed.user, seed.pass, seed.key, seed.newPass)
	}

	f.Fuzz(func(t *testing.T, at uint8, step, username, pass, key, newPass string) {
		fl, err := e.Begin(ctx, Start{ClientID: "fuzz", ReturnURL: func(id string) string { return "https://rp.example/" + id }})
		if err != nil {
			t.Fatal(err)
		}
		// Stand the flow at one of the steps, as the citizen's earlier answers would have.
		number := aKey.Number
		if n, err := s.PendingKey(ctx, uid, serial); err == nil {
			number = n
		}
		err = e.update(ctx, fl, func(fl *Flow) error {
			switch at % 5 {
			case 1:
				fl.CitizenID, fl.CardSerial, fl.KeyNumber = uid, serial, number
				fl.Methods, fl.Step = []string{AMRPassword}, StepCodeCard
			case 2:
				fl.CitizenID, fl.CardSerial, fl.MustChange = uid, serial, true
				fl.Methods, fl.Step = []string{AMRPassword, AMROTP}, StepNewPassword
			case 3:
				fl.CitizenID, fl.Methods = uid, []string{AMRPassword, AMROTP}
				return e.advance(ctx, fl)
			case 4:
				fl.Step, fl.Failure = StepFailed, Errorf(CodeLocked, "locked")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string, err error) {
			if err == nil {
				return
			}
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("%s(at %d, step %q, %q/%q/%q/%q): %v (%T), want nil or *flows.Error",
					what, at%5, step, username, pass, key, newPass, err, err)
			}
			if fe.Code == "" || fe.Message == "" {
				t.Fatalf("%s: error without code or message: %+v", what, fe)
			}
		}
		check("Prepare", e.Prepare(ctx, fl))
		check("Submit", e.Submit(ctx, fl, Step(step), Answer{Username: username, Password: pass, Key: key, NewPassword: newPass}))
		check("Prepare", e.Prepare(ctx, fl))
	})
}
