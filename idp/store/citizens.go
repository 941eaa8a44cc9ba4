package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Citizen statuses.
const (
	StatusActive  = "active"
	StatusBlocked = "blocked"
	StatusExpired = "expired"
)

// Block reasons.
const (
	BlockFailures = "failures" // too many failed attempts in a row
)

// Citizen is one NemID holder. The CPR number is personal data: it lives here and in no log.
type Citizen struct {
	UserID      string
	CPR         string
	Name        string
	GivenName   string
	FamilyName  string
	Kind        string // "oces" or "bank"
	Status      string
	BlockReason string
	Password    string // PHC-encoded KDF hash
	MustChange  bool   // still on the temporary activation password
	Failures    int
	IssuedAt    string // YYYY-MM-DD
	CreatedAt   time.Time
	Address     string
	ActiveCard  string
}

func (c *Citizen) fields() map[string]any {
	return map[string]any{
		"user_id": c.UserID, "cpr": c.CPR, "name": c.Name, "given_name": c.GivenName,
		"family_name": c.FamilyName, "kind": c.Kind, "status": c.Status, "block_reason": c.BlockReason,
		"password": c.Password, "must_change": boolStr(c.MustChange), "failures": c.Failures,
		"issued_at": c.IssuedAt, "created_at": c.CreatedAt.UTC().Format(time.RFC3339),
		"address": c.Address, "active_card": c.ActiveCard,
	}
}

