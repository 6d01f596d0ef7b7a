package demo

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/examples/arena"
	"github.com/guildkit/guild/internal/await"
)

// demoTimeout bounds each wait of these tests.
const demoTimeout = 30 * time.Second

// The demo's end-to-end tests (one node, -nodes 3, its banner, the bots
// and MQTT) run guild demo through the CLI: they are in cmd/guild. These
// test what only this package sees.

func TestDemoClusterFile(t *testing.T) {
	a := demoAddrs{etcd: "127.0.0.1:2379", ws: "127.0.0.1:8081", tcp: "127.0.0.1:7000", mqtt: "127.0.0.1:1884", mqttWS: "127.0.0.1:8083"}
	f := demoClusterFile(a, "/data/arena.db")
	contains(t, "the cluster file", f,
		`master: "127.0.0.1:2379"`, `ws: "127.0.0.1:8081"`, `tcp: "127.0.0.1:7000"`,
		`mqtt: "127.0.0.1:1884"`, `mqtt_ws: "127.0.0.1:8083"`, `auth: {jwt_secret: "`+arena.DemoSecret+`"}`,
		"public: [arena.Join]", "arena: {module: world}", "chat: {module: chat}",
		"modules: [world]", "modules: [chat]", "tick: 66.666666ms", `store: "/data/arena.db"`)
	a.tcp, a.mqtt = "", ""
	if f := demoClusterFile(a, "/data/arena.db"); strings.Contains(f, "tcp:") || strings.Contains(f, "mqtt:") {
		t.Errorf("a cluster file without TCP and MQTT has their listeners:\n%s", f)
	}
	if _, err := config.Parse([]byte(f), nil, []string{arena.ModuleWorld, arena.ModuleChat}); err != nil {
		t.Errorf("the cluster file does not load: %v\n%s", err, f)
	}
}

// TestDemoNodesPortTaken takes the port picked for the gateway node's
// WebSocket before the node listens, as another program on the machine
// may: guild demo -nodes 3 starts the node again with other ports, and
// the arena runs.
func TestDemoNodesPortTaken(t *testing.T) {
	if testing.Short() {
		t.Skip("builds guild and starts four processes")
	}
	bin := buildGuild(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var picks atomic.Int32
	free := func() (string, error) {
		if picks.Add(1) == 2 { // etcd, then the WebSocket: a taken one
			return taken.Addr().String(), nil
		}
		return freeAddr()
	}
	a := demoAddrs{page: "127.0.0.1:0", free: free}
	var banner atomic.Bool
	var stderr syncBuffer
	stdout := &lineWriter{fn: func(l string) {
		t.Logf("stdout: %s", l)
		if strings.Contains(l, "Press Ctrl-C") {
			banner.Store(true)
		}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- demoNodes(ctx, bin, a, filepath.Join(t.TempDir(), "arena.db"), false, stdout, &stderr) }()
	await.True(t, demoTimeout, "the arena to run", func() bool {
		select {
		case err := <-done:
			t.Fatalf("guild demo -nodes 3 ended: %v\n%s", err, stderr.String())
		default:
		}
		return banner.Load()
	})
	contains(t, "guild demo's output", stderr.String(), "the gate node exited at start", "starting it again with other ports")
	if n := picks.Load(); n < 6 {
		t.Errorf("%d ports picked, want two rounds of three", n)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("guild demo -nodes 3 after its context ended: %v", err)
		}
	case <-time.After(demoTimeout):
		t.Fatal("guild demo -nodes 3 still runs after its context ended")
	}
}

// buildGuild builds cmd/guild, the binary whose guild run the nodes of
// demoNodes are, into a temporary directory.
func buildGuild(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "guild")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/guildkit/guild/cmd/guild").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func contains(t *testing.T, what, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, got)
		}
	}
}

// lineWriter calls fn with every complete line written to it, without the
// newline. Writes may come from several goroutines.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func(line string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.fn(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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
