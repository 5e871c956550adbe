// Package supervise starts and supervises private redis-server and
// PostgreSQL processes from the locally installed binaries. It backs
// `phoenix dev` and the test helpers, so that neither needs Docker nor
// shared system services.
//
// Every server is a child of the calling process: it binds 127.0.0.1 only,
// runs in its own process group and receives a signal when its parent dies,
// so it does not outlive the program that started it.
package supervise

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrMissingBinary is matched (with errors.Is) by the errors returned when a
// server binary is not installed. The error message names the Debian package
// that provides the binary.
var ErrMissingBinary = errors.New("server binary not installed")

// MissingBinaryError reports a server binary that is not installed and the
// Debian package that provides it. It matches ErrMissingBinary.
type MissingBinaryError struct {
	Binary  string // e.g. "redis-server"
	Package string // Debian package, e.g. "redis-server"
}

// Error returns the message with the install hint.
func (e *MissingBinaryError) Error() string {
	return fmt.Sprintf("%s not found: install the Debian package %q (apt-get install %s)", e.Binary, e.Package, e.Package)
}

// Is reports whether target is ErrMissingBinary.
func (e *MissingBinaryError) Is(target error) bool { return target == ErrMissingBinary }

const (
	// logTailBytes bounds how much of a server log is quoted in errors.
	logTailBytes = 4096
	// waitDelay bounds how long Wait keeps copying output after the server
	// exited; grandchildren may hold the output pipe open.
	waitDelay = 2 * time.Second
)

// FreePort asks the kernel for a free loopback port. The port is released
// before the server binds it, which is a small race that is accepted here:
// the server then fails to start and the error shows its log.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts asks the kernel for n distinct free loopback ports. Every port
// is held until all are chosen: ports picked one by one and released at once
// can repeat, and a cluster whose node's port is another's bus port fails to
// start. The race with other processes is FreePort's.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	held := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range held {
			_ = l.Close() // only probing; the port is what matters
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick free port: %w", err)
		}
		held = append(held, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// FreeAddrs is FreePorts as "127.0.0.1:port" addresses.
func FreeAddrs(n int) ([]string, error) {
	ports, err := FreePorts(n)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, n)
	for i, p := range ports {
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	return addrs, nil
}

// absDir returns dir made absolute; options names the settings struct for
// the error when dir is empty.
func absDir(dir, options string) (string, error) {
	if dir == "" {
		return "", errors.New(options + ".Dir is required")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("dir: %w", err)
	}
	return abs, nil
}

// checkPortFree returns an error naming port when something already listens
// on 127.0.0.1:port. Checking first gives a clear error instead of a server
// log tail, and keeps readiness probes from talking to a foreign server.
func checkPortFree(port int) error {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("port %d is busy: %w", port, err)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("port %d: %w", port, err)
	}
	return nil
}

// resolvePort returns port, or a free port when port is 0.
func resolvePort(port int) (int, error) {
	if port < 0 || port > 65535 {
		return 0, fmt.Errorf("invalid port %d", port)
	}
	if port == 0 {
		return FreePort()
	}
	return port, nil
}

// proc is one running server process. It is reaped by a goroutine started in
// startProc; done is closed once the process has exited and been reaped.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // result of cmd.Wait; read only after done is closed
}

// procSpec describes how to start a server process.
type procSpec struct {
	path     string
	args     []string
	dir      string              // working directory
	cred     *syscall.Credential // nil = run as the current user
	pdeath   syscall.Signal      // sent to the child when we die
	env      []string            // added to serverEnv
	logPath  string              // server output is appended here
	extraLog io.Writer           // optional copy of the server output
}

