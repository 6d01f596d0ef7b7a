package guildbench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/bench/internal/benchkit"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// The gateway benchmarks run a gateway node and a backend node (type 2)
// in this process, connected over loopback TCP through a shared in-memory
// membership, and clients that speak the client protocol over TCP.

const backendType = 2

// gateCluster starts the two nodes, the backend's "bench" service and the
// gateway, and returns the gateway's TCP address and the backend node.
func gateCluster(b *testing.B) (addr string, backend *cluster.Node) {
	addr, backend, _ = gateClusterGateway(b)
	return addr, backend
}

// gateClusterGateway is gateCluster, returning the gateway too.
func gateClusterGateway(b *testing.B) (string, *cluster.Node, *gate.Gateway) {
	b.Helper()
	store := cluster.NewMemory()
	quietLog := slog.New(slog.DiscardHandler)
	start := func(a actor.Addr) (*cluster.Node, cluster.Membership) {
		m := store.Membership(a)
		n, err := cluster.Start(context.Background(), cluster.NodeConfig{
			Actor: actor.Config{Addr: a, Logger: quietLog}, Listen: "127.0.0.1:0", Membership: m, Names: store.Names(), Logger: quietLog,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close(); m.Close() })
		return n, m
	}
	gw, gm := start(actor.MustAddr(1, 1, 1))
	be, _ := start(actor.MustAddr(1, backendType, 1))
	svc := gate.NewService("bench")
	reply := wrapperspb.String("pong")
	gate.Handle(svc, "Echo", func(*gate.Session, *wrapperspb.StringValue) (*wrapperspb.StringValue, error) { return reply, nil })
	gate.Handle(svc, "Join", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return reply, gate.JoinGroup(ctx, s.Actor().Node(), req.GetValue(), s.ID())
	})
	if _, err := svc.Serve(context.Background(), be.Actor()); err != nil {
		b.Fatal(err)
	}
	g, err := gate.New(gate.Config{
		Node:    gw.Actor(),
		Members: gm,
		Routes:  map[string]gate.Route{"bench": gate.To(rpc.AnyOf(backendType, cluster.RoundRobin))},
		Public:  []string{"bench.Echo", "bench.Join"},
		Limits:  gate.Limits{Rate: 1e9, Burst: 1 << 30, MaxConns: 19000, LoginTimeout: -1}, // idle bots never log in
		Logger:  quietLog,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	ln, err := g.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		b.Fatal(err)
	}
	return ln.String(), be, g
}

// idleConns is how many connections BenchmarkGateIdleConns holds: the
// file limit of a process here is 20,000.
const idleConns = 19000

// BenchmarkGateIdleConns is the connection-capacity run: "guild bot -idle"
// (built from this repository) holds 19,000 idle TCP clients on one
// gateway in this process, and the gateway process's resident memory is
// read from /proc/self/status before they connect and once they all have
// (after a GC and returning freed memory to the OS both times). Metric:
// bytes of RSS per connection.
func BenchmarkGateIdleConns(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc to read RSS")
	}
	bin := filepath.Join(b.TempDir(), "guild")
	build := exec.Command("go", "build", "-o", bin, "./cmd/guild")
	build.Dir = filepath.Join("..", "..") // the guild module, with its own dependencies
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build guild: %v\n%s", err, out)
	}
	addr, _, g := gateClusterGateway(b)
	before := settledRSS(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bot := exec.CommandContext(ctx, bin, "bot", "-addr", "tcp://"+addr, "-n", strconv.Itoa(idleConns), "-idle", "-ramp", "10s", "-duration", "3m")
	bot.Stdout, bot.Stderr = io.Discard, io.Discard
	if err := bot.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = bot.Process.Kill(); _ = bot.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for g.Conns() < idleConns && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	// On a starved machine a few dials or handshakes time out, and an
	// idle bot does not try again (its report counts them as connection
	// errors, within its 1% allowance): the figure is per connection held.
	held := g.Conns()
	if held < idleConns*99/100 {
		b.Fatalf("only %d of %d connections after 2 minutes", held, idleConns)
	}
	if held < idleConns {
		b.Logf("%d of %d connections held after 2 minutes; the rest could not be made", held, idleConns)
	}
	time.Sleep(time.Second) // the last handshakes settle
	after := settledRSS(b)
	held = g.Conns()
	b.ReportMetric(float64(after-before)/float64(held), "B/conn")
	b.ReportMetric(float64(held), "conns")
}

