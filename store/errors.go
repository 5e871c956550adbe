// Package store holds Phoenix's domain types and its two stores: Likes in
// Redis (the shop's) and Stats in PostgreSQL (the admin's).
package store

import "errors"

// Sentinel errors that handlers map to HTTP statuses.
var (
	// ErrNotFound means the product (or other thing) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable means a backing server could not be reached; nothing was saved.
	ErrUnavailable = errors.New("store unavailable")
	// ErrBusy means the event stream is over its bound (back-pressure):
	// nothing was saved; retry later.
	ErrBusy = errors.New("store busy")
	// ErrUnconfirmed means a Like was made on the primary but no replica
	// confirmed it in time (PHOENIX_LIKE_DURABILITY=replica): it may be
	// lost with the primary; retry (a Like is idempotent).
	ErrUnconfirmed = errors.New("not confirmed by a replica")
)
