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
	like   *redis.Script
	trim   *redis.Script
	now    func() time.Time
}

// OpenLikes connects to the Redis server at url (redis://host:port/db) and
// checks that it answers.
func OpenLikes(ctx context.Context, url, prefix string) (*Likes, error) {
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
	s := NewLikes(redis.NewClient(opt), prefix)
	if err := s.Ping(ctx); err != nil {
		// Redis may come up later; the shop degrades until it does.
		return s, err
	}
	return s, nil
}

// NewLikes wraps an existing client.
func NewLikes(rdb *redis.Client, prefix string) *Likes {
	return &Likes{rdb: rdb, prefix: prefix, like: redis.NewScript(rateLimitLua + "\n" + likeLua), trim: redis.NewScript(trimLua), now: time.Now}
}

// Client returns the underlying Redis client (for the worker and rate limits).
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

// CountsKey is the hash of live counts, product id -> likes.
func (s *Likes) CountsKey() string { return s.prefix + "counts" }

// StreamKey is the stream of Like events.
func (s *Likes) StreamKey() string { return s.prefix + "events" }

// Like records that shopper likes product. Liking twice changes nothing.
func (s *Likes) Like(ctx context.Context, shopper, product string) (LikeResult, error) {
	return s.Set(ctx, shopper, product, ActionLike, Charge{})
}

// Unlike withdraws shopper's Like of product. Unliking twice changes nothing.
func (s *Likes) Unlike(ctx context.Context, shopper, product string) (LikeResult, error) {
	return s.Set(ctx, shopper, product, ActionUnlike, Charge{})
}

// Set likes or unlikes product for shopper after charging the rate limits
// of limits, all in one round trip. Over a limit it changes nothing and
// returns a *LimitedError.
func (s *Likes) Set(ctx context.Context, shopper, product string, a Action, limits Charge) (LikeResult, error) {
	keys := append([]string{s.shopperKey(shopper), s.CountsKey(), s.StreamKey()}, limits.keys...)
	at := strconv.FormatInt(s.now().UnixMilli(), 10)
	args := append([]any{product, shopper, string(a), at}, limits.args...)
	res, err := s.like.Run(ctx, s.rdb, keys, args...).Int64Slice()
	if err != nil {
		return LikeResult{}, fmt.Errorf("%w: %s %s: %v", ErrUnavailable, a, product, err)
	}
	if len(res) != 2 {
		return LikeResult{}, fmt.Errorf("%s %s: unexpected script result %v", a, product, res)
	}
	if res[0] == -1 {
		return LikeResult{}, &LimitedError{RetryAfter: time.Duration(res[1]) * time.Microsecond}
	}
	return LikeResult{Liked: a == ActionLike, Count: res[1], Changed: res[0] == 1}, nil
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
