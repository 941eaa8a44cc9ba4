package integrationtests

import (
	"net/http"
	"strings"
	"testing"

	"github.com/nemidp/nemidp/config"
)

// storedHash is the citizen's password hash as Redis holds it.
func (p *IdP) storedHash(t *testing.T, uid string) string {
	t.Helper()
	c, err := p.Store.Citizen(t.Context(), uid)
	if err != nil {
		t.Fatal(err)
	}
	return c.Password
}

func wantCost(t *testing.T, hash, cost string) {
	t.Helper()
	if !strings.HasPrefix(hash, "$argon2id$v=19$"+cost+"$") {
		t.Fatalf("stored hash %.40s…, want cost %s", hash, cost)
	}
}

// TestPasswordKDFRollout: login.password_kdf is the cost of passwords chosen on an instance;
// when an instance with another cost (a rolling update of NEMIDP_PASSWORD_KDF) sees a right
// password, the stored hash takes its cost and still logs in everywhere; a wrong password
// leaves the hash as it is.
func TestPasswordKDFRollout(t *testing.T) {
	t.Parallel()
	a := startIdP(t, func(c *config.Config) { c.Login.PasswordKDF = "argon2id$m=96,t=1,p=1" })
	bank := a.relyingParty(t, a.registerClient(t, "openid"), "openid")
	c := a.issueCitizen(t, freshCPR(), "Rikke Rehash")
	a.activate(t, bank, c) // the chosen password is hashed by A
	wantCost(t, a.storedHash(t, c.UserID), "m=96,t=1,p=1")

	b := startSecondInstance(t, a, func(c *config.Config) { c.Login.PasswordKDF = "argon2id$m=128,t=2,p=1" })
	before := a.storedHash(t, c.UserID)
	if code, _ := b.newBrowser(t).authorize(t, bank).password(c, "Forkert"+"99x"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password through B: %d, want 401", code)
	}
	if got := a.storedHash(t, c.UserID); got != before {
		t.Fatal("a wrong password through B changed the stored hash")
	}

	b.newBrowser(t).login(t, bank, c) // right password through B
	wantCost(t, a.storedHash(t, c.UserID), "m=128,t=2,p=1")
	a.newBrowser(t).login(t, bank, c) // A verifies B's hash, and takes it back to its own cost
	wantCost(t, a.storedHash(t, c.UserID), "m=96,t=1,p=1")
}
