package store

import (
	_ "embed"
	"fmt"
	"time"
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

func (r Rate) micros() int64 {
	if !r.Enabled() {
		return 0
	}
	return r.Interval.Microseconds()
}

// LimitedError is the answer of Likes.Set and Likes.Admit over a rate
// limit: nothing was changed.
type LimitedError struct {
	RetryAfter time.Duration // when the limit allows a request again
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("rate limited: retry after %v", e.RetryAfter)
}
