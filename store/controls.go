package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"
)

// Targets and effects of a demo control.
const (
	TargetWorkers        = "workers"         // the workers' sync loop (pause)
	TargetWorkerPostgres = "worker-postgres" // the workers' batch writes to PostgreSQL
	TargetShopRedis      = "shop-redis"      // the shops' Redis calls
	TargetShoppers       = "shoppers"        // simulated shoppers sent to the shop (load)

	EffectPause   = "pause"
	EffectLatency = "latency"
	EffectError   = "error"
	EffectLoad    = "load"
)

// Limits of a demo control.
const (
	MinControlFor = time.Second
	MaxControlFor = 15 * time.Minute
	MaxLatency    = 10 * time.Second
	// MaxLoadRate and MaxLoadShoppers bound a load of simulated shoppers:
	// the demo's own figure (5,000 Likes/s) and a crowd that one admin
	// replica drives without trouble.
	MaxLoadRate     = 5000
	MaxLoadShoppers = 1000
	// controlsTTL bounds how long the shops keep the controls a worker
	// last handed on, should every worker stop.
	controlsTTL = 30 * time.Second
)

// ErrInjected is the error of a call that a demo control made fail. The
// call was not made, so nothing of it is half done.
var ErrInjected = errors.New("injected fault (demo control)")

// Control is one demo control: a pause of the workers, latency or errors
// injected into a share of a target's calls, or a load of simulated
// shoppers, until a deadline.
type Control struct {
	ID        int64         `json:"id"`
	Target    string        `json:"target"`
	Effect    string        `json:"effect"`
	Rate      float64       `json:"rate"` // share of calls affected (of a load: that are Likes), 0 < rate <= 1
	Latency   time.Duration `json:"latency"`
	Until     time.Time     `json:"until"`
	SetBy     string        `json:"-"` // client address
	RequestID string        `json:"-"`

	// A load's own settings and progress (see LoadProgress).
	PerSecond  int       `json:"-"` // requests a second
	Shoppers   int       `json:"-"`
	Owner      string    `json:"-"` // the admin replica that generates it
	Sent       int64     `json:"-"`
	Failed     int64     `json:"-"`
	ProgressAt time.Time `json:"-"` // zero: not started yet
}

// Check refuses a control that makes no sense, saying why.
func (c Control) Check() error {
	switch {
	case (c.Target == TargetWorkers) != (c.Effect == EffectPause),
		(c.Target == TargetShoppers) != (c.Effect == EffectLoad),
		c.Target != TargetWorkers && c.Target != TargetWorkerPostgres && c.Target != TargetShopRedis && c.Target != TargetShoppers,
		c.Effect != EffectPause && c.Effect != EffectLatency && c.Effect != EffectError && c.Effect != EffectLoad:
		return errors.New("unknown control")
	case !(c.Rate > 0 && c.Rate <= 1):
		return errors.New("the rate must be more than 0% and at most 100%")
	case c.Effect == EffectLatency && (c.Latency < time.Millisecond || c.Latency > MaxLatency):
		return fmt.Errorf("the latency must be from 1 ms to %s", MaxLatency)
	case c.Effect == EffectLoad && (c.PerSecond < 1 || c.PerSecond > MaxLoadRate):
		return fmt.Errorf("the load must be from 1 to %d requests a second", MaxLoadRate)
	case c.Effect == EffectLoad && (c.Shoppers < 1 || c.Shoppers > MaxLoadShoppers):
		return fmt.Errorf("the load needs from 1 to %d shoppers", MaxLoadShoppers)
	case c.Effect == EffectLoad && c.Owner == "":
		return errors.New("a load needs the admin replica that runs it")
	}
	return nil
}

// Active reports whether the control is in force at now.
func (c Control) Active(now time.Time) bool { return now.Before(c.Until) }

