package redisstore_test

import (
	"context"
	"crypto/rand"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/guildkit/guild/store"
	"github.com/guildkit/guild/store/redisstore"
	"github.com/guildkit/guild/store/storetest"
)

const addr = "127.0.0.1:6379"

var probe struct {
	once sync.Once
	err  error
}

// reachable skips the test, or fails it on CI (CI=true), when the Redis
// server on addr does not answer. It asks the server once per run.
func reachable(tb testing.TB) {
	tb.Helper()
	probe.once.Do(func() {
		client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		probe.err = client.Ping(ctx).Err()
	})
	if probe.err != nil {
		msg := "Redis not reachable on " + addr + " (" + probe.err.Error() + "); run `bash scripts/services.sh` (or install and start it) to run this test"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
}

// open returns a store on the Redis server on addr, under a fresh random
// prefix whose keys it deletes at cleanup.
func open(tb testing.TB) *redisstore.Store {
	tb.Helper()
	reachable(tb)
	client := redis.NewClient(&redis.Options{Addr: addr})
	prefix := "guildtest-" + rand.Text()
	tb.Cleanup(func() {
		defer client.Close()
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := client.Del(ctx, iter.Val()).Err(); err != nil {
				tb.Errorf("cleanup: %v", err)
			}
		}
		if err := iter.Err(); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	})
	s := redisstore.New(client, prefix)
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	reachable(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func BenchmarkSave(b *testing.B) { storetest.BenchSave(b, open(b)) }
func BenchmarkLoad(b *testing.B) { storetest.BenchLoad(b, open(b)) }
