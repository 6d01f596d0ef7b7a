// Package mysqlstore is a store.Store in MySQL or MariaDB, through
// database/sql and github.com/go-sql-driver/mysql. Choose it, like
// PostgreSQL, for durability and to query the documents with SQL.
//
// The documents are rows of one InnoDB table:
//
//	CREATE TABLE IF NOT EXISTS <table> (
//		`kind`    VARBINARY(512)  NOT NULL,
//		`key`     VARBINARY(512)  NOT NULL,
//		`version` BIGINT UNSIGNED NOT NULL,
//		`data`    LONGBLOB        NOT NULL,
//		PRIMARY KEY (`kind`, `key`)
//	) ENGINE=InnoDB
//
// Kinds and keys are binary strings, compared byte for byte: a VARCHAR
// column, even with a _bin collation, pads with spaces ("a" = "a ") and,
// with the default collations, ignores case ("Key" = "key"), which would
// merge documents. Each is at most 512 bytes. With a strict sql_mode (the
// default of MySQL 5.7+ and MariaDB 10.2.4+) a longer one is an error;
// without one the server would truncate it, so keep STRICT_TRANS_TABLES
// on. A document is at most max_allowed_packet bytes. By default the
// driver prepares, runs and closes each statement on the server: three
// round trips. interpolateParams=true in the DSN makes it one, which
// makes Load about 1.5 times as fast here.
//
// Save with expected version 0 is an INSERT, and a duplicate key is a
// conflict; otherwise it is UPDATE ... WHERE version = expected. Either is
// one statement whose row lock orders concurrent writers, and a write that
// changes no row is a conflict.
package mysqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"

	"github.com/guildkit/guild/store"
)

// errDuplicateKey is MySQL's ER_DUP_ENTRY.
const errDuplicateKey = 1062

// Store is a store.Store in a MySQL table. Its methods are safe for
// concurrent use.
type Store struct {
	db     *sql.DB
	closed atomic.Bool

	load, insert, update, del, version string
}

var _ store.Store = (*Store)(nil)

// New returns a store that keeps its documents in table, which it creates
// if it does not exist. table is one identifier, quoted as given. The
// caller keeps ownership of db, opened with the "mysql" driver: Close does
// not close it.
func New(ctx context.Context, db *sql.DB, table string) (*Store, error) {
	t := "`" + strings.ReplaceAll(table, "`", "``") + "`"
	_, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+t+` (
		`+"`kind`    VARBINARY(512)  NOT NULL,"+`
		`+"`key`     VARBINARY(512)  NOT NULL,"+`
		`+"`version` BIGINT UNSIGNED NOT NULL,"+`
		`+"`data`    LONGBLOB        NOT NULL,"+`
		PRIMARY KEY (`+"`kind`, `key`"+`)
	) ENGINE=InnoDB`)
	if err != nil {
		return nil, fmt.Errorf("mysqlstore: create table %s: %w", t, err)
	}
	where := " WHERE `kind` = ? AND `key` = ?"
	return &Store{
		db:      db,
		load:    "SELECT `version`, `data` FROM " + t + where,
		insert:  "INSERT INTO " + t + " (`kind`, `key`, `version`, `data`) VALUES (?, ?, 1, ?)",
		update:  "UPDATE " + t + " SET `version` = ?, `data` = ?" + where + " AND `version` = ?",
		del:     "DELETE FROM " + t + where + " AND `version` = ?",
		version: "SELECT `version` FROM " + t + where,
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
		ver  uint64
		data []byte
	)
	err := s.db.QueryRowContext(ctx, s.load, kind, key).Scan(&ver, &data)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("mysqlstore: load %q/%q: %w", kind, key, err)
	}
	return data, ver, nil
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
		res sql.Result
		err error
	)
	if expected == 0 {
		res, err = s.db.ExecContext(ctx, s.insert, kind, key, data)
		if me, ok := errors.AsType[*mysql.MySQLError](err); ok && me.Number == errDuplicateKey {
			return 0, fmt.Errorf("mysqlstore: save %q/%q: document exists: %w", kind, key, store.ErrVersionConflict)
		}
	} else {
		res, err = s.db.ExecContext(ctx, s.update, expected+1, data, kind, key, expected)
	}
	if err != nil {
		return 0, fmt.Errorf("mysqlstore: save %q/%q: %w", kind, key, err)
	}
	// The version changes, so a matched row is always a changed row.
	if n, err := res.RowsAffected(); err != nil {
		return 0, fmt.Errorf("mysqlstore: save %q/%q: %w", kind, key, err)
	} else if n == 0 {
		return 0, fmt.Errorf("mysqlstore: save %q/%q: expected version %d: %w",
			kind, key, expected, store.ErrVersionConflict)
	}
	return expected + 1, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, kind, key string, expected uint64) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, s.del, kind, key, expected)
	if err != nil {
		return fmt.Errorf("mysqlstore: delete %q/%q: %w", kind, key, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("mysqlstore: delete %q/%q: %w", kind, key, err)
	} else if n == 1 {
		return nil
	}
	// Nothing deleted: tell a missing document from another version.
	var cur uint64
	err = s.db.QueryRowContext(ctx, s.version, kind, key).Scan(&cur)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("mysqlstore: delete %q/%q: %w", kind, key, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("mysqlstore: delete %q/%q: %w", kind, key, err)
	}
	return fmt.Errorf("mysqlstore: delete %q/%q: stored version %d, expected %d: %w",
		kind, key, cur, expected, store.ErrVersionConflict)
}

// Close marks the store closed: later calls return store.ErrClosed. It
// does not close the database, which the caller owns.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}