// SetControl records c, which ends any active control of the same target
// and effect, and returns it with its id.
func (s *Stats) SetControl(ctx context.Context, c Control) (Control, error) {
	if err := c.Check(); err != nil {
		return Control{}, err
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		now := s.now()
		if _, err := tx.ExecContext(ctx, `UPDATE controls SET until = $3 WHERE target = $1 AND effect = $2 AND until > $3`,
			c.Target, c.Effect, now); err != nil {
			return err
		}
		if err := tx.GetContext(ctx, &c.ID, `
INSERT INTO controls (target, effect, rate, latency_ms, until, set_by, request_id, created_at, per_second, shoppers, owner)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
			c.Target, c.Effect, c.Rate, c.Latency.Milliseconds(), c.Until, c.SetBy, c.RequestID, now,
			c.PerSecond, c.Shoppers, c.Owner); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, notifyChanged)
		return err
	})
	if err != nil {
		return Control{}, fmt.Errorf("set control: %w", err)
	}
	return c, nil
}

// EndControl ends the control with id now, if it is still active, and
// reports whether it was.
func (s *Stats) EndControl(ctx context.Context, id int64) (bool, error) {
	var ended bool
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE controls SET until = $2 WHERE id = $1 AND until > $2`, id, s.now())
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		if ended = n > 0; ended {
			_, err = tx.ExecContext(ctx, notifyChanged)
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("end control: %w", err)
	}
	return ended, nil
}

// ActiveControls returns the controls in force, oldest first.
func (s *Stats) ActiveControls(ctx context.Context) ([]Control, error) {
	var rows []struct {
		ID         int64        `db:"id"`
		Target     string       `db:"target"`
		Effect     string       `db:"effect"`
		Rate       float64      `db:"rate"`
		LatencyMS  int64        `db:"latency_ms"`
		Until      time.Time    `db:"until"`
		SetBy      string       `db:"set_by"`
		RequestID  string       `db:"request_id"`
		PerSecond  int          `db:"per_second"`
		Shoppers   int          `db:"shoppers"`
		Owner      string       `db:"owner"`
		Sent       int64        `db:"sent"`
		Failed     int64        `db:"failed"`
		ProgressAt sql.NullTime `db:"progress_at"`
	}
	err := s.db.SelectContext(ctx, &rows, `
SELECT id, target, effect, rate, latency_ms, until, set_by, request_id, per_second, shoppers, owner, sent, failed, progress_at
FROM controls WHERE until > $1 ORDER BY id LIMIT $2`, s.now(), maxReplicas)
	if err != nil {
		return nil, fmt.Errorf("active controls: %w", err)
	}
	out := make([]Control, len(rows))
	for i, r := range rows {
		out[i] = Control{ID: r.ID, Target: r.Target, Effect: r.Effect, Rate: r.Rate,
			Latency: time.Duration(r.LatencyMS) * time.Millisecond, Until: r.Until, SetBy: r.SetBy, RequestID: r.RequestID,
			PerSecond: r.PerSecond, Shoppers: r.Shoppers, Owner: r.Owner, Sent: r.Sent, Failed: r.Failed, ProgressAt: r.ProgressAt.Time}
	}
	return out, nil
}

// LoadProgress records how far the load of control id has come: requests
// sent and failed so far. The row's NOTIFY lets every live dashboard show it.
func (s *Stats) LoadProgress(ctx context.Context, id, sent, failed int64) error {
	_, err := s.db.ExecContext(ctx, `
WITH up AS (UPDATE controls SET sent = $2, failed = $3, progress_at = $4 WHERE id = $1 RETURNING 1)
SELECT pg_notify('`+NotifyChannel+`', '') FROM up`, id, sent, failed, s.now())
	if err != nil {
		return fmt.Errorf("record load progress: %w", err)
	}
	return nil
}

// ProductIDs returns the ids of the catalog as the worker last wrote it,
// for the demo's simulated shoppers.
func (s *Stats) ProductIDs(ctx context.Context) ([]string, error) {
	var ids []string
	if err := s.db.SelectContext(ctx, &ids, `SELECT id FROM products ORDER BY id`); err != nil {
		return nil, fmt.Errorf("product ids: %w", err)
	}
	return ids, nil
}

// controlsKey holds the controls the workers hand on to the shops.
func (s *Likes) controlsKey() string { return s.prefix + "controls" }

// PublishControls hands the active controls on to the shops.
func (s *Likes) PublishControls(ctx context.Context, cs []Control) error {
	js, err := json.Marshal(cs)
	if err != nil {
		return fmt.Errorf("publish controls: %w", err)
	}
	if err := s.rdb.Set(WithoutFaults(ctx), s.controlsKey(), js, controlsTTL).Err(); err != nil {
		return fmt.Errorf("%w: publish controls: %v", ErrUnavailable, err)
	}
	return nil
}

// Controls returns the controls the workers last handed on; none when there
// are none, or no worker has handed any on for a while.
func (s *Likes) Controls(ctx context.Context) ([]Control, error) {
	js, err := s.rdb.Get(WithoutFaults(ctx), s.controlsKey()).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read controls: %v", ErrUnavailable, err)
	}
	var cs []Control
	if err := json.Unmarshal(js, &cs); err != nil {
		return nil, fmt.Errorf("read controls: %w", err)
	}
	return cs, nil
}

