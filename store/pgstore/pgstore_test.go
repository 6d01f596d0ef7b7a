package pgstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/guildkit/guild/store"
	"github.com/guildkit/guild/store/pgstore"
	"github.com/guildkit/guild/store/storetest"
)

const addr = "127.0.0.1:5432"

// users: the local server trusts postgres or root, depending on how it
// was set up.
var users = []string{"postgres", "root"}

var probe struct {
	once sync.Once
	dsn  string
	err  error
}

// connect returns a pool on the local server's database test. When the
// server is unreachable the test skips, or fails on CI (CI=true); the
// server is probed once per run.
func connect(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	probe.once.Do(func() {
		var errs []string
		for _, user := range users {
			dsn := "postgres://" + user + "@" + addr + "/test?sslmode=disable&connect_timeout=2"
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			conn, err := pgx.Connect(ctx, dsn)
			if err == nil {
				_ = conn.Close(ctx)
				cancel()
				probe.dsn = dsn
				return
			}
			cancel()
			errs = append(errs, user+": "+err.Error())
		}
		probe.err = errors.New(strings.Join(errs, "; "))
	})
	if probe.err != nil {
		msg := "PostgreSQL not reachable on " + addr + " (" + probe.err.Error() + "); run `bash scripts/services.sh` (or install and start it) to run this test"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	pool, err := pgxpool.New(context.Background(), probe.dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// open returns a store in a fresh table with a random name, which it
// drops at cleanup.
func open(tb testing.TB) *pgstore.Store {
	tb.Helper()
	pool := connect(tb)
	table := "guildtest_" + strings.ToLower(rand.Text())
	s, err := pgstore.New(context.Background(), pool, table)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = s.Close()
		if _, err := pool.Exec(context.Background(), "DROP TABLE "+pgx.Identifier{table}.Sanitize()); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	connect(t) // skip once, not in every subtest
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

// TestNewIsIdempotent: New on an existing table keeps its documents.
func TestNewIsIdempotent(t *testing.T) {
	pool := connect(t)
	table := "guildtest_" + strings.ToLower(rand.Text())
	ctx := context.Background()
	t.Cleanup(func() { _, _ = pool.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{table}.Sanitize()) })
	s1, err := pgstore.New(ctx, pool, table)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Save(ctx, "player", "p1", []byte("kept"), 0); err != nil {
		t.Fatal(err)
	}
	s2, err := pgstore.New(ctx, pool, table)
	if err != nil {
		t.Fatal(err)
	}
	data, v, err := s2.Load(ctx, "player", "p1")
	if err != nil || v != 1 || string(data) != "kept" {
		t.Fatalf("Load = %q, %d, %v; want \"kept\", 1, nil", data, v, err)
	}
}

func BenchmarkSave(b *testing.B) { storetest.BenchSave(b, open(b)) }
func BenchmarkLoad(b *testing.B) { storetest.BenchLoad(b, open(b)) }
