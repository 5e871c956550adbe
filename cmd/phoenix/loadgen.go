package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"phoenix/loadgen"
	"phoenix/store"
)

func runLoadgen(ctx context.Context, e *env, args []string) error {
	f := newFlags("loadgen", e)
	var (
		c       loadgen.Config
		catalog string
		jsonOut bool
	)
	f.String(&c.URL, "url", "PHOENIX_LOADGEN_URL", "http://127.0.0.1:8080", "shop base URL")
	f.Int(&c.Shoppers, "shoppers", "PHOENIX_LOADGEN_SHOPPERS", 50, "simulated shoppers, each with its own cookies")
	f.Int(&c.Rate, "rate", "PHOENIX_LOADGEN_RATE", 0, "requests per second in all (0: as fast as possible)")
	f.Duration(&c.Duration, "duration", "PHOENIX_LOADGEN_DURATION", 10*time.Second, "how long to run (0: until -count)")
	f.Int(&c.Count, "count", "PHOENIX_LOADGEN_COUNT", 0, "how many requests to send (0: until -duration)")
	f.Float64Var(&c.Browse, "browse", 0.1, "share of requests that are page views (0 to 1)")
	f.String(&catalog, "catalog", "PHOENIX_CATALOG", "", "catalog JSON file the shop uses (default: the embedded catalog)")
	f.Duration(&c.Timeout, "timeout", "PHOENIX_LOADGEN_TIMEOUT", 5*time.Second, "timeout of one request")
	f.BoolVar(&jsonOut, "json", false, "print the summary as JSON")
	err := f.parse(args,
		checkURL("PHOENIX_LOADGEN_URL", &c.URL, "http", "https"),
		checkPositive("PHOENIX_LOADGEN_SHOPPERS", &c.Shoppers),
		func() error {
			switch {
			case c.Rate < 0:
				return errors.New("PHOENIX_LOADGEN_RATE: must not be negative")
			case c.Browse < 0 || c.Browse > 1:
				return errors.New("-browse: must be between 0 and 1")
			case c.Duration == 0 && c.Count == 0:
				return errors.New("PHOENIX_LOADGEN_DURATION: set a duration or a count, or the load never stops")
			}
			return nil
		})
	if err != nil {
		return err
	}
	cat, err := store.LoadCatalog(catalog)
	if err != nil {
		return fmt.Errorf("PHOENIX_CATALOG: %w", err)
	}
	c.Products = cat.IDs()
	c.Progress = func(p loadgen.Progress) {
		fmt.Fprintf(e.stderr, "\r%6.1fs  %8d requests  %7.0f req/s  %6d errors", p.Elapsed.Seconds(), p.Requests, p.Rate, p.Errors)
	}
	sum := loadgen.Run(ctx, c)
	fmt.Fprintln(e.stderr)
	if jsonOut {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	sum.Print(e.stdout)
	return nil
}
