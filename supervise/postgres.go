package supervise

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lib/pq"
)

const (
	// postgresUser is the superuser created by initdb and used in URLs.
	postgresUser = "postgres"
	// postgresStopTimeout is how long Stop waits after a fast shutdown
	// request before escalating.
	postgresStopTimeout = 30 * time.Second
	// postgresStartTimeout bounds startup (including crash recovery) when
	// ctx has no deadline.
	postgresStartTimeout = 60 * time.Second
)

// PostgresOptions configures StartPostgres.
type PostgresOptions struct {
	// Dir holds the cluster: Dir/data (the data folder), Dir/password (the
	// generated superuser password) and Dir/postgres.log. The cluster is
	// created on first use and kept between runs. Required. When running as
	// root, Dir is chowned to the "postgres" system user.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free port once, which
	// Start then reuses.
	Port int
	// Log receives a copy of the server output; may be nil. The output is
	// always appended to Dir/postgres.log as well.
	Log io.Writer
	// Fast turns off fsync, synchronous_commit and full_page_writes: much
	// faster, but a crash may corrupt the cluster. For throwaway unit test
	// clusters only; never for fault tests that check durability.
	Fast bool
	// Settings are more server settings, "name=value", set after the
	// defaults (for example the memory of a server sized for its machine).
	Settings []string
}

// Postgres is a private PostgreSQL server process. Its methods are safe for
// concurrent use.
type Postgres struct {
	binDir   string
	opts     PostgresOptions // Dir absolute, Port resolved
	cred     *syscall.Credential
	password string

	running
}

