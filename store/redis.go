package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed scripts/like.lua
var likeLua string

//go:embed scripts/admit.lua
var admitLua string

// Action is what a shopper did to a product.
type Action string

// The two actions a Like event can carry.
const (
	ActionLike   Action = "like"
	ActionUnlike Action = "unlike"
)

// Valid reports whether a is one of the known actions.
func (a Action) Valid() bool { return a == ActionLike || a == ActionUnlike }

// LikeResult is the state of one shopper's Like after a Like or Unlike.
type LikeResult struct {
	Liked   bool  // whether the shopper now likes the product
	Count   int64 // the product's live like count
	Changed bool  // whether this call changed anything (and so appended an event)
}

// Likes is the shop's store in Redis: which shopper likes what, the live
// count per product and the stream of Like events that the worker drains.
// All keys share one prefix, so several deployments (or tests) can share a
// server.
//
// The Like's keys are spread over Shards shards (see shards.go): a shopper's
// set, their rate limits, and their shard's live counts and event stream
// share one hash tag, so the Like stays one atomic script on Redis Cluster.
// With one shard the keys carry no tag (the single-Redis layout); on Redis
// Cluster put one in the prefix ("{phoenix}:") then.
//
// The stream methods (StreamKey, ReadNew, Ack, TrimAcked, ...) act on one
// shard's stream: shard 0's on the Likes OpenLikes returns, shard i's on
// Shard(i).
type Likes struct {
	rdb    redis.UniversalClient
	prefix string
	opt    LikesOptions
	tags   []string // hash tag of each shard's keys, "{...}:"; "" for one shard
	shard  int      // the shard the stream methods act on
	like   *redis.Script
	admit  *redis.Script
	trim   *redis.Script
	dials  *atomic.Int64 // connections the client dialed (see Dials)
}

// LikesOptions are the key layout (Shards), the shop's limits on Likes,
// checked inside the Like's own script (see Set), and its durability. The
// zero value is one shard and limits nothing, as the tools need.
type LikesOptions struct {
	// Shards is how many shards the Like's keys are spread over
	// (PHOENIX_REDIS_SHARDS); 0 or 1 is the single-Redis layout.
	Shards int
	// PerShopper and PerIP limit Likes and Unlikes per shopper and per
	// client address. The per-address limit is counted per shard: an
	// address whose shoppers fall on k shards gets up to k times PerIP.
	PerShopper, PerIP Rate
	NewShoppersPerIP  Rate // new shopper ids per client address (see Admit)
	// MaxBacklog is how many events a shard's stream may hold before a
	// Like on that shard is refused with ErrBusy; 0 is no bound. The bound
	// is per shard: the whole backlog may reach Shards × MaxBacklog.
	MaxBacklog int64
	// Durability is what a Like waits for before it answers (see
	// Durability); "" is DurabilityNone.
	Durability Durability
	// WaitTimeout bounds the wait for a replica under DurabilityReplica
	// (DefaultWaitTimeout when zero).
	WaitTimeout time.Duration
}

// Durability is what a Like or Unlike waits for before it answers saved.
type Durability string

const (
	// DurabilityNone answers once the primary ran the script: a primary
	// lost before its replica copied the write loses the Like.
	DurabilityNone Durability = "none"
	// DurabilityReplica answers only after WAIT confirms that at least one
	// replica holds the write, and ErrUnconfirmed past WaitTimeout.
	DurabilityReplica Durability = "replica"
)

// DefaultWaitTimeout is how long a Like waits for a replica by default.
const DefaultWaitTimeout = 500 * time.Millisecond

// OpenLikes connects to Redis at url (see OpenRedis for the forms) and
// checks that it answers. opts, when given, sets the layout and the limits;
// a layout the server cannot hold is refused (see CheckLayout). A Likes is
// returned with ErrUnavailable when Redis does not answer yet.
func OpenLikes(ctx context.Context, url, prefix string, opts ...LikesOptions) (*Likes, error) {
	var o LikesOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	rdb, err := OpenRedis(url, o.readTimeout())
	if err != nil {
		return nil, err
	}
	if err := CheckLayout(rdb, prefix, o.Shards); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	s := NewLikes(rdb, prefix, o)
	if err := s.Ping(ctx); err != nil {
		// Redis may come up later; the shop degrades until it does.
		return s, err
	}
	return s, nil
}

