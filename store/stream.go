package store

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

//go:embed scripts/trim.lua
var trimLua string

// Event is one Like event as the shop appended it to the stream: a shopper
// started (ActionLike) or stopped (ActionUnlike) liking a product. ID is the
// stream entry id, which makes the event unique: a replay is recognised.
type Event struct {
	ID        string    `db:"stream_id"`
	ProductID string    `db:"product_id"`
	ShopperID string    `db:"shopper_id"`
	Action    Action    `db:"action"`
	At        time.Time `db:"at"`
	// ShopperLikes is how many products the shopper liked right after
	// this event: 1 after a like means the shopper started liking, 0 after
	// an unlike means they stopped.
	ShopperLikes int64 `db:"-"`
}

// Malformed is a stream entry that is not a valid Event. The worker parks it
// in the dead-letter stream instead of letting it block the rest.
type Malformed struct {
	ID     string
	Values map[string]any
	Err    error
}

// Batch is what one read of the stream returned, split into valid events
// and malformed entries.
type Batch struct {
	Events    []Event
	Malformed []Malformed
}

// Len is the number of entries in the batch.
func (b Batch) Len() int { return len(b.Events) + len(b.Malformed) }

// Limits on event fields. The shop writes 32-character hex shopper ids; the
// limit leaves room for other producers while keeping junk out.
const (
	maxShopperLen = 128
	// maxEventMillis is the last millisecond of the year 9999, within
	// PostgreSQL's timestamptz range; a larger value would fail the whole
	// batch's transaction instead of one entry.
	maxEventMillis = 253402300799999
	// deadLetterMaxLen bounds the dead-letter stream (approximately).
	deadLetterMaxLen = 10000
)

// ParseEvent turns a stream entry into an Event, refusing anything the shop
// would not have written.
func ParseEvent(id string, values map[string]any) (Event, error) {
	if values == nil {
		// XREADGROUP and XAUTOCLAIM report an entry deleted from the stream
		// while pending with no fields.
		return Event{}, errors.New("entry has no fields (deleted)")
	}
	field := func(name string) (string, error) {
		v, ok := values[name]
		if !ok {
			return "", fmt.Errorf("missing field %s", name)
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("field %s is not a string", name)
		}
		return s, nil
	}
	product, err := field("product")
	if err != nil {
		return Event{}, err
	}
	if !ValidID(product) {
		return Event{}, fmt.Errorf("bad product id %q", clip(product))
	}
	shopper, err := field("shopper")
	if err != nil {
		return Event{}, err
	}
	if !validShopper(shopper) {
		return Event{}, fmt.Errorf("bad shopper id %q", clip(shopper))
	}
	action, err := field("action")
	if err != nil {
		return Event{}, err
	}
	if !Action(action).Valid() {
		return Event{}, fmt.Errorf("bad action %q", clip(action))
	}
	at, err := field("at")
	if err != nil {
		return Event{}, err
	}
	ms, err := strconv.ParseInt(at, 10, 64)
	if err != nil || ms < 0 || ms > maxEventMillis {
		return Event{}, fmt.Errorf("bad time %q: want unix milliseconds", clip(at))
	}
	likes, err := field("likes")
	if err != nil {
		return Event{}, err
	}
	n, err := strconv.ParseInt(likes, 10, 64)
	if err != nil || n < 0 || (Action(action) == ActionLike && n == 0) {
		return Event{}, fmt.Errorf("bad likes %q: want the shopper's like count after the event", clip(likes))
	}
	return Event{ID: id, ProductID: product, ShopperID: shopper, Action: Action(action), At: time.UnixMilli(ms).UTC(), ShopperLikes: n}, nil
}

// validShopper accepts printable, valid UTF-8 ids of sensible length;
// PostgreSQL text refuses NUL bytes and would fail the whole batch.
func validShopper(s string) bool {
	if s == "" || len(s) > maxShopperLen || !utf8.ValidString(s) {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}

// clip shortens a value quoted in an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// DeadLetterKey is the stream where malformed entries are parked.
func (s *Likes) DeadLetterKey() string { return s.prefix + "events:dead" }

// EnsureGroup creates the consumer group on the event stream unless it
// exists. A new group starts at the beginning of the stream, so the events
// written before any worker ran are not skipped.
func (s *Likes) EnsureGroup(ctx context.Context, group string) error {
	err := s.rdb.XGroupCreateMkStream(ctx, s.StreamKey(), group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("%w: create group %s: %v", ErrUnavailable, group, err)
	}
	return nil
}

// ReadNew reads up to count entries never delivered to the group, waiting
// up to block for the first one. The entries stay pending for consumer
// until acknowledged.
func (s *Likes) ReadNew(ctx context.Context, group, consumer string, count int, block time.Duration) (Batch, error) {
	return s.readGroup(ctx, group, consumer, ">", count, block)
}

// ReadPending reads up to count entries already delivered to consumer and
// not acknowledged, with ids after after ("0" for all): what a restarted
// worker with the same name left behind.
func (s *Likes) ReadPending(ctx context.Context, group, consumer, after string, count int) (Batch, error) {
	return s.readGroup(ctx, group, consumer, after, count, -1)
}

func (s *Likes) readGroup(ctx context.Context, group, consumer, id string, count int, block time.Duration) (Batch, error) {
	streams, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: group, Consumer: consumer, Streams: []string{s.StreamKey(), id},
		Count: int64(count), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return Batch{}, nil // block timed out
	}
	if err != nil {
		return Batch{}, fmt.Errorf("%w: read stream: %v", ErrUnavailable, err)
	}
	var msgs []redis.XMessage
	for _, st := range streams {
		msgs = append(msgs, st.Messages...)
	}
	return parseBatch(msgs), nil
}

