package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
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
// server. In Redis Cluster, put a hash tag in the prefix ("{phoenix}:") so
// that the keys of one Like land in one slot.
type Likes struct {
	rdb    *redis.Client
	prefix string
	opt    LikesOptions
	like   *redis.Script
	admit  *redis.Script
	trim   *redis.Script
}

// LikesOptions are the shop's limits on Likes, checked inside the Like's
// own script (see Set). The zero value limits nothing, as the worker and
// the tools need.
type LikesOptions struct {
	PerShopper, PerIP Rate // Likes and Unlikes per shopper and per client address
	NewShoppersPerIP  Rate // new shopper ids per client address (see Admit)
	// MaxBacklog is how many events the stream may hold before a Like is
	// refused with ErrBusy; 0 is no bound.
	MaxBacklog int64
}

// OpenLikes connects to the Redis server at url (redis://host:port/db) and
// checks that it answers. opts, when given, sets the limits.
func OpenLikes(ctx context.Context, url, prefix string, opts ...LikesOptions) (*Likes, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", err)
	}
	// Fail fast: a shopper would rather see "try again" than wait.
	opt.DialTimeout = time.Second
	opt.ReadTimeout = time.Second
	opt.WriteTimeout = time.Second
	opt.PoolTimeout = 2 * time.Second
	opt.MaxRetries = 1
	s := NewLikes(redis.NewClient(opt), prefix, opts...)
	if err := s.Ping(ctx); err != nil {
		// Redis may come up later; the shop degrades until it does.
		return s, err
	}
	return s, nil
}

// NewLikes wraps an existing client. opts, when given, sets the limits.
func NewLikes(rdb *redis.Client, prefix string, opts ...LikesOptions) *Likes {
	s := &Likes{
		rdb: rdb, prefix: prefix,
		like:  redis.NewScript(rateLimitLua + "\n" + likeLua),
		admit: redis.NewScript(rateLimitLua + "\n" + admitLua),
		trim:  redis.NewScript(trimLua),
	}
	if len(opts) > 0 {
		s.opt = opts[0]
	}
	return s
}

// Client returns the underlying Redis client (for the worker).
func (s *Likes) Client() *redis.Client { return s.rdb }

// Close closes the connection pool.
func (s *Likes) Close() error { return s.rdb.Close() }

// Ping checks that Redis answers.
func (s *Likes) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: ping redis: %v", ErrUnavailable, err)
	}
	return nil
}

// Key returns the full Redis key for the given name, under the prefix.
func (s *Likes) Key(name string) string { return s.prefix + name }

func (s *Likes) shopperKey(shopper string) string { return s.prefix + "shopper:" + shopper + ":likes" }

// rateKey is the key of one rate limit: what is limited (like, new shopper)
// by whom (shopper, ip) and whose.
func (s *Likes) rateKey(what, by, who string) string {
	return s.prefix + "rate:" + what + ":" + by + ":" + who
}

// CountsKey is the hash of live counts, product id -> likes.
func (s *Likes) CountsKey() string { return s.prefix + "counts" }

// StreamKey is the stream of Like events.
func (s *Likes) StreamKey() string { return s.prefix + "events" }

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
	keys := []string{s.shopperKey(in.Shopper), s.CountsKey(), s.StreamKey(),
		s.rateKey("like", "shopper", in.Shopper), s.rateKey("like", "ip", in.ClientIP),
		s.repairFlagKey(s.shopperShard(in.Shopper))}
	res, err := s.like.Run(ctx, s.rdb, keys, in.Product, in.Shopper, string(in.Action), opt.MaxBacklog,
		opt.PerShopper.micros(), opt.PerShopper.Burst, perIP.micros(), perIP.Burst).Int64Slice()
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
	res, err := s.admit.Run(ctx, s.rdb, []string{s.rateKey("shopper", "ip", ip)}, r.micros(), r.Burst).Int64Slice()
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
	pipe := s.rdb.Pipeline()
	var counts *redis.SliceCmd
	if len(ids) > 0 {
		counts = pipe.HMGet(ctx, s.CountsKey(), ids...)
	}
	var members *redis.BoolSliceCmd
	var liked *redis.StringSliceCmd
	switch {
	case shopper != "" && len(ids) > 0:
		members = pipe.SMIsMember(ctx, s.shopperKey(shopper), toAny(ids)...)
	case shopper != "":
		liked = pipe.SMembers(ctx, s.shopperKey(shopper))
	}
	if counts == nil && liked == nil && members == nil {
		return map[string]int64{}, map[string]bool{}, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("%w: read likes: %v", ErrUnavailable, err)
	}
	out := make(map[string]int64, len(ids))
	if counts != nil {
		for i, v := range counts.Val() {
			out[ids[i]] = parseCount(v)
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
	return out, set, nil
}

func toAny(ids []string) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// Counts returns every live count, product id -> likes.
func (s *Likes) Counts(ctx context.Context) (map[string]int64, error) {
	m, err := s.rdb.HGetAll(ctx, s.CountsKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: read counts: %v", ErrUnavailable, err)
	}
	out := make(map[string]int64, len(m))
	for id, v := range m {
		out[id] = parseCount(v)
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