// startProc starts the process described by s and a goroutine reaping it.
func startProc(s procSpec) (*proc, error) {
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	cmd := exec.Command(s.path, s.args...) // #nosec G204 -- a server binary found on this machine, arguments built by this package
	cmd.Dir = s.dir
	cmd.Env = append(serverEnv(), s.env...)
	var out io.Writer = f
	if s.extraLog != nil {
		out = io.MultiWriter(f, s.extraLog)
	}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = waitDelay
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a Ctrl-C in the terminal goes to us only,
		// so we decide how the server shuts down, and kill can take the
		// whole group (server plus its forked workers) at once.
		Setpgid:    true,
		Pdeathsig:  s.pdeath,
		Credential: s.cred,
	}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("run %s: %w", s.path, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// serverEnv is the environment for server processes: ours, without the
// libpq variables (PGDATA, PGPORT, ...) that could override our settings.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// running holds a supervised program's process while it runs, under its
// lock: what Start, Stop and Kill of every kind of server share. startable
// and take expect mu held; stop, Kill and Running take it.
type running struct {
	mu sync.Mutex
	p  *proc // nil when not running
}

// startable fails when the process still runs, and forgets one that ended.
func (r *running) startable(what string) error {
	if r.p != nil && !r.p.exited() {
		return fmt.Errorf("start %s: already running", what)
	}
	r.p = nil
	return nil
}

// Kill ends the program with SIGKILL to its process group, as a crash or a
// power cut would (Redis loses its unsynced writes; PostgreSQL's next Start
// runs crash recovery), and waits until the group is gone (a postmaster's
// backends, an AOF rewrite child). It is a no-op when nothing runs.
func (r *running) Kill() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.take(); p != nil {
		p.kill()
		waitGroupGone(p.cmd.Process.Pid, 5*time.Second)
	}
	return nil
}

// stop ends the program gracefully with sig, then SIGKILL of its group
// after timeout. It is a no-op when nothing runs.
func (r *running) stop(sig syscall.Signal, timeout time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.take(); p != nil {
		p.stop(sig, timeout)
	}
}

// Running reports whether the program is alive.
func (r *running) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.p != nil && !r.p.exited()
}

// take returns the process (nil when none was started) and forgets it.
func (r *running) take() *proc {
	p := r.p
	r.p = nil
	return p
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes how the process ended; call only after done is closed.
func (p *proc) exitError() error {
	if p.err != nil {
		return p.err
	}
	return errors.New("exited with status 0")
}

// stop sends sig, waits up to timeout for the process to exit, then kills
// its whole process group and waits for the reaper.
func (p *proc) stop(sig syscall.Signal, timeout time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
	}
	p.kill()
}

// kill sends SIGKILL to the process group and waits until the leader has
// been reaped.
func (p *proc) kill() {
	if !p.exited() {
		// The group id equals the pid because of Setpgid.
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// waitGroupGone waits (bounded) until no live process of the group led by
// pid is left, so a restarted server does not meet leftovers of the old one
// (PostgreSQL refuses to start while old backends hold its shared memory).
// Callers treat the timeout as best effort.
func waitGroupGone(pid int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && groupAlive(pid) {
		time.Sleep(20 * time.Millisecond)
	}
}

// groupAlive reports whether process group pgid has a member that is not a
// zombie. Orphaned members are reparented to PID 1, which in some
// containers never reaps them; a plain kill(-pgid, 0) would then see the
// group as alive forever. /proc tells zombies apart.
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
	}
	want := strconv.Itoa(pgid)
	for _, e := range entries {
		if c := e.Name()[0]; c < '0' || c > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// Format: pid (comm) state ppid pgrp ...; comm may hold spaces.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 2 && f[2] == want && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// logSize returns the current size of the log file at path (0 if absent),
// so that errors can quote only what the failed run wrote.
func logSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// logTail returns the last lines written to the log file at path after
// offset from, for errors.
func logTail(path string, from int64) string {
	f, err := os.Open(path) // #nosec G304 -- the server log this package writes
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-logTailBytes, from, 0)
	if off >= st.Size() {
		return ""
	}
	buf := make([]byte, st.Size()-off)
	n, _ := f.ReadAt(buf, off)
	buf = bytes.TrimSpace(buf[:n])
	if off > from {
		// Drop the partial first line.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	return string(buf)
}

// withTail appends to err what the server wrote to the log at path after
// offset from.
func withTail(err error, path string, from int64) error {
	tail := logTail(path, from)
	if tail == "" {
		return err
	}
	return fmt.Errorf("%w\n--- server log (%s) ---\n%s", err, path, tail)
}

// withDefaultTimeout bounds ctx with d when it has no deadline, so that
// readiness polling always ends.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// pollUntil calls probe every interval until it succeeds, the process exits
// or ctx ends. It returns the last probe error on timeout.
func pollUntil(ctx context.Context, p *proc, probe func(context.Context) error) error {
	const interval = 50 * time.Millisecond
	var last error
	for {
		if last = probe(ctx); last == nil {
			return nil
		}
		t := time.NewTimer(interval)
		select {
		case <-p.done:
			t.Stop()
			return fmt.Errorf("server exited during startup: %w", p.exitError())
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("not ready: %w (last probe: %v)", ctx.Err(), last)
		case <-t.C:
		}
	}
}
