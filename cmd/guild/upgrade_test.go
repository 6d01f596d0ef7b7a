//go:build unix

package main

// The multi-process rolling upgrade: three backends run one build (v1) of
// guild run with the player module of internal/rolltest, and are replaced
// one by one by processes of another build (v2) while bots play through a
// gateway that the parent runs, as docs/DEPLOY.md tells an operator to do.
// The two builds are this package's test binary, the one running (v1, of
// version), and the same linked again with another version (-ldflags -X,
// v2), both run as TestRollingRunChild: each is guild run itself (runApp),
// which publishes its version in its member record, and whose player
// grains put it in every reply. Linking one build, not two, halves the
// test's build time (most of its time).

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
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

// versionVar is the linker's name of this package's version variable in
// its test binary (in the guild binary it is main.version).
const versionVar = "github.com/guildkit/guild/cmd/guild.version"

// buildVersion builds this package's test binary into dir with version v
// linked in, and with the race detector when this binary has it (then the
// build reuses this binary's compiled packages and only links). It returns
// the binary's path.
func buildVersion(t *testing.T, dir, v string) string {
	t.Helper()
	gobin, err := exec.LookPath("go") // go test puts its own toolchain first in PATH
	if err != nil {
		t.Fatalf("no go command to build version %s with: %v", v, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin := filepath.Join(dir, "guild-"+v+".test")
	args := []string{"test", "-c", "-o", bin, "-ldflags", "-X " + versionVar + "=" + v}
	if raceBuild {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, gobin, append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build version %s: %s: %v\n%s", v, strings.Join(cmd.Args, " "), err, out)
	}
	return bin
}

func TestRollingUpgradeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("a rolling upgrade of three node processes to a second build: skipped in -short")
	}
	heavytest.Serialize(t)
	rc, prefix := rolltest.Redis(t)
	v1, v2 := version, version+"+next"
	began := time.Now()
	dir := t.TempDir()
	bins := map[string]string{v1: os.Args[0], v2: buildVersion(t, dir, v2)}
	built := time.Since(began)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	file := filepath.Join(dir, "cluster.yaml")
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
	start := func(name, version string) {
		// A race-enabled binary sleeps a second at exit unless told not to:
		// that second is not the drain's.
		gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
		cfg := proc.Self("TestRollingRunChild", rollNodeEnv+"="+name, rollFileEnv+"="+file, etcd, "GORACE="+gorace)
		cfg.Path = bins[version]
		cfg.Name = name + "@" + version
		cfg.Ready = `"event":"ready"`
		cfg.Quiet = true
		p := proc.Start(t, cfg)
		if !strings.Contains(p.ReadyLine(), `"version":"`+version+`"`) {
			t.Fatalf("%s's ready line does not carry version %s: %s", cfg.Name, version, p.ReadyLine())
		}
		procs[name] = p
	}
	// stop drains a backend with SIGTERM, as an orchestrator would, and
	// checks that guild run exited 0.
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
	// serving reports whether the gateway sees the backend as an operator
	// would in guild status: available, hosting the player grains, and
	// running build version.
	serving := func(name, version string) bool {
		addr := cfg.Nodes[name].Address()
		return slices.ContainsFunc(gw.Members().Members(), func(m cluster.Member) bool {
			return m.Addr == addr && m.Available && slices.Contains(m.Services, "grain:"+rolltest.Kind) &&
				m.Meta[app.MetaVersion] == version
		})
	}
	for _, name := range backends {
		start(name, v1)
	}
	await.True(t, 30*time.Second, "the gateway to see the three backends serving "+v1, func() bool {
		return serving("play1", v1) && serving("play2", v1) && serving("play3", v1)
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
	// The roll: each old process drained and gone before its replacement
	// starts, each replacement serving before the next old one is
	// stopped. marks are the times between its steps.
	rollStart := time.Now()
	marks := []time.Time{rollStart}
	var steps []string
	var lastOldGone time.Time
	for _, name := range backends {
		t0 := time.Now()
		stop(name)
		down := time.Since(t0)
		lastOldGone = time.Now()
		t1 := time.Now()
		start(name, v2)
		await.True(t, 30*time.Second, name+" serving "+v2, func() bool { return serving(name, v2) })
		steps = append(steps, fmt.Sprintf("%s at %s: %s exited %v after SIGTERM, %s serving %v after its start",
			name, t0.Format("15:04:05.000"), v1, down.Round(time.Millisecond), v2, time.Since(t1).Round(time.Millisecond)))
		settle("after " + name + " was upgraded")
		marks = append(marks, time.Now())
	}
	roll := time.Since(rollStart)
	settle("after the roll")
	for _, name := range backends {
		if !serving(name, v2) {
			t.Errorf("after the roll the gateway does not see %s serving %s", name, v2)
		}
	}

	r := bots.Check(ctx, rc, prefix)
	for _, p := range r.Problems {
		t.Error(p)
	}
	replies := bots.Replies()
	// Which build answered, before, during and after the roll. Before
	// it only v1; after the last v1 process exited (requests sent since),
	// only v2; and during it, both side by side: a v2 answer came before
	// the last v1 answer.
	var firstV2, lastV1 time.Time
	var before, after, overlapV1, overlapV2 int
	for _, rp := range replies {
		switch rp.Version {
		case v1:
			lastV1 = rp.Received
		case v2:
			if firstV2.IsZero() {
				firstV2 = rp.Received
			}
		default:
			t.Errorf("a reply at %s carries version %q, neither %s nor %s", rp.Received.Format("15:04:05.000"), rp.Version, v1, v2)
		}
		if rp.Received.Before(rollStart) {
			before++
			if rp.Version != v1 {
				t.Errorf("before the roll, a reply at %s from %s", rp.Received.Format("15:04:05.000"), rp.Version)
			}
		}
		if rp.Sent.After(lastOldGone) {
			after++
			if rp.Version != v2 {
				t.Errorf("a request sent at %s, after the last %s process exited, answered by %s", rp.Sent.Format("15:04:05.000"), v1, rp.Version)
			}
		}
	}
	if before == 0 || after == 0 {
		t.Errorf("%d replies before the roll, %d to requests sent after it: want some of each", before, after)
	}
	if firstV2.IsZero() || !firstV2.Before(lastV1) {
		t.Errorf("no interval where %s and %s both served: first %s reply at %s, last %s reply at %s",
			v1, v2, v2, firstV2.Format("15:04:05.000"), v1, lastV1.Format("15:04:05.000"))
	} else {
		for _, rp := range replies {
			if rp.Received.Before(firstV2) || rp.Received.After(lastV1) {
				continue
			}
			if rp.Version == v1 {
				overlapV1++
			} else {
				overlapV2++
			}
		}
	}
	// The replies by build between the steps of the roll.
	phases := make([]string, 0, len(marks)-1)
	for i := 1; i < len(marks); i++ {
		n := map[string]int{}
		for _, rp := range replies {
			if !rp.Received.Before(marks[i-1]) && rp.Received.Before(marks[i]) {
				n[rp.Version]++
			}
		}
		phases = append(phases, fmt.Sprintf("step %d (%s): %d from %s, %d from %s", i, backends[i-1], n[v1], v1, n[v2], v2))
	}
	t.Logf("rolling upgrade of guild run processes from %s to %s: built %[2]s in %[3]v, rolled %d backends in %v, 12 bots\n  %s\n  side by side for %v: %d replies from %s, %d from %s\n  %s\n  %s\n  test %v",
		v1, v2, built.Round(time.Millisecond), len(backends), roll.Round(time.Millisecond), r,
		lastV1.Sub(firstV2).Round(time.Millisecond), overlapV1, v1, overlapV2, v2,
		strings.Join(phases, "\n  "), strings.Join(steps, "\n  "), time.Since(began).Round(time.Millisecond))
}
