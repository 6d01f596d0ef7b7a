// Package store keeps the state of grains (package grain) as versioned
// documents: one document per (kind, key), written with optimistic
// concurrency, so that a stale owner can never overwrite a newer state.
//
// Every write names the version it expects to replace (0: the document
// must not exist yet). When another owner wrote first, the write fails
// with ErrVersionConflict and changes nothing; the loser must drop its
// state, not retry blindly. One conformance suite (package storetest)
// checks every backend for this, with twenty writers racing on one
// version.
//
// # Choosing a backend
//
//   - embedded: the default. One local file (bbolt), no server, fsynced
//     on every write. For a single node, development and tests. Only one
//     process can open the file, so grains cannot move between nodes.
//   - redisstore: Redis. The fastest shared store, for clusters whose
//     nodes all reach one Redis. Its durability is what Redis is
//     configured for: turn on AOF persistence (appendonly yes) and
//     replication, or a restart loses the last writes.
//   - pgstore: PostgreSQL. Durable (a committed write survives a crash),
//     and the documents are rows that SQL can query, migrate and back up.
//     Slower per write than Redis.
//   - mysqlstore: MySQL or MariaDB, the same as pgstore for shops that
//     run those.
//   - memstore: in memory, nothing persisted. For tests of code that
//     uses a Store.
//
// The server backends take a client, pool or database handle that the
// caller opens and closes; their Close only stops the Store.
package store

import (
	"context"
	"errors"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrNotFound: no document is stored for the kind and key.
	ErrNotFound = errors.New("store: not found")
	// ErrVersionConflict: the stored version is not the one the write
	// expected: another owner wrote since this one loaded. The writer's
	// state is stale; it must not retry blindly.
	ErrVersionConflict = errors.New("store: version conflict")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
)

// Store keeps versioned documents. Versions start at 1 for the first
// write and grow by one with each write. Its methods are safe for
// concurrent use.
type Store interface {
	// Load returns the document of (kind, key) and its version, or an
	// error matching ErrNotFound.
	Load(ctx context.Context, kind, key string) (data []byte, version uint64, err error)
	// Save writes data as the document of (kind, key) if its stored
	// version is expected (0: no document may exist yet), and returns the
	// new version, expected+1. Otherwise it writes nothing and returns an
	// error matching ErrVersionConflict.
	Save(ctx context.Context, kind, key string, data []byte, expected uint64) (version uint64, err error)
	// Delete removes the document if its stored version is expected, or
	// returns an error matching ErrVersionConflict (ErrNotFound when there
	// is none).
	Delete(ctx context.Context, kind, key string, expected uint64) error
	// Close releases the store. It is safe to call twice.
	Close() error
}
