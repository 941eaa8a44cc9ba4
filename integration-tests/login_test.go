package integrationtests

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/nemidp/nemidp/idp/store"
)

// jsonShape lists the keys of a JSON object and of its "error" object, to compare answers.
func jsonShape(t *testing.T, r *Resp) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("not JSON: %s", r)
	}
	var keys []string
	for k, v := range m {
		keys = append(keys, k)
		if sub, ok := v.(map[string]any); ok {
			for k2 := range sub {
				keys = append(keys, k+"."+k2)
			}
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func attempts(e *ViewError) int {
	if e == nil || e.AttemptsLeft == nil {
		return -1
	}
	return *e.AttemptsLeft
}

// TestWrongPassword: a wrong password answers 401 invalid_credentials with attempts_left
// counting down; an unknown user ID answers the same status, code and shape.
func TestWrongPassword(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")

	type answer struct {
		status int
		code   string
		left   int
		shape  string
	}
	try := func(username string, n int) []answer {
		l := p.newBrowser(t).authorize(t, bank)
		var out []answer
		for range n {
			l.requireStep("password")
			r := l.postRaw("password", map[string]string{"username": username, "password": "Forkert" + randHex(2) + "1"})
			v := r.View(t)
			out = append(out, answer{r.Status, codeOf(v.Error), attempts(v.Error), jsonShape(t, r)})
			if v.CSRFToken != "" {
				l.csrf = v.CSRFToken
			}
			if v.Step != "" {
				l.View = v
			}
		}
		return out
	}
	known := try(karen.UserID, 3)
	for i, a := range known {
		if a.status != http.StatusUnauthorized || a.code != "invalid_credentials" || a.left != 4-i {
			t.Errorf("known user, wrong password #%d: %d %s attempts_left %d; want 401 invalid_credentials %d", i+1, a.status, a.code, a.left, 4-i)
		}
	}
	for _, username := range []string{"123456789", "0101011234"} {
		unknown := try(username, 3)
		for i, a := range unknown {
			if a.status != known[i].status || a.code != known[i].code || a.left != known[i].left || a.shape != known[i].shape {
				t.Errorf("unknown user %s #%d: %+v; known user answered %+v", username, i+1, a, known[i])
			}
		}
	}
	if st := p.citizenStatus(t, karen.UserID); st != "active" {
		t.Errorf("status after 3 failures = %q, want active", st)
	}
}

func codeOf(e *ViewError) string {
	if e == nil {
		return ""
	}
	return e.Code
}

// TestWrongKey: a wrong key answers 401 wrong_key with attempts_left; the key number asked
// stays the same across reloads and wrong answers; a key that is not 6 digits is 400
// invalid_request and does not count as an attempt.
func TestWrongKey(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")

	l := p.newBrowser(t).authorize(t, bank)
	if code, v := l.password(karen, karen.Password); code != http.StatusOK {
		t.Fatalf("password: %d %s", code, v.Error)
	}
	l.requireStep("codecard")
	asked := l.View.KeyNumber
	if len(asked) != 4 {
		t.Fatalf("key_number = %q, want 4 digits", asked)
	}
	if again := l.reload().KeyNumber; again != asked {
		t.Fatalf("reload asks key number %q, first %q", again, asked)
	}
	if again := l.reload().KeyNumber; again != asked {
		t.Fatalf("second reload asks key number %q, first %q", again, asked)
	}

	code, v := l.post("codecard", map[string]string{"key": l.wrongKey(karen)})
	if code != http.StatusUnauthorized || codeOf(v.Error) != "wrong_key" || attempts(v.Error) != 4 {
		t.Fatalf("wrong key: %d %s, want 401 wrong_key attempts_left 4", code, v.Error)
	}
	if v.KeyNumber != asked {
		t.Errorf("after a wrong key the view asks %q, want the same %q", v.KeyNumber, asked)
	}
	for _, bad := range []string{"12345", "1234567", "abcdef", "12 456", ""} {
		code, v := l.post("codecard", map[string]string{"key": bad})
		if code != http.StatusBadRequest || codeOf(v.Error) != "invalid_request" {
			t.Errorf("key %q: %d %s, want 400 invalid_request", bad, code, v.Error)
		}
	}
	if again := l.reload().KeyNumber; again != asked {
		t.Errorf("after wrong answers the reload asks %q, want %q", again, asked)
	}
	code, v = l.post("codecard", map[string]string{"key": l.wrongKey(karen)})
	if code != http.StatusUnauthorized || codeOf(v.Error) != "wrong_key" || attempts(v.Error) != 3 {
		t.Errorf("second wrong key: %d %s, want 401 wrong_key attempts_left 3 (malformed keys must not count)", code, v.Error)
	}
	l.key(karen)
	l.requireStep("new_password")
}

// TestUsedKeyNotAcceptedTwice: once a flow is done, posting its key again does not make a
// second success (409 wrong_step), and the browser still gets exactly one code.
func TestUsedKeyNotAcceptedTwice(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	p.activate(t, bank, karen)

	l := p.newBrowser(t).authorize(t, bank)
	if code, v := l.password(karen, karen.Password); code != http.StatusOK {
		t.Fatalf("password: %d %s", code, v.Error)
	}
	l.requireStep("codecard")
	number, key := l.View.KeyNumber, karen.Keys[l.View.KeyNumber]
	csrf := l.csrf
	l.key(karen)
	l.requireStep("done")
	done := l.View

	l.csrf = csrf
	code, v := l.post("codecard", map[string]string{"key": key})
	if code != http.StatusConflict || codeOf(v.Error) != "wrong_step" {
		t.Errorf("key %s posted again to the done flow: %d %s, want 409 wrong_step", number, code, v.Error)
	}
	if v.Step == "done" && v.Error == nil {
		t.Errorf("the replayed key made a second done")
	}
	l.View = done
	l.finish()
	if _, err := l.exchange(l.code()); err != nil {
		t.Fatalf("exchange: %v", err)
	}
}

// raceKey starts a server, gets an activated citizen's login to the codecard step and posts
// the right key from n goroutines at once. It returns the login and every answer.
func raceKey(t *testing.T, n int) (*Login, []*Resp) {
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	_, l, answers := raceKeyOn(t, p, bank, n)
	return l, answers
}

// raceKeyOn issues and activates a citizen on p, gets a new login to the codecard step and
// posts the right key from n goroutines at once.
func raceKeyOn(t *testing.T, p *IdP, bank *RP, n int) (*Citizen, *Login, []*Resp) {
	t.Helper()
	return raceKeyAfter(t, p, bank, n, nil)
}

// raceKeyAfter is raceKeyOn calling before, if not nil, once the login stands at the codecard
// step and before the racers start.
func raceKeyAfter(t *testing.T, p *IdP, bank *RP, n int, before func(*Citizen, *Login)) (*Citizen, *Login, []*Resp) {
	t.Helper()
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	p.activate(t, bank, karen)

	l := p.newBrowser(t).authorize(t, bank)
	if code, v := l.password(karen, karen.Password); code != http.StatusOK {
		t.Fatalf("password: %d %s", code, v.Error)
	}
	l.requireStep("codecard")
	if before != nil {
		before(karen, l)
	}
	body, _ := json.Marshal(map[string]string{"key": karen.Keys[l.View.KeyNumber]})
	headers := map[string]string{"Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": l.csrf}
	target := "/login/" + l.View.Flow + "/codecard"

	answers := make([]*Resp, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			answers[i], errs[i] = l.b.try(t.Context(), http.MethodPost, target, bytes.NewReader(body), headers)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	return karen, l, answers
}

// TestCodecardKeyRaceExactlyOneWins: one key posted by 10 concurrent requests on one flow —
// exactly one request is done, every other one is an error, and exactly one code results.
func TestCodecardKeyRaceExactlyOneWins(t *testing.T) {
	t.Parallel()
	l, answers := raceKey(t, 10)
	var wins []View
	for i, r := range answers {
		v := r.View(t)
		switch {
		case r.Status == http.StatusOK && v.Step == "done" && v.Error == nil:
			wins = append(wins, v)
		case r.Status/100 == 2 || v.Error == nil:
			t.Errorf("request %d: %s: neither done nor an error", i, r)
		}
	}
	if len(wins) != 1 {
		t.Fatalf("%d requests got done, want exactly 1", len(wins))
	}
	l.View = wins[0]
	l.finish()
	code := l.code()

	// The callback once more (a reload, a second tab): no second code.
	r := l.b.get(t, wins[0].RedirectTo)
	if loc := r.Location(wins[0].RedirectTo); strings.HasPrefix(loc, redirectURI) {
		u, _ := url.Parse(loc)
		if c2 := u.Query().Get("code"); c2 != "" && c2 != code {
			if _, err := l.exchange(c2); err == nil {
				t.Errorf("the callback minted a second working code")
			}
		}
	}
	if _, err := l.exchange(code); err != nil {
		t.Fatalf("exchange of the one code: %v", err)
	}
}

// TestCodecardKeyRaceDuplicatesDoNotCountAsFailures: a right key submitted several times at
// once to the same flow (a double click, a retry, 20 tabs) is one success: every losing
// request answers 409 (used_key, wrong_step or conflict), the NemID stays active, and the
// success leaves the failure counter at 0 — the next wrong password shows 4 attempts left.
//
// The interleaving that matters — duplicates reaching the key check after the first request
// consumed the key but before it saved the flow — is up to the scheduler in a real race, so
// the test makes it certain through the store: it runs the key check of this flow
// (store.UseCardKeyInFlow, as the codecard step does) once for the first request, which
// consumes the key, and login.max_failures times more for the duplicates; then 20 requests
// post the key at once. Had the duplicates counted as failed attempts, the NemID would be
// blocked by now; the deterministic twin without HTTP is flows.TestRepeatedKeyAdvances.
func TestCodecardKeyRaceDuplicatesDoNotCountAsFailures(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	duplicates := func(karen *Citizen, l *Login) {
		e := p.Server.Flows
		number, serial := l.View.KeyNumber, l.View.CardSerial
		hash := e.Cards.Hash(serial, number, karen.Keys[number])
		for i := range e.MaxFailures + 1 {
			want := store.KeyRepeat // a duplicate of the flow's own, accepted key
			if i == 0 {
				want = store.KeyOK // the first request consumes the key
			}
			res, _, err := p.Store.UseCardKeyInFlow(t.Context(), l.View.Flow, karen.UserID, serial, number, hash, e.MaxFailures)
			if err != nil || res.Outcome != want {
				t.Fatalf("key check %d of the flow's own key: %+v %v, want %s", i, res, err, want)
			}
			// As the codecard step does for a right or repeated key: the flow attempt the check
			// reserved is given back.
			if err := p.Store.ReleaseFlowAttempt(t.Context(), l.View.Flow); err != nil {
				t.Fatal(err)
			}
		}
	}
	karen, _, answers := raceKeyAfter(t, p, bank, 20, duplicates)
	allowed := []string{"used_key", "wrong_step", "conflict"}
	got := map[string]int{}
	for _, r := range answers {
		v := r.View(t)
		if r.Status == http.StatusOK && v.Step == "done" {
			got["done"]++
			continue
		}
		got[codeOf(v.Error)]++
		if r.Status != http.StatusConflict || !slices.Contains(allowed, codeOf(v.Error)) {
			t.Errorf("a losing request answered %d %s, want 409 with one of %v", r.Status, codeOf(v.Error), allowed)
		}
	}
	if got["done"] != 1 {
		t.Fatalf("answers %v, want exactly one done", got)
	}
	st := p.citizenStatus(t, karen.UserID)
	l := p.newBrowser(t).authorize(t, bank)
	code, v := l.password(karen, "Forkert"+randHex(2)+"1")
	if st != "active" || code != http.StatusUnauthorized || attempts(v.Error) != 4 {
		t.Fatalf("answers %v: the duplicate submissions of the flow's own, accepted key were counted as failed attempts: "+
			"after the successful login the NemID is %q and the next wrong password answers %d %s (want active, then 401 with attempts_left 4)",
			got, st, code, v.Error)
	}
}

// TestUsedKeyFromAnotherFlow: a key used in one login is refused in another login that asked
// the same key number (409 used_key, counted as a failed attempt); reloading that login then
// asks a fresh number, and the login can finish with it.
func TestUsedKeyFromAnotherFlow(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, freshCPR(), "Karen Jensen")
	p.activate(t, bank, karen)

	// Open logins at the codecard step until two ask the same key number (148 numbers: a
	// collision among 60 logins is all but certain).
	byNumber := map[string]*Login{}
	var first, second *Login
	for i := 0; i < 60 && second == nil; i++ {
		l := p.newBrowser(t).authorize(t, bank)
		if code, v := l.password(karen, karen.Password); code != http.StatusOK {
			t.Fatalf("password: %d %s", code, v.Error)
		}
		l.requireStep("codecard")
		if prev, ok := byNumber[l.View.KeyNumber]; ok {
			first, second = prev, l
		}
		byNumber[l.View.KeyNumber] = l
	}
	if second == nil {
		t.Fatal("60 logins never asked the same key number twice")
	}
	number := first.View.KeyNumber
	if v := first.key(karen); v.Step != "done" {
		t.Fatalf("first login: step %q", v.Step)
	}
	// Typed right, the used key is no wrong answer: 409 used_key without attempts_left, and
	// the view already asks the card's next number.
	code, v := second.post("codecard", map[string]string{"key": karen.Keys[number]})
	if code != http.StatusConflict || codeOf(v.Error) != "used_key" || v.Error.AttemptsLeft != nil ||
		v.KeyNumber == number || v.KeyNumber == "" {
		t.Fatalf("key %s replayed in another login: %d %+v (key number %s), want 409 used_key, no attempts_left, a fresh number", number, code, v.Error, v.KeyNumber)
	}
	if again := second.reload().KeyNumber; again != v.KeyNumber {
		t.Fatalf("reload after a used key asks %q, the answer asked %q", again, v.KeyNumber)
	}
	if st := p.citizenStatus(t, karen.UserID); st != "active" {
		t.Fatalf("status %q", st)
	}
	second.key(karen)
	second.finish()
	second.mustExchange()
}

// TestLockout: with max failures 5, the 5th failure in a row answers 403 locked (after
// attempts_left 4, 3, 2, 1), the right password then answers locked too, and the operator
// API shows the NemID blocked. Password and key failures count together.
func TestLockout(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")

	type failure struct{ key bool } // a wrong password, or a wrong key
	pw, key := failure{false}, failure{true}
	for _, tc := range []struct {
		name     string
		failures []failure
	}{
		{"passwords", []failure{pw, pw, pw, pw, pw}},
		{"passwords then keys", []failure{pw, pw, key, key, key}},
		{"keys", []failure{key, key, key, key, key}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := p.issueCitizen(t, freshCPR(), "Niels Hansen")
			l := p.newBrowser(t).authorize(t, bank)
			for i, f := range tc.failures {
				var code int
				var v View
				if f.key {
					if l.View.Step == "password" {
						if code, v := l.password(c, c.Password); code != http.StatusOK {
							t.Fatalf("right password before the key failures: %d %s", code, v.Error)
						}
					}
					l.requireStep("codecard")
					code, v = l.post("codecard", map[string]string{"key": l.wrongKey(c)})
				} else {
					code, v = l.password(c, "Forkert"+randHex(2)+"1")
				}
				wantCode, wantStatus := "invalid_credentials", http.StatusUnauthorized
				if f.key {
					wantCode = "wrong_key"
				}
				if i == len(tc.failures)-1 {
					wantCode, wantStatus = "locked", http.StatusForbidden
				}
				if code != wantStatus || codeOf(v.Error) != wantCode {
					t.Fatalf("failure #%d: %d %s, want %d %s", i+1, code, v.Error, wantStatus, wantCode)
				}
				if i < len(tc.failures)-1 && attempts(v.Error) != 4-i {
					t.Errorf("failure #%d: attempts_left %d, want %d", i+1, attempts(v.Error), 4-i)
				}
			}
			if l.View.Step == "codecard" {
				code, v := l.post("codecard", map[string]string{"key": c.Keys[l.View.KeyNumber]})
				if code != http.StatusForbidden || codeOf(v.Error) != "locked" {
					t.Errorf("right key after the lockout: %d %s, want 403 locked", code, v.Error)
				}
			}
			l2 := p.newBrowser(t).authorize(t, bank)
			if code, v := l2.password(c, c.Password); code != http.StatusForbidden || codeOf(v.Error) != "locked" {
				t.Errorf("right password after the lockout: %d %s, want 403 locked", code, v.Error)
			}
			if st := p.citizenStatus(t, c.UserID); st != "blocked" {
				t.Errorf("operator API status = %q, want blocked", st)
			}
		})
	}
}

// TestLockoutParallelGuesses: 20 wrong passwords at once cannot slip past the limit: at most
// four answers say invalid_credentials (each attempts_left value once); the rest are locked,
// refused because the flow has had its max wrong answers (too_many_attempts), or told to try
// again (503: the KDF queue was full, or attempts in flight used up the budget).
func TestLockoutParallelGuesses(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	c := p.issueCitizen(t, freshCPR(), "Niels Hansen")
	l := p.newBrowser(t).authorize(t, bank)
	l.requireStep("password")
	target := "/login/" + l.View.Flow + "/password"
	headers := map[string]string{"Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": l.csrf}

	const n = 20
	answers := make([]*Resp, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			body, _ := json.Marshal(map[string]string{"username": c.UserID, "password": "Forkert" + randHex(3) + "1"})
			answers[i], errs[i] = l.b.try(t.Context(), http.MethodPost, target, bytes.NewReader(body), headers)
		})
	}
	close(start)
	wg.Wait()
	seen := map[int]int{}
	locked, refused := 0, 0
	for i, r := range answers {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		v := r.View(t)
		switch {
		case r.Status == http.StatusUnauthorized && codeOf(v.Error) == "invalid_credentials":
			seen[attempts(v.Error)]++
		case r.Status == http.StatusForbidden && codeOf(v.Error) == "locked":
			locked++
		case r.Status == http.StatusForbidden && codeOf(v.Error) == "too_many_attempts":
			refused++
		case r.Status == http.StatusServiceUnavailable && codeOf(v.Error) == "unavailable":
			if r.Header.Get("Retry-After") == "" {
				t.Errorf("request %d: 503 without Retry-After", i)
			}
			refused++
		default:
			t.Errorf("request %d: %s, want 401 invalid_credentials, 403 locked or too_many_attempts, or 503", i, r)
		}
	}
	for left, k := range seen {
		if left < 1 || left > 4 || k != 1 {
			t.Errorf("attempts_left %d answered %d times, want each of 4..1 at most once", left, k)
		}
	}
	if len(seen)+locked+refused != n || len(seen) > 4 || refused == 0 {
		t.Errorf("%d invalid_credentials %v, %d locked, %d refused of %d", len(seen), seen, locked, refused, n)
	}
	want := "active"
	if locked > 0 {
		want = "blocked"
	}
	if st := p.citizenStatus(t, c.UserID); st != want {
		t.Errorf("status = %q after %d locked answers, want %s", st, locked, want)
	}
}