// check refuses options that cannot work.
func (o LikesOptions) check() error {
	if o.Shards < 0 || o.Shards > MaxShards {
		return fmt.Errorf("shards %d: want 1 to %d", o.Shards, MaxShards)
	}
	switch o.Durability {
	case "", DurabilityNone, DurabilityReplica:
	default:
		return fmt.Errorf("durability %q: want none or replica", o.Durability)
	}
	if o.WaitTimeout < 0 {
		return fmt.Errorf("wait timeout %s: want > 0", o.WaitTimeout)
	}
	return nil
}

// readTimeout is the client's read timeout: fail fast, but past the wait
// for a replica.
func (o LikesOptions) readTimeout() time.Duration {
	if o.Durability == DurabilityReplica {
		return time.Second + o.waitTimeout()
	}
	return time.Second
}

func (o LikesOptions) waitTimeout() time.Duration {
	if o.WaitTimeout > 0 {
		return o.WaitTimeout
	}
	return DefaultWaitTimeout
}

// NewLikes wraps an existing client (a *redis.Client, *redis.ClusterClient
// or failover client). opts, when given, sets the layout and the limits;
// OpenLikes also checks them.
func NewLikes(rdb redis.UniversalClient, prefix string, opts ...LikesOptions) *Likes {
	s := &Likes{
		rdb: rdb, prefix: prefix,
		like:  redis.NewScript(rateLimitLua + "\n" + likeLua),
		admit: redis.NewScript(rateLimitLua + "\n" + admitLua),
		trim:  redis.NewScript(groupsLua + "\n" + trimLua),
	}
	if len(opts) > 0 {
		s.opt = opts[0]
	}
	s.opt.Shards = max(s.opt.Shards, 1)
	s.tags = shardTags(s.opt.Shards)
	s.dials = new(atomic.Int64)
	if rdb != nil { // nil: a layout only (tests of key names)
		rdb.AddHook(dialCounter{s.dials})
	}
	return s
}

// Dials returns how many connections the client has dialed so far. A new
// one follows a restart or a failover of Redis, which may have lost writes,
// even when no command failed: go-redis retries a command on a fresh
// connection by itself.
func (s *Likes) Dials() int64 { return s.dials.Load() }

// dialCounter counts the connections a client dials.
type dialCounter struct{ n *atomic.Int64 }

func (d dialCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err == nil {
			d.n.Add(1)
		}
		return conn, err
	}
}

func (dialCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (dialCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// Client returns the underlying Redis client (for tools and tests).
func (s *Likes) Client() redis.UniversalClient { return s.rdb }

// Close closes the connection pool.
func (s *Likes) Close() error { return s.rdb.Close() }

// Ping checks that Redis answers.
func (s *Likes) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: ping redis: %v", ErrUnavailable, err)
	}
	return nil
}

// Key returns the full Redis key for the given name, under the prefix
// (unsharded: one key for the whole deployment).
func (s *Likes) Key(name string) string { return s.prefix + name }

// shardKey returns the key of name on shard i.
func (s *Likes) shardKey(i int, name string) string { return s.prefix + s.tags[i] + name }

// ShopperKey is shopper's set of liked product ids, on their shard.
func (s *Likes) ShopperKey(shopper string) string {
	return s.shardKey(s.ShardOf(shopper), "shopper:"+shopper+":likes")
}

func (s *Likes) shopperKey(shopper string) string { return s.ShopperKey(shopper) }

// rateKey is the key of one rate limit: what is limited (like, new shopper)
// by whom (shopper, ip) and whose, on shard i.
func (s *Likes) rateKey(i int, what, by, who string) string {
	return s.shardKey(i, "rate:"+what+":"+by+":"+who)
}

// CountsKey is the hash of live counts (product id -> likes) of this view's
// shard; the live count of a product is the sum over the shards.
func (s *Likes) CountsKey() string { return s.shardKey(s.shard, "counts") }

// StreamKey is the stream of Like events of this view's shard.
func (s *Likes) StreamKey() string { return s.shardKey(s.shard, "events") }

// Like records that shopper likes product, without limits (tests, tools).
// Liking twice changes nothing.
func (s *Likes) Like(ctx context.Context, shopper, product string) (LikeResult, error) {
	return s.set(ctx, LikeInput{Shopper: shopper, Product: product, Action: ActionLike}, LikesOptions{})
}

