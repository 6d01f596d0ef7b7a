// Package embedded is the default store.Store: documents in one local
// file, with no server to run. It is built on go.etcd.io/bbolt, a B+tree
// with serializable transactions that are fsynced on commit.
//
// One process at a time may open a file, so the embedded store suits a
// single node and development. A cluster whose grains move between nodes
// needs a shared backend (Redis, PostgreSQL or MySQL).
//
// A document is stored under one bbolt key built from its kind and key,
// with its version as the first eight bytes of the value. Save reads the
// stored version and writes in the same read-write transaction; bbolt
// runs one such transaction at a time, so the check and the write are
// atomic.
package embedded

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/guildkit/guild/store"
)

// LockTimeout is how long Open waits for another process to release the
// file before it fails.
const LockTimeout = time.Second

var bucket = []byte("guild.store.v1")

// Store is a store.Store kept in a bbolt file. Its methods are safe for
// concurrent use.
type Store struct {
	db        *bolt.DB
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open opens the store in the file at path, and creates the file if it
// does not exist. It fails after LockTimeout if another process has the
// file open.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: LockTimeout})
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucket)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("embedded: open %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// dbKey encodes (kind, key) as uvarint(len(kind)) | kind | key: no two
// pairs share an encoding, and it is never empty (bbolt refuses empty
// keys).
func dbKey(kind, key string) []byte {
	b := make([]byte, 0, binary.MaxVarintLen64+len(kind)+len(key))
	b = binary.AppendUvarint(b, uint64(len(kind)))
	b = append(b, kind...)
	return append(b, key...)
}

// version returns the version stored in a value, or 0 for none.
func version(v []byte) uint64 {
	if len(v) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

func (s *Store) wrap(op, kind, key string, err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		err = store.ErrClosed
	}
	return fmt.Errorf("embedded: %s %q/%q: %w", op, kind, key, err)
}

// Load implements store.Store.
func (s *Store) Load(ctx context.Context, kind, key string) ([]byte, uint64, error) {
	if err := s.check(ctx); err != nil {
		return nil, 0, err
	}
	var (
		data []byte
		ver  uint64
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get(dbKey(kind, key))
		if v == nil {
			return store.ErrNotFound
		}
		// v is only valid inside the transaction.
		ver, data = version(v), append([]byte{}, v[8:]...)
		return nil
	})
	if err != nil {
		return nil, 0, s.wrap("load", kind, key, err)
	}
	return data, ver, nil
}

// Save implements store.Store.
func (s *Store) Save(ctx context.Context, kind, key string, data []byte, expected uint64) (uint64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	k := dbKey(kind, key)
	val := make([]byte, 8+len(data))
	binary.BigEndian.PutUint64(val, expected+1)
	copy(val[8:], data)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if cur := version(b.Get(k)); cur != expected {
			return fmt.Errorf("stored version %d, expected %d: %w", cur, expected, store.ErrVersionConflict)
		}
		return b.Put(k, val)
	})
	if err != nil {
		return 0, s.wrap("save", kind, key, err)
	}
	return expected + 1, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, kind, key string, expected uint64) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	k := dbKey(kind, key)
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		v := b.Get(k)
		if v == nil {
			return store.ErrNotFound
		}
		if cur := version(v); cur != expected {
			return fmt.Errorf("stored version %d, expected %d: %w", cur, expected, store.ErrVersionConflict)
		}
		return b.Delete(k)
	})
	if err != nil {
		return s.wrap("delete", kind, key, err)
	}
	return nil
}

// Close waits for the transactions in progress and closes the file.
// Later calls return store.ErrClosed; a second Close returns the first
// one's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeErr = s.db.Close()
	})
	return s.closeErr
}