var (
	csrfFieldRE = regexp.MustCompile(`<input type="hidden" name="csrf_token" value="([^"]+)">`)
	formRE      = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	keyNumberRE = regexp.MustCompile(`<strong id="key-number">(\d{4})</strong>`)
)

// htmlForm reads the login form of an HTML page: where it posts and its CSRF token.
func htmlForm(t *testing.T, r *Resp) (action, csrf string) {
	t.Helper()
	a, c := formRE.FindSubmatch(r.Body), csrfFieldRE.FindSubmatch(r.Body)
	if a == nil || c == nil {
		t.Fatalf("no login form with csrf_token in the page: %s", r)
	}
	return string(a[1]), string(c[1])
}

// TestHTMLLoginInDanish walks the first login as a browser would: HTML pages (Danish by
// default), hidden CSRF fields, url-encoded forms, 303 back to the relying party.
func TestHTMLLoginInDanish(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	karen := p.issueCitizen(t, karenCPR, "Karen Jensen")

	b := p.newBrowser(t)
	b.Accept = "text/html,application/xhtml+xml"
	l, u := b.authURL(bank)
	l.t = t
	var page *Resp
	for range 10 {
		page = b.get(t, u)
		if page.Status/100 != 3 {
			break
		}
		u = page.Location(u)
	}
	if page.Status != http.StatusOK || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("login page: %s", page)
	}
	for _, want := range []string{`<html lang="da">`, "Log på med NemID", "Bruger-id", "Adgangskode"} {
		if !bytes.Contains(page.Body, []byte(want)) {
			t.Errorf("password page lacks %q", want)
		}
	}

	submit := func(action, csrf string, fields url.Values) *Resp {
		t.Helper()
		fields.Set("csrf_token", csrf)
		return b.do(t, http.MethodPost, action, strings.NewReader(fields.Encode()), map[string]string{
			"Content-Type": "application/x-www-form-urlencoded", "Origin": p.Issuer})
	}

	action, csrf := htmlForm(t, page)
	if !strings.HasSuffix(action, "/password") {
		t.Fatalf("form posts to %q, want …/password", action)
	}
	page = submit(action, csrf, url.Values{"username": {karen.UserID}, "password": {karen.Password}})
	if page.Status != http.StatusOK {
		t.Fatalf("password form: %s", page)
	}
	m := keyNumberRE.FindSubmatch(page.Body)
	if m == nil || !bytes.Contains(page.Body, []byte("Nøglenummer")) {
		t.Fatalf("no key number on the codecard page: %s", page)
	}
	number := string(m[1])

	// A wrong key: the page says so in Danish, with the attempts left and the same number.
	action, csrf = htmlForm(t, page)
	wrong := []byte(karen.Keys[number])
	wrong[0] = '0' + (wrong[0]-'0'+1)%10
	page = submit(action, csrf, url.Values{"key": {string(wrong)}})
	if page.Status != http.StatusUnauthorized || errorCode(page) != "wrong_key" || !bytes.Contains(page.Body, []byte("Forkert nøgle")) {
		t.Fatalf("wrong key page: %s", page)
	}
	if m := keyNumberRE.FindSubmatch(page.Body); m == nil || string(m[1]) != number {
		t.Errorf("after a wrong key the page asks %q, want %s", m, number)
	}

	action, csrf = htmlForm(t, page)
	page = submit(action, csrf, url.Values{"key": {karen.Keys[number]}})
	if page.Status != http.StatusOK || !bytes.Contains(page.Body, []byte("Vælg din egen adgangskode")) {
		t.Fatalf("new password page: %s", page)
	}
	action, csrf = htmlForm(t, page)
	page = submit(action, csrf, url.Values{"password": {"1234"}})
	if page.Status != http.StatusBadRequest || errorCode(page) != "invalid_password" {
		t.Fatalf("weak new password: %s", page)
	}
	action, csrf = htmlForm(t, page)
	karen.Password = goodPassword()
	page = submit(action, csrf, url.Values{"password": {karen.Password}})
	if page.Status != http.StatusSeeOther {
		t.Fatalf("new password form: %s, want 303 to the callback", page)
	}
	u = page.Location(p.Issuer + action)
	for range 10 {
		if strings.HasPrefix(u, redirectURI) {
			break
		}
		r := b.get(t, u)
		if r.Status/100 != 3 {
			t.Fatalf("GET %s: %s", u, r)
		}
		u = r.Location(u)
	}
	l.Back, _ = url.Parse(u)
	tok := l.mustExchange()
	if tok.IDTokenClaims.Name != "Karen Jensen" {
		t.Errorf("name = %q", tok.IDTokenClaims.Name)
	}

	// English on request.
	b2 := p.newBrowser(t)
	b2.Accept = "text/html"
	_, u = b2.authURL(bank)
	for range 10 {
		r := b2.get(t, u)
		if r.Status/100 != 3 {
			break
		}
		u = r.Location(u)
	}
	en := b2.get(t, u+"?lang=en")
	if !bytes.Contains(en.Body, []byte(`<html lang="en">`)) || !bytes.Contains(en.Body, []byte("Log on with NemID")) {
		t.Errorf("?lang=en page is not English: %s", en)
	}
}