// Unlike withdraws shopper's Like of product, without limits (tests,
// tools). Unliking twice changes nothing.
func (s *Likes) Unlike(ctx context.Context, shopper, product string) (LikeResult, error) {
	return s.set(ctx, LikeInput{Shopper: shopper, Product: product, Action: ActionUnlike}, LikesOptions{})
}

// LikeInput is one shopper's Like or Unlike as the shop received it.
type LikeInput struct {
	Shopper  string // the shopper's (verified) id
	ClientIP string // the client's address; "" skips the per-address limit
	Product  string // a product id of the catalog
	Action   Action
}

// Set is the shop's protected Like: in one atomic script it refuses the
// Like with ErrBusy when the stream is over MaxBacklog, charges the
// per-shopper and per-address limits (over one: a *LimitedError), then
// likes or unlikes. A refusal changes nothing.
func (s *Likes) Set(ctx context.Context, in LikeInput) (LikeResult, error) {
	return s.set(ctx, in, s.opt)
}

func (s *Likes) set(ctx context.Context, in LikeInput, opt LikesOptions) (LikeResult, error) {
	perIP := opt.PerIP
	if in.ClientIP == "" {
		perIP = Rate{}
	}
	sh := s.ShardOf(in.Shopper)
	keys := []string{s.shopperKey(in.Shopper), s.shardKey(sh, "counts"), s.shardKey(sh, "events"),
		s.rateKey(sh, "like", "shopper", in.Shopper), s.rateKey(sh, "like", "ip", in.ClientIP),
		s.repairFlagKey(sh)}
	args := []any{in.Product, in.Shopper, string(in.Action), opt.MaxBacklog,
		opt.PerShopper.micros(), opt.PerShopper.Burst, perIP.micros(), perIP.Burst, traceParent(ctx)}
	var res []int64
	var err error
	if s.opt.Durability == DurabilityReplica {
		res, err = s.runDurable(ctx, keys, args)
	} else {
		res, err = s.like.Run(ctx, s.rdb, keys, args...).Int64Slice()
	}
	if errors.Is(err, ErrUnconfirmed) {
		return LikeResult{}, fmt.Errorf("%s %s: %w", in.Action, in.Product, err)
	}
	if err != nil {
		return LikeResult{}, fmt.Errorf("%w: %s %s: %v", ErrUnavailable, in.Action, in.Product, err)
	}
	if len(res) != 2 {
		return LikeResult{}, fmt.Errorf("%s %s: unexpected script result %v", in.Action, in.Product, res)
	}
	switch res[0] {
	case -1:
		return LikeResult{}, &LimitedError{RetryAfter: time.Duration(res[1]) * time.Microsecond}
	case -2:
		return LikeResult{}, fmt.Errorf("%w: %d events waiting (bound %d)", ErrBusy, res[1], opt.MaxBacklog)
	case -3:
		return LikeResult{}, fmt.Errorf("%w: shard being repaired from postgres", ErrBusy)
	}
	return LikeResult{Liked: in.Action == ActionLike, Count: res[1], Changed: res[0] == 1}, nil
}

// Admit charges one new shopper id to the client address ip, so that one
// address cannot mint shoppers without end (every replica shares the
// limit). Over NewShoppersPerIP it returns a *LimitedError.
func (s *Likes) Admit(ctx context.Context, ip string) error {
	r := s.opt.NewShoppersPerIP
	if !r.Enabled() {
		return nil
	}
	// One key, unsharded: the limit is the address's over every shard.
	res, err := s.admit.Run(ctx, s.rdb, []string{s.Key("rate:shopper:ip:" + ip)}, r.micros(), r.Burst).Int64Slice()
	if err != nil {
		return fmt.Errorf("%w: admit shopper: %v", ErrUnavailable, err)
	}
	if len(res) != 2 {
		return fmt.Errorf("admit shopper: unexpected script result %v", res)
	}
	if res[0] != 1 {
		return &LimitedError{RetryAfter: time.Duration(res[1]) * time.Microsecond}
	}
	return nil
}

// Known reports whether Redis holds likes of shopper (an id from before
// shopper ids were signed, kept so that its likes are not lost).
func (s *Likes) Known(ctx context.Context, shopper string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.shopperKey(shopper)).Result()
	if err != nil {
		return false, fmt.Errorf("%w: read shopper: %v", ErrUnavailable, err)
	}
	return n == 1, nil
}

