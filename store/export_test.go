package store

import "github.com/jmoiron/sqlx"

// DB is the connection pool, for this package's tests to read and arrange
// the tables (other packages' tests use testkit.DB).
func (s *Stats) DB() *sqlx.DB { return s.db }
