package handlers

import (
	"cmp"
	"context"
	"time"

	"phoenix/store"
)

// defaultReplicaAlive is how long after its last heartbeat (every 2 s) a
// replica still counts as alive: three missed beats turn it grey.
const defaultReplicaAlive = 6 * time.Second

// flowData is what the flow view reads from PostgreSQL, in one piece so
// that a stale copy stays consistent.
type flowData struct {
	Replicas []store.Replica
	Controls []store.Control
}

// flowView is partials/flow: the path of a Like, shop → Redis → worker →
// PostgreSQL → admin, with each hop's rate, the backlog, the replicas and
// the faults in force. Words are in the template; only numbers are here.
type flowView struct {
	fragment
	Shops, Workers, Admins int     // replicas alive, by role
	Requests, Likes        float64 // per second, over the shops alive
	Read, Applied          float64 // per second, over the workers alive
	Backlog                []shardBacklog
	BacklogAt              time.Time // when the worker heard from last read it
	BacklogStale           bool      // that worker is gone: the backlog may have grown
	LagMS                  int64
	Streams                int64 // live dashboards open, over the admins alive
	Paused                 *faultRow
	Load                   *faultRow // simulated shoppers
	Faults                 []faultRow
	Replicas               []replicaRow
}

// shardBacklog is one shard's entries not yet acknowledged.
type shardBacklog struct {
	Shard   int
	Entries int64
}

// replicaRow is one replica as the table lists it.
type replicaRow struct {
	Role, Name, Version string
	Seen                time.Time
	Alive               bool
}

// ID names the row for tests and links: role/name.
func (r replicaRow) ID() string { return r.Role + "/" + r.Name }

// faultRow is one demo control in force.
type faultRow struct {
	ID             int64
	Target, Effect string
	Rate           float64 // share of calls, 0..1
	Latency        string
	Until          time.Time
	// Of a load: its rate, crowd, replica and progress.
	PerSecond, Shoppers int
	Owner               string
	Sent, Failed        int64
	Started             bool
}

// newFaultRow describes c for people.
func newFaultRow(c store.Control) faultRow {
	return faultRow{ID: c.ID, Target: c.Target, Effect: c.Effect, Rate: c.Rate,
		Latency: c.Latency.String(), Until: c.Until, PerSecond: c.PerSecond, Shoppers: c.Shoppers,
		Owner: c.Owner, Sent: c.Sent, Failed: c.Failed, Started: !c.ProgressAt.IsZero()}
}

// flowPath is the flow view's fragment.
const flowPath = "/admin/stats/flow"

// flow reads the replicas and controls and lays out the flow view.
func (h *Admin) flow(ctx context.Context) flowView {
	d, notice := loadStats(ctx, h, "flow", func(ctx context.Context) (flowData, error) {
		rs, err := h.Stats.Replicas(ctx)
		if err != nil {
			return flowData{}, err
		}
		cs, err := h.Stats.ActiveControls(ctx)
		return flowData{Replicas: rs, Controls: cs}, err
	})
	v := newFlowView(d, h.dash().Now(), cmp.Or(h.ReplicaAlive, defaultReplicaAlive))
	v.fragment = h.fragment(flowPath, dashboardQuery{}, notice)
	return v
}

// newFlowView sums the rates of the replicas alive at now and takes the
// backlog from the worker heard from last.
func newFlowView(d flowData, now time.Time, alive time.Duration) flowView {
	var v flowView
	var latest time.Time
	for _, r := range d.Replicas {
		row := replicaRow{Role: r.Role, Name: r.Name, Version: r.Version, Seen: r.At, Alive: now.Sub(r.At) <= alive}
		v.Replicas = append(v.Replicas, row)
		if r.Role == store.RoleWorker && r.At.After(latest) {
			latest, v.LagMS, v.Backlog = r.At, r.LagMS, nil
			v.BacklogAt, v.BacklogStale = r.At, !row.Alive
			for i, n := range r.Backlog {
				v.Backlog = append(v.Backlog, shardBacklog{Shard: i, Entries: n})
			}
		}
		if !row.Alive {
			continue
		}
		switch r.Role {
		case store.RoleShop:
			v.Shops++
			v.Requests += r.Rate(store.CountRequests)
			v.Likes += r.Rate(store.CountLikes)
		case store.RoleWorker:
			v.Workers++
			v.Read += r.Rate(store.CountRead)
			v.Applied += r.Rate(store.CountApplied)
		case store.RoleAdmin:
			v.Admins++
			v.Streams += r.Counts[store.CountStreams]
		}
	}
	for _, c := range d.Controls {
		if !c.Active(now) {
			continue
		}
		f := newFaultRow(c)
		switch c.Effect {
		case store.EffectPause:
			v.Paused = &f
			continue
		case store.EffectLoad:
			v.Load = &f
			continue
		}
		v.Faults = append(v.Faults, f)
	}
	return v
}

// FaultsOn returns the faults in force on target, for the node it hits.
func (v flowView) FaultsOn(target string) []faultRow {
	var out []faultRow
	for _, f := range v.Faults {
		if f.Target == target {
			out = append(out, f)
		}
	}
	return out
}

// BacklogTotal is the backlog over every shard.
func (v flowView) BacklogTotal() int64 {
	var n int64
	for _, b := range v.Backlog {
		n += b.Entries
	}
	return n
}