// View returns, in one round trip, the live counts of the given products and
// which of them shopper likes (shopper may be empty); with no ids, every
// product shopper likes. Both cost the ids, not the catalog or the
// shopper's whole set.
func (s *Likes) View(ctx context.Context, shopper string, ids []string) (map[string]int64, map[string]bool, error) {
	counts, liked, _, err := s.ViewWith(ctx, shopper, ids, Extras{})
	return counts, liked, err
}

// Extras are the highlights a page reads with its counts (see
// highlights.go): in the same pipeline, so they cost no round trip.
type Extras struct {
	Highlights bool   // the catalog's "most liked" and "trending now"
	AlsoLiked  string // a product id: its "also liked" list
}

// Extra is what ViewWith read for Extras: empty where the worker has
// written nothing (yet).
type Extra struct {
	Highlights Highlights // zero At: no round has written them (or they expired)
	AlsoLiked  []Ranked
	// AlsoKnown says that a round has written the also-liked lists (and
	// they did not expire): an empty AlsoLiked then means none.
	AlsoKnown bool
}

// ViewWith is View that also reads the extras, in the same round trip.
func (s *Likes) ViewWith(ctx context.Context, shopper string, ids []string, x Extras) (map[string]int64, map[string]bool, Extra, error) {
	pipe := s.rdb.Pipeline()
	var high *redis.StringCmd
	var also *redis.SliceCmd
	if x.Highlights {
		high = pipe.Get(ctx, s.HighlightsKey())
	}
	if x.AlsoLiked != "" {
		// The cursor's field says whether the hash is there at all.
		also = pipe.HMGet(ctx, s.AlsoLikedKey(), x.AlsoLiked, alsoCursorField)
	}
	var counts []*redis.SliceCmd
	if len(ids) > 0 {
		for i := range s.tags {
			counts = append(counts, pipe.HMGet(ctx, s.shardKey(i, "counts"), ids...))
		}
	}
	var members *redis.BoolSliceCmd
	var liked *redis.StringSliceCmd
	switch {
	case shopper != "" && len(ids) > 0:
		members = pipe.SMIsMember(ctx, s.shopperKey(shopper), toAny(ids)...)
	case shopper != "":
		liked = pipe.SMembers(ctx, s.shopperKey(shopper))
	}
	var extra Extra
	if counts == nil && liked == nil && members == nil && high == nil && also == nil {
		return map[string]int64{}, map[string]bool{}, extra, nil
	}
	// Exec returns the first command's error, and a missing highlight is
	// redis.Nil: look at each for a real failure.
	cmds, _ := pipe.Exec(ctx)
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, extra, fmt.Errorf("%w: read likes: %v", ErrUnavailable, err)
		}
	}
	if high != nil {
		extra.Highlights = decodeHighlights(high.Val())
	}
	if also != nil {
		if v := also.Val(); len(v) == 2 {
			list, _ := v[0].(string)
			extra.AlsoLiked, extra.AlsoKnown = decodeRanked(list), v[1] != nil
		}
	}
	out := make(map[string]int64, len(ids))
	for _, c := range counts {
		for i, v := range c.Val() {
			out[ids[i]] += parseCount(v)
		}
	}
	set := map[string]bool{}
	if members != nil {
		for i, in := range members.Val() {
			if in {
				set[ids[i]] = true
			}
		}
	}
	if liked != nil {
		for _, id := range liked.Val() {
			set[id] = true
		}
	}
	return out, set, extra, nil
}

func toAny(ids []string) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// Counts returns every live count, product id -> likes, summed over the
// shards in one pipelined read.
func (s *Likes) Counts(ctx context.Context) (map[string]int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(s.tags))
	for i := range s.tags {
		cmds[i] = pipe.HGetAll(ctx, s.shardKey(i, "counts"))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("%w: read counts: %v", ErrUnavailable, err)
	}
	out := map[string]int64{}
	for _, c := range cmds {
		for id, v := range c.Val() {
			out[id] += parseCount(v)
		}
	}
	return out, nil
}

func parseCount(v any) int64 {
	str, ok := v.(string)
	if !ok {
		return 0
	}
	n, _ := strconv.ParseInt(str, 10, 64)
	return n
}
