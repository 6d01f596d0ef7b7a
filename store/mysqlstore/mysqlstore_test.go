package mysqlstore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/guildkit/guild/store"
	"github.com/guildkit/guild/store/mysqlstore"
	"github.com/guildkit/guild/store/storetest"
)

const (
	addr = "127.0.0.1:3306"
	dsn  = "root@tcp(" + addr + ")/test?timeout=2s"
)

var probe struct {
	once sync.Once
	err  error
}

// connect returns a database handle on the local server's database test.
// When the server is unreachable the test skips, or fails on CI
// (CI=true); the server is probed once per run.
func connect(tb testing.TB) *sql.DB {
	tb.Helper()
	probe.once.Do(func() {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			probe.err = err
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		probe.err = db.PingContext(ctx)
	})
	if probe.err != nil {
		msg := "MySQL/MariaDB not reachable on " + addr + " (" + probe.err.Error() + "); run `bash scripts/services.sh` (or install and start it) to run this test"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// open returns a store in a fresh table with a random name, which it
// drops at cleanup.
func open(tb testing.TB) *mysqlstore.Store {
	tb.Helper()
	db := connect(tb)
	table := "guildtest_" + strings.ToLower(rand.Text())
	s, err := mysqlstore.New(context.Background(), db, table)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = s.Close()
		if _, err := db.Exec("DROP TABLE `" + table + "`"); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	connect(t) // skip once, not in every subtest
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func BenchmarkSave(b *testing.B) { storetest.BenchSave(b, open(b)) }
func BenchmarkLoad(b *testing.B) { storetest.BenchLoad(b, open(b)) }
