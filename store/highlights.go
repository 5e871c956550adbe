package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"
	"github.com/redis/go-redis/v9"
)

// The shop's highlights: "Most liked" and "Trending now" on the catalog,
// "Shoppers who liked this also liked" on a product page.
//
// The shop talks to Redis only, and a page view must not rank anything.
// So the worker derives them from PostgreSQL, the record, once a round
// (RefreshHighlights, every HighlightEvery) and writes them to small Redis
// keys that a page reads in the pipeline that reads its live counts: one
// round trip, no ranking per request, and nothing cached in the shop's
// process, so a round shows on the next page view. One worker of all runs
// each round: it takes a lease, a row whose time it moves forward by an
// interval (pg_try_advisory_xact_lock would only keep two rounds from
// overlapping, not a second worker's round from following the first at
// once). Derived from
// PostgreSQL's like state and buckets, Unlike is exact and the shards do
// not matter; a Redis that lost the keys gets them back the next round,
// and they expire (HighlightTTL) if every worker stops, so the shop never
// shows a ranking far older than its counts.
//
//   - Most liked: the products with the most net likers now
//     (product_counters.likes > 0).
//   - Trending now: the most net likes (likes minus unlikes) in the last
//     hour, a sliding window of 60 one-minute buckets (like_buckets) whose
//     last is the current minute; no decay within the window. An Unlike in
//     the hour takes back a Like of the hour; products whose hour is not
//     positive are left out. The buckets count events, as the admin's
//     "last hour" does: a Like repeated after Redis lost data counts again.
//   - Also liked: among a product's most recent AlsoSample likers
//     (like_state), the other products they like now, by how many of them
//     like each. Every AlsoRounds-th round recomputes the products whose
//     counters changed since (oldest change first, at most AlsoBudget) and,
//     with what the budget leaves, the next products of a sweep through
//     every liked product, so that a list also follows changes made through
//     other products. It is the costly part (BenchmarkRefreshHighlights:
//     about 0.3 s of PostgreSQL for 48 products of 1,000 likers who like
//     12 each), hence not every round.

// Highlight defaults.
const (
	// HighlightEvery is how often one worker rewrites the highlights.
	HighlightEvery = 2 * time.Second
	// HighlightTTLRounds is how many rounds the keys outlive their last
	// one: enough for a few missed rounds (and AlsoRounds), few enough
	// that a shop with no worker left soon stops showing them.
	HighlightTTLRounds = 15
	// HighlightTTL is that at the default interval.
	HighlightTTL = HighlightTTLRounds * HighlightEvery
	// HighlightTop is how many products each ranking keeps; the shop shows
	// the first ones it has in its catalog.
	HighlightTop = 10
	// TrendingWindow is the window of "Trending now".
	TrendingWindow = time.Hour
	// AlsoSample bounds the likers read per product for "also liked".
	AlsoSample = 1000
	// AlsoBudget bounds the products whose "also liked" a round recomputes.
	AlsoBudget = 200
	// AlsoRounds is how many rounds apart "also liked" is recomputed.
	AlsoRounds = 5
)

// Ranked is one product of a highlight with its number: net likers (most
// liked), net likes in the window (trending), or shoppers who like both
// (also liked).
type Ranked struct {
	ID    string `json:"id" db:"product_id"`
	Count int64  `json:"n" db:"n"`
}

// Highlights are the catalog's rankings as the last round wrote them.
type Highlights struct {
	At        time.Time `json:"at"`
	MostLiked []Ranked  `json:"most"`
	Trending  []Ranked  `json:"trending"`
}

