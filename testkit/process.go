package testkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"phoenix/supervise"
)

// phoenixBinary is the phoenix binary built for this test binary.
type phoenixBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Phoenix builds the phoenix command once per test binary (into a folder
// that Run removes) and returns its path, for fault tests that must kill a
// role with SIGKILL, which an in-process role cannot survive.
func Phoenix(tb testing.TB) string {
	tb.Helper()
	shared.mu.Lock()
	shared.requireRun(tb)
	shared.mu.Unlock()
	b := &shared.phoenix
	b.once.Do(func() {
		goBin, err := osexec.LookPath("go")
		if err != nil {
			b.err = fmt.Errorf("go tool not found to build phoenix: %w", err)
			return
		}
		if b.dir, b.err = os.MkdirTemp("", "testkit-bin-*"); b.err != nil {
			return
		}
		path := filepath.Join(b.dir, "phoenix")
		// By import path, so it builds from any package of the module.
		out, err := osexec.Command(goBin, "build", "-o", path, "phoenix/cmd/phoenix").CombinedOutput() // #nosec G204 -- the go tool building this module
		if err != nil {
			b.err = fmt.Errorf("build phoenix: %w\n%s", err, out)
			return
		}
		b.path = path
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}

// Process is a command running as a child process, its output kept for the
// test log.
type Process struct {
	Cmd  *osexec.Cmd
	logs *LogBuffer
	done chan error
}

// Start runs bin with args and the test process's environment plus env.
// Cleanup kills it if still running and prints its output when tb failed.
func Start(tb testing.TB, bin string, env []string, args ...string) *Process {
	tb.Helper()
	p := &Process{Cmd: osexec.Command(bin, args...), logs: &LogBuffer{}, done: make(chan error, 1)} // #nosec G204 -- the test's own phoenix binary
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.logs, p.logs
	if err := p.Cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { p.done <- p.Cmd.Wait() }()
	tb.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.done
		p.done <- nil // for a later Wait
		if tb.Failed() {
			tb.Logf("%s %v (pid %d) output:\n%s", filepath.Base(bin), args, p.Cmd.Process.Pid, p.logs)
		}
	})
	return p
}

// Wait waits up to timeout for the process to exit and returns its error.
func (p *Process) Wait(tb testing.TB, timeout time.Duration) error {
	tb.Helper()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		return err
	case <-time.After(timeout):
		tb.Fatalf("pid %d still running after %s", p.Cmd.Process.Pid, timeout)
		return nil
	}
}

// Kill9 kills the process with SIGKILL and fails tb unless it died of it.
func (p *Process) Kill9(tb testing.TB) {
	tb.Helper()
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		tb.Fatal(err)
	}
	var exit *osexec.ExitError
	if err := p.Wait(tb, 10*time.Second); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		tb.Fatalf("pid %d: got %v, want killed by SIGKILL", p.Cmd.Process.Pid, err)
	}
}

// Output returns what the process has written so far.
func (p *Process) Output() string { return p.logs.String() }

// Proxy starts Debian's nginx terminating TLS in front of the given shop
// and admin replicas ("127.0.0.1:port" each) until the test ends.
func Proxy(tb testing.TB, shops, admins []string) *supervise.Proxy {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	x, err := supervise.StartProxy(ctx, supervise.ProxyOptions{Dir: tb.TempDir(), Shops: shops, Admins: admins})
	if err != nil {
		failStart(tb, err)
	}
	tb.Cleanup(func() {
		if err := x.Stop(); err != nil {
			tb.Errorf("testkit: stop proxy: %v", err)
		}
	})
	return x
}