// TestOperatorViewAgreesWithLockout: what the operator sees is what logins are answered:
// failures so far while active, and blocked for failures once the answers say locked.
func TestOperatorViewAgreesWithLockout(t *testing.T) {
	t.Parallel()
	p := startIdP(t)
	bank := p.relyingParty(t, p.registerClient(t, "openid", "profile"), "openid", "profile")
	c := p.issueCitizen(t, freshCPR(), "Niels Hansen")
	view := func() (st, reason string, failures int) {
		var v struct {
			Status      string `json:"status"`
			BlockReason string `json:"block_reason"`
			Failures    int    `json:"failures"`
		}
		if code := p.admin(t, http.MethodGet, "/admin/v1/citizens/"+c.UserID, nil, &v); code != http.StatusOK {
			t.Fatalf("GET citizen: %d", code)
		}
		return v.Status, v.BlockReason, v.Failures
	}
	for i := 1; i <= 5; i++ {
		l := p.newBrowser(t).authorize(t, bank)
		code, v := l.password(c, "Forkert"+randHex(2)+"1")
		st, reason, n := view()
		switch {
		case i < 5 && (code != http.StatusUnauthorized || st != "active" || n != i):
			t.Fatalf("wrong password %d: %d %s; operator sees %s with %d failures", i, code, v.Error, st, n)
		case i == 5 && (codeOf(v.Error) != "locked" || st != "blocked" || reason != "failures" || n != 5):
			t.Fatalf("wrong password %d: %d %s; operator sees %s (%s) with %d failures, want blocked (failures)", i, code, v.Error, st, reason, n)
		}
	}
}