// StartPostgres creates a cluster in o.Dir unless one exists, starts the
// server and waits until it accepts connections.
func StartPostgres(ctx context.Context, o PostgresOptions) (*Postgres, error) {
	p, err := newPostgres(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func newPostgres(ctx context.Context, o PostgresOptions) (*Postgres, error) {
	binDir, err := findPostgres()
	if err != nil {
		return nil, err
	}
	dir, err := absDir(o.Dir, "PostgresOptions")
	if err != nil {
		return nil, err
	}
	o.Dir = dir
	if o.Port != 0 {
		// Fail before a possibly slow initdb.
		if err := checkPortFree(o.Port); err != nil {
			return nil, err
		}
	}
	if o.Port, err = resolvePort(o.Port); err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	p := &Postgres{binDir: binDir, opts: o, cred: cred}
	if err := p.prepareDir(); err != nil {
		return nil, err
	}
	if err := p.initCluster(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// findPostgres returns the folder holding postgres and initdb: the one on
// PATH if any, else the newest /usr/lib/postgresql/*/bin (Debian keeps the
// server binaries off PATH).
func findPostgres() (string, error) {
	if p, err := exec.LookPath("postgres"); err == nil {
		dir := filepath.Dir(p)
		if isExecutable(filepath.Join(dir, "initdb")) {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVer := "", -1.0
	for _, m := range matches {
		if !isExecutable(filepath.Join(m, "postgres")) || !isExecutable(filepath.Join(m, "initdb")) {
			continue
		}
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(m)), 64)
		if err != nil {
			continue
		}
		if v > bestVer {
			best, bestVer = m, v
		}
	}
	if best == "" {
		return "", &MissingBinaryError{Binary: "postgres", Package: "postgresql"}
	}
	return best, nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// serverCredential returns the identity to run PostgreSQL as: nil (ourselves)
// unless we are root, which PostgreSQL refuses; then the "postgres" user.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("postgres refuses to run as root and the \"postgres\" system user is missing (install the Debian package \"postgresql\" or run as another user): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user id %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres group id %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func (p *Postgres) dataDir() string      { return filepath.Join(p.opts.Dir, "data") }
func (p *Postgres) passwordPath() string { return filepath.Join(p.opts.Dir, "password") }
func (p *Postgres) logPath() string      { return filepath.Join(p.opts.Dir, "postgres.log") }

// Dir returns the absolute folder holding the cluster.
func (p *Postgres) Dir() string { return p.opts.Dir }

// Port returns the TCP port the server listens on.
func (p *Postgres) Port() int { return p.opts.Port }

// Password returns the superuser password (user "postgres").
func (p *Postgres) Password() string { return p.password }

// prepareDir creates Dir and, when the server runs as another user, hands
// Dir to that user and makes sure it can reach Dir.
func (p *Postgres) prepareDir() error {
	if err := os.MkdirAll(p.opts.Dir, 0o700); err != nil {
		return fmt.Errorf("create dir: %w", err)
	}
	if p.cred == nil {
		return nil
	}
	if err := os.Chown(p.opts.Dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
		return fmt.Errorf("chown dir to postgres: %w", err)
	}
	return ensureTraversable(filepath.Dir(p.opts.Dir), p.cred)
}

// ensureTraversable adds the others-execute bit to every ancestor folder of
// dir (inclusive) that the server user could not pass through otherwise.
// Execute without read lets it reach its own folder without listing ours.
func ensureTraversable(dir string, cred *syscall.Credential) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		mode := st.Mode().Perm()
		ok := mode&0o001 != 0
		if sys, isSys := st.Sys().(*syscall.Stat_t); isSys {
			ok = ok || (sys.Uid == cred.Uid && mode&0o100 != 0) || (sys.Gid == cred.Gid && mode&0o010 != 0)
		}
		if !ok {
			if err := os.Chmod(d, st.Mode()|0o001); err != nil {
				return fmt.Errorf("make %s traversable for postgres: %w", d, err)
			}
		}
		if parent := filepath.Dir(d); parent == d {
			return nil
		}
	}
}

// initCluster loads the password, generating it and running initdb when
// Dir has no cluster yet.
func (p *Postgres) initCluster(ctx context.Context) error {
	pw, err := os.ReadFile(p.passwordPath())
	switch {
	case err == nil:
		p.password = strings.TrimSpace(string(pw))
	case errors.Is(err, fs.ErrNotExist):
		if _, statErr := os.Stat(filepath.Join(p.dataDir(), "PG_VERSION")); statErr == nil {
			return fmt.Errorf("cluster in %s has no password file %s: remove the folder to recreate it", p.dataDir(), p.passwordPath())
		}
		if p.password, err = p.writePassword(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("read password: %w", err)
	}
	if p.password == "" {
		return fmt.Errorf("password file %s is empty", p.passwordPath())
	}
	if _, err := os.Stat(filepath.Join(p.dataDir(), "PG_VERSION")); err == nil {
		return nil
	}
	args := []string{
		"-D", p.dataDir(),
		"-U", postgresUser,
		"--pwfile=" + p.passwordPath(),
		"--auth=scram-sha-256",
		"--encoding=UTF8",
		"--locale=C",
	}
	if p.opts.Fast {
		args = append(args, "--no-sync")
	}
	logFrom := logSize(p.logPath())
	cmd := exec.CommandContext(ctx, filepath.Join(p.binDir, "initdb"), args...) // #nosec G204 -- the installed initdb with arguments built here, no user input
	cmd.Dir = p.opts.Dir
	cmd.Env = serverEnv()
	f, err := os.OpenFile(p.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	defer f.Close()
	var out io.Writer = f
	if p.opts.Log != nil {
		out = io.MultiWriter(f, p.opts.Log)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: p.cred}
	if err := cmd.Run(); err != nil {
		return withTail(fmt.Errorf("initdb: %w", err), p.logPath(), logFrom)
	}
	return nil
}

// writePassword generates a random password and stores it in Dir, readable
// only by the server user (initdb reads it via --pwfile).
func (p *Postgres) writePassword() (string, error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	pw := hex.EncodeToString(b)
	path := p.passwordPath()
	if err := os.WriteFile(path, []byte(pw+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write password: %w", err)
	}
	if p.cred != nil {
		if err := os.Chown(path, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return "", fmt.Errorf("chown password file: %w", err)
		}
	}
	return pw, nil
}

// URL returns the connection URL of database as the superuser:
// postgres://postgres:password@127.0.0.1:port/database?sslmode=disable.
func (p *Postgres) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(postgresUser, p.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(p.opts.Port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Start starts the server again on the same port and folder after Stop or
// Kill, and waits until it accepts connections (after crash recovery if
// needed). It fails if the server is running.
func (p *Postgres) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.startable("postgres"); err != nil {
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx, postgresStartTimeout)
	defer cancel()
	for {
		logFrom := logSize(p.logPath())
		err := p.startOnce(ctx, logFrom)
		if err == nil || !p.retryable(ctx, logFrom) {
			return err
		}
		// Backends of a killed server may still hold the old shared memory
		// for a moment; the postmaster refuses to start until they are gone.
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// retryable reports whether the last start failed because leftovers of a
// killed server were still around, which clears up by itself.
func (p *Postgres) retryable(ctx context.Context, logFrom int64) bool {
	if ctx.Err() != nil {
		return false
	}
	tail := logTail(p.logPath(), logFrom)
	i := strings.LastIndex(tail, "FATAL:")
	if i < 0 {
		return false
	}
	// Not "lock file already exists": that means a live postmaster (say,
	// another phoenix dev) owns the folder, which waiting will not fix.
	return strings.Contains(tail[i:], "pre-existing shared memory block")
}

func (p *Postgres) startOnce(ctx context.Context, logFrom int64) error {
	if err := checkPortFree(p.opts.Port); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	args := []string{
		"-D", p.dataDir(),
		"-p", strconv.Itoa(p.opts.Port),
		"-c", "listen_addresses=127.0.0.1",
		// TCP only: no socket files in /var/run/postgresql, which may be
		// missing or owned by the system cluster.
		"-c", "unix_socket_directories=",
		"-c", "max_connections=200",
		// Output goes to our log file; the collector would write elsewhere.
		"-c", "logging_collector=off",
	}
	if p.opts.Fast {
		args = append(args,
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
		)
	} else {
		// Explicit, so a postgresql.conf edited by hand cannot weaken
		// durability that fault tests rely on.
		args = append(args, "-c", "fsync=on")
	}
	for _, s := range p.opts.Settings {
		args = append(args, "-c", s)
	}
	proc, err := startProc(procSpec{
		path:     filepath.Join(p.binDir, "postgres"),
		args:     args,
		dir:      p.opts.Dir,
		cred:     p.cred,
		pdeath:   syscall.SIGINT, // fast shutdown when we die
		logPath:  p.logPath(),
		extraLog: p.opts.Log,
	})
	if err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	if err := pollUntil(ctx, proc, p.ping); err != nil {
		proc.kill()
		waitGroupGone(proc.cmd.Process.Pid, 5*time.Second)
		return withTail(fmt.Errorf("start postgres on port %d: %w", p.opts.Port, err), p.logPath(), logFrom)
	}
	p.p = proc
	return nil
}

// ping runs SELECT 1 on the postgres database.
func (p *Postgres) ping(ctx context.Context) error {
	db, err := sql.Open("postgres", p.URL("postgres")+"&connect_timeout=2")
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var one int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// CreateDatabase creates database name unless it exists.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) error {
	err := p.admin(ctx, func(db *sql.DB) error {
		var exists bool
		if err := db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		_, err := db.ExecContext(ctx, "CREATE DATABASE "+pq.QuoteIdentifier(name))
		var pqErr *pq.Error
		if errors.As(err, &pqErr) && pqErr.Code == "42P04" {
			// duplicate_database: a concurrent caller won the race.
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// DropDatabase drops database name if it exists, terminating its
// connections first (DROP DATABASE ... WITH (FORCE)).
func (p *Postgres) DropDatabase(ctx context.Context, name string) error {
	err := p.admin(ctx, func(db *sql.DB) error {
		_, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pq.QuoteIdentifier(name)+" WITH (FORCE)")
		return err
	})
	if err != nil {
		return fmt.Errorf("drop database %q: %w", name, err)
	}
	return nil
}

// admin runs fn with a short-lived connection to the postgres database.
func (p *Postgres) admin(ctx context.Context, fn func(*sql.DB) error) error {
	db, err := sql.Open("postgres", p.URL("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	return fn(db)
}

// Stop shuts the server down with a fast shutdown (SIGINT: running
// transactions are rolled back, everything committed is on disk) and waits
// for it; it escalates to an immediate shutdown and then SIGKILL if the
// server does not stop in time. It is idempotent.
func (p *Postgres) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	proc := p.take()
	if proc == nil || proc.exited() {
		return nil
	}
	_ = proc.cmd.Process.Signal(syscall.SIGINT)
	t := time.NewTimer(postgresStopTimeout)
	defer t.Stop()
	select {
	case <-proc.done:
		return nil
	case <-t.C:
	}
	proc.stop(syscall.SIGQUIT, 5*time.Second)
	waitGroupGone(proc.cmd.Process.Pid, 5*time.Second)
	return fmt.Errorf("stop postgres: no clean shutdown within %s, killed", postgresStopTimeout)
}
