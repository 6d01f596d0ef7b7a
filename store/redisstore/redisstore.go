// Package redisstore is a store.Store in Redis, through
// github.com/redis/go-redis/v9. It is the fastest shared backend; its
// durability is Redis's own: configure persistence (appendonly yes, with
// appendfsync everysec or always) and replication to match what losing
// the last writes would cost.
//
// A document is a hash at "<prefix>:<kind>:<key>" with the fields v (the
// version, in decimal) and d (the data). In the kind, '%' is written as
// "%25" and ':' as "%3A", so that the first ':' after the prefix ends the
// kind and no two (kind, key) pairs share a Redis key. Save and Delete
// are Lua scripts (EVALSHA, falling back to EVAL), which Redis runs
// atomically: the version check and the write cannot interleave with
// another client's.
package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/guildkit/guild/store"
)

// saveScript: KEYS[1] the document, ARGV[1] the expected version, ARGV[2]
// the new one, ARGV[3] the data. Returns "OK", or the stored version
// ("0": none) when it is not the expected one.
var saveScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then return v end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'd', ARGV[3])
return 'OK'
`)

// deleteScript: KEYS[1] the document, ARGV[1] the expected version.
// Returns 1 when deleted, 0 when the stored version is another one, -1
// when there is no document.
var deleteScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return -1 end
if v ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

var kindEscaper = strings.NewReplacer("%", "%25", ":", "%3A")

// Store is a store.Store in Redis. Its methods are safe for concurrent
// use.
type Store struct {
	client *redis.Client
	prefix string
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// New returns a store that keeps its documents in client under prefix.
// The caller keeps ownership of client: Close does not close it.
func New(client *redis.Client, prefix string) *Store {
	return &Store{client: client, prefix: prefix}
}

func (s *Store) redisKey(kind, key string) string {
	return s.prefix + ":" + kindEscaper.Replace(kind) + ":" + key
}

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// Load implements store.Store.
func (s *Store) Load(ctx context.Context, kind, key string) ([]byte, uint64, error) {
	if err := s.check(ctx); err != nil {
		return nil, 0, err
	}
	vals, err := s.client.HMGet(ctx, s.redisKey(kind, key), "v", "d").Result()
	if err != nil {
		return nil, 0, fmt.Errorf("redisstore: load %q/%q: %w", kind, key, err)
	}
	vs, ok := vals[0].(string)
	if !ok {
		return nil, 0, fmt.Errorf("redisstore: load %q/%q: %w", kind, key, store.ErrNotFound)
	}
	ver, err := strconv.ParseUint(vs, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("redisstore: load %q/%q: bad version %q: %w", kind, key, vs, err)
	}
	d, _ := vals[1].(string)
	return []byte(d), ver, nil
}

// Save implements store.Store.
func (s *Store) Save(ctx context.Context, kind, key string, data []byte, expected uint64) (uint64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	next := expected + 1
	res, err := saveScript.Run(ctx, s.client, []string{s.redisKey(kind, key)},
		strconv.FormatUint(expected, 10), strconv.FormatUint(next, 10), data).Text()
	switch {
	case err != nil:
		return 0, fmt.Errorf("redisstore: save %q/%q: %w", kind, key, err)
	case res != "OK":
		return 0, fmt.Errorf("redisstore: save %q/%q: stored version %s, expected %d: %w",
			kind, key, res, expected, store.ErrVersionConflict)
	}
	return next, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, kind, key string, expected uint64) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	res, err := deleteScript.Run(ctx, s.client, []string{s.redisKey(kind, key)},
		strconv.FormatUint(expected, 10)).Int()
	switch {
	case err != nil:
		return fmt.Errorf("redisstore: delete %q/%q: %w", kind, key, err)
	case res == -1:
		return fmt.Errorf("redisstore: delete %q/%q: %w", kind, key, store.ErrNotFound)
	case res == 0:
		return fmt.Errorf("redisstore: delete %q/%q: expected version %d: %w",
			kind, key, expected, store.ErrVersionConflict)
	}
	return nil
}

// Close marks the store closed: later calls return store.ErrClosed. It
// does not close the client, which the caller owns.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}
