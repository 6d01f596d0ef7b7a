// Package pgstore is a store.Store in PostgreSQL, through
// github.com/jackc/pgx/v5. Choose it for durability (committed writes
// survive a crash) and to query or back up the documents with SQL.
//
// The documents are rows of one table:
//
//	CREATE TABLE IF NOT EXISTS <table> (
//		kind    text   NOT NULL,
//		key     text   NOT NULL,
//		version bigint NOT NULL,
//		data    bytea  NOT NULL,
//		PRIMARY KEY (kind, key)
//	)
//
// Save with expected version 0 is INSERT ... ON CONFLICT DO NOTHING;
// otherwise it is UPDATE ... WHERE version = expected. Either is one
// statement whose row lock orders concurrent writers, and a write that
// changes no row is a conflict. Kinds and keys are text: valid UTF-8,
// without NUL bytes.
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/guildkit/guild/store"
)

// Store is a store.Store in a PostgreSQL table. Its methods are safe for
// concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	closed atomic.Bool

	load, insert, update, del, version string
}

var _ store.Store = (*Store)(nil)

// New returns a store that keeps its documents in table, which it creates
// if it does not exist. table is one identifier, quoted as given (no
// schema prefix; the connection's search_path applies). The caller keeps
// ownership of pool: Close does not close it.
func New(ctx context.Context, pool *pgxpool.Pool, table string) (*Store, error) {
	t := pgx.Identifier{table}.Sanitize()
	_, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+t+` (
		kind    text   NOT NULL,
		key     text   NOT NULL,
		version bigint NOT NULL,
		data    bytea  NOT NULL,
		PRIMARY KEY (kind, key)
	)`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: create table %s: %w", t, err)
	}
	return &Store{
		pool:    pool,
		load:    `SELECT version, data FROM ` + t + ` WHERE kind = $1 AND key = $2`,
		insert:  `INSERT INTO ` + t + ` (kind, key, version, data) VALUES ($1, $2, 1, $3) ON CONFLICT DO NOTHING`,
		update:  `UPDATE ` + t + ` SET version = $4, data = $5 WHERE kind = $1 AND key = $2 AND version = $3`,
		del:     `DELETE FROM ` + t + ` WHERE kind = $1 AND key = $2 AND version = $3`,
		version: `SELECT version FROM ` + t + ` WHERE kind = $1 AND key = $2`,
	}, nil
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
	var (
		ver  int64
		data []byte
	)
	err := s.pool.QueryRow(ctx, s.load, kind, key).Scan(&ver, &data)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("pgstore: load %q/%q: %w", kind, key, err)
	}
	return data, uint64(ver), nil
}

// Save implements store.Store.
func (s *Store) Save(ctx context.Context, kind, key string, data []byte, expected uint64) (uint64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	if data == nil {
		data = []byte{} // nil would be NULL
	}
	var (
		tag pgconn.CommandTag
		err error
	)
	if expected == 0 {
		tag, err = s.pool.Exec(ctx, s.insert, kind, key, data)
	} else {
		tag, err = s.pool.Exec(ctx, s.update, kind, key, int64(expected), int64(expected+1), data)
	}
	switch {
	case err != nil:
		return 0, fmt.Errorf("pgstore: save %q/%q: %w", kind, key, err)
	case tag.RowsAffected() == 0:
		return 0, fmt.Errorf("pgstore: save %q/%q: expected version %d: %w",
			kind, key, expected, store.ErrVersionConflict)
	}
	return expected + 1, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, kind, key string, expected uint64) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, s.del, kind, key, int64(expected))
	if err != nil {
		return fmt.Errorf("pgstore: delete %q/%q: %w", kind, key, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// Nothing deleted: tell a missing document from another version.
	var cur int64
	err = s.pool.QueryRow(ctx, s.version, kind, key).Scan(&cur)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("pgstore: delete %q/%q: %w", kind, key, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("pgstore: delete %q/%q: %w", kind, key, err)
	}
	return fmt.Errorf("pgstore: delete %q/%q: stored version %d, expected %d: %w",
		kind, key, cur, expected, store.ErrVersionConflict)
}

// Close marks the store closed: later calls return store.ErrClosed. It
// does not close the pool, which the caller owns.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}