// settledRSS returns this process's resident memory after a GC that
// returns freed memory to the OS.
func settledRSS(b *testing.B) int64 {
	runtime.GC()
	debug.FreeOSMemory()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// BenchmarkGateRequest: client → gateway node → backend node → client,
// one request in flight, over TCP all the way. p50 and p99 in µs.
func BenchmarkGateRequest(b *testing.B) {
	addr, _ := gateCluster(b)
	ctx := context.Background()
	c, err := client.Dial(ctx, client.Config{Addr: "tcp://" + addr})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	body, _ := proto.Marshal(wrapperspb.String("ping"))
	call := func() (any, error) { return c.RequestRaw(ctx, "bench.Echo", body) }
	for range benchkit.RemoteWarmup {
		if _, err := call(); err != nil {
			b.Fatal(err)
		}
	}
	benchkit.RunRequestsCheck(b, func(reply any) bool { return len(reply.([]byte)) > 0 }, call)
}

// broadcastSessions is how many sessions BenchmarkGateBroadcast pushes to.
const broadcastSessions = 10000

// childEnv makes this test binary a client process for the broadcast
// benchmark (see TestGateClientsChild): the value is "addr sessions".
const childEnv = "GUILD_BENCH_GATE_CLIENTS"

// BenchmarkGateBroadcast: one push to a group of 10,000 sessions, in ms
// until the last client has it. The clients run in a child process (this
// test binary again), so that each process stays under the file limit
// and the gateway's process holds only the server side.
func BenchmarkGateBroadcast(b *testing.B) {
	addr, backend := gateCluster(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestGateClientsChild$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", childEnv, addr, broadcastSessions))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(out)
	next := func() string {
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, "bench:") {
				return strings.TrimPrefix(l, "bench:")
			}
		}
		b.Fatalf("the client process ended: %v", lines.Err())
		return ""
	}
	if l := next(); l != "ready" {
		b.Fatalf("client process: %q", l)
	}
	if n, err := gate.GroupSize(ctx, backend.Actor(), "all"); err != nil || n != broadcastSessions {
		b.Fatalf("group size %d, %v; want %d", n, err, broadcastSessions)
	}
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if err := gate.Broadcast(ctx, backend.Actor(), "all", "bench.Tick", wrapperspb.Int64(int64(i))); err != nil {
			b.Fatal(err)
		}
		f := strings.Fields(next()) // "<seq> <unix nanos of the last receipt>"
		if len(f) != 2 || f[0] != strconv.Itoa(i) {
			b.Fatalf("client process: %q", f)
		}
		last, _ := strconv.ParseInt(f[1], 10, 64)
		total += time.Unix(0, last).Sub(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Microseconds())/1e3/float64(b.N), "ms-to-last")
}

// TestGateClientsChild is the client process of BenchmarkGateBroadcast:
// it does nothing unless started by it.
func TestGateClientsChild(t *testing.T) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		t.Skip("only runs as BenchmarkGateBroadcast's client process")
	}
	var addr string
	var n int
	if _, err := fmt.Sscan(spec, &addr, &n); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var (
		mu     sync.Mutex
		counts = map[int64]*atomic.Int64{}
	)
	count := func(seq int64) *atomic.Int64 {
		mu.Lock()
		defer mu.Unlock()
		c := counts[seq]
		if c == nil {
			c = new(atomic.Int64)
			counts[seq] = c
		}
		return c
	}
	join, _ := proto.Marshal(wrapperspb.String("all"))
	clients := make([]*client.Client, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := client.Dial(ctx, client.Config{Addr: "tcp://" + addr, DialTimeout: time.Minute})
			if err != nil {
				t.Error(err)
				return
			}
			clients[i] = c
			c.OnPush("bench.Tick", func(body []byte) {
				var v wrapperspb.Int64Value
				if proto.Unmarshal(body, &v) == nil && count(v.Value).Add(1) == int64(n) {
					fmt.Printf("bench:%d %d\n", v.Value, time.Now().UnixNano())
				}
			})
			if _, err := c.RequestRaw(ctx, "bench.Join", join); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	fmt.Println("bench:ready")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the benchmark is done
	for _, c := range clients {
		c.Close()
	}
}
