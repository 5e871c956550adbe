package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"phoenix/store"
	"phoenix/testkit"
)

func TestParseEvent(t *testing.T) {
	good := func() map[string]any {
		return map[string]any{"product": "brake-pads", "shopper": "0123456789abcdef0123456789abcdef", "action": "like", "at": "1700000000123", "likes": "1"}
	}
	with := func(k string, v any) map[string]any {
		m := good()
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		in      map[string]any
		wantErr string
	}{
		{"ok", good(), ""},
		{"unlike", with("action", "unlike"), ""},
		{"extra field ignored", with("via", "api"), ""},
		{"deleted entry", nil, "no fields"},
		{"missing product", with("product", nil), "missing field product"},
		{"bad product", with("product", "Brake Pads"), "bad product id"},
		{"missing shopper", with("shopper", nil), "missing field shopper"},
		{"empty shopper", with("shopper", ""), "bad shopper id"},
		{"shopper with NUL", with("shopper", "a\x00b"), "bad shopper id"},
		{"huge shopper", with("shopper", strings.Repeat("a", 129)), "bad shopper id"},
		{"bad action", with("action", "love"), "bad action"},
		{"time not a number", with("at", "yesterday"), "bad time"},
		{"negative time", with("at", "-1"), "bad time"},
		{"time beyond year 9999", with("at", "253402300800000"), "bad time"},
		{"field not a string", with("at", 5), "not a string"},
		{"unlike of the last like", func() map[string]any { m := with("action", "unlike"); m["likes"] = "0"; return m }(), ""},
		{"missing likes", with("likes", nil), "missing field likes"},
		{"negative likes", with("likes", "-1"), "bad likes"},
		{"like leaving none", with("likes", "0"), "bad likes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := store.ParseEvent("1700000000123-0", tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v", err)
				}
				if e.ID != "1700000000123-0" || e.ProductID != "brake-pads" || !e.At.Equal(time.UnixMilli(1700000000123)) {
					t.Errorf("got %+v", e)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// addEvents appends n valid events straight to the stream and returns their ids.
func addEvents(t testing.TB, rdb *redis.Client, s *store.Likes, n int) []string {
	t.Helper()
	ctx := context.Background()
	pipe := rdb.Pipeline()
	cmds := make([]*redis.StringCmd, n)
	for i := range cmds {
		cmds[i] = pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.StreamKey(), Values: []any{
			"product", "brake-pads", "shopper", "0123456789abcdef0123456789abcdef", "action", "like", "at", "1700000000000", "likes", "1",
		}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i, c := range cmds {
		ids[i] = c.Val()
	}
	return ids
}

// idAfter reports whether stream id a comes after b.
func idAfter(t *testing.T, a, b string) bool {
	t.Helper()
	parse := func(id string) (ms, seq int64) {
		if _, err := fmt.Sscanf(id, "%d-%d", &ms, &seq); err != nil {
			t.Fatalf("bad stream id %q", id)
		}
		return ms, seq
	}
	ams, aseq := parse(a)
	bms, bseq := parse(b)
	return ams > bms || (ams == bms && aseq > bseq)
}

func ids(b store.Batch) []string {
	var out []string
	for _, e := range b.Events {
		out = append(out, e.ID)
	}
	return out
}

func TestLikes_TrimAcked(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	s := store.NewLikes(rdb, prefix)
	all := addEvents(t, rdb, s, 1000)

	// first returns the oldest entry left in the stream.
	first := func() string {
		msgs, err := rdb.XRangeN(ctx, s.StreamKey(), "-", "+", 1).Result()
		if err != nil || len(msgs) == 0 {
			t.Fatalf("read stream: %v %v", msgs, err)
		}
		return msgs[0].ID
	}
	trim := func() store.Trimmed {
		got, err := s.TrimAcked(ctx, "mine")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	t.Run("no group", func(t *testing.T) {
		trim()
		if first() != all[0] {
			t.Errorf("trimmed a stream nobody has read")
		}
	})
	for _, g := range []string{"mine", "stale"} {
		if err := s.EnsureGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("delivered, not acknowledged", func(t *testing.T) {
		if _, err := s.ReadNew(ctx, "mine", "c", 600, 0); err != nil {
			t.Fatal(err)
		}
		trim()
		if first() != all[0] {
			t.Errorf("trimmed pending entries: stream starts at %s", first())
		}
	})
	t.Run("acknowledged part", func(t *testing.T) {
		if _, err := s.Ack(ctx, "mine", all[:300]); err != nil {
			t.Fatal(err)
		}
		got := trim()
		// Approximate trimming removes whole nodes (100 entries), never
		// past the oldest pending entry (all[300]).
		if first() == all[0] || got.Removed == 0 {
			t.Errorf("nothing trimmed (%+v)", got)
		}
		if idAfter(t, first(), all[300]) {
			t.Errorf("trimmed past the oldest pending entry: stream starts at %s", first())
		}
	})
	t.Run("other group reported, not waited for", func(t *testing.T) {
		if _, err := s.Ack(ctx, "mine", all[300:600]); err != nil {
			t.Fatal(err)
		}
		got := trim()
		if len(got.Others) != 1 || got.Others[0] != "stale" {
			t.Errorf("other groups %v, want [stale]", got.Others)
		}
		n, err := rdb.XLen(ctx, s.StreamKey()).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n < 400 || n > 500 {
			t.Errorf("stream holds %d entries, want the 400 undelivered and at most one node more", n)
		}
	})
}

func TestLikes_ClaimAndDeadLetter(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testkit.Redis(t)
	s := store.NewLikes(rdb, prefix)
	all := addEvents(t, rdb, s, 5)
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: s.StreamKey(), Values: []any{"product", "x"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureGroup(ctx, "g"); err != nil {
		t.Fatalf("second EnsureGroup: %v", err)
	}
	b, err := s.ReadNew(ctx, "g", "dead", 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 5 || len(b.Malformed) != 1 {
		t.Fatalf("read %d events and %d malformed, want 5 and 1", len(b.Events), len(b.Malformed))
	}

	t.Run("not idle long enough", func(t *testing.T) {
		b, _, err := s.Claim(ctx, "g", "live", time.Hour, "0-0", 10)
		if err != nil || b.Len() != 0 {
			t.Fatalf("claimed %d (%v), want none", b.Len(), err)
		}
	})
	t.Run("claimed", func(t *testing.T) {
		time.Sleep(20 * time.Millisecond) // become idle for longer than minIdle
		b, next, err := s.Claim(ctx, "g", "live", 10*time.Millisecond, "0-0", 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(b); len(got) != 5 || got[0] != all[0] || len(b.Malformed) != 1 || next != "0-0" {
			t.Fatalf("claimed %v, %d malformed, next %q", got, len(b.Malformed), next)
		}
		pending, err := s.ReadPending(ctx, "g", "live", "0", 10)
		if err != nil || pending.Len() != 6 {
			t.Fatalf("live has %d pending (%v), want 6", pending.Len(), err)
		}
	})
	t.Run("dead letter", func(t *testing.T) {
		if err := s.DeadLetter(ctx, "g", b.Malformed); err != nil {
			t.Fatal(err)
		}
		dead, err := rdb.XRange(ctx, s.DeadLetterKey(), "-", "+").Result()
		if err != nil || len(dead) != 1 {
			t.Fatalf("dead letters %v (%v), want 1", dead, err)
		}
		if v := dead[0].Values; v["id"] != b.Malformed[0].ID || !strings.Contains(v["error"].(string), "missing field") || v["fields"] != `{"product":"x"}` {
			t.Errorf("dead letter %v", v)
		}
		backlog, err := s.GroupBacklog(ctx, "g")
		if err != nil || backlog.Pending != 5 || backlog.Undelivered != 0 {
			t.Errorf("backlog %+v (%v), want the 5 events pending", backlog, err)
		}
	})
	t.Run("ack", func(t *testing.T) {
		if _, err := s.Ack(ctx, "g", ids(b)); err != nil {
			t.Fatal(err)
		}
		backlog, err := s.GroupBacklog(ctx, "g")
		if err != nil || backlog.Total() != 0 {
			t.Errorf("backlog %+v (%v), want none", backlog, err)
		}
	})
}
