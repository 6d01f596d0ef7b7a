package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/internal/await"
)

// recorder records what the test modules do, in order.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, fmt.Sprintf(format, a...))
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// echoModule serves the gate service "echo" (echo.Say answers
// "<node>: <text>") when serve is set, and records its Start and Stop.
type echoModule struct {
	name   string
	serve  bool
	rec    *recorder
	onStop func(node string) // called first thing in Stop
	node   string
}

type echoSettings struct {
	Greeting string        `yaml:"greeting"`
	Tick     time.Duration `yaml:"tick"`
}

func (m *echoModule) Start(ctx context.Context, env *app.Env) error {
	m.node = env.NodeName
	var s echoSettings
	if err := env.Settings(&s); err != nil {
		return err
	}
	typ, _ := env.NodeType("world")
	m.rec.add("start %s@%s greeting=%q tick=%v world-type=%d", m.name, env.NodeName, s.Greeting, s.Tick, typ)
	if !m.serve {
		return nil
	}
	svc := gate.NewService("echo")
	gate.Handle(svc, "Say", func(_ *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String(s.Greeting + " from " + env.NodeName + ": " + req.GetValue()), nil
	})
	_, err := svc.Serve(ctx, env.Actor)
	return err
}

func (m *echoModule) Stop(ctx context.Context) error {
	if m.onStop != nil {
		m.onStop(m.node)
	}
	m.rec.add("stop %s@%s", m.name, m.node)
	return nil
}

const clusterFile = `
cluster:
  etcd: {ttl: 2s, prefix: /apptest}
nodes:
  gate1:
    addr: 1.1.1
    master: 127.0.0.1:0
    join_wait: 1s
    modules: [lobby]
    gateway:
      tcp: 127.0.0.1:0
      ws: 127.0.0.1:0
      public: [echo.Say]
      routes:
        echo: {module: world}
  world1:
    addr: 1.2.1
    modules: [world, stats]
  chat1:
    addr: 1.3.1
    modules: [chat]
modules:
  world: {greeting: hello, tick: 50ms}
`

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after %v", what, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// unavailable reports whether m's view holds a as a member marked
// unavailable.
func unavailable(m cluster.Membership, a actor.Addr) bool {
	return slices.ContainsFunc(m.Members(), func(mem cluster.Member) bool { return mem.Addr == a && !mem.Available })
}

func TestCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec := &recorder{}
	var gateNode *app.Node              // set before anything stops
	stopChecks := make(map[string]bool) // node -> gate1's view showed it unavailable when its world stopped
	var checkMu sync.Mutex
	reg := app.NewRegistry()
	reg.Register("lobby", func() app.Module { return &echoModule{name: "lobby", rec: rec} })
	reg.Register("world", func() app.Module {
		return &echoModule{name: "world", serve: true, rec: rec, onStop: func(node string) {
			// The node marked itself unavailable before its modules
			// stop: the gateway's view shows it so (within the watch's
			// latency), and so no longer picks it for new work; it
			// leaves only after its modules have stopped.
			deadline := time.Now().Add(5 * time.Second)
			gone := false
			for time.Now().Before(deadline) {
				if unavailable(gateNode.Members(), actor.MustAddr(1, 2, 1)) {
					gone = true
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			checkMu.Lock()
			stopChecks[node] = gone
			checkMu.Unlock()
		}}
	})
	reg.Register("chat", func() app.Module { return &echoModule{name: "chat", rec: rec} })
	reg.Register("stats", func() app.Module { return &echoModule{name: "stats", rec: rec} })

	path := writeFile(t, clusterFile)
	cfg, err := config.Load(path, nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	gateNode, err = app.Start(ctx, cfg, "gate1", reg, app.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer gateNode.Shutdown(context.Background())
	ready := gateNode.Ready()
	if ready.Node != "gate1" || ready.Addr != "1.1.1" || ready.Endpoint == "" || len(ready.Etcd) != 1 ||
		!strings.HasPrefix(ready.Gateway["tcp"], "tcp://127.0.0.1:") || !strings.HasSuffix(ready.Gateway["ws"], "/ws") {
		t.Fatalf("ready %+v", ready)
	}

	// world1 gets the master's endpoint by an option, chat1 by the
	// environment. world1's build has a version; the others' have none.
	world, err := app.Start(ctx, cfg, "world1", reg, app.WithEtcdEndpoints(ready.Etcd...), app.WithLogger(log), app.WithVersion("v7"))
	if err != nil {
		t.Fatal(err)
	}
	if v := world.Ready().Version; v != "v7" {
		t.Errorf("world1's Ready has version %q, want v7", v)
	}
	defer world.Shutdown(context.Background())
	cfg3, err := config.Load(path, []string{"GUILD_CLUSTER_ETCD_ENDPOINTS=" + strings.Join(ready.Etcd, ",")}, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	chat, err := app.Start(ctx, cfg3, "chat1", reg, app.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer chat.Shutdown(context.Background())
	waitFor(t, 10*time.Second, "3 members in the gateway's view", func() bool { return len(gateNode.Members().Members()) == 3 })

	// A client's request goes through the gateway on gate1 to the world
	// module on world1.
	c, err := client.Dial(ctx, client.Config{Addr: ready.Gateway["tcp"]})
	if err != nil {
		t.Fatal(err)
	}
	var resp wrapperspb.StringValue
	if err := c.Request(ctx, "echo.Say", wrapperspb.String("hi"), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.GetValue() != "hello from world1: hi" {
		t.Errorf("reply %q", resp.GetValue())
	}
	c.Close()
	wc, err := client.Dial(ctx, client.Config{Addr: ready.Gateway["ws"]})
	if err != nil {
		t.Fatal(err)
	}
	if err := wc.Request(ctx, "echo.Say", wrapperspb.String("ws"), &resp); err != nil || resp.GetValue() != "hello from world1: ws" {
		t.Errorf("ws reply %q, %v", resp.GetValue(), err)
	}
	wc.Close()

	// Status lists the three members by name.
	st, err := app.Status(ctx, cfg3)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range st {
		if !s.Up || !s.Available || s.Endpoint == "" || s.Uptime <= 0 || s.Started.IsZero() {
			t.Errorf("status %+v", s)
		}
		names = append(names, fmt.Sprintf("%s=%s/%d%s", s.Name, s.Addr, s.Type, s.Version))
	}
	if want := []string{"gate1=1.1.1/1", "world1=1.2.1/2v7", "chat1=1.3.1/3"}; !slices.Equal(names, want) {
		t.Errorf("status %v, want %v", names, want)
	}

	// world1 shuts down: it marks itself unavailable first (the gateway's
	// view shows that before its world module stops), then stops its
	// modules in reverse, then leaves.
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := world.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := world.Shutdown(sctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	checkMu.Lock()
	gone, checked := stopChecks["world1"]
	checkMu.Unlock()
	if !checked || !gone {
		t.Errorf("the gateway did not see world1 unavailable when its world module stopped (checked %v)", checked)
	}
	// Status now shows world1 down.
	st, err = app.Status(ctx, cfg3)
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 3 || st[2].Name != "world1" || st[2].Up {
		t.Errorf("status after world1 left: %+v", st)
	}

	if err := chat.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := gateNode.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`start lobby@gate1 greeting="" tick=0s world-type=2`,
		`start world@world1 greeting="hello" tick=50ms world-type=2`,
		`start stats@world1 greeting="" tick=0s world-type=2`,
		`start chat@chat1 greeting="" tick=0s world-type=2`,
		"stop stats@world1",
		"stop world@world1",
		"stop chat@chat1",
		"stop lobby@gate1",
	}
	if got := rec.list(); !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// failing fails its Start.
type failing struct{ rec *recorder }

func (f *failing) Start(context.Context, *app.Env) error { return errors.New("no luck") }
func (f *failing) Stop(context.Context) error            { f.rec.add("stop failing"); return nil }

func TestStartFailureUndoes(t *testing.T) {
	rec := &recorder{}
	reg := app.NewRegistry()
	reg.Register("ok", func() app.Module { return &echoModule{name: "ok", rec: rec} })
	reg.Register("bad", func() app.Module { return &failing{rec: rec} })
	cfg, err := config.Parse([]byte(`
nodes:
  n: {addr: 1.1.1, master: 127.0.0.1:0, modules: [ok, bad]}
`), nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	_, err = app.Start(context.Background(), cfg, "n", reg, app.WithLogger(slog.New(slog.DiscardHandler)))
	if err == nil || !strings.Contains(err.Error(), "start module bad: no luck") {
		t.Fatalf("error %v", err)
	}
	if got, want := rec.list(), []string{`start ok@n greeting="" tick=0s world-type=0`, "stop ok@n"}; !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestStartErrors(t *testing.T) {
	reg := app.NewRegistry()
	reg.Register("a", func() app.Module { return &echoModule{name: "a", rec: &recorder{}} })
	cfg, err := config.Parse([]byte("nodes:\n  n: {addr: 1.1.1, master: 127.0.0.1:0, modules: [a, b]}\n"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Start(context.Background(), cfg, "m", reg); !errors.Is(err, app.ErrNoNode) {
		t.Errorf("unknown node: %v", err)
	}
	if _, err := app.Start(context.Background(), cfg, "n", reg); !errors.Is(err, app.ErrNoModule) {
		t.Errorf("unknown module: %v", err)
	}
}

func TestSettingsStrict(t *testing.T) {
	rec := &recorder{}
	reg := app.NewRegistry()
	reg.Register("world", func() app.Module { return &echoModule{name: "world", rec: rec} })
	cfg, err := config.Parse([]byte(`
nodes:
  n: {addr: 1.1.1, master: 127.0.0.1:0, modules: [world]}
modules:
  world: {greting: typo}
`), nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	_, err = app.Start(context.Background(), cfg, "n", reg, app.WithLogger(slog.New(slog.DiscardHandler)))
	if err == nil || !strings.Contains(err.Error(), "modules.world") || !strings.Contains(err.Error(), "greting") {
		t.Errorf("error %v", err)
	}
}

// availModule records how its node's own record looks when it starts.
type availModule struct {
	seen chan string
}

func (m *availModule) Start(ctx context.Context, env *app.Env) error {
	for {
		for _, mem := range env.Members.Members() {
			if mem.Addr == env.Actor.Addr() {
				m.seen <- fmt.Sprintf("available=%v", mem.Available)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond): // the node's own view lags its join
		}
	}
}

func (m *availModule) Stop(context.Context) error { return nil }

// A node joins marked unavailable, so that nobody routes to modules that
// have not started yet, and is marked available once they have.
func TestAvailableOnceModulesStarted(t *testing.T) {
	seen := make(chan string, 1)
	reg := app.NewRegistry()
	reg.Register("m", func() app.Module { return &availModule{seen: seen} })
	cfg, err := config.Parse([]byte("nodes:\n  n: {addr: 1.1.1, master: 127.0.0.1:0, modules: [m]}\n"), nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := app.Start(ctx, cfg, "n", reg, app.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := n.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	if got := <-seen; got != "available=false" {
		t.Errorf("while its module started, the node's record was %s", got)
	}
	await.True(t, 10*time.Second, "the node to be marked available", func() bool {
		return slices.ContainsFunc(n.Members().Members(), func(m cluster.Member) bool { return m.Addr == actor.MustAddr(1, 1, 1) && m.Available })
	})
}
