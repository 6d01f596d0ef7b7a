package brokers_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/app/brokers"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/internal/await"
)

// TestMain fails the package when a test leaves a goroutine behind.
// kcp-go's timer scheduler (package app links KCP for gateways), started
// at its package initialisation, lives as long as the process: no leak of
// ours.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).sched"),
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).prepend"),
	)
}

// echo serves the gate service "echo" on the nodes that host it.
type echo struct{}

func (echo) Start(ctx context.Context, env *app.Env) error {
	svc := gate.NewService("echo")
	gate.Handle(svc, "Say", func(_ *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String(env.NodeName + ": " + req.GetValue()), nil
	})
	_, err := svc.Serve(ctx, env.Actor)
	return err
}

func (echo) Stop(context.Context) error { return nil }

// freePort returns a port nothing listens on at the moment.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// load writes a cluster file and loads it.
func load(t *testing.T, file string, reg *app.Registry) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestClusterOnEmbeddedNATS runs a gateway node and a world node on
// NATS, chosen in the cluster file, with the NATS server embedded in the
// gateway node (development mode: nothing installed), and sends client
// requests through the gateway to the world node over it. Without the
// brokers' options a program cannot run on NATS, and says what to do.
func TestClusterOnEmbeddedNATS(t *testing.T) {
	runCluster(t, "{kind: nats, prefix: apptest, heartbeat: 200ms, dead_after: 1s}", "nats: "+freePort(t), true)
}

// TestClusterOnRabbitMQ is the same on the machine's RabbitMQ.
func TestClusterOnRabbitMQ(t *testing.T) {
	reachable(t, "RabbitMQ", "127.0.0.1:5672")
	runCluster(t, "{kind: amqp, url: 'amqp://guest:guest@127.0.0.1:5672/', prefix: "+uniquePrefix()+"}", "", false)
}

// TestClusterOnRedis is the same on the machine's Redis.
func TestClusterOnRedis(t *testing.T) {
	reachable(t, "Redis", "127.0.0.1:6379")
	runCluster(t, "{kind: redis, url: 'redis://127.0.0.1:6379/0', prefix: "+uniquePrefix()+"}", "", false)
}

// uniquePrefix returns a prefix no other run uses.
func uniquePrefix() string { return "apptest" + strings.ToLower(rand.Text()[:8]) }

// reachable skips the test, or fails it on CI (CI=true), when nothing
// accepts connections on hostport.
func reachable(t *testing.T, name, hostport string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", hostport, 2*time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	msg := name + " not reachable on " + hostport + " (" + err.Error() + "); run `bash scripts/services.sh` to run this test"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// runCluster starts a gateway node and a world node of a cluster file
// whose cluster.transport is transportYAML (gateExtra is added to the
// gateway node's section), and checks that client requests cross from one
// to the other. withoutBrokers also checks that Start without the
// brokers' options fails and names app/brokers.
func runCluster(t *testing.T, transportYAML, gateExtra string, withoutBrokers bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := app.NewRegistry()
	reg.Register("lobby", func() app.Module { return struct{ echo }{} })
	reg.Register("world", func() app.Module { return echo{} })
	if gateExtra != "" {
		gateExtra = "\n    " + gateExtra
	}
	cfg := load(t, `
cluster:
  etcd: {ttl: 2s, prefix: /brokerapptest}
  transport: `+transportYAML+`
nodes:
  gate1:
    addr: 1.1.1
    master: 127.0.0.1:0`+gateExtra+`
    modules: [lobby]
    gateway:
      tcp: 127.0.0.1:0
      public: [echo.Say]
      routes:
        echo: {module: world}
  world1:
    addr: 1.2.1
    modules: [world]
`, reg)
	log := slog.New(slog.DiscardHandler)
	if withoutBrokers {
		if _, err := app.Start(ctx, cfg, "gate1", reg, app.WithLogger(log)); err == nil || !strings.Contains(err.Error(), "app/brokers") {
			t.Fatalf("Start without brokers.Options: %v, want an error naming app/brokers", err)
		}
	}
	opts := append(brokers.Options(), app.WithLogger(log))
	gw, err := app.Start(ctx, cfg, "gate1", reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Shutdown(context.Background())
	ready := gw.Ready()
	if want := cfg.Cluster.Transport.Prefix; !strings.HasPrefix(ready.Endpoint, want) {
		t.Fatalf("the gateway node's endpoint is %q, want its inbox under %q", ready.Endpoint, want)
	}
	world, err := app.Start(ctx, cfg, "world1", reg, append(opts, app.WithEtcdEndpoints(ready.Etcd...))...)
	if err != nil {
		t.Fatal(err)
	}
	defer world.Shutdown(context.Background())
	await.True(t, 10*time.Second, "2 available members in the gateway's view", func() bool {
		ms := gw.Members().Members()
		return len(ms) == 2 && ms[0].Available && ms[1].Available
	})

	c, err := client.Dial(ctx, client.Config{Addr: ready.Gateway["tcp"]})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 20 {
		var resp wrapperspb.StringValue
		if err := c.Request(ctx, "echo.Say", wrapperspb.String("hi"), &resp); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if resp.GetValue() != "world1: hi" {
			t.Fatalf("reply %q, want %q", resp.GetValue(), "world1: hi")
		}
	}
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	defer scancel()
	if err := world.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := gw.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
}
