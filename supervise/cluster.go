package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// DefaultClusterNodeTimeout is the cluster-node-timeout used when
	// ClusterOptions.NodeTimeout is zero: short, so a killed primary's
	// replica takes over within a few seconds in tests and demos.
	DefaultClusterNodeTimeout = time.Second
	// clusterStartTimeout bounds cluster creation when ctx has no deadline.
	clusterStartTimeout = 2 * time.Minute
)

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	// Dir holds one folder per node (node-0, node-1, ...). Required.
	Dir string
	// Primaries is the number of primaries (default 3; Redis needs 3).
	Primaries int
	// Replicas is the number of replicas of each primary (default 1 when
	// zero; -1 for none).
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a node may be
	// unreachable before its replica is promoted. Default
	// DefaultClusterNodeTimeout.
	NodeTimeout time.Duration
	// AppendOnly and AppendFsync are passed to every node, as in
	// RedisOptions.
	AppendOnly  bool
	AppendFsync string
	// Log receives a copy of every node's output; may be nil.
	Log io.Writer
}

// Cluster is a private Redis Cluster: Primaries × (1 + Replicas)
// redis-server processes in cluster mode on 127.0.0.1, joined by
// `redis-cli --cluster create`. Node i keeps its folder, ports and cluster
// identity (nodes.conf) across Stop/Kill and Start, so a restarted node
// rejoins the cluster; a former primary rejoins as a replica of the node
// promoted in its place.
//
// Without AppendOnly a node restarted before its replica was promoted comes
// back empty and, being still the primary, takes its replicas with it: that
// is Redis's behaviour, and what fault tests of lost writes rely on.
type Cluster struct {
	opts  ClusterOptions
	nodes []*Redis
}

// StartCluster starts the nodes, creates the cluster and waits until every
// node reports it healthy (all slots served, every replica in sync).
func StartCluster(ctx context.Context, o ClusterOptions) (*Cluster, error) {
	ctx, cancel := withDefaultTimeout(ctx, clusterStartTimeout)
	defer cancel()
	c, err := newCluster(o)
	if err != nil {
		return nil, fmt.Errorf("start redis cluster: %w", err)
	}
	if err := c.start(ctx); err != nil {
		_ = c.Stop() // the start's error is the one to report
		return nil, err
	}
	return c, nil
}

