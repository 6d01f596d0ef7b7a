// Package store keeps the state of grains (package grain) as versioned
// documents: one document per (kind, key), written with optimistic
// concurrency, so that a stale owner can never overwrite a newer state.
//
// Backends: an embedded one that needs no server (the default), Redis,
// PostgreSQL and MySQL/MariaDB. One conformance suite (storetest) runs
// against every backend.
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
