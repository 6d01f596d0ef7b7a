package arena_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/examples/arena"
	"github.com/guildkit/guild/gate"
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/rpc"
)

// TestCluster plays the arena on three nodes over real TCP and etcd: the
// gateway on node 0, the world on node 1 (with its grains, claimed in
// etcd, and their bbolt store), the chat on node 2. Every request crosses
// nodes, the chat asks the world for names with the generated World
// client, and the world and the synced grains push to sessions on
// another node.
func TestCluster(t *testing.T) {
	world := fastWorld
	world.Store = filepath.Join(t.TempDir(), "arena.db")
	const gateType, worldType, chatType = 1, 2, 3
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, Types: []int{gateType, worldType, chatType}})
	nodeType := func(module string) (int, bool) {
		switch module {
		case arena.ModuleWorld:
			return worldType, true
		case arena.ModuleChat:
			return chatType, true
		}
		return 0, false
	}
	start := func(i int, name string, m app.Module) {
		t.Helper()
		env := &app.Env{
			NodeName: fmt.Sprintf("node%d", i),
			Actor:    c.Node(i),
			Cluster:  c.Nodes[i],
			Members:  c.Membership(i),
			RPC:      rpc.NewClient(c.Node(i), rpc.WithMembership(c.Membership(i))),
			NodeType: nodeType,
			Settings: func(v any) error {
				if s, ok := v.(*arena.WorldSettings); ok {
					*s = world
				}
				return nil
			},
			Logger: c.Node(i).Logger(),
		}
		if err := m.Start(testCtx(t), env); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = m.Stop(ctx)
		})
	}
	start(1, arena.ModuleWorld, arena.NewWorld())
	start(2, arena.ModuleChat, arena.NewChat())

	routes, public, err := arena.Routes(nodeType)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{Node: c.Node(0), Members: c.Membership(0), Routes: routes, Public: public})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		time.Sleep(sessionsSettle) // see startDemo
		_ = g.Close()
	})
	ws, err := gatews.Listen(g, "127.0.0.1:0", arena.WebSocketPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := g.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}

	// Alice just closes her connection: the world, on another node,
	// watches her session on the gateway's node and drops her at once
	// (well before the 30s idle limit, beyond the test's wait).
	play(t, "ws://"+ws.String()+arena.WebSocketPath, "tcp://"+tcp.String(), func(alice *testPlayer) {
		_ = alice.c.Close()
	})

	// A score goes to the grains on the world's node, and the leaderboard
	// comes back to the player through the gateway's node; so do the
	// deltas of her synced record.
	dora := join(t, "tcp://"+tcp.String(), "dora")
	stats := subscribeStats(t, dora)
	score := dora.collect(t)
	waitFor(t, "the leaderboard to show dora", func() bool { s, ok := dora.onBoard("dora"); return ok && s == score })
	waitFor(t, "dora's synced record to show her score", func() bool {
		s := stats.state()
		return s.GetBest() == score && s.GetOrbs() >= 1 && s.GetVisits() == 1
	})
}

func TestRoutes(t *testing.T) {
	routes, public, err := arena.Routes(func(m string) (int, bool) { return map[string]int{"world": 2, "chat": 3}[m], true })
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) != 2 || len(public) != 1 || public[0] != arena.RouteJoin {
		t.Errorf("routes %v, public %v", routes, public)
	}
	if _, _, err := arena.Routes(func(string) (int, bool) { return 0, false }); err == nil {
		t.Error("Routes without a world node: no error")
	}
}