// Faults is what a process does of the demo controls it was handed: it
// pauses, delays or fails calls before they are made. The zero value, and
// nil, inject nothing.
type Faults struct {
	mu       sync.Mutex
	controls []Control
	now      func() time.Time
	rand     func() float64
}

// NewFaults returns an empty set of faults on the wall clock.
func NewFaults() *Faults {
	// #nosec G404 -- which calls fail in a demo need no unpredictability.
	return &Faults{now: time.Now, rand: rand.Float64}
}

// Set replaces the controls in force.
func (f *Faults) Set(cs []Control) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.controls = cs
}

// find returns the active control of target and effect.
func (f *Faults) find(target, effect string) (Control, bool) {
	if f == nil {
		return Control{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.controls {
		if c.Target == target && c.Effect == effect && c.Active(f.now()) {
			return c, true
		}
	}
	return Control{}, false
}

// Paused reports whether the workers are paused.
func (f *Faults) Paused() bool {
	_, ok := f.find(TargetWorkers, EffectPause)
	return ok
}

// Inject runs the faults in force for target before one of its calls: it
// waits for an injected latency (or until ctx is done), and returns
// ErrInjected for an injected error, so that the call is not made. ctx
// marked WithoutFaults is left alone.
func (f *Faults) Inject(ctx context.Context, target string) error {
	if f == nil || ctx.Value(noFaults{}) != nil {
		return nil
	}
	latency, fail := f.active(target)
	if latency != nil && f.rand() < latency.Rate {
		t := time.NewTimer(latency.Latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if fail != nil && f.rand() < fail.Rate {
		return fmt.Errorf("%w: %s", ErrInjected, target)
	}
	return nil
}

// active returns target's latency and error controls in force, under one
// lock and one reading of the clock: Inject runs before every Redis call
// of the shop, and nearly always finds nothing.
func (f *Faults) active(target string) (latency, fail *Control) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.controls) == 0 {
		return nil, nil
	}
	now := f.now()
	for i := range f.controls {
		// Set replaces the slice and never changes it, so its elements
		// may be read after the lock.
		c := &f.controls[i]
		if c.Target != target || !c.Active(now) {
			continue
		}
		switch {
		case c.Effect == EffectLatency && latency == nil:
			latency = c
		case c.Effect == EffectError && fail == nil:
			fail = c
		}
	}
	return latency, fail
}

type noFaults struct{}

// WithoutFaults marks ctx so that no fault is injected into its calls: the
// heartbeats, which carry the controls themselves and must show the truth.
func WithoutFaults(ctx context.Context) context.Context {
	return context.WithValue(ctx, noFaults{}, true)
}

// RedisHook returns a go-redis hook that injects target's faults into every
// command and pipeline before it is sent.
func (f *Faults) RedisHook(target string) redis.Hook { return faultHook{f: f, target: target} }

type faultHook struct {
	f      *Faults
	target string
}

func (h faultHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h faultHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if err := h.f.Inject(ctx, h.target); err != nil {
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (h faultHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if err := h.f.Inject(ctx, h.target); err != nil {
			for _, cmd := range cmds {
				cmd.SetErr(err)
			}
			return err
		}
		return next(ctx, cmds)
	}
}
