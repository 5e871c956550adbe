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

//go:embed scripts/groups.lua
var groupsLua string

//go:embed scripts/trim.lua
var trimLua string

//go:embed scripts/backlog.lua
var backlogLua string

//go:embed scripts/reap.lua
var reapLua string

// Event is one Like event as the shop appended it to the stream: a shopper
// started (ActionLike) or stopped (ActionUnlike) liking a product. Shard and
// ID (the stream entry id, unique only within its shard's stream) make the
// event unique: a replay is recognised.
type Event struct {
	Shard     int       `db:"shard"`
	ID        string    `db:"stream_id"`
	ProductID string    `db:"product_id"`
	ShopperID string    `db:"shopper_id"`
	Action    Action    `db:"action"`
	At        time.Time `db:"at"`
	// ShopperLikes is how many products the shopper liked right after
	// this event: 1 after a like means the shopper started liking, 0 after
	// an unlike means they stopped.
	ShopperLikes int64 `db:"-"`
	// TraceParent is the W3C traceparent of the request that produced the
	// event, when it was traced and sampled; "" otherwise. It is not part
	// of the event's identity (a replay with or without it is the same).
	TraceParent string `db:"-"`
}

// Malformed is a stream entry that is not a valid Event. The worker parks it
// in the dead-letter stream instead of letting it block the rest.
type Malformed struct {
	ID     string
	Values map[string]any
	Err    error
}

// Batch is what one read of a shard's stream returned, split into valid
// events and malformed entries.
type Batch struct {
	Shard     int // the shard whose stream was read
	Events    []Event
	Malformed []Malformed
	// Repairs is the shard's repair count read right after the entries
	// (Likes.Repairs). When fewer of them are pending at acknowledgement
	// than were read, an unchanged count means another consumer claimed
	// and acknowledged them; a changed one, that a repair or a loss of
	// Redis data came in between.
	Repairs string
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
	// A bad traceparent costs the event its link, never the event.
	tp, _ := values["traceparent"].(string)
	if !validTraceParent(tp) {
		tp = ""
	}
	return Event{ID: id, ProductID: product, ShopperID: shopper, Action: Action(action), At: time.UnixMilli(ms).UTC(),
		ShopperLikes: n, TraceParent: tp}, nil
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

// DeadLetterKey is the stream where malformed entries of this view's shard
// are parked.
func (s *Likes) DeadLetterKey() string { return s.shardKey(s.shard, "events:dead") }

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
	return s.batchOf(ctx, msgs), nil
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
	return s.batchOf(ctx, msgs), next, nil
}

// unknownRepairs is a batch's repair count when reading it failed: no
// repair has it, so a shortfall at acknowledgement is taken for a loss.
const unknownRepairs = "unknown"

// batchOf parses the entries a consumer just took and reads the shard's
// repair count after them.
func (s *Likes) batchOf(ctx context.Context, msgs []redis.XMessage) Batch {
	b := s.parseBatch(msgs)
	if len(msgs) == 0 {
		return b
	}
	var err error
	if b.Repairs, err = s.Repairs(ctx); err != nil {
		b.Repairs = unknownRepairs
	}
	return b
}

// parseBatch parses the entries of this view's shard.
func (s *Likes) parseBatch(msgs []redis.XMessage) Batch {
	b := Batch{Shard: s.shard, Events: make([]Event, 0, len(msgs))}
	for _, m := range msgs {
		e, err := ParseEvent(m.ID, m.Values)
		if err != nil {
			b.Malformed = append(b.Malformed, Malformed{ID: m.ID, Values: m.Values, Err: err})
			continue
		}
		e.Shard = s.shard
		b.Events = append(b.Events, e)
	}
	return b
}

// Ack acknowledges entries for the group, so they are neither redelivered
// nor claimed, and may be trimmed. It returns how many were still pending:
// fewer than len(ids) means some were acknowledged already (by a consumer
// that claimed them) or the group lost them (a flush, a repair that
// recreated it); Batch.Repairs tells which.
func (s *Likes) Ack(ctx context.Context, group string, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := s.rdb.XAck(ctx, s.StreamKey(), group, ids...).Result()
	if err != nil {
		return 0, fmt.Errorf("%w: ack %d entries: %v", ErrUnavailable, len(ids), err)
	}
	return int(n), nil
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

// DeleteIdleConsumers removes the group's consumers that have nothing
// pending and have been idle for at least idle, except self: every worker
// restart adds a consumer name, and the group would otherwise keep them all.
// A consumer with pending entries is kept whatever its age, so that its
// entries stay claimable. It returns the names deleted.
func (s *Likes) DeleteIdleConsumers(ctx context.Context, group, self string, idle time.Duration) ([]string, error) {
	names, err := reapScript.Run(ctx, s.rdb, []string{s.StreamKey()}, group, idle.Milliseconds(), self).StringSlice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%w: delete idle consumers: %v", ErrUnavailable, err)
	}
	return names, nil
}