// start starts the nodes, creates the cluster and waits for it.
func (c *Cluster) start(ctx context.Context) error {
	for i, n := range c.nodes {
		if err := n.Start(ctx); err != nil {
			return fmt.Errorf("start redis cluster node %d: %w", i, err)
		}
	}
	if err := c.create(ctx); err != nil {
		return fmt.Errorf("start redis cluster: %w", err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		return fmt.Errorf("start redis cluster: %w", err)
	}
	return nil
}

func newCluster(o ClusterOptions) (*Cluster, error) {
	if o.Dir == "" {
		return nil, errors.New("ClusterOptions.Dir is required")
	}
	if o.Primaries == 0 {
		o.Primaries = 3
	}
	if o.Primaries < 3 {
		return nil, fmt.Errorf("%d primaries: Redis Cluster needs at least 3", o.Primaries)
	}
	switch {
	case o.Replicas == 0:
		o.Replicas = 1
	case o.Replicas < 0:
		o.Replicas = 0
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = DefaultClusterNodeTimeout
	}
	if _, err := findBinary("redis-cli", "redis-tools"); err != nil {
		return nil, err
	}
	c := &Cluster{opts: o}
	count := o.Primaries * (1 + o.Replicas)
	ports, err := FreePorts(2 * count) // a client port and a bus port each
	if err != nil {
		return nil, err
	}
	for i := range count {
		bus := ports[count+i]
		n, err := newRedis(RedisOptions{
			Dir:         filepath.Join(o.Dir, "node-"+strconv.Itoa(i)),
			Port:        ports[i],
			AppendOnly:  o.AppendOnly,
			AppendFsync: o.AppendFsync,
			Log:         o.Log,
		})
		if err != nil {
			return nil, err
		}
		n.extra = []string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", // in the node's Dir
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-node-timeout", strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10),
			// The other shards keep serving while one has no primary.
			"--cluster-require-full-coverage", "no",
			// A replica takes over however long it was cut off: a test
			// that pauses a replica, then kills its primary, still gets
			// a failover.
			"--cluster-replica-validity-factor", "0",
			// Replicas sync at once, not after the default 5 s wait for more.
			"--repl-diskless-sync-delay", "0",
		}
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

// findBinary looks for name on PATH, then in /usr/bin (which some minimal
// environments leave off PATH); pkg is the Debian package providing it.
func findBinary(name, pkg string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	fallback := "/usr/bin/" + name
	if st, err := os.Stat(fallback); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return fallback, nil
	}
	return "", &MissingBinaryError{Binary: name, Package: pkg}
}

// create joins the running nodes into a cluster with redis-cli.
func (c *Cluster) create(ctx context.Context) error {
	cli, err := findBinary("redis-cli", "redis-tools")
	if err != nil {
		return err
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(c.opts.Replicas), "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput() // #nosec G204 -- redis-cli found on this machine, arguments built here
	if err != nil {
		return fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	return nil
}

// Addrs returns every node's address ("127.0.0.1:port"), node 0 first.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// URL returns the cluster's connection URL in the form store.OpenLikes
// reads: "redis+cluster://first?addr=second&addr=...".
func (c *Cluster) URL() string {
	addrs := c.Addrs()
	q := url.Values{"addr": addrs[1:]}
	return "redis+cluster://" + addrs[0] + "?" + q.Encode()
}

// Len returns the number of nodes.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node returns node i (0 ≤ i < Len) to stop, kill or start it on its own.
func (c *Cluster) Node(i int) *Redis { return c.nodes[i] }

// Kill ends node i with SIGKILL (a crash).
func (c *Cluster) Kill(i int) error { return c.nodes[i].Kill() }

// Restart stops node i gracefully and starts it again on the same ports.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	if err := c.nodes[i].Stop(); err != nil {
		return err
	}
	return c.nodes[i].Start(ctx)
}

// Stop stops every node. It is idempotent.
func (c *Cluster) Stop() error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.Stop())
	}
	return errors.Join(errs...)
}

// Index returns the index of the node listening on addr, or -1.
func (c *Cluster) Index(addr string) int {
	for i, n := range c.nodes {
		if n.Addr() == addr {
			return i
		}
	}
	return -1
}

// PrimaryForSlot returns the index of the node serving slot as primary, as
// the first live node answering CLUSTER SHARDS sees it.
func (c *Cluster) PrimaryForSlot(ctx context.Context, slot int) (int, error) {
	shards, err := c.shards(ctx)
	if err != nil {
		return -1, err
	}
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if int(r.Start) <= slot && slot <= int(r.End) {
				for _, n := range sh.Nodes {
					if n.Role == "master" && live(n) {
						if i := c.Index(nodeAddr(n)); i >= 0 {
							return i, nil
						}
					}
				}
			}
		}
	}
	return -1, fmt.Errorf("no live primary serves slot %d", slot)
}

// ReplicasOf returns the indexes of the live replicas of primary node i.
func (c *Cluster) ReplicasOf(ctx context.Context, i int) ([]int, error) {
	shards, err := c.shards(ctx)
	if err != nil {
		return nil, err
	}
	want := c.nodes[i].Addr()
	for _, sh := range shards {
		var primary bool
		var reps []int
		for _, n := range sh.Nodes {
			switch {
			case nodeAddr(n) == want && n.Role == "master":
				primary = true
			case n.Role == "replica" && live(n):
				if j := c.Index(nodeAddr(n)); j >= 0 {
					reps = append(reps, j)
				}
			}
		}
		if primary {
			return reps, nil
		}
	}
	return nil, fmt.Errorf("node %d is not a primary", i)
}

