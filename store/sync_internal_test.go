package store

import (
	"reflect"
	"testing"
	"time"
)

func TestMinuteOf(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	tests := []struct {
		name string
		in   time.Time
		want time.Time
	}{
		{"start of minute", time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC), time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC)},
		{"end of minute", time.Date(2025, 1, 2, 3, 4, 59, 999e6, time.UTC), time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC)},
		{"other zone", time.Date(2025, 1, 2, 4, 4, 30, 0, berlin), time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := minuteOf(tt.in); !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAggregate(t *testing.T) {
	m0 := time.Date(2025, 1, 2, 3, 4, 0, 0, time.UTC)
	m1 := m0.Add(time.Minute)
	ev := func(product, shopper string, a Action, at time.Time, shopperLikes int64) Event {
		return Event{ProductID: product, ShopperID: shopper, Action: a, At: at, ShopperLikes: shopperLikes}
	}
	tests := []struct {
		name string
		in   []Event
		want deltas
	}{
		{"none", nil, deltas{}},
		{
			"like and unlike by one shopper cancel out",
			[]Event{ev("pads", "s1", ActionLike, m0, 1), ev("pads", "s1", ActionUnlike, m0.Add(time.Second), 0)},
			deltas{
				products: []productDelta{{product: "pads", likes: 0, likeEvents: 1, unlikeEvents: 1}},
				buckets:  []bucketDelta{{product: "pads", minute: m0, likes: 1, unlikes: 1}},
				events:   2,
			},
		},
		{
			"sorted by key, buckets per minute",
			[]Event{
				ev("tyre", "s2", ActionLike, m1.Add(5*time.Second), 2),
				ev("pads", "s2", ActionLike, m1, 1),
				ev("pads", "s1", ActionLike, m0.Add(59*time.Second), 1),
				ev("pads", "s3", ActionUnlike, m0, 0),
			},
			deltas{
				products: []productDelta{{product: "pads", likes: 1, likeEvents: 2, unlikeEvents: 1}, {product: "tyre", likes: 1, likeEvents: 1}},
				buckets: []bucketDelta{
					{product: "pads", minute: m0, likes: 1, unlikes: 1},
					{product: "pads", minute: m1, likes: 1},
					{product: "tyre", minute: m1, likes: 1},
				},
				shoppers: 1, // s1 and s2 started liking, s3 stopped
				likes:    2,
				events:   4,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := aggregate(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
