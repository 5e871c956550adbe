package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// flags is a flag set whose flags fall back to environment variables: the
// environment sets the default, the command line overrides it.
type flags struct {
	*flag.FlagSet
	e    *env
	vars [][2]string // flag name, environment variable
}

func newFlags(name string, e *env) *flags {
	fs := flag.NewFlagSet("phoenix "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return &flags{FlagSet: fs, e: e}
}

func (f *flags) bind(name, envName string) string {
	f.vars = append(f.vars, [2]string{name, envName})
	return " (" + envName + ")"
}

func (f *flags) String(p *string, name, envName, def, usage string) {
	f.StringVar(p, name, def, usage+f.bind(name, envName))
}

func (f *flags) Bool(p *bool, name, envName string, def bool, usage string) {
	f.BoolVar(p, name, def, usage+f.bind(name, envName))
}

func (f *flags) Int(p *int, name, envName string, def int, usage string) {
	f.IntVar(p, name, def, usage+f.bind(name, envName))
}

func (f *flags) Duration(p *time.Duration, name, envName string, def time.Duration, usage string) {
	f.DurationVar(p, name, def, usage+f.bind(name, envName))
}

// parse applies the environment, then args, then each check in order, so
// that the first bad setting stops start-up with one line naming it.
func (f *flags) parse(args []string, checks ...func() error) error {
	for _, v := range f.vars {
		if val := f.e.getenv(v[1]); val != "" {
			if err := f.Set(v[0], val); err != nil {
				return fmt.Errorf("%s: %q is not a valid value for -%s", v[1], val, v[0])
			}
		}
	}
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.Arg(0))
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// logConfig decides how the process logs.
type logConfig struct {
	format, level string
}

func (c *logConfig) register(f *flags, defaultFormat string) {
	f.String(&c.format, "log-format", "PHOENIX_LOG_FORMAT", defaultFormat, "log format: json or text")
	f.String(&c.level, "log-level", "PHOENIX_LOG_LEVEL", "info", "log level: debug, info, warn or error")
}

func (c *logConfig) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.level)); err != nil {
		return nil, fmt.Errorf("PHOENIX_LOG_LEVEL: %q is not debug, info, warn or error", c.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("PHOENIX_LOG_FORMAT: %q is not json or text", c.format)
}

// checkAddr validates a listen address such as ":8080" or "127.0.0.1:0".
// Checks take pointers because they run after the flags are parsed.
func checkAddr(name string, p *string) func() error {
	return func() error {
		addr := *p
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("%s: %q is not host:port", name, addr)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%s: bad port in %q", name, addr)
		}
		if host != "" && host != "localhost" && net.ParseIP(host) == nil {
			return fmt.Errorf("%s: %q is not an IP address", name, host)
		}
		return nil
	}
}

// checkURL validates a server URL with one of the given schemes.
func checkURL(name string, p *string, schemes ...string) func() error {
	return func() error {
		raw := *p
		if raw == "" {
			return fmt.Errorf("%s: missing (for example %s://127.0.0.1/...)", name, schemes[0])
		}
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("%s: not a URL", name)
		}
		for _, s := range schemes {
			if u.Scheme == s && u.Host != "" {
				return nil
			}
		}
		return fmt.Errorf("%s: want a %s:// URL with a host", name, strings.Join(schemes, ":// or "))
	}
}

// checkPositive checks that a number is at least 1.
func checkPositive(name string, n *int) func() error {
	return func() error {
		if *n < 1 {
			return fmt.Errorf("%s: %d is not a positive number", name, *n)
		}
		return nil
	}
}

// instanceName names this process in page footers and logs.
func instanceName(e *env) string {
	if v := e.getenv("PHOENIX_INSTANCE"); v != "" {
		return v
	}
	host, err := os.Hostname()
	if err != nil {
		return "phoenix"
	}
	return host
}
