//go:build unix

package main

// The multi-process rolling restart: the backends are guild run processes
// (this test binary run again, with the player module of
// internal/rolltest in its registry), stopped with SIGTERM and started
// again in turn, twice over, while bots play through a gateway that the
// parent runs. The same checks as app.TestRollingRestart.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest/proc"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/internal/heavytest"
	"github.com/guildkit/guild/internal/rolltest"
)

// Environment of a child (TestRollingRunChild); not GUILD_..., which
// guild run reads as overrides of the cluster file.
const (
	rollNodeEnv = "ROLLTEST_NODE" // the node to run
	rollFileEnv = "ROLLTEST_FILE" // the cluster file
)

// rollFile is the cluster of TestRollingRestartProcesses; %q is the
// player module's Redis prefix.
const rollFile = `
cluster:
  # The default TTL: a graceful leave does not wait for it, and a node
  # starved of CPU (the tests run beside CPU hogs) keeps its lease.
  etcd: {ttl: 5s, prefix: /rollingmp}
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
modules:
  player: {redis: %q, prefix: %q}
`

// TestRollingRunChild is guild run with the player module: the child
// side of TestRollingRestartProcesses. SIGTERM drains it, as it does
// guild run.
func TestRollingRunChild(t *testing.T) {
	node := os.Getenv(rollNodeEnv)
	if node == "" {
		t.Skip("runs as a child of TestRollingRestartProcesses")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	reg := app.NewRegistry()
	rolltest.Register(reg)
	args := []string{"-c", os.Getenv(rollFileEnv), "-node", node, "-shutdown-timeout", "30s"}
	if code := runApp(ctx, args, os.Environ(), reg, os.Stdout, os.Stderr); code != exitOK {
		t.Fatalf("guild run exited %d", code)
	}
}

func TestRollingRestartProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("a rolling restart of three node processes: skipped in -short")
	}
	heavytest.Serialize(t)
	rc, prefix := rolltest.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, rollFile, rolltest.RedisAddr, prefix), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := app.NewRegistry()
	rolltest.Register(reg)
	cfg, err := config.Load(file, nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	gw, err := app.Start(ctx, cfg, "gate1", reg, app.WithGatewayAuth(rolltest.Auth), app.WithLogger(slog.New(slog.DiscardHandler)))
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
	etcd := "GUILD_CLUSTER_ETCD_ENDPOINTS=" + strings.Join(gw.Ready().Etcd, ",")
	backends := []string{"play1", "play2", "play3"}
	procs := make(map[string]*proc.Process)
	start := func(name string) {
		// A race-enabled binary sleeps a second at exit unless told not to:
		// that second is not the drain's.
		gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
		cfg := proc.Self("TestRollingRunChild", rollNodeEnv+"="+name, rollFileEnv+"="+file, etcd, "GORACE="+gorace)
		cfg.Name = name
		cfg.Ready = `"event":"ready"`
		cfg.Quiet = true
		procs[name] = proc.Start(t, cfg)
	}
	// stop drains a backend with SIGTERM, as an orchestrator would, and
	// checks that guild run exited 0 (its shutdown had no error, and the
	// child test found no leaked goroutine).
	stop := func(name string) {
		p := procs[name]
		procs[name] = nil
		if err := p.Terminate(30 * time.Second); err != nil {
			t.Fatalf("%s after SIGTERM: %v\n%s", name, err, strings.Join(p.Stderr(), "\n"))
		}
	}
	defer func() {
		for _, name := range backends {
			if procs[name] != nil {
				stop(name)
			}
		}
	}()
	for _, name := range backends {
		start(name)
	}
	serving := func(name string) bool {
		addr := cfg.Nodes[name].Address()
		return slices.ContainsFunc(gw.Members().Members(), func(m cluster.Member) bool {
			return m.Addr == addr && m.Available && slices.Contains(m.Services, "grain:"+rolltest.Kind)
		})
	}
	await.True(t, 30*time.Second, "the gateway to see the three backends serving", func() bool {
		return serving("play1") && serving("play2") && serving("play3")
	})

	bots, err := rolltest.StartBots(ctx, gw.Ready().Gateway["tcp"], 12, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer bots.Stop()
	settle := func(what string) {
		from := bots.Acked()
		await.True(t, 30*time.Second, "150 writes acknowledged "+what, func() bool { return bots.Acked() >= from+150 })
	}
	settle("before the roll")
	var restarts []string
	began := time.Now()
	for range 2 {
		for _, name := range backends {
			t0 := time.Now()
			stop(name)
			down := time.Since(t0)
			t1 := time.Now()
			start(name)
			await.True(t, 30*time.Second, name+" serving again", func() bool { return serving(name) })
			restarts = append(restarts, fmt.Sprintf("%s at %s: exited %v after SIGTERM, serving again %v after its start",
				name, t0.Format("15:04:05.000"), down.Round(time.Millisecond), time.Since(t1).Round(time.Millisecond)))
			settle("after " + name + " restarted")
		}
	}
	roll := time.Since(began)

	r := bots.Check(ctx, rc, prefix)
	for _, p := range r.Problems {
		t.Error(p)
	}
	t.Logf("rolling restart of guild run processes: 2 rounds over %d backends in %v, 12 bots\n  %s\n  %s",
		len(backends), roll.Round(time.Millisecond), r, strings.Join(restarts, "\n  "))
}
