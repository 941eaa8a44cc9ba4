package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cards beyond the first (issue 15 point 2). A citizen may hold several usable cards (status
// active or sent); Citizen.ActiveCard is the one a login asks by default. A card carries its
// origin (why it exists), the serial it replaces, who ordered it and, while an automatic
// order for its successor is under way or done, "successor" (see useKeyScript). A card sent by
// post keeps its printed form, sealed, at {c:<uid>}:card:<serial>:print until the print
// service takes it (TakeCardPrint), once.

// Card origins.
const (
	OriginFirst = "first" // issued with the NemID
	OriginAuto  = "auto"  // ordered by the system at the threshold of keys left
	OriginExtra = "extra" // an extra card beside the others
	OriginLost  = "lost"  // replaces a card reported lost
)

// DefaultCardThreshold is the keys left on the active card at which a new card is ordered,
// unless the citizen has a threshold of their own (DESIGN.md §3).
const DefaultCardThreshold = 20

// Extra-card limits: usable (active or sent) extra cards a citizen may hold when the order is
// their own, and when an operator orders.
const (
	SelfExtraCards     = 3
	OperatorExtraCards = 10
)

// ErrCardLimit refuses an extra card past the limit of usable extra cards.
var ErrCardLimit = errors.New("extra card limit reached")

// ErrPrintTaken means a card's printed form was taken already (or the card never had one: it
// was handed over).
var ErrPrintTaken = errors.New("card print already taken")

// ErrCardNotUsable means a card exists but is retired or blocked.
var ErrCardNotUsable = errors.New("card not usable")

// orderClaimStale is how old an automatic order's claim must be before another key use may
// take it over: far longer than drawing and writing a card takes, so only a crash leaves one.
const orderClaimStale = time.Minute

func (s *Store) printKey(uid, serial string) string {
	return s.key("{c:"+uid+"}", "card", serial, "print")
}

func atoiOr(v string, def int) int {
	n, err := strconv.Atoi(v)
	if err != nil {
		return def
	}
	return n
}

func cardSentEvent(serial string, sent *CardPost, at time.Time) []any {
	v := []any{"type", "card_sent", "serial", serial, "at", at.UTC().Format(time.RFC3339), "by", sent.By}
	if sent.Address != "" {
		v = append(v, "address", sent.Address)
	}
	return v
}

// writeCardLua defines write_card(prefix, serial, status, origin, replaces, by, created,
// first): it writes a card as queueCard does, its keys the (number, hash) pairs of ARGV from
// index first on. prefix is the citizen's key ({c:<uid>} with the store prefix).
const writeCardLua = keyNumberLua + `
local function write_card(prefix, serial, status, origin, replaces, by, created, first)
  local ck = prefix .. ':card:' .. serial
  local f = {'status', status, 'created_at', created}
  if origin ~= '' then table.insert(f, 'origin') table.insert(f, origin) end
  if replaces ~= '' then table.insert(f, 'replaces') table.insert(f, replaces) end
  if by ~= '' then table.insert(f, 'ordered_by') table.insert(f, by) end
  local nums = {}
  for i = first, #ARGV - 1, 2 do
    table.insert(f, 'k:' .. ARGV[i])
    table.insert(f, ARGV[i + 1])
    table.insert(nums, unused_member(ARGV[i]))
  end
  redis.call('HSET', ck, unpack(f))
  redis.call('SADD', ck .. ':unused', unpack(nums))
  redis.call('SADD', prefix .. ':cards', serial)
end
local function usable(st) return st == 'active' or st == 'sent' end
`

// orderCardScript writes one ordered card with what the order does to the citizen's other
// cards, in one step. KEYS: 1 citizen, 2 events. ARGV: 1 mode (auto, extra, lost), 2 serial,
// 3 status, 4 by, 5 now (RFC 3339), 6 limit (extra), 7 the auto order's claim, 8 sealed print
// (” none), 9 post ('1': a card_sent event), 10 address of the event (” none), then the
// card's (number, hash) pairs from 11 on. Returns {'ok', blocked serials…}, or {'missing'},
// {'limit', n}, {'unclaimed'}.
var orderCardScript = redis.NewScript(writeCardLua + `
if redis.call('HGET', KEYS[1], 'user_id') == false then return {'missing'} end
local mode, serial, now = ARGV[1], ARGV[2], ARGV[5]
local prefix = KEYS[1]
local active = redis.call('HGET', KEYS[1], 'active_card') or ''
local replaces = ''
local blocked = {}
local serials = redis.call('SMEMBERS', prefix .. ':cards')
if mode == 'extra' then
  local n = 0
  for _, s in ipairs(serials) do
    -- A used-up extra card holds no place: it could never be replaced otherwise.
    local v = redis.call('HMGET', prefix .. ':card:' .. s, 'status', 'origin')
    if usable(v[1]) and v[2] == 'extra' and redis.call('SCARD', prefix .. ':card:' .. s .. ':unused') > 0 then n = n + 1 end
  end
  if n >= tonumber(ARGV[6]) then return {'limit', tostring(n)} end
elseif mode == 'auto' then
  replaces = active
  local ck = prefix .. ':card:' .. replaces
  if replaces == '' or redis.call('HGET', ck, 'successor') ~= ARGV[7] then return {'unclaimed'} end
  redis.call('HSET', ck, 'successor', serial)
elseif mode == 'lost' then
  replaces = active
  for _, s in ipairs(serials) do
    local ck = prefix .. ':card:' .. s
    if usable(redis.call('HGET', ck, 'status')) then
      redis.call('HSET', ck, 'status', 'blocked', 'blocked_at', now)
      redis.call('DEL', ck .. ':print')
      table.insert(blocked, s)
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', '200', '*', 'type', 'card_blocked', 'serial', s, 'reason', 'lost', 'at', now, 'by', ARGV[4])
    end
  end
end
write_card(prefix, serial, ARGV[3], mode, replaces, ARGV[4], now, 11)
if ARGV[8] ~= '' then redis.call('SET', prefix .. ':card:' .. serial .. ':print', ARGV[8]) end
if ARGV[9] == '1' then
  -- Posted to the address given, else (no address field) to where the outbox sends all the
  -- citizen's letters: the alternative address, the postal one, the register address.
  local addr = ARGV[10]
  if addr ~= '' then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', '200', '*', 'type', 'card_sent', 'serial', serial, 'at', now, 'by', ARGV[4], 'address', addr)
  else
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', '200', '*', 'type', 'card_sent', 'serial', serial, 'at', now, 'by', ARGV[4])
  end
end
-- A lost card's successor is the one logins ask at once (the others are blocked), and so is
-- any new card when the default one is not usable; an automatic successor becomes the
-- default at its first key (useKeyScript), an extra card stays beside it.
if mode == 'lost' or not usable(redis.call('HGET', prefix .. ':card:' .. active, 'status')) then
  redis.call('HSET', KEYS[1], 'active_card', serial)
end
local out = {'ok'}
for _, s in ipairs(blocked) do table.insert(out, s) end
return out
`)

// CardOrder is one card to write for an order (WriteCardOrder).
type CardOrder struct {
	// Mode is OriginAuto (the successor a key use claimed: Claim), OriginExtra (refused with
	// ErrCardLimit when the citizen holds Limit usable extra cards) or OriginLost (every usable
	// card is blocked at once, with a card_blocked event each).
	Mode  string
	Card  CardRecord // Serial, Status (active or sent), Hashes, Print
	By    string     // "self", "system" or the operator's label
	Limit int
	Claim string
	// Post: the card goes by post, with a card_sent event (to Address when not "").
	Post    bool
	Address string
}

// WriteCardOrder writes an ordered card (see CardOrder) in one script, with its events; the
// serial is claimed first (ErrSerialTaken: draw another card). It returns the serials it
// blocked. ErrNotFound: no such citizen; ErrCardLimit: the extra-card limit; ErrConflict: the
// automatic order's claim is gone (another key use's order, or released).
func (s *Store) WriteCardOrder(ctx context.Context, uid string, o CardOrder, now time.Time) ([]string, error) {
	if err := o.Card.check(); err != nil {
		return nil, err
	}
	switch o.Mode {
	case OriginAuto, OriginExtra, OriginLost:
	default:
		return nil, fmt.Errorf("store: card order: mode %q", o.Mode)
	}
	if o.Card.Status != CardActive && o.Card.Status != CardSent {
		return nil, fmt.Errorf("store: card order: status %q", o.Card.Status)
	}
	args := []any{o.Mode, o.Card.Serial, o.Card.Status, o.By, now.UTC().Format(time.RFC3339), o.Limit, o.Claim,
		string(o.Card.Print), boolStr(o.Post), o.Address}
	numbers := make([]string, 0, len(o.Card.Hashes))
	for n := range o.Card.Hashes {
		numbers = append(numbers, n)
	}
	slices.Sort(numbers)
	for _, n := range numbers {
		args = append(args, n, o.Card.Hashes[n])
	}
	var blocked []string
	err := s.withSerial(ctx, o.Card.Serial, uid, func() error {
		return s.withOutbox(ctx, uid, func() error {
			res, err := orderCardScript.Run(ctx, s.rdb, []string{s.citizenKey(uid), s.eventsKey(uid)}, args...).StringSlice()
			if err != nil {
				return wrap("card order", err)
			}
			switch res[0] {
			case "missing":
				return fmt.Errorf("store: card order: citizen %s: %w", uid, ErrNotFound)
			case "limit":
				return fmt.Errorf("store: card order: %s usable extra cards: %w", res[1], ErrCardLimit)
			case "unclaimed":
				return fmt.Errorf("store: card order: the automatic order was not claimed: %w", ErrConflict)
			}
			blocked = res[1:]
			return nil
		})
	})
	return blocked, err
}

// newOrderClaim is the value of a card's "successor" field while its automatic order is
// under way: when it was claimed (for a takeover after a crash) and a random token.
func newOrderClaim(now time.Time) string {
	return "pending:" + strconv.FormatInt(now.UnixMilli(), 10) + ":" + rand.Text()[:12]
}

var releaseOrderScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'successor') == ARGV[1] then return redis.call('HDEL', KEYS[1], 'successor') end
return 0
`)

// ReleaseCardOrder gives up an automatic order a key use claimed (KeyResult.OrderClaim) and
// that was not written, so a later key use orders again.
func (s *Store) ReleaseCardOrder(ctx context.Context, uid, serial, claim string) error {
	err := releaseOrderScript.Run(ctx, s.rdb, []string{s.cardKey(uid, serial)}, claim).Err()
	return wrap("release card order", err)
}

// KEYS: 1 print, 2 card. ARGV: 1 now.
var takePrintScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'printed_at', ARGV[1])
  return {'ok', v}
end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'missing', ''} end
return {'taken', ''}
`)