// Primaries returns the indexes of the live primaries that serve slots.
func (c *Cluster) Primaries(ctx context.Context) ([]int, error) {
	shards, err := c.shards(ctx)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, sh := range shards {
		if len(sh.Slots) == 0 {
			continue
		}
		for _, n := range sh.Nodes {
			if n.Role == "master" && live(n) {
				if i := c.Index(nodeAddr(n)); i >= 0 {
					out = append(out, i)
				}
			}
		}
	}
	return out, nil
}

// live reports whether the cluster does not consider n failed. A replica
// whose replication offset has not yet reached the gossip shows as
// "loading" for a while although in sync (INFO replication tells).
func live(n redis.Node) bool { return n.Health != "fail" }

func nodeAddr(n redis.Node) string {
	return n.IP + ":" + strconv.FormatInt(n.Port, 10)
}

// shards asks the first live node for CLUSTER SHARDS.
func (c *Cluster) shards(ctx context.Context) ([]redis.ClusterShard, error) {
	var last error
	for _, n := range c.nodes {
		if !n.Running() {
			continue
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
		sh, err := cl.ClusterShards(ctx).Result()
		_ = cl.Close()
		if err == nil {
			return sh, nil
		}
		last = err
	}
	if last == nil {
		last = errors.New("no node running")
	}
	return nil, fmt.Errorf("cluster shards: %w", last)
}

// WaitHealthy waits until every running node reports cluster_state:ok and
// agrees on a primary for every slot, each such primary having all its
// replicas (counted among the running nodes) online and in sync. Call it
// after a kill or restart before measuring.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, clusterStartTimeout)
	defer cancel()
	var last error
	for {
		if last = c.healthy(ctx); last == nil {
			return nil
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("redis cluster not healthy: %w (last: %v)", ctx.Err(), last)
		case <-t.C:
		}
	}
}

func (c *Cluster) healthy(ctx context.Context) error {
	running := 0
	for i, n := range c.nodes {
		if !n.Running() {
			continue
		}
		running++
		cl := redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: 2 * time.Second})
		info, err := cl.ClusterInfo(ctx).Result()
		var repl string
		if err == nil {
			repl, err = cl.Info(ctx, "replication").Result()
		}
		_ = cl.Close()
		if err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
		if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
			return fmt.Errorf("node %d: cluster not ok", i)
		}
		if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
			return fmt.Errorf("node %d: replica link down", i)
		}
		if strings.Contains(repl, "role:slave") && strings.Contains(repl, "master_sync_in_progress:1") {
			return fmt.Errorf("node %d: replica syncing", i)
		}
		// The primary's own view: WAIT counts only replicas it sees online,
		// and a restarted replica's link is up on its side before it is.
		for _, line := range strings.Split(repl, "\r\n") {
			if strings.HasPrefix(line, "slave") && strings.Contains(line, "state=") && !strings.Contains(line, "state=online") {
				return fmt.Errorf("node %d: replica not online yet (%s)", i, line)
			}
		}
	}
	shards, err := c.shards(ctx)
	if err != nil {
		return err
	}
	online, covered := 0, 0
	for _, sh := range shards {
		for _, n := range sh.Nodes {
			if !live(n) {
				continue
			}
			online++
			// Every node here is a primary with slots or a replica of
			// one; right after the cluster forms (or a node rejoins),
			// a replica shows for a moment as a primary of its own,
			// without slots and without its primary's shard.
			if len(sh.Slots) == 0 {
				return fmt.Errorf("node %s: not yet a replica of a primary", nodeAddr(n))
			}
		}
		for _, r := range sh.Slots {
			covered += int(r.End-r.Start) + 1
		}
	}
	if covered != 16384 {
		return fmt.Errorf("%d of 16384 slots served", covered)
	}
	if online != running {
		return fmt.Errorf("%d of %d running nodes online", online, running)
	}
	return nil
}