func citizenFrom(m map[string]string) *Citizen {
	created, _ := time.Parse(time.RFC3339, m["created_at"])
	failures, _ := strconv.Atoi(m["failures"])
	return &Citizen{
		UserID: m["user_id"], CPR: m["cpr"], Name: m["name"], GivenName: m["given_name"],
		FamilyName: m["family_name"], Kind: m["kind"], Status: m["status"], BlockReason: m["block_reason"],
		Password: m["password"], MustChange: m["must_change"] == "1", Failures: failures,
		IssuedAt: m["issued_at"], CreatedAt: created, Address: m["address"], ActiveCard: m["active_card"],
	}
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// CardRecord is a code card as stored: key numbers and keyed hashes of the keys, never the keys.
type CardRecord struct {
	Serial string
	Status string            // "active", "sent", "retired", "blocked"
	Hashes map[string]string // key number → keyed hash
}

// Card statuses.
const (
	CardActive  = "active"
	CardSent    = "sent"
	CardRetired = "retired"
	CardBlocked = "blocked"
)

func (s *Store) citizenKey(uid string) string { return s.key("{c:" + uid + "}") }
func (s *Store) cardKey(uid, serial string) string {
	return s.key("{c:"+uid+"}", "card", serial)
}
func (s *Store) unusedKey(uid, serial string) string {
	return s.key("{c:"+uid+"}", "card", serial, "unused")
}
func (s *Store) cardsKey(uid string) string    { return s.key("{c:"+uid+"}", "cards") }
func (s *Store) pairwiseKey(uid string) string { return s.key("{c:"+uid+"}", "pairwise") }

// cprIndexKey holds the user id for a CPR number, keyed by an HMAC so key listings do not
// reveal CPR numbers (the CPR space is small enough to brute-force a plain hash).
func (s *Store) cprIndexKey(cpr string) string {
	m := hmac.New(sha256.New, s.pepper)
	m.Write([]byte("cpr\x00" + cpr))
	return s.key("idx", "cpr", base64.RawURLEncoding.EncodeToString(m.Sum(nil)))
}

// ErrUserIDTaken means a freshly drawn user id already exists: draw another.
var ErrUserIDTaken = errors.New("user id taken")

// staleClaim is how old a CPR claim naming a citizen that was never written must be before
// another issuance may take it over: far longer than writing a citizen takes.
const staleClaim = time.Minute

// takeOverScript replaces a CPR claim only if it is still the stale one that was read.
var takeOverScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end
return 0
`)

// CreateCitizen stores a new citizen with their first code card. The CPR index is claimed
// first, for good ("<user id>|<claimed at>"), so two operators cannot create two NemIDs for one
// CPR number; then the citizen and card are written in one transaction. If the write fails the
// claim is released. A claim left behind by a crash names a citizen that does not exist: logins
// treat it as unknown, and after staleClaim a new issuance takes it over.
// The card's serial is claimed before anything else (ErrSerialTaken: draw another card).
func (s *Store) CreateCitizen(ctx context.Context, c *Citizen, card CardRecord) error {
	return s.withSerial(ctx, card.Serial, c.UserID, func() error { return s.createCitizen(ctx, c, card) })
}

func (s *Store) createCitizen(ctx context.Context, c *Citizen, card CardRecord) error {
	idx := s.cprIndexKey(c.CPR)
	claim := c.UserID + "|" + strconv.FormatInt(time.Now().UnixMilli(), 10)
	ok, err := s.rdb.SetNX(ctx, idx, claim, 0).Result()
	if err != nil {
		return wrap("create citizen: claim cpr", err)
	}
	if !ok {
		if err := s.takeOverStale(ctx, idx, claim); err != nil {
			return err
		}
	}
	if err := s.writeNewCitizen(ctx, c, card); err != nil {
		// Release the claim; use a fresh context so a cancelled request still cleans up.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		s.rdb.Del(cctx, idx)
		return err
	}
	return nil
}

// takeOverStale takes a CPR claim over when it is stale: its citizen was never written and it
// is older than staleClaim. Otherwise the CPR number has (or is just getting) a NemID.
func (s *Store) takeOverStale(ctx context.Context, idx, claim string) error {
	conflict := fmt.Errorf("store: create citizen: cpr already has a NemID: %w", ErrConflict)
	old, err := s.rdb.Get(ctx, idx).Result()
	if err != nil {
		return wrap("create citizen: read cpr claim", err)
	}
	uid, at, _ := strings.Cut(old, "|")
	n, err := s.rdb.Exists(ctx, s.citizenKey(uid)).Result()
	if err != nil {
		return wrap("create citizen: check cpr claim", err)
	}
	ms, perr := strconv.ParseInt(at, 10, 64)
	if n > 0 || perr != nil || time.Since(time.UnixMilli(ms)) < staleClaim {
		return conflict
	}
	took, err := takeOverScript.Run(ctx, s.rdb, []string{idx}, old, claim).Int()
	if err != nil {
		return wrap("create citizen: take over cpr claim", err)
	}
	if took == 0 {
		return conflict
	}
	return nil
}

func (s *Store) writeNewCitizen(ctx context.Context, c *Citizen, card CardRecord) error {
	ck := s.citizenKey(c.UserID)
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		n, err := tx.Exists(ctx, ck).Result()
		if err != nil {
			return err
		}
		if n > 0 {
			return ErrUserIDTaken
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			c.ActiveCard = card.Serial
			p.HSet(ctx, ck, c.fields())
			s.queueCard(ctx, p, c.UserID, card)
			return nil
		})
		return err
	}, ck)
	return wrap("create citizen", err)
}

func (s *Store) queueCard(ctx context.Context, p redis.Pipeliner, uid string, card CardRecord) {
	fields := make(map[string]any, len(card.Hashes)+2)
	numbers := make([]any, 0, len(card.Hashes))
	for n, h := range card.Hashes {
		fields["k:"+n] = h
		numbers = append(numbers, n)
	}
	fields["status"] = card.Status
	fields["created_at"] = time.Now().UTC().Format(time.RFC3339)
	p.HSet(ctx, s.cardKey(uid, card.Serial), fields)
	p.SAdd(ctx, s.unusedKey(uid, card.Serial), numbers...)
	p.SAdd(ctx, s.cardsKey(uid), card.Serial)
}

// Citizen loads a citizen by user id.
func (s *Store) Citizen(ctx context.Context, uid string) (*Citizen, error) {
	m, err := s.rdb.HGetAll(ctx, s.citizenKey(uid)).Result()
	if err != nil {
		return nil, wrap("citizen", err)
	}
	if len(m) == 0 || m["user_id"] == "" {
		return nil, fmt.Errorf("store: citizen: %w", ErrNotFound)
	}
	return citizenFrom(m), nil
}

// CitizenStatus returns just the citizen's status (one field, for checks on the token path).
func (s *Store) CitizenStatus(ctx context.Context, uid string) (string, error) {
	st, err := s.rdb.HGet(ctx, s.citizenKey(uid), "status").Result()
	return st, wrap("citizen status", err)
}

// CitizenByUsername resolves what a citizen types as user ID: the NemID number or the CPR
// number (aliases come later). The CPR number must be given already normalised (10 digits).
func (s *Store) CitizenByUsername(ctx context.Context, username string, cpr string) (*Citizen, error) {
	if isDigits(username) && (len(username) == 9 || len(username) == 10) {
		c, err := s.Citizen(ctx, username)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return c, err
		}
	}
	if cpr != "" {
		claim, err := s.rdb.Get(ctx, s.cprIndexKey(cpr)).Result()
		if err != nil {
			return nil, wrap("citizen by cpr", err)
		}
		uid, _, _ := strings.Cut(claim, "|")
		return s.Citizen(ctx, uid)
	}
	return nil, fmt.Errorf("store: citizen by username: %w", ErrNotFound)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// FailureResult says what a failed attempt did to the lockout counter.
type FailureResult struct {
	AttemptsLeft int
	Locked       bool // this or an earlier failure blocked the NemID
}

// An attempt is reserved before the password is checked and settled after: the slow KDF runs
// between the two, and parallel guesses must not all pass a check made before any of them
// failed. A reservation counts as a failure until it is taken back by a right password.

var beginAttemptScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return {-1, 0} end
local f = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0') or 0
if f >= tonumber(ARGV[1]) or (st == 'blocked' and redis.call('HGET', KEYS[1], 'block_reason') == 'failures') then
  return {f, 0}
end
return {redis.call('HINCRBY', KEYS[1], 'failures', 1), 1}
`)

