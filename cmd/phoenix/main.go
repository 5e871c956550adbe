// Command phoenix runs the Phoenix Auto Parts Online Mall. One binary holds
// every role; the first argument picks it:
//
//	phoenix shop      the shop (catalog, Like buttons), Redis only
//	phoenix worker    moves Like events from Redis into PostgreSQL
//	phoenix migrate   applies the database migrations and exits
//	phoenix admin     the admin dashboard (login, live statistics), PostgreSQL only
//	phoenix all       every role in one process
//	phoenix dev       all, plus private Redis and PostgreSQL servers
//	phoenix audit     compares the Likes in Redis and PostgreSQL per product
//	phoenix reshard   moves a one-shard Redis dataset to N shards
//	phoenix reconcile repairs Redis from PostgreSQL's record
//
// Every flag falls back to a PHOENIX_* environment variable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.opentelemetry.io/otel/trace"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "phoenix:", err)
		os.Exit(1)
	}
}

// command is one subcommand: it parses its own flags and runs until ctx is done.
type command struct {
	name, summary string
	run           func(ctx context.Context, env *env, args []string) error
}

// env is what the outside world gives a command; tests supply their own.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	// started, when set, is told the address each server listens on.
	started func(role, addr string)
	// tracer, when set, is the roles' tracer provider instead of the one
	// the OTEL_* variables ask for (tests, with an in-memory exporter).
	tracer trace.TracerProvider
}

func commands() []command {
	return []command{
		{"shop", "serve the shop (catalog and Like buttons); needs Redis", runShop},
		{"worker", "move Like events from Redis into PostgreSQL; needs both", runWorker},
		{"migrate", "apply the database migrations and exit; needs PostgreSQL", runMigrate},
		{"admin", "serve the admin dashboard (login, live statistics, export); needs PostgreSQL", runAdmin},
		{"all", "run every role in one process", runAll},
		{"dev", "run every role with private Redis and PostgreSQL servers (zero configuration)", runDev},
		{"audit", "compare the Likes in Redis and PostgreSQL per product; non-zero exit on a mismatch", runAudit},
		{"reshard", "move a one-shard Redis dataset to -shards N in place (stop the shops and let the workers drain first)", runReshard},
		{"reconcile", "repair Redis from PostgreSQL's record (shopper sets, live counts) on every shard and print what changed", runReconcile},
		{"loadgen", "simulated shoppers against a running shop, with progress and a summary", runLoadgen},
		{"healthcheck", "ask this container's roles whether they are alive (for HEALTHCHECK)", runHealthcheck},
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runEnv(ctx, &env{getenv: getenv, stdout: stdout, stderr: stderr}, args)
}

func runEnv(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stderr)
		if len(args) == 0 {
			return errors.New("missing command")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, e, args[1:])
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		}
	}
	usage(e.stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: phoenix <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'phoenix <command> --help' for its flags. Every flag falls back to a PHOENIX_* environment variable.")
}