// TakeCardPrint takes a card's sealed printed form, once (read and deleted in one step).
// ErrNotFound: no such card; ErrPrintTaken: taken before, or the card never had one.
func (s *Store) TakeCardPrint(ctx context.Context, uid, serial string) ([]byte, error) {
	res, err := takePrintScript.Run(ctx, s.rdb, []string{s.printKey(uid, serial), s.cardKey(uid, serial)},
		time.Now().UTC().Format(time.RFC3339)).StringSlice()
	if err != nil {
		return nil, wrap("take card print", err)
	}
	switch res[0] {
	case "missing":
		return nil, fmt.Errorf("store: take card print: card %s: %w", serial, ErrNotFound)
	case "taken":
		return nil, fmt.Errorf("store: take card print: card %s: %w", serial, ErrPrintTaken)
	}
	return []byte(res[1]), nil
}

// CardInfo is one card as the operator and the citizen see it: never a key.
type CardInfo struct {
	Serial    string
	Status    string
	Origin    string
	Replaces  string
	OrderedBy string
	CreatedAt string // RFC 3339
	KeysLeft  int
	// Printable: its printed form waits for the print service.
	Printable bool
}

var cardsScript = redis.NewScript(`
local out = {}
for _, s in ipairs(redis.call('SMEMBERS', KEYS[1] .. ':cards')) do
  local ck = KEYS[1] .. ':card:' .. s
  local v = redis.call('HMGET', ck, 'status', 'origin', 'replaces', 'ordered_by', 'created_at')
  table.insert(out, {s, v[1] or '', v[2] or '', v[3] or '', v[4] or '', v[5] or '',
    tostring(redis.call('SCARD', ck .. ':unused')), tostring(redis.call('EXISTS', ck .. ':print'))})
end
return out
`)

