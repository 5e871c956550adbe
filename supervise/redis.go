package supervise

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// redisStopTimeout is how long Stop waits for redis-server to flush and
	// exit after SIGTERM before killing it.
	redisStopTimeout = 10 * time.Second
	// redisStartTimeout bounds readiness when ctx has no deadline.
	redisStartTimeout = 30 * time.Second
)

// RedisOptions configures StartRedis.
type RedisOptions struct {
	// Dir holds the server's files (append-only files, redis.log). It is
	// created when missing. Required.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free port once, which
	// Start then reuses.
	Port int
	// AppendOnly enables the append-only file, so data survives Stop/Start
	// and, up to the last fsync, Kill.
	AppendOnly bool
	// AppendFsync is the append-only file's fsync policy: "everysec" (the
	// default when empty), "always" or "no".
	AppendFsync string
	// Log receives a copy of the server output; may be nil. The output is
	// always appended to Dir/redis.log as well.
	Log io.Writer
}

// Redis is a private redis-server process. Its methods are safe for
// concurrent use. No password is set: the server binds 127.0.0.1 only and
// runs with protected mode on.
type Redis struct {
	bin   string
	opts  RedisOptions // Dir absolute, Port resolved
	extra []string     // further server arguments (cluster mode)

	running
}

// StartRedis starts redis-server as described by o and waits until it
// answers PING.
func StartRedis(ctx context.Context, o RedisOptions) (*Redis, error) {
	r, err := newRedis(o)
	if err != nil {
		return nil, fmt.Errorf("start redis: %w", err)
	}
	if err := r.Start(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func newRedis(o RedisOptions) (*Redis, error) {
	bin, err := findBinary("redis-server", "redis-server")
	if err != nil {
		return nil, err
	}
	dir, err := absDir(o.Dir, "RedisOptions")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create dir: %w", err)
	}
	o.Dir = dir
	if o.Port, err = resolvePort(o.Port); err != nil {
		return nil, err
	}
	switch o.AppendFsync {
	case "":
		o.AppendFsync = "everysec"
	case "everysec", "always", "no":
	default:
		return nil, fmt.Errorf("AppendFsync %q: want everysec, always or no", o.AppendFsync)
	}
	return &Redis{bin: bin, opts: o}, nil
}

// Addr returns the server address, "127.0.0.1:port".
func (r *Redis) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.opts.Port))
}

// URL returns the connection URL for database 0, "redis://127.0.0.1:port/0".
func (r *Redis) URL() string {
	return "redis://" + r.Addr() + "/0"
}

// Port returns the TCP port the server listens on.
func (r *Redis) Port() int { return r.opts.Port }

// Dir returns the absolute folder holding the server's files.
func (r *Redis) Dir() string { return r.opts.Dir }

func (r *Redis) logPath() string { return filepath.Join(r.opts.Dir, "redis.log") }

// Start starts the server again on the same port and folder after Stop or
// Kill, and waits until it answers PING. It fails if the server is running.
func (r *Redis) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.startable("redis"); err != nil {
		return err
	}
	if err := checkPortFree(r.opts.Port); err != nil {
		return fmt.Errorf("start redis: %w", err)
	}
	appendOnly := "no"
	if r.opts.AppendOnly {
		appendOnly = "yes"
	}
	args := []string{
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(r.opts.Port),
		"--dir", r.opts.Dir,
		// No RDB snapshots: durability, when wanted, comes from the AOF.
		"--save", "",
		"--appendonly", appendOnly,
		"--appendfsync", r.opts.AppendFsync,
		"--protected-mode", "yes",
		"--daemonize", "no",
	}
	args = append(args, r.extra...)
	logFrom := logSize(r.logPath())
	p, err := startProc(procSpec{
		path:     r.bin,
		args:     args,
		dir:      r.opts.Dir,
		pdeath:   syscall.SIGTERM,
		logPath:  r.logPath(),
		extraLog: r.opts.Log,
	})
	if err != nil {
		return fmt.Errorf("start redis: %w", err)
	}
	ctx, cancel := withDefaultTimeout(ctx, redisStartTimeout)
	defer cancel()
	if err := pollUntil(ctx, p, r.ping); err != nil {
		p.kill()
		return withTail(fmt.Errorf("start redis on port %d: %w", r.opts.Port, err), r.logPath(), logFrom)
	}
	r.p = p
	return nil
}

// ping sends an inline PING and expects +PONG; a server still loading its
// AOF answers -LOADING, which counts as not ready.
func (r *Redis) ping(ctx context.Context) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", r.Addr())
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("unexpected reply %q", strings.TrimSpace(line))
	}
	return nil
}

// Stop shuts the server down gracefully: SIGTERM (which makes redis-server
// flush the AOF), then SIGKILL after a timeout. It is idempotent.
func (r *Redis) Stop() error {
	r.stop(syscall.SIGTERM, redisStopTimeout)
	return nil
}
