package app_test

// The rolling restart test: bots play through a gateway while every
// backend node is shut down (app.Node.Shutdown) and started again, in
// turn, twice over. It checks the project's goal for a drain: no client
// request fails, and no acknowledged write is lost or applied twice.
// Package internal/rolltest has the game and the checks.

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/internal/rolltest"
)

// rollingFile is the cluster (its modules' section comes from
// rollingModules): gate1 is the gateway and the etcd master, never
// restarted; play1..play3 host the player module. A client's player.*
// requests go, by its user, to the player service on one of them, which
// calls the user's player grain wherever it is active.
//
// A game would rather route player.* straight to the user's grain
// (gate.UserGrain), but a cluster file cannot say so: config.Route has no
// grain kind, and app.Start gives its gateway no grain resolver
// (gate.Config.Grains). The by_user route to a gate.Service that calls the
// grain is what a cluster file allows today.
const rollingFile = `
cluster:
  # The default TTL: a graceful leave does not wait for it, and a node
  # starved of CPU (the tests run beside CPU hogs) keeps its lease.
  etcd: {ttl: 5s, prefix: /rolling}
nodes:
  gate1:
    addr: 1.1.1
    master: 127.0.0.1:0
    gateway:
      tcp: 127.0.0.1:0
      routes:
        player: {module: player, by_user: true}
      limits: {rate: 100000, burst: 100000}
  play1: {addr: 1.2.1, join_wait: 10s, modules: [player]}
  play2: {addr: 1.2.2, join_wait: 10s, modules: [player]}
  play3: {addr: 1.2.3, join_wait: 10s, modules: [player]}
`

// rollingModules is the modules' section of the cluster file: where the
// player grains keep their state.
func rollingModules(redis, prefix string) string {
	return fmt.Sprintf("modules:\n  player: {redis: %q, prefix: %q}\n", redis, prefix)
}

// Shape of the run.
const (
	rollBots   = 12
	rollRounds = 2                      // full rolls over the backends
	rollSettle = 150                    // acknowledged writes between two restarts
	rollPace   = 500 * time.Microsecond // a bot's pause between requests
)

// syncBuffer is a log sink for several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("a rolling restart of three nodes: skipped in -short")
	}
	rc, prefix := rolltest.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	defer func() {
		if t.Failed() {
			t.Logf("warnings and errors the nodes logged:\n%s", logs.String())
		}
	}()

	reg := app.NewRegistry()
	rolltest.Register(reg)
	cfg, err := config.Parse([]byte(rollingFile+rollingModules(rolltest.RedisAddr, prefix)), nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	gw, err := app.Start(ctx, cfg, "gate1", reg, app.WithLogger(log), app.WithGatewayAuth(rolltest.Auth))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		if err := gw.Shutdown(sctx); err != nil {
			t.Errorf("shut gate1 down: %v", err)
		}
	}()
	etcdAt := app.WithEtcdEndpoints(gw.Ready().Etcd...)
	backends := []string{"play1", "play2", "play3"}
	nodes := make(map[string]*app.Node)
	defer func() {
		for _, name := range backends {
			if n := nodes[name]; n != nil {
				sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := n.Shutdown(sctx); err != nil {
					t.Errorf("shut %s down: %v", name, err)
				}
				scancel()
			}
		}
	}()
	for _, name := range backends {
		n, err := app.Start(ctx, cfg, name, reg, app.WithLogger(log), etcdAt)
		if err != nil {
			t.Fatal(err)
		}
		nodes[name] = n
	}
	serving := func(name string) bool {
		addr := cfg.Nodes[name].Address()
		return slices.ContainsFunc(gw.Members().Members(), func(m cluster.Member) bool {
			return m.Addr == addr && m.Available && slices.Contains(m.Services, "grain:"+rolltest.Kind)
		})
	}
	await.True(t, 20*time.Second, "the gateway to see the three backends serving", func() bool {
		return serving("play1") && serving("play2") && serving("play3")
	})

	bots, err := rolltest.StartBots(ctx, gw.Ready().Gateway["tcp"], rollBots, rollPace)
	if err != nil {
		t.Fatal(err)
	}
	defer bots.Stop()
	settle := func(what string) {
		from := bots.Acked()
		await.True(t, 20*time.Second, fmt.Sprintf("%d writes acknowledged %s", rollSettle, what), func() bool {
			return bots.Acked() >= from+rollSettle
		})
	}
	settle("before the roll")
	var restarts []string
	start := time.Now()
	for round := range rollRounds {
		for _, name := range backends {
			t0 := time.Now()
			sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
			err := nodes[name].Shutdown(sctx)
			scancel()
			if err != nil {
				t.Fatalf("round %d: shut %s down: %v", round, name, err)
			}
			down := time.Since(t0)
			t1 := time.Now()
			n, err := app.Start(ctx, cfg, name, reg, app.WithLogger(log), etcdAt)
			if err != nil {
				nodes[name] = nil
				t.Fatalf("round %d: start %s again: %v", round, name, err)
			}
			nodes[name] = n
			await.True(t, 20*time.Second, name+" serving again", func() bool { return serving(name) })
			restarts = append(restarts, fmt.Sprintf("%s at %s: shut down in %v, serving again %v later",
				name, t0.Format("15:04:05.000"), down.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond)))
			settle("after " + name + " restarted")
		}
	}
	roll := time.Since(start)

	r := bots.Check(ctx, rc, prefix)
	for _, p := range r.Problems {
		t.Error(p)
	}
	t.Logf("rolling restart: %d rounds over %d backends in %v, %d bots\n  %s\n  %s",
		rollRounds, len(backends), roll.Round(time.Millisecond), rollBots, r, strings.Join(restarts, "\n  "))
}