// Cards lists every card of the citizen, oldest first, in one round trip.
func (s *Store) Cards(ctx context.Context, uid string) ([]CardInfo, error) {
	res, err := cardsScript.Run(ctx, s.rdb, []string{s.citizenKey(uid)}).Slice()
	if err != nil {
		return nil, wrap("cards", err)
	}
	out := make([]CardInfo, 0, len(res))
	for _, r := range res {
		row, _ := r.([]any)
		if len(row) != 8 {
			continue
		}
		str := func(i int) string { v, _ := row[i].(string); return v }
		out = append(out, CardInfo{Serial: str(0), Status: str(1), Origin: str(2), Replaces: str(3), OrderedBy: str(4),
			CreatedAt: str(5), KeysLeft: atoiOr(str(6), 0), Printable: str(7) == "1"})
	}
	slices.SortFunc(out, func(a, b CardInfo) int {
		if c := strings.Compare(a.CreatedAt, b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Serial, b.Serial)
	})
	return out, nil
}

// KEYS: 1 citizen. ARGV: 1 serial.
var usableCardScript = redis.NewScript(pendingKeyLua + `
if redis.call('SISMEMBER', KEYS[1] .. ':cards', ARGV[1]) == 0 then return {'missing', ''} end
local ck = KEYS[1] .. ':card:' .. ARGV[1]
local st = redis.call('HGET', ck, 'status') or ''
if st ~= 'active' and st ~= 'sent' then return {st, ''} end
return {st, pending_key(ck, ck .. ':unused')}
`)

// UsableCardKey is the pending key number of one of the citizen's usable cards (active or
// sent), for a login switching to it. ErrNotFound: the citizen has no such card (a card of
// another citizen is never found here); ErrCardNotUsable: it is retired or blocked (the
// status is returned); a usable card with no unused keys gives its status and "".
func (s *Store) UsableCardKey(ctx context.Context, uid, serial string) (status, number string, err error) {
	res, err := usableCardScript.Run(ctx, s.rdb, []string{s.citizenKey(uid)}, serial).StringSlice()
	if err != nil {
		return "", "", wrap("usable card", err)
	}
	switch res[0] {
	case "missing":
		return "", "", fmt.Errorf("store: usable card %s: %w", serial, ErrNotFound)
	case CardActive, CardSent:
		return res[0], res[1], nil
	}
	return res[0], "", fmt.Errorf("store: usable card %s is %s: %w", serial, res[0], ErrCardNotUsable)
}
