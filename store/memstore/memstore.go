// Package memstore is an in-memory store.Store: no persistence, for tests
// of code that uses a store (a grain runtime's, for example). Its
// documents live as long as the Store value.
package memstore

import (
	"context"
	"fmt"
	"sync"

	"github.com/guildkit/guild/store"
)

type id struct{ kind, key string }

type doc struct {
	version uint64
	data    []byte
}

// Store is an in-memory store.Store. Its methods are safe for concurrent
// use. The zero value is not usable; call New.
type Store struct {
	mu     sync.Mutex
	docs   map[id]doc
	closed bool
}

var _ store.Store = (*Store)(nil)

// New returns an empty in-memory store.
func New() *Store { return &Store{docs: make(map[id]doc)} }

// Load implements store.Store.
func (s *Store) Load(ctx context.Context, kind, key string) ([]byte, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, 0, store.ErrClosed
	}
	d, ok := s.docs[id{kind, key}]
	if !ok {
		return nil, 0, fmt.Errorf("memstore: load %q/%q: %w", kind, key, store.ErrNotFound)
	}
	return append([]byte(nil), d.data...), d.version, nil
}

// Save implements store.Store.
func (s *Store) Save(ctx context.Context, kind, key string, data []byte, expected uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, store.ErrClosed
	}
	k := id{kind, key}
	if cur := s.docs[k].version; cur != expected {
		return 0, fmt.Errorf("memstore: save %q/%q: stored version %d, expected %d: %w",
			kind, key, cur, expected, store.ErrVersionConflict)
	}
	s.docs[k] = doc{version: expected + 1, data: append([]byte(nil), data...)}
	return expected + 1, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, kind, key string, expected uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	k := id{kind, key}
	d, ok := s.docs[k]
	switch {
	case !ok:
		return fmt.Errorf("memstore: delete %q/%q: %w", kind, key, store.ErrNotFound)
	case d.version != expected:
		return fmt.Errorf("memstore: delete %q/%q: stored version %d, expected %d: %w",
			kind, key, d.version, expected, store.ErrVersionConflict)
	}
	delete(s.docs, k)
	return nil
}

// Close drops the documents. Later calls return store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.docs = nil
	return nil
}