// Attempt is a reserved password attempt: the N-th failure in a row if it turns out wrong.
type Attempt struct {
	N       int
	Refused bool // the NemID is locked (or past the limit): no password is checked
}

// BeginAttempt reserves one attempt, or refuses when max failures in a row are already spent.
func (s *Store) BeginAttempt(ctx context.Context, uid string, max int) (Attempt, error) {
	res, err := beginAttemptScript.Run(ctx, s.rdb, []string{s.citizenKey(uid)}, max).Int64Slice()
	if err != nil {
		return Attempt{}, wrap("begin attempt", err)
	}
	if res[0] < 0 {
		return Attempt{}, fmt.Errorf("store: begin attempt: %w", ErrNotFound)
	}
	return Attempt{N: int(res[0]), Refused: res[1] == 0}, nil
}

var failAttemptScript = redis.NewScript(`
if tonumber(ARGV[2]) >= tonumber(ARGV[1]) and redis.call('HGET', KEYS[1], 'status') == 'active' then
  redis.call('HSET', KEYS[1], 'status', 'blocked', 'block_reason', 'failures', 'blocked_at', ARGV[3])
end
return 1
`)

// FailAttempt settles a reserved attempt as failed: the max-th failure in a row blocks the NemID.
func (s *Store) FailAttempt(ctx context.Context, uid string, limit int, a Attempt) (FailureResult, error) {
	err := failAttemptScript.Run(ctx, s.rdb, []string{s.citizenKey(uid)}, limit, a.N, time.Now().UTC().Format(time.RFC3339)).Err()
	if err != nil {
		return FailureResult{}, wrap("fail attempt", err)
	}
	left := limit - a.N
	if left < 0 {
		left = 0
	}
	return FailureResult{AttemptsLeft: left, Locked: left == 0}, nil
}

