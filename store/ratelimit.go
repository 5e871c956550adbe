package store

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed scripts/ratelimit.lua
var rateLimitLua string

// Rate is a rate limit: Burst requests at once, then one per Interval.
type Rate struct {
	Interval time.Duration
	Burst    int
}

// PerSecond returns the rate of n requests a second with bursts of 2n.
// n <= 0 gives the zero Rate, which limits nothing.
func PerSecond(n int) Rate {
	if n <= 0 {
		return Rate{}
	}
	return Rate{Interval: time.Second / time.Duration(n), Burst: 2 * n}
}

// Enabled reports whether r limits anything.
func (r Rate) Enabled() bool { return r.Interval > 0 && r.Burst > 0 }

// Hit is one limit to charge: a key (such as "like:shopper:<id>") and its rate.
type Hit struct {
	Key  string
	Rate Rate
}

// Limiter enforces rate limits in Redis, so that every replica of a role
// shares them. One call checks any number of limits in one round trip.
type Limiter struct {
	rdb    *redis.Client
	prefix string
	script *redis.Script
}

// NewLimiter returns a limiter whose keys start with prefix.
func NewLimiter(rdb *redis.Client, prefix string) *Limiter {
	return &Limiter{rdb: rdb, prefix: prefix, script: redis.NewScript(rateLimitLua + "\nreturn charge(1, 1)\n")}
}

// Allow charges one request to every hit with an enabled rate, all or
// nothing. When some limit is exhausted it returns false and how long to
// wait before that limit allows a request again.
func (l *Limiter) Allow(ctx context.Context, hits ...Hit) (bool, time.Duration, error) {
	c := l.Charge(hits...)
	if len(c.keys) == 0 {
		return true, 0, nil
	}
	res, err := l.script.Run(ctx, l.rdb, c.keys, c.args...).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("%w: rate limit: %v", ErrUnavailable, err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("rate limit: unexpected script result %v", res)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Microsecond, nil
}

// Charge is a set of rate limits to charge together with a Like (see
// Likes.Set), in the Like's own round trip. The zero Charge limits nothing.
type Charge struct {
	keys []string
	args []any
}

// Charge returns the hits with an enabled rate as a Charge for Likes.Set.
// The limiter must use the same Redis server as the Likes.
func (l *Limiter) Charge(hits ...Hit) Charge {
	c := Charge{keys: make([]string, 0, len(hits)), args: make([]any, 0, 2*len(hits))}
	for _, h := range hits {
		if !h.Rate.Enabled() {
			continue
		}
		c.keys = append(c.keys, l.prefix+h.Key)
		c.args = append(c.args, h.Rate.Interval.Microseconds(), h.Rate.Burst)
	}
	return c
}

// LimitedError is Likes.Set's answer when a rate limit of its Charge is
// exhausted: nothing was changed.
type LimitedError struct {
	RetryAfter time.Duration // when the limit allows a request again
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("rate limited: retry after %v", e.RetryAfter)
}
