package store_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"phoenix/store"
	"phoenix/testkit"
)

// BenchmarkLikes_Set measures the shop's Like on the shared 3-primary
// cluster with one shard (a hash tag in the prefix: one primary takes every
// Like) and six, without and with replica durability. Besides ns/op it
// reports the CPU each Like costs: redis-cpu-µs/op summed over every node
// (replicas included: they apply the writes) from INFO cpu, and
// client-cpu-µs/op of this process (go-redis and the benchmark).
func BenchmarkLikes_Set(b *testing.B) {
	for _, shards := range []int{1, 6} {
		for _, d := range []store.Durability{store.DurabilityNone, store.DurabilityReplica} {
			b.Run(fmt.Sprintf("shards=%d/durability=%s", shards, d), func(b *testing.B) {
				ctx := context.Background()
				c, cl, prefix := testkit.Cluster(b)
				if shards == 1 {
					prefix = "{" + prefix + "}"
				}
				s, err := store.OpenLikes(ctx, c.URL(), prefix, store.LikesOptions{Shards: shards, Durability: d})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				var seq atomic.Int64
				redisBefore := clusterCPU(b, cl)
				clientBefore := processCPU()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						n := seq.Add(1)
						if _, err := s.Like(ctx, "shopper"+strconv.FormatInt(n%10000, 10), "p"+strconv.FormatInt(n%97, 10)); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				ops := float64(b.N)
				b.ReportMetric(float64((clusterCPU(b, cl)-redisBefore).Microseconds())/ops, "redis-cpu-µs/op")
				b.ReportMetric(float64((processCPU()-clientBefore).Microseconds())/ops, "client-cpu-µs/op")
			})
		}
	}
}

// clusterCPU sums used_cpu_sys and used_cpu_user over every node.
func clusterCPU(b *testing.B, cl *redis.ClusterClient) time.Duration {
	b.Helper()
	var mu sync.Mutex
	var total float64
	err := cl.ForEachShard(context.Background(), func(ctx context.Context, n *redis.Client) error {
		info, err := n.Info(ctx, "cpu").Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\r\n") {
			k, v, _ := strings.Cut(line, ":")
			if k == "used_cpu_sys" || k == "used_cpu_user" {
				f, _ := strconv.ParseFloat(v, 64)
				mu.Lock()
				total += f
				mu.Unlock()
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration(total * float64(time.Second))
}

// processCPU is this process's user plus system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