var okAttemptScript = redis.NewScript(`
if redis.call('HINCRBY', KEYS[1], 'failures', -1) < 0 then redis.call('HSET', KEYS[1], 'failures', 0) end
local number = ''
if KEYS[2] ~= '' then number = redis.call('SRANDMEMBER', KEYS[2]) or '' end
return {redis.call('HGET', KEYS[1], 'status') or '', redis.call('HGET', KEYS[1], 'block_reason') or '', number}
`)

// PasswordAccepted takes a reservation back after a right password and returns the citizen's
// status as it is now (a parallel wrong guess may have locked the NemID meanwhile) and, in the
// same round trip, an unused key number of the card to ask for next ("" when the card has none).
func (s *Store) PasswordAccepted(ctx context.Context, uid, serial string) (status, reason, number string, err error) {
	unused := ""
	if serial != "" {
		unused = s.unusedKey(uid, serial)
	}
	res, err := okAttemptScript.Run(ctx, s.rdb, []string{s.citizenKey(uid), unused}).StringSlice()
	if err != nil {
		return "", "", "", wrap("password accepted", err)
	}
	return res[0], res[1], res[2], nil
}

// RecordFailure counts one failed attempt outside a password check (reserve and fail in one).
func (s *Store) RecordFailure(ctx context.Context, uid string, max int) (FailureResult, error) {
	a, err := s.BeginAttempt(ctx, uid, max)
	if err != nil {
		return FailureResult{}, err
	}
	if a.Refused {
		return FailureResult{Locked: true}, nil
	}
	return s.FailAttempt(ctx, uid, max, a)
}

var unknownFailureScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`)

// RecordUnknownFailure counts failures for a user ID that does not exist, so the answer
// (attempts left, then locked) looks the same as for a real citizen.
func (s *Store) RecordUnknownFailure(ctx context.Context, username string, max int, ttl time.Duration) (FailureResult, error) {
	m := hmac.New(sha256.New, s.pepper)
	m.Write([]byte("user\x00" + strings.ToLower(username)))
	k := s.key("fail", "u", base64.RawURLEncoding.EncodeToString(m.Sum(nil)))
	n, err := unknownFailureScript.Run(ctx, s.rdb, []string{k}, ttl.Milliseconds()).Int()
	if err != nil {
		return FailureResult{}, wrap("record unknown failure", err)
	}
	left := max - n
	if left < 0 {
		left = 0
	}
	return FailureResult{AttemptsLeft: left, Locked: left == 0}, nil
}

// UnknownLocked reports whether an unknown user ID has used up its fake attempts.
func (s *Store) UnknownLocked(ctx context.Context, username string, max int) (bool, error) {
	m := hmac.New(sha256.New, s.pepper)
	m.Write([]byte("user\x00" + strings.ToLower(username)))
	k := s.key("fail", "u", base64.RawURLEncoding.EncodeToString(m.Sum(nil)))
	n, err := s.rdb.Get(ctx, k).Int()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, wrap("unknown locked", err)
	}
	return n >= max, nil
}

// SetPassword replaces the citizen's password hash and clears the activation-password mark.
func (s *Store) SetPassword(ctx context.Context, uid, hash string) error {
	err := s.rdb.HSet(ctx, s.citizenKey(uid), "password", hash, "must_change", "0").Err()
	return wrap("set password", err)
}

// PairwiseSubject returns the citizen's stable pairwise subject for a sector (client), made on
// first use from the given fresh UUID. Random rather than derived, so rotating the server
// secret never changes what relying parties know a citizen as.
func (s *Store) PairwiseSubject(ctx context.Context, uid, sector, fresh string) (string, error) {
	v, err := pairwiseScript.Run(ctx, s.rdb, []string{s.pairwiseKey(uid)}, sector, fresh).Text()
	return v, wrap("pairwise subject", err)
}

var pairwiseScript = redis.NewScript(`
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])
`)
