package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// kvTimeout bounds one KV call: fiber.Storage methods take no context.
const kvTimeout = time.Second

// KV is a small key-value store in Redis under a prefix. Its method set is
// fiber.Storage's, so Fiber middleware (CSRF tokens) can keep its state in
// the shop's Redis and every replica sees the same tokens.
//
// It reuses the shop's client and its fail-fast timeouts instead of opening
// a second pool, which is why Phoenix does not use gofiber/storage/redis.
type KV struct {
	rdb    *redis.Client
	prefix string
}

// NewKV returns a KV whose keys all start with prefix.
func NewKV(rdb *redis.Client, prefix string) *KV { return &KV{rdb: rdb, prefix: prefix} }

// Get returns the value of key, or nil when there is none.
func (s *KV) Get(key string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
	defer cancel()
	b, err := s.rdb.Get(ctx, s.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: kv get: %v", ErrUnavailable, err)
	}
	return b, nil
}

// Set stores val under key; a positive exp makes it expire.
func (s *KV) Set(key string, val []byte, exp time.Duration) error {
	if key == "" || len(val) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
	defer cancel()
	if err := s.rdb.Set(ctx, s.prefix+key, val, max(exp, 0)).Err(); err != nil {
		return fmt.Errorf("%w: kv set: %v", ErrUnavailable, err)
	}
	return nil
}

// Delete removes key.
func (s *KV) Delete(key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), kvTimeout)
	defer cancel()
	if err := s.rdb.Del(ctx, s.prefix+key).Err(); err != nil {
		return fmt.Errorf("%w: kv delete: %v", ErrUnavailable, err)
	}
	return nil
}

// Reset removes every key under the prefix.
func (s *KV) Reset() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*kvTimeout)
	defer cancel()
	iter := s.rdb.Scan(ctx, 0, s.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if err := s.rdb.Del(ctx, iter.Val()).Err(); err != nil {
			return fmt.Errorf("%w: kv reset: %v", ErrUnavailable, err)
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("%w: kv reset: %v", ErrUnavailable, err)
	}
	return nil
}

// Close does nothing: the client belongs to whoever made the KV.
func (s *KV) Close() error { return nil }
