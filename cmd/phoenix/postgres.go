package main

// postgresConfig is how a role reaches PostgreSQL.
type postgresConfig struct {
	url string
}

func (c *postgresConfig) register(f *flags) {
	f.String(&c.url, "database-url", "PHOENIX_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/phoenix?sslmode=disable", "PostgreSQL URL")
}

// checks reads c.url when they run, after the flags are parsed.
func (c *postgresConfig) checks() []func() error {
	return []func() error{func() error { return checkURL("PHOENIX_DATABASE_URL", c.url, "postgres", "postgresql")() }}
}
