//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/cluster/clustertest/proc"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/internal/heavytest"
	"github.com/guildkit/guild/transport"
)

// Environment of TestHarborRunChild.
const (
	harborNodeEnv = "GUILD_TEST_HARBOR_NODE"
	harborFileEnv = "GUILD_TEST_HARBOR_FILE"
)

// harborRealm is the cluster file of realm %[1]d: its own etcd, the
// harbors' etcd, a game node and two harbors.
const harborRealm = `
cluster:
  id: %[1]d
  etcd: {endpoints: [%[2]s], ttl: 2s}
  harbors: {endpoints: [%[3]s]}
nodes:
  game%[1]d: {addr: %[1]d.1.1, modules: [echo], export: true}
  harbor%[1]da: {addr: %[1]d.255.1}
  harbor%[1]db: {addr: %[1]d.255.2}
`

// echoModule serves an actor under the global name "echo" that answers a
// StringValue with "echo:" and it.
type echoModule struct{}

func (echoModule) Start(ctx context.Context, env *app.Env) error {
	pid, err := env.Actor.SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok {
			c.Respond(wrapperspb.String("echo:" + m.GetValue()))
		}
	})
	if err != nil {
		return err
	}
	return env.Actor.Register(ctx, "echo", pid)
}

func (echoModule) Stop(context.Context) error { return nil }

func harborRegistry() *app.Registry {
	reg := app.NewRegistry()
	reg.Register("echo", func() app.Module { return echoModule{} })
	return reg
}

// TestHarborRunChild is a node of TestHarborProcesses: guild run of one
// node of a realm's cluster file.
func TestHarborRunChild(t *testing.T) {
	node := os.Getenv(harborNodeEnv)
	if node == "" {
		t.Skip("runs as a child of TestHarborProcesses")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	args := []string{"-c", os.Getenv(harborFileEnv), "-node", node, "-shutdown-timeout", "20s"}
	if code := runApp(ctx, args, os.Environ(), harborRegistry(), os.Stdout, os.Stderr); code != exitOK {
		t.Fatalf("guild run exited %d", code)
	}
}

// TestHarborProcesses runs two realms from their cluster files, each with
// its own etcd: in realm 2, a game node and two harbors as guild run
// processes; in realm 1, two harbor processes and a game node in this
// process, which calls realm 2's echo (found by asking game2 for the name,
// through the harbors) while the harbor of realm 1 its calls go through
// is killed with SIGKILL. Calls through it fail at once with
// transport.ErrPeerLost, none outlives its deadline, and the calls go on
// through the other harbor.
func TestHarborProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("five node processes: skipped in -short")
	}
	heavytest.Serialize(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var etcds []string
	for range 3 {
		e, err := etcd.StartEmbedded(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		etcds = append(etcds, e.Endpoints()[0])
	}
	files := make(map[int]string)
	for realm := 1; realm <= 2; realm++ {
		files[realm] = filepath.Join(t.TempDir(), fmt.Sprintf("realm%d.yaml", realm))
		if err := os.WriteFile(files[realm], fmt.Appendf(nil, harborRealm, realm, etcds[realm-1], etcds[2]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	procs := make(map[string]*proc.Process)
	for _, n := range []struct {
		realm int
		name  string
	}{{2, "game2"}, {2, "harbor2a"}, {2, "harbor2b"}, {1, "harbor1a"}, {1, "harbor1b"}} {
		cfg := proc.Self("TestHarborRunChild", harborNodeEnv+"="+n.name, harborFileEnv+"="+files[n.realm], "GORACE="+gorace)
		cfg.Name = n.name
		cfg.Ready = `"event":"ready"`
		cfg.Quiet = true
		procs[n.name] = proc.Start(t, cfg)
	}
	defer func() {
		for name, p := range procs {
			if p == nil {
				continue
			}
			if err := p.Terminate(30 * time.Second); err != nil {
				t.Errorf("%s after SIGTERM: %v\n%s", name, err, strings.Join(p.Stderr(), "\n"))
			}
		}
	}()
	cfg, err := config.Load(files[1], nil, harborRegistry().Names())
	if err != nil {
		t.Fatal(err)
	}
	game1, err := app.Start(ctx, cfg, "game1", harborRegistry(), app.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer game1.Shutdown(context.Background())
	node := game1.Cluster()
	far := actor.MustAddr(2, 1, 1)
	var echo actor.PID
	await.True(t, 30*time.Second, "game1 to find realm 2's echo on game2 through the harbors", func() bool {
		lctx, lcancel := context.WithTimeout(ctx, time.Second)
		defer lcancel()
		echo, err = node.View().LookupAt(lctx, far, "echo")
		return err == nil
	})
	// game2 is exported: realm 1's view shows it, through the harbors.
	await.True(t, 10*time.Second, "game2 in game1's view", func() bool {
		for _, m := range node.View().Members() {
			if m.Addr == far {
				return true
			}
		}
		return false
	})

	type call struct {
		via        actor.Addr
		start, end time.Time
		deadline   time.Time
		err        error
	}
	var (
		mu      sync.Mutex
		history []call
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				c := call{start: time.Now()}
				c.via, _ = node.Route(far)
				cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
				c.deadline, _ = cctx.Deadline()
				msg := fmt.Sprintf("%d-%d", w, k)
				got, err := node.Actor().Call(cctx, echo, wrapperspb.String(msg))
				ccancel()
				c.end, c.err = time.Now(), err
				if err == nil && got.(*wrapperspb.StringValue).GetValue() != "echo:"+msg {
					c.err = fmt.Errorf("wrong answer %v", got)
				}
				mu.Lock()
				history = append(history, c)
				mu.Unlock()
			}
		}()
	}
	count := func(after time.Time) (n int) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range history {
			if c.err == nil && c.start.After(after) {
				n++
			}
		}
		return n
	}
	await.True(t, 30*time.Second, "100 calls before the kill", func() bool { return count(time.Time{}) >= 100 })
	victim := "harbor1a"
	if via, _ := node.Route(far); via == actor.MustAddr(1, actor.HarborType, 2) {
		victim = "harbor1b"
	}
	lost, _ := node.Route(far)
	killAt := time.Now()
	procs[victim].Kill()
	procs[victim] = nil
	t.Logf("killed %s (%v) at %s", victim, lost, killAt.Format("15:04:05.000"))
	await.True(t, 30*time.Second, "100 calls after the kill", func() bool { return count(killAt) >= 100 })
	close(stop)
	wg.Wait()

	var failed, through int
	for _, c := range history {
		if c.end.After(c.deadline.Add(500 * time.Millisecond)) {
			t.Errorf("a call via %v ended %v past its deadline: %v", c.via, c.end.Sub(c.deadline), c.err)
		}
		if c.via == lost {
			through++
		}
		if c.err == nil {
			continue
		}
		failed++
		from := c.start
		if from.Before(killAt) {
			from = killAt
		}
		switch {
		case c.end.Before(killAt):
			t.Errorf("a call failed before the kill: %v", c.err)
		case c.via != lost:
			t.Errorf("a call via %v, not the killed %v, failed: %v", c.via, lost, c.err)
		case !errors.Is(c.err, transport.ErrPeerLost):
			t.Errorf("a call via the killed harbor failed with %v, want transport.ErrPeerLost", c.err)
		case c.end.Sub(from) > 2*time.Second:
			t.Errorf("a call via the killed harbor failed %v after the kill", c.end.Sub(from))
		}
	}
	t.Logf("history: %d calls, %d through %v, %d failed", len(history), through, lost, failed)
}
