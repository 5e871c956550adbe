package loadgen

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Ticket is permission to send one request: the n-th of the run, due at
// Due. Latency counts from Due, so the wait of a backed-up shop is counted
// (no coordinated omission).
type Ticket struct {
	Due time.Time
	N   int
}

// Schedule hands out tickets at rate a second (0: as fast as they are
// taken) until count are out (0: no limit) or ctx is done; the channel
// closes then. An open loop: the pace does not follow the answers.
func Schedule(ctx context.Context, rate, count, buffer int) <-chan Ticket {
	ch := make(chan Ticket, buffer)
	go func() {
		defer close(ch)
		start := time.Now()
		for n := 0; count == 0 || n < count; n++ {
			due := time.Now()
			if rate > 0 {
				due = start.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
				if d := time.Until(due); d > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(d):
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case ch <- Ticket{Due: due, N: n}:
			}
		}
	}()
	return ch
}

// Latencies collects request latencies and failures; safe for concurrent use.
type Latencies struct {
	mu     sync.Mutex
	all    []time.Duration
	errors int
}

// Add records one request: its latency, or its failure.
func (l *Latencies) Add(d time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.errors++
		return
	}
	l.all = append(l.all, d)
}

// Len is how many requests succeeded.
func (l *Latencies) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

// Errors is how many requests failed.
func (l *Latencies) Errors() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errors
}

// Pct is the p-th percentile of the latencies (100: the maximum; 0 when
// none were recorded).
func (l *Latencies) Pct(p float64) time.Duration {
	l.mu.Lock()
	s := slices.Clone(l.all)
	l.mu.Unlock()
	if len(s) == 0 {
		return 0
	}
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p/100)]
}

// Ms is the p-th percentile in milliseconds.
func (l *Latencies) Ms(p float64) float64 {
	return float64(l.Pct(p).Microseconds()) / 1000
}