// Trimmed is what one TrimAcked did.
type Trimmed struct {
	Removed int64    // entries removed
	Others  []string // other consumer groups on the stream, not waited for
}

// TrimAcked removes the stream entries that group has acknowledged, so Redis
// memory stays bounded. It never removes an entry the group has not read or
// has pending. Other groups are not waited for (one left over after a
// rename would pin the stream forever); they are returned for the caller to
// report. Trimming is approximate (whole internal nodes), so a few
// acknowledged entries may stay until the next call.
func (s *Likes) TrimAcked(ctx context.Context, group string) (Trimmed, error) {
	v, err := s.trim.Run(ctx, s.rdb, []string{s.StreamKey()}, group).Slice()
	if err != nil || len(v) == 0 {
		return Trimmed{}, fmt.Errorf("%w: trim stream: %v", ErrUnavailable, err)
	}
	t := Trimmed{}
	t.Removed, _ = v[0].(int64)
	for _, o := range v[1:] {
		if name, ok := o.(string); ok {
			t.Others = append(t.Others, name)
		}
	}
	return t, nil
}

// Backlog is how much of the stream a group has yet to finish.
type Backlog struct {
	Undelivered int64 // entries not yet delivered to any consumer of the group
	Pending     int64 // entries delivered but not acknowledged
	// Estimated is set when the stream was too long on both sides of the
	// group's last-delivered id to count, so Undelivered is an estimate
	// (never above XLEN − backlogScanCap, an upper bound of the true figure).
	Estimated bool
}

// Total is the number of entries the group has not acknowledged.
func (b Backlog) Total() int64 { return b.Undelivered + b.Pending }

// backlogScanCap bounds the entries the backlog script reads on each side of
// the last-delivered id. The trim keeps the acknowledged head near one
// radix-tree node (100 entries) plus what is pending, so the count is exact but in bursts; each entry read costs Redis time (BenchmarkLikes_GroupBacklog), so the cap stays small.
const backlogScanCap = 500

// The scripts below never change once made, so one value serves every Likes.
var (
	backlogScript = redis.NewScript(groupsLua + "\n" + backlogLua)
	reapScript    = redis.NewScript(reapLua)
)

// groupState is what the backlog script reads, at one moment.
type groupState struct {
	found         bool // the group exists
	backlog       Backlog
	lastDelivered string
	lastGenerated string // the stream's last id; "0-0" when there is no stream
}

// GroupBacklog returns the group's backlog, counted from the entries the
// stream holds (see scripts/backlog.lua). Without the group, every entry is
// undelivered.
func (s *Likes) GroupBacklog(ctx context.Context, group string) (Backlog, error) {
	st, err := parseGroupState(backlogScript.Run(ctx, s.rdb, []string{s.StreamKey()}, group, backlogScanCap))
	if err != nil {
		return Backlog{}, err
	}
	return st.backlog, nil
}

// GroupBacklogs returns the group's backlog on each shard (index = shard),
// read in one pipeline.
func (s *Likes) GroupBacklogs(ctx context.Context, group string) ([]Backlog, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, s.Shards())
	for i := range cmds {
		cmds[i] = s.Shard(i).groupState(ctx, pipe, group)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	out := make([]Backlog, len(cmds))
	for i, c := range cmds {
		st, err := parseGroupState(c)
		if err != nil {
			return nil, fmt.Errorf("shard %d: %w", i, err)
		}
		out[i] = st.backlog
	}
	return out, nil
}

// SumBacklogs adds up the shards' backlogs.
func SumBacklogs(bs []Backlog) Backlog {
	var t Backlog
	for _, b := range bs {
		t.Undelivered += b.Undelivered
		t.Pending += b.Pending
		t.Estimated = t.Estimated || b.Estimated
	}
	return t
}

// groupState runs the backlog script in a pipeline (a MULTI of the audit);
// read it with parseGroupState after Exec.
func (s *Likes) groupState(ctx context.Context, pipe redis.Pipeliner, group string) *redis.Cmd {
	// Eval, not EvalSha: a pipeline cannot retry a NOSCRIPT.
	return backlogScript.Eval(ctx, pipe, []string{s.StreamKey()}, group, backlogScanCap)
}

func parseGroupState(cmd *redis.Cmd) (groupState, error) {
	v, err := cmd.Slice()
	if err != nil {
		return groupState{}, fmt.Errorf("%w: read backlog: %v", ErrUnavailable, err)
	}
	if len(v) != 6 {
		return groupState{}, fmt.Errorf("read backlog: %d values, want 6", len(v))
	}
	n := func(i int) int64 { x, _ := v[i].(int64); return x }
	str := func(i int) string { x, _ := v[i].(string); return x }
	return groupState{
		found:         n(0) == 1,
		backlog:       Backlog{Undelivered: n(1), Pending: n(2), Estimated: n(3) == 0},
		lastDelivered: str(4),
		lastGenerated: str(5),
	}, nil
}
