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
	// ExpiresAt is when the NemID must be renewed (YYYY-MM-DD, 3 years after issue or renewal).
	ExpiresAt string
	// PID is the OCES public digital signature's person id ("9208-2002-2-" + 12 digits); empty
	// for a bank-only NemID.
	PID string
	// OCESIssuedAt is when the OCES was issued or last reissued (YYYY-MM-DD).
	OCESIssuedAt string
	// YouthCert is the OCES youth marker ("ung under 18"): the OCES was issued before the 18th
	// birthday; it stays until the OCES is reissued (renewal).
	YouthCert bool
	// SessionsEnded is when a block or a temporary password last ended the citizen's SSO
	// sessions and token grants (zero: never): a login authenticated at or before it is not
	// resumed or refreshed (LoginEnded), also once the NemID is unblocked. Set only by the
	// scripts in blocks.go.
	SessionsEnded time.Time
	// RenewalNotified is the expires_at a renewal_due event was last sent for (renewal.go): one
	// event per expiry date. Set only by NoteRenewalDue.
	RenewalNotified string
	// Card fields (cardorders.go): CardThreshold is the keys left at which a new card is
	// ordered (0: DefaultCardThreshold); IDCheck and Channel record the issuance's ID check
	// and channel; PostalAddress is where cards go for a citizen with no fixed address.
	CardThreshold int
	IDCheck       string
	Channel       string
	PostalAddress string
}

func (c *Citizen) fields() map[string]any {
	return map[string]any{
		"user_id": c.UserID, "cpr": c.CPR, "name": c.Name, "given_name": c.GivenName,
		"family_name": c.FamilyName, "kind": c.Kind, "status": c.Status, "block_reason": c.BlockReason,
		"password": c.Password, "must_change": boolStr(c.MustChange), "failures": c.Failures,
		"issued_at": c.IssuedAt, "created_at": c.CreatedAt.UTC().Format(time.RFC3339),
		"address": c.Address, "active_card": c.ActiveCard, "expires_at": c.ExpiresAt, "pid": c.PID,
		"oces_issued_at": c.OCESIssuedAt, "youth_cert": boolStr(c.YouthCert),
		"card_threshold": c.CardThreshold, "id_check": c.IDCheck, "channel": c.Channel, "postal_address": c.PostalAddress,
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
		ExpiresAt: m["expires_at"], PID: m["pid"], OCESIssuedAt: m["oces_issued_at"], YouthCert: m["youth_cert"] == "1",
		SessionsEnded: parseMillis(m["sessions_ended"]), RenewalNotified: m["renewal_notified"],
		CardThreshold: atoiOr(m["card_threshold"], 0), IDCheck: m["id_check"], Channel: m["channel"], PostalAddress: m["postal_address"],
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
	Hashes map[string]string // key number (4 digits, 0001–9999) → keyed hash
	// Origin is why the card exists (OriginFirst, OriginAuto, OriginExtra, OriginLost; ""
	// for cards written before origins), Replaces the serial it replaces (auto, lost),
	// OrderedBy "self", "system" or the operator's label; CreatedAt zero is now.
	Origin    string
	Replaces  string
	OrderedBy string
	CreatedAt time.Time
	// Print is the card as printed, sealed with the server secret, kept once for the print
	// service (TakeCardPrint); nil for a card handed over. Sent, when set, writes a card_sent
	// event with the card (it went by post).
	Print []byte
	Sent  *CardPost
}

// CardPost is the card_sent event a card sent by post comes with: who ordered it and,
// when not the register address, where it goes.
type CardPost struct {
	By      string
	Address string
}

// check refuses a key number other than 4 digits 0001–9999: the unused-keys set stores
// numbers as integers (see "Stored card format" in cards.go), which give back only those.
func (card CardRecord) check() error {
	for n := range card.Hashes {
		if len(n) != 4 || !isDigits(n) || n == "0000" {
			return fmt.Errorf("store: card %s: key number %q is not 4 digits 0001-9999", card.Serial, n)
		}
	}
	return nil
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
// The card's serial is claimed before anything else (ErrSerialTaken: draw another card), then
// an OCES NemID's PID (ErrPIDTaken: draw another PID).
func (s *Store) CreateCitizen(ctx context.Context, c *Citizen, card CardRecord) error {
	if err := card.check(); err != nil {
		return err
	}
	return s.withSerial(ctx, card.Serial, c.UserID, func() error {
		return s.withPID(ctx, c.PID, c.UserID, func() error { return s.createCitizen(ctx, c, card) })
	})
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
	if err := s.withOutbox(ctx, c.UserID, func() error { return s.writeNewCitizen(ctx, c, card) }); err != nil {
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
		numbers = append(numbers, unusedMember(n)) // an integer: the set is an intset
	}
	fields["status"] = card.Status
	created := card.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	fields["created_at"] = created.UTC().Format(time.RFC3339)
	for f, v := range map[string]string{"origin": card.Origin, "replaces": card.Replaces, "ordered_by": card.OrderedBy} {
		if v != "" {
			fields[f] = v
		}
	}
	p.HSet(ctx, s.cardKey(uid, card.Serial), fields)
	p.SAdd(ctx, s.unusedKey(uid, card.Serial), numbers...)
	p.SAdd(ctx, s.cardsKey(uid), card.Serial)
	if card.Print != nil {
		p.Set(ctx, s.printKey(uid, card.Serial), card.Print, 0)
	}
	if card.Sent != nil {
		p.XAdd(ctx, &redis.XAddArgs{Stream: s.eventsKey(uid), MaxLen: 200, Approx: true, Values: cardSentEvent(card.Serial, card.Sent, created)})
	}
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

// CitizenStatus returns the citizen's status as of now (for checks on the token path, one
// round trip): an active NemID past its expiry date is StatusExpired.
func (s *Store) CitizenStatus(ctx context.Context, uid string, now time.Time) (string, error) {
	v, err := s.rdb.HMGet(ctx, s.citizenKey(uid), "status", "expires_at").Result()
	if err != nil {
		return "", wrap("citizen status", err)
	}
	st, _ := v[0].(string)
	if v[0] == nil {
		return "", fmt.Errorf("store: citizen status: %w", ErrNotFound)
	}
	exp, _ := v[1].(string)
	if st == StatusActive && ExpiryOf(exp, now).Expired {
		return StatusExpired, nil
	}
	return st, nil
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

// SetPassword replaces the citizen's password hash and clears the activation-password mark.
func (s *Store) SetPassword(ctx context.Context, uid, hash string) error {
	err := s.rdb.HSet(ctx, s.citizenKey(uid), "password", hash, "must_change", "0").Err()
	return wrap("set password", err)
}

// RehashPassword replaces the citizen's password hash with newHash only while it is still
// oldHash, in one script: a password chosen since oldHash was read (another login's new
// password, an operator's temporary one) is never overwritten by a rehash of the old one. The
// activation-password mark stays as it is. It reports whether the hash was replaced; a citizen
// who no longer exists is not replaced (and not created).
func (s *Store) RehashPassword(ctx context.Context, uid, oldHash, newHash string) (bool, error) {
	n, err := rehashScript.Run(ctx, s.rdb, []string{s.citizenKey(uid)}, oldHash, newHash).Int()
	return n == 1, wrap("rehash password", err)
}

var rehashScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'password') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'password', ARGV[2])
return 1
`)

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