// Claim takes over up to count entries that have been pending in the group
// for at least minIdle (their consumer is presumably dead), scanning from
// start ("0-0" first). It returns the claimed entries and where the next
// scan continues; "0-0" means the scan is complete.
func (s *Likes) Claim(ctx context.Context, group, consumer string, minIdle time.Duration, start string, count int) (Batch, string, error) {
	msgs, next, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
		Stream: s.StreamKey(), Group: group, Consumer: consumer,
		MinIdle: minIdle, Start: start, Count: int64(count),
	}).Result()
	if err != nil {
		return Batch{}, "", fmt.Errorf("%w: claim pending: %v", ErrUnavailable, err)
	}
	return parseBatch(msgs), next, nil
}

func parseBatch(msgs []redis.XMessage) Batch {
	b := Batch{Events: make([]Event, 0, len(msgs))}
	for _, m := range msgs {
		e, err := ParseEvent(m.ID, m.Values)
		if err != nil {
			b.Malformed = append(b.Malformed, Malformed{ID: m.ID, Values: m.Values, Err: err})
			continue
		}
		b.Events = append(b.Events, e)
	}
	return b
}

// Ack acknowledges entries for the group, so they are neither redelivered
// nor claimed, and may be trimmed.
func (s *Likes) Ack(ctx context.Context, group string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.rdb.XAck(ctx, s.StreamKey(), group, ids...).Err(); err != nil {
		return fmt.Errorf("%w: ack %d entries: %v", ErrUnavailable, len(ids), err)
	}
	return nil
}

// DeadLetter copies malformed entries to the dead-letter stream (original
// id, reason and fields as JSON) and acknowledges them, in one MULTI, so an
// entry is parked exactly when it leaves the group's pending list.
func (s *Likes) DeadLetter(ctx context.Context, group string, bad []Malformed) error {
	if len(bad) == 0 {
		return nil
	}
	ids := make([]string, len(bad))
	pipe := s.rdb.TxPipeline()
	for i, m := range bad {
		ids[i] = m.ID
		fields, err := json.Marshal(m.Values)
		if err != nil {
			fields = []byte(strconv.Quote(fmt.Sprint(m.Values)))
		}
		pipe.XAdd(ctx, &redis.XAddArgs{
			Stream: s.DeadLetterKey(), MaxLen: deadLetterMaxLen, Approx: true,
			Values: []any{"id", m.ID, "error", m.Err.Error(), "fields", string(fields)},
		})
	}
	pipe.XAck(ctx, s.StreamKey(), group, ids...)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("%w: dead-letter %d entries: %v", ErrUnavailable, len(bad), err)
	}
	return nil
}

// TrimAcked removes the stream entries that every consumer group has
// acknowledged, so Redis memory stays bounded. It never removes an entry
// some group has not read or has pending. It returns how many entries went.
// Trimming is approximate (whole internal nodes), so a few acknowledged
// entries may stay until the next call.
func (s *Likes) TrimAcked(ctx context.Context) (int64, error) {
	n, err := s.trim.Run(ctx, s.rdb, []string{s.StreamKey()}).Int64()
	if err != nil {
		return 0, fmt.Errorf("%w: trim stream: %v", ErrUnavailable, err)
	}
	return n, nil
}

// Backlog is how much of the stream a group has yet to finish.
type Backlog struct {
	Undelivered int64 // entries not yet delivered to any consumer of the group
	Pending     int64 // entries delivered but not acknowledged
}

// Total is the number of entries the group has not acknowledged.
func (b Backlog) Total() int64 { return b.Undelivered + b.Pending }

// GroupBacklog returns the group's backlog. When Redis cannot tell the
// group's lag exactly (after entries were deleted out of order), the stream
// length stands in as an upper bound.
func (s *Likes) GroupBacklog(ctx context.Context, group string) (Backlog, error) {
	pipe := s.rdb.Pipeline()
	groups := pipe.XInfoGroups(ctx, s.StreamKey())
	length := pipe.XLen(ctx, s.StreamKey())
	if _, err := pipe.Exec(ctx); err != nil {
		return Backlog{}, fmt.Errorf("%w: read backlog: %v", ErrUnavailable, err)
	}
	for _, g := range groups.Val() {
		if g.Name != group {
			continue
		}
		b := Backlog{Undelivered: g.Lag, Pending: g.Pending}
		if g.Lag < 0 {
			b.Undelivered = max(length.Val()-g.Pending, 0)
		}
		return b, nil
	}
	return Backlog{Undelivered: length.Val()}, nil
}
