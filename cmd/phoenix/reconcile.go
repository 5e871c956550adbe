package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"phoenix/store"
)

// reconcileConfig is the settings of phoenix reconcile.
type reconcileConfig struct {
	storesConfig
	dryRun  bool
	verbose bool
}

// runReconcile repairs every shard of Redis from PostgreSQL's record, as the
// worker does by itself when it notices lost writes, and prints what it
// changed. Likes on a shard answer busy (503, retried) while it is repaired.
func runReconcile(ctx context.Context, e *env, args []string) error {
	f := newFlags("reconcile", e)
	var c reconcileConfig
	c.storesConfig.register(f)
	f.BoolVar(&c.dryRun, "dry-run", false, "only report what differs; change nothing (Likes taken meanwhile may show as differences)")
	f.BoolVar(&c.verbose, "v", false, "list the shoppers and products changed")
	likes, stats, closeStores, err := c.open(ctx, f, args)
	if err != nil {
		return err
	}
	defer closeStores()
	var errs []error
	for shard := range likes.Shards() {
		r, err := store.RepairShard(ctx, likes, stats, c.group, shard, "phoenix reconcile", "reconcile", c.dryRun)
		if err != nil {
			errs = append(errs, fmt.Errorf("shard %d: %w", shard, err))
			fmt.Fprintf(e.stdout, "shard %d: not repaired: %v\n", shard, err)
			continue
		}
		printRepair(e.stdout, r, c.dryRun, c.verbose)
	}
	return errors.Join(errs...)
}

// printRepair writes one shard's line: what was (or would be) changed.
func printRepair(w io.Writer, r store.Repair, dry, verbose bool) {
	if dry {
		fmt.Fprintf(w, "shard %d: %d shoppers differ, %d products differ (dry run: nothing changed)\n",
			r.Shard, len(r.ShoppersFixed), len(r.ProductsRecounted))
	} else {
		fmt.Fprintf(w, "shard %d: %d shoppers fixed, %d products recounted, %d waiting events applied first\n",
			r.Shard, len(r.ShoppersFixed), len(r.ProductsRecounted), r.Drained)
	}
	if verbose {
		if len(r.ShoppersFixed) > 0 {
			fmt.Fprintf(w, "  shoppers: %s\n", strings.Join(r.ShoppersFixed, " "))
		}
		if len(r.ProductsRecounted) > 0 {
			fmt.Fprintf(w, "  products: %s\n", strings.Join(r.ProductsRecounted, " "))
		}
	}
}