// MostLiked returns the n products with the most likers now.
func (s *Stats) MostLiked(ctx context.Context, n int) ([]Ranked, error) {
	out := []Ranked{}
	err := s.db.SelectContext(ctx, &out, `SELECT product_id, likes AS n FROM product_counters
WHERE likes > 0 ORDER BY likes DESC, product_id LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("most liked: %w", err)
	}
	return out, nil
}

// TrendingSince is the first minute bucket of the window that ends at now:
// TrendingWindow's worth of one-minute buckets, the current one last.
func TrendingSince(now time.Time) time.Time {
	return minuteOf(now).Add(time.Minute - TrendingWindow)
}

// Trending returns the n products with the most net likes (likes minus
// unlikes) in the window ending at now (see TrendingSince), those above 0.
func (s *Stats) Trending(ctx context.Context, now time.Time, n int) ([]Ranked, error) {
	out := []Ranked{}
	err := s.db.SelectContext(ctx, &out, `SELECT product_id, sum(likes - unlikes)::bigint AS n FROM like_buckets
WHERE minute >= $1 GROUP BY product_id HAVING sum(likes - unlikes) > 0
ORDER BY n DESC, product_id LIMIT $2`, TrendingSince(now), n)
	if err != nil {
		return nil, fmt.Errorf("trending: %w", err)
	}
	return out, nil
}

// AlsoLiked returns, for each of products, the n other products most liked
// by its sample most recent likers, by how many of them like each. A
// product nobody else's likers share gets an empty list.
func (s *Stats) AlsoLiked(ctx context.Context, products []string, sample, n int) (map[string][]Ranked, error) {
	var rows []struct {
		Target string `db:"target"`
		Ranked
	}
	err := s.db.SelectContext(ctx, &rows, `
WITH targets AS (SELECT DISTINCT unnest($1::text[]) AS target),
likers AS (
    SELECT t.target, r.shopper_id FROM targets t CROSS JOIN LATERAL (
        SELECT shopper_id FROM like_state WHERE product_id = t.target AND liked ORDER BY liked_at DESC LIMIT $2) r
), co AS (
    SELECT l.target, s.product_id, count(*) AS n
    FROM likers l JOIN like_state s ON s.shopper_id = l.shopper_id AND s.product_id <> l.target AND s.liked
    GROUP BY l.target, s.product_id
), ranked AS (
    SELECT target, product_id, n, row_number() OVER (PARTITION BY target ORDER BY n DESC, product_id) AS rank FROM co
)
SELECT target, product_id, n FROM ranked WHERE rank <= $3 ORDER BY target, rank`, pq.StringArray(products), sample, n)
	if err != nil {
		return nil, fmt.Errorf("also liked: %w", err)
	}
	out := make(map[string][]Ranked, len(products))
	for _, p := range products {
		out[p] = []Ranked{}
	}
	for _, r := range rows {
		out[r.Target] = append(out[r.Target], r.Ranked)
	}
	return out, nil
}

// AlsoCursor is how far "also liked" has got: the change number up to
// which every changed product was recomputed, and the last product of the
// sweep. It lives in the Redis hash beside the lists, so a Redis that lost
// the lists has lost it too and everything is recomputed.
type AlsoCursor struct {
	Changed int64     `json:"changed"`
	Sweep   string    `json:"sweep"`
	At      time.Time `json:"at"` // when the lists were last recomputed
}

// AlsoTargets chooses up to budget products whose "also liked" to
// recompute after c: first those whose counters changed after c.Changed,
// oldest change first, then, from what is left of the budget, liked
// products after c.Sweep in id order, from the start once past the end.
// It returns them and the cursor after them.
func (s *Stats) AlsoTargets(ctx context.Context, c AlsoCursor, budget int) ([]string, AlsoCursor, error) {
	var changed []struct {
		ID      string `db:"product_id"`
		Changed int64  `db:"changed"`
	}
	if err := s.db.SelectContext(ctx, &changed, `SELECT product_id, changed FROM product_counters
WHERE changed > $1 ORDER BY changed LIMIT $2`, c.Changed, budget); err != nil {
		return nil, c, fmt.Errorf("also liked targets: %w", err)
	}
	next := c
	out := make([]string, 0, budget)
	seen := map[string]bool{}
	for _, r := range changed {
		out, seen[r.ID], next.Changed = append(out, r.ID), true, r.Changed
	}
	if left := budget - len(out); left > 0 {
		var sweep []string
		if err := s.db.SelectContext(ctx, &sweep, `(SELECT product_id FROM product_counters
WHERE likes > 0 AND product_id > $1 ORDER BY product_id LIMIT $2)
UNION ALL (SELECT product_id FROM product_counters
WHERE likes > 0 AND product_id <= $1 ORDER BY product_id LIMIT $2) LIMIT $2`, c.Sweep, left); err != nil {
			return nil, c, fmt.Errorf("also liked sweep: %w", err)
		}
		for _, id := range sweep {
			if !seen[id] {
				out, seen[id] = append(out, id), true
			}
			next.Sweep = id
		}
	}
	return out, next, nil
}

// highlightRound takes this round's lease: true when no round ran in the
// last every (less a tenth, for timers that fire early), so that of
// several workers one runs each round. One UPDATE of one row: PostgreSQL
// lets one of two concurrent ones through. A lease further ahead than one
// interval was taken by a worker whose clock is ahead; it is taken over,
// so that a stopped worker with a fast clock cannot hold the rounds up.
// It returns the round's time, the one the lease holds.
func (s *Stats) highlightRound(ctx context.Context, every time.Duration) (time.Time, bool, error) {
	now := s.now()
	res, err := s.db.ExecContext(ctx, `UPDATE highlight_rounds SET at = $1 WHERE at <= $2 OR at > $3`,
		now, now.Add(-every+every/10), now.Add(every))
	if err != nil {
		return now, false, fmt.Errorf("highlight round: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return now, false, fmt.Errorf("highlight round: %w", err)
	}
	return now, n == 1, nil
}

// HighlightsKey is the Redis string of the catalog's highlights (JSON).
func (s *Likes) HighlightsKey() string { return s.Key("highlights") }

// AlsoLikedKey is the Redis hash of "also liked" lists: product id -> JSON
// list, and alsoCursorField -> the AlsoCursor.
func (s *Likes) AlsoLikedKey() string { return s.Key("also") }

// alsoCursorField is the cursor's field in the also-liked hash: not a
// product id (ValidID allows no dot).
const alsoCursorField = "."

// PublishHighlights writes h for the shops, expiring after ttl.
func (s *Likes) PublishHighlights(ctx context.Context, h Highlights, ttl time.Duration) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, s.HighlightsKey(), b, ttl).Err(); err != nil {
		return fmt.Errorf("%w: publish highlights: %v", ErrUnavailable, err)
	}
	return nil
}

// ReadAlsoCursor returns the also-liked cursor; the zero cursor when the
// hash is gone (never written, expired or lost), so that every product is
// recomputed.
func (s *Likes) ReadAlsoCursor(ctx context.Context) (AlsoCursor, error) {
	var c AlsoCursor
	v, err := s.rdb.HGet(ctx, s.AlsoLikedKey(), alsoCursorField).Bytes()
	if errors.Is(err, redis.Nil) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("%w: read also-liked cursor: %v", ErrUnavailable, err)
	}
	if json.Unmarshal(v, &c) != nil {
		return AlsoCursor{}, nil // unreadable: start over
	}
	return c, nil
}

// PublishAlsoLiked writes the lists (an empty one removes the product's
// field) and the cursor after them, and keeps the hash for ttl more.
func (s *Likes) PublishAlsoLiked(ctx context.Context, lists map[string][]Ranked, c AlsoCursor, ttl time.Duration) error {
	key := s.AlsoLikedKey()
	pipe := s.rdb.TxPipeline() // one key: atomic on every deployment
	var gone []string
	set := make([]any, 0, 2*len(lists)+2)
	for id, l := range lists {
		if len(l) == 0 {
			gone = append(gone, id)
			continue
		}
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		set = append(set, id, b)
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if len(gone) > 0 {
		pipe.HDel(ctx, key, gone...)
	}
	pipe.HSet(ctx, key, append(set, alsoCursorField, b)...)
	pipe.Expire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("%w: publish also liked: %v", ErrUnavailable, err)
	}
	return nil
}

// HighlightReport says what one RefreshHighlights did.
type HighlightReport struct {
	Skipped    bool // another worker ran this round
	Highlights Highlights
	AlsoLiked  int // products whose "also liked" was recomputed
}

// RefreshHighlights runs one round: unless another worker ran one in the
// last every, it reads the rankings from stats and, every AlsoRounds
// rounds, the "also liked" lists of the next targets (see AlsoTargets),
// and writes them to likes, expiring HighlightTTLRounds rounds later.
func RefreshHighlights(ctx context.Context, likes *Likes, stats *Stats, every time.Duration) (HighlightReport, error) {
	var r HighlightReport
	now, ok, err := stats.highlightRound(ctx, every)
	if err != nil || !ok {
		r.Skipped = err == nil
		return r, err
	}
	h := Highlights{At: now}
	if h.MostLiked, err = stats.MostLiked(ctx, HighlightTop); err != nil {
		return r, err
	}
	if h.Trending, err = stats.Trending(ctx, now, HighlightTop); err != nil {
		return r, err
	}
	ttl := HighlightTTLRounds * every
	if err := likes.PublishHighlights(ctx, h, ttl); err != nil {
		return r, err
	}
	r.Highlights = h
	cursor, err := likes.ReadAlsoCursor(ctx)
	if err != nil {
		return r, err
	}
	// Not this round (the lists' TTL outlasts AlsoRounds rounds), unless
	// the last was stamped more than a round ahead: by a worker whose
	// clock is ahead, which must not hold the lists up.
	if since := now.Sub(cursor.At); since > -every && since < AlsoRounds*every-every/2 {
		return r, nil
	}
	targets, next, err := stats.AlsoTargets(ctx, cursor, AlsoBudget)
	if err != nil {
		return r, err
	}
	lists, err := stats.AlsoLiked(ctx, targets, AlsoSample, HighlightTop)
	if err != nil {
		return r, err
	}
	next.At = now
	if err := likes.PublishAlsoLiked(ctx, lists, next, ttl); err != nil {
		return r, err
	}
	r.AlsoLiked = len(targets)
	return r, nil
}

// decodeHighlights reads the highlights key's value; nothing (an empty
// Highlights) when it is missing or unreadable.
func decodeHighlights(v string) Highlights {
	var h Highlights
	if v == "" || json.Unmarshal([]byte(v), &h) != nil {
		return Highlights{}
	}
	return h
}

// decodeRanked reads an also-liked list; nothing when missing or unreadable.
func decodeRanked(v string) []Ranked {
	var l []Ranked
	if v == "" || json.Unmarshal([]byte(v), &l) != nil {
		return nil
	}
	return l
}
