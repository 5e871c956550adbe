package loadgen

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"
)

func TestLatencies_Pct(t *testing.T) {
	var l Latencies
	for i := 1; i <= 100; i++ {
		l.Add(time.Duration(i)*time.Millisecond, nil)
	}
	l.Add(0, errors.New("refused"))
	for _, tt := range []struct {
		name string
		in   float64
		want time.Duration
	}{
		{"median", 50, 50 * time.Millisecond},
		{"p99", 99, 99 * time.Millisecond},
		{"max", 100, 100 * time.Millisecond},
		{"min", 0, time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := l.Pct(tt.in); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if l.Len() != 100 || l.Errors() != 1 {
		t.Errorf("got %d latencies and %d errors, want 100 and 1", l.Len(), l.Errors())
	}
}

func TestSchedule(t *testing.T) {
	t.Run("count at a rate", func(t *testing.T) {
		var got []Ticket
		for tk := range Schedule(context.Background(), 200, 10, 0) {
			got = append(got, tk)
		}
		if len(got) != 10 {
			t.Fatalf("got %d tickets, want 10", len(got))
		}
		for i, tk := range got {
			if tk.N != i {
				t.Errorf("ticket %d numbered %d", i, tk.N)
			}
		}
		// Due times follow the rate, whatever the pace of the reader.
		if d := got[9].Due.Sub(got[0].Due); d != 45*time.Millisecond {
			t.Errorf("ten tickets at 200/s span %v, want 45ms", d)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		ch := Schedule(ctx, 0, 0, 0)
		<-ch
		cancel()
		for range ch { // closes once the context is done
		}
	})
}

func TestShopper_At(t *testing.T) {
	s := NewShopper("http://127.0.0.1:1", http.DefaultTransport, time.Second)
	s.Token = "token"
	u, _ := url.Parse("http://127.0.0.1:1/")
	s.Jar.SetCookies(u, []*http.Cookie{{Name: "phoenix_shopper", Value: "signed"}})
	o := s.At("http://127.0.0.1:2")
	if o.Base != "http://127.0.0.1:2" || s.Base != "http://127.0.0.1:1" {
		t.Fatalf("bases: %s and %s", o.Base, s.Base)
	}
	if o.Token != "token" || o.Cookie() != s.Cookie() || o.Cookie() == "" {
		t.Errorf("the shopper at the other shop lost its token or cookie: %q %q", o.Token, o.Cookie())
	}
}
