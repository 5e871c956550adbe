package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

const (
	// processStopTimeout is how long Stop waits after SIGTERM: a phoenix
	// role finishes its requests and its batch well within it.
	processStopTimeout = 30 * time.Second
	// processStartTimeout bounds readiness when ctx has no deadline.
	processStartTimeout = time.Minute
)

// ProcessOptions configures StartProcess.
type ProcessOptions struct {
	// Name names the process in errors and its log file (Dir/Name.log).
	Name string
	// Path and Args are the program and its arguments.
	Path string
	Args []string
	// Env is added to this process's environment (without PG* variables).
	Env []string
	// Dir holds the log file; created when missing. Required.
	Dir string
	// Ready, when set, is polled after each start until it returns nil.
	Ready func(context.Context) error
	// Log receives a copy of the output; may be nil.
	Log io.Writer
}

// Process is a program supervised like the servers: its own process group,
// a signal when its parent dies, Stop, Kill and Start again with the same
// settings. Its methods are safe for concurrent use.
type Process struct {
	opts ProcessOptions

	running
}

// StartProcess starts the program described by o and waits until it is
// ready.
func StartProcess(ctx context.Context, o ProcessOptions) (*Process, error) {
	if o.Name == "" || o.Path == "" || o.Dir == "" {
		return nil, errors.New("start process: Name, Path and Dir are required")
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Name, err)
	}
	p := &Process{opts: o}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Name returns the process's name.
func (p *Process) Name() string { return p.opts.Name }

// LogPath returns the file that holds the process's output.
func (p *Process) LogPath() string { return filepath.Join(p.opts.Dir, p.opts.Name+".log") }

// Start starts the program again after Stop or Kill and waits until it is
// ready. It fails if the program is running.
func (p *Process) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.startable(p.opts.Name); err != nil {
		return err
	}
	logFrom := logSize(p.LogPath())
	child, err := startProc(procSpec{
		path: p.opts.Path, args: p.opts.Args, env: p.opts.Env, dir: p.opts.Dir,
		pdeath: syscall.SIGTERM, logPath: p.LogPath(), extraLog: p.opts.Log,
	})
	if err != nil {
		return fmt.Errorf("start %s: %w", p.opts.Name, err)
	}
	if p.opts.Ready != nil {
		ctx, cancel := withDefaultTimeout(ctx, processStartTimeout)
		defer cancel()
		if err := pollUntil(ctx, child, p.opts.Ready); err != nil {
			child.kill()
			return withTail(fmt.Errorf("start %s: %w", p.opts.Name, err), p.LogPath(), logFrom)
		}
	}
	p.p = child
	return nil
}

// Wait waits until the program exits by itself (a one-shot command) and
// returns its error, quoting its output on failure.
func (p *Process) Wait(ctx context.Context) error {
	p.mu.Lock()
	child := p.p
	p.mu.Unlock()
	if child == nil {
		return nil
	}
	select {
	case <-child.done:
	case <-ctx.Done():
		child.kill()
		return fmt.Errorf("%s: %w", p.opts.Name, ctx.Err())
	}
	if child.err != nil {
		return withTail(fmt.Errorf("%s: %w", p.opts.Name, child.err), p.LogPath(), 0)
	}
	return nil
}

// Stop ends the program gracefully: SIGTERM, then SIGKILL of its group after
// a timeout. It is idempotent.
func (p *Process) Stop() error {
	p.stop(syscall.SIGTERM, processStopTimeout)
	return nil
}

// Pid returns the process id, or 0 when not running.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.p == nil || p.p.exited() {
		return 0
	}
	return p.p.cmd.Process.Pid
}

// HTTPReady is a ProcessOptions.Ready probe: ready when a GET of each url
// answers 200 (a role's /readyz).
func HTTPReady(urls ...string) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		for _, u := range urls {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: status %d", u, resp.StatusCode)
			}
		}
		return nil
	}
}
