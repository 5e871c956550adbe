package store_test

import (
	"context"
	"testing"
	"time"

	"phoenix/store"
	"phoenix/testkit"
)

func TestLogins(t *testing.T) {
	ctx := context.Background()
	l := store.NewLogins(testkit.Stats(t), store.LoginLimits{PerClient: 2, Overall: 3, Window: time.Second})
	fail := func(client string) store.LoginFailure {
		t.Helper()
		f, err := l.Fail(ctx, client)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	wait := func(client string) time.Duration {
		t.Helper()
		d, err := l.Check(ctx, client)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if got := fail("a"); got != (store.LoginFailure{Client: 1, Overall: 1}) {
		t.Errorf("first failure %+v", got)
	}
	if wait("a") != 0 {
		t.Error("refused after one failure of two allowed")
	}
	fail("a")
	if d := wait("a"); d <= 0 || d > time.Second {
		t.Errorf("after two failures: wait %v, want up to the window", d)
	}
	if wait("b") != 0 {
		t.Error("another client refused")
	}
	if got := fail("b"); got != (store.LoginFailure{Client: 1, Overall: 3}) {
		t.Errorf("third failure overall %+v, want no alert yet", got)
	}
	if got := fail("c"); !got.Alert || got.Overall != 4 {
		t.Errorf("fourth failure overall %+v, want the alert", got)
	}
	if got := fail("d"); got.Alert {
		t.Errorf("fifth failure %+v: alerted twice in one window", got)
	}
	t.Run("window ends", func(t *testing.T) {
		deadline := time.Now().Add(5 * time.Second)
		for wait("a") != 0 {
			if time.Now().After(deadline) {
				t.Fatal("still refused after the window")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if got := fail("a"); got.Client != 1 {
			t.Errorf("first failure of a new window counted %+v", got)
		}
	})
	if _, err := l.Fail(ctx, "*"); err == nil {
		t.Error(`"*" accepted as a client`)
	}
}
