package arena_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/examples/arena"
	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/gate/tokenauth"
	"github.com/guildkit/guild/rpc"
)

// fastWorld makes the tests quick: players start together in the middle
// of the room and run fast.
var fastWorld = arena.WorldSettings{
	Spawn:   []float64{1000, 1000},
	Speed:   1500,
	Tick:    arena.Duration(20 * time.Millisecond),
	OrbLife: arena.Duration(time.Hour), // no orb appears unless one is picked up
}

// sessionsSettle is how long a test lets closed sessions stop before it
// closes their gateway.
const sessionsSettle = 200 * time.Millisecond

// startDemo runs RunDemo on free ports until the test ends and returns
// its HTTP and TCP addresses.
func startDemo(t *testing.T, world arena.WorldSettings) (httpAddr, tcpAddr string, out *syncBuffer) {
	t.Helper()
	d := runDemo(t, world)
	return d.http, d.tcp, d.out
}

// demoRun is a RunDemo running for a test.
type demoRun struct {
	http, tcp string      // its addresses
	ws        string      // its WebSocket URL
	out       *syncBuffer // what it printed
	stop      func()      // stops it and waits for it to return; safe to call twice
}

// runDemo runs RunDemo on free ports until the test ends or its stop is
// called.
func runDemo(t *testing.T, world arena.WorldSettings) *demoRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &demoRun{out: new(syncBuffer)}
	type addrs struct{ http, tcp string }
	ready := make(chan addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- arena.RunDemo(ctx, arena.DemoOptions{
			Addr:     "127.0.0.1:0",
			TCPAddr:  "127.0.0.1:0",
			MQTTAddr: "127.0.0.1:0",
			Out:      d.out,
			World:    world,
			Ready:    func(a arena.DemoAddrs) { ready <- addrs{a.HTTP, a.TCP} },
		})
	}()
	var once sync.Once
	d.stop = func() {
		once.Do(func() {
			// The players' cleanups, registered later, have closed their
			// clients. Let the gateway's sessions finish stopping before it
			// closes: gate.Gateway.Close can race with a session that is
			// stopping at that moment (its writer's WaitGroup.Add against
			// Close's Wait), which the race detector reports.
			time.Sleep(sessionsSettle)
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("RunDemo: %v", err)
				}
			case <-time.After(waitTimeout):
				t.Errorf("RunDemo still running %v after its ctx ended", waitTimeout)
			}
		})
	}
	t.Cleanup(d.stop)
	select {
	case a := <-ready:
		d.http, d.tcp, d.ws = a.http, a.tcp, "ws://"+a.http+arena.WebSocketPath
		return d
	case err := <-done:
		t.Fatalf("RunDemo: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("RunDemo is not ready")
	}
	panic("unreachable")
}

// syncBuffer is a strings.Builder safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// play is the game as two players see it, through the gateways at
// aliceAddr and bobAddr: both join, alice runs out of bob's sight and
// back, bob chats, and alice leaves with leave. It checks what each
// player is pushed.
func play(t *testing.T, aliceAddr, bobAddr string, leave func(alice *testPlayer)) {
	alice := join(t, aliceAddr, "alice")
	bob := join(t, bobAddr, "bob")
	waitFor(t, "bob to see alice", func() bool { _, ok := bob.sees(alice.id); return ok })
	if _, ok := alice.sees(bob.id); !ok {
		alice.waitNextTicks(t, 1)
		if _, ok := alice.sees(bob.id); !ok {
			t.Fatal("alice does not see bob")
		}
	}

	// Alice runs right: bob sees her move, then lose sight of her (two
	// cells away) while she is still in the room.
	alice.move(t, 1, 0)
	waitFor(t, "bob to see alice move", func() bool {
		p, ok := bob.sees(alice.id)
		return ok && p.GetX() > 1050 && p.GetY() == 1000
	})
	waitFor(t, "alice to run out of bob's sight", func() bool { _, ok := bob.sees(alice.id); return !ok })
	waitFor(t, "alice to reach the wall", func() bool {
		p, ok := alice.sees(alice.id)
		return ok && p.GetX() == arena.DefaultWidth
	})
	if _, ok := alice.sees(bob.id); ok {
		t.Error("alice, at the wall, still sees bob")
	}

	// Bob chats: alice hears it with bob's name, from the World.Who rpc.
	if err := bob.c.Request(testCtx(t), arena.RouteSay, &arenapb.SayRequest{Text: "  where are you?  "}, new(arenapb.SayReply)); err != nil {
		t.Fatalf("say: %v", err)
	}
	waitFor(t, "alice to hear bob", func() bool { return alice.heard("bob", "where are you?") })
	err := bob.c.Request(testCtx(t), arena.RouteSay, &arenapb.SayRequest{Text: " "}, new(arenapb.SayReply))
	if rpc.CodeOf(err) != rpc.InvalidArgument {
		t.Errorf("saying nothing: %v, want InvalidArgument", err)
	}

	// Alice comes back and stops near bob.
	alice.move(t, -1, 0)
	waitFor(t, "alice to come back", func() bool {
		p, ok := bob.sees(alice.id)
		return ok && p.GetX() < 1300
	})
	alice.move(t, 0, 0)

	// Alice leaves: she is gone from bob's next updates.
	leave(alice)
	waitFor(t, "alice to be gone", func() bool { _, ok := bob.sees(alice.id); return !ok })
	bob.waitNextTicks(t, 3)
	if _, ok := bob.sees(alice.id); ok {
		t.Error("alice is back in bob's updates")
	}
	if _, ok := bob.sees(bob.id); !ok {
		t.Error("bob does not see himself")
	}
}

// TestDemo plays the arena in one process: alice over WebSocket, bob over
// TCP; alice leaves by closing her connection.
func TestDemo(t *testing.T) {
	httpAddr, tcpAddr, out := startDemo(t, fastWorld)
	for _, want := range []string{"open http://127.0.0.1:", "arrow keys, WASD or the mouse", "go run ./cmd/guild bot -addr tcp://" + tcpAddr, "the leaderboard is kept in memory"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("RunDemo's output does not contain %q:\n%s", want, out)
		}
	}
	play(t, "ws://"+httpAddr+arena.WebSocketPath, "tcp://"+tcpAddr, func(alice *testPlayer) {
		if err := alice.c.Close(); err != nil {
			t.Errorf("alice: close: %v", err)
		}
	})
}

// TestDemoServesThePage checks that the page is served beside /ws.
func TestDemoServesThePage(t *testing.T) {
	httpAddr, _, _ := startDemo(t, fastWorld)
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodGet, "http://"+httpAddr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "<html") {
		t.Errorf("GET /: %s\n%s", resp.Status, body)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestDemoIdlePlayersLeave checks that a player who sends nothing for
// WorldSettings.Idle is dropped, while one who moves stays; and that
// arena.Leave and joining again work.
func TestDemoIdlePlayersLeave(t *testing.T) {
	world := fastWorld
	world.Idle = arena.Duration(500 * time.Millisecond)
	httpAddr, _, _ := startDemo(t, world)
	ws := "ws://" + httpAddr + arena.WebSocketPath
	carol := join(t, ws, "carol")
	bob := join(t, ws, "bob")
	waitFor(t, "bob to see carol", func() bool { _, ok := bob.sees(carol.id); return ok })
	deadline := time.Now().Add(waitTimeout)
	for {
		bob.move(t, 0, 0) // bob keeps his player alive
		if _, ok := bob.sees(carol.id); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle carol is still in bob's updates")
		}
		time.Sleep(100 * time.Millisecond)
	}
	err := carol.c.Request(testCtx(t), arena.RouteMove, &arenapb.MoveRequest{Dx: 1}, new(arenapb.MoveReply))
	if rpc.CodeOf(err) != rpc.NotFound {
		t.Errorf("an idle player's move: %v, want NotFound", err)
	}
	// Carol joins again, as the same player; then leaves with arena.Leave.
	var reply arenapb.JoinReply
	if err := carol.c.Request(testCtx(t), arena.RouteJoin, &arenapb.JoinRequest{Name: "carol"}, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.GetPlayerId() != carol.id {
		t.Errorf("carol joined again as %q, want %q", reply.GetPlayerId(), carol.id)
	}
	bob.move(t, 0, 0)
	waitFor(t, "bob to see carol again", func() bool { _, ok := bob.sees(carol.id); return ok })
	if err := carol.c.Request(testCtx(t), arena.RouteLeave, &emptypb.Empty{}, nil); err != nil {
		t.Fatal(err)
	}
	bob.move(t, 0, 0)
	waitFor(t, "carol to be gone", func() bool { _, ok := bob.sees(carol.id); return !ok })
}

func TestDemoBadJoin(t *testing.T) {
	httpAddr, _, _ := startDemo(t, fastWorld)
	p := join(t, "ws://"+httpAddr+arena.WebSocketPath, "dave")
	for _, name := range []string{"", "   ", strings.Repeat("x", arena.MaxNameLen+1)} {
		err := p.c.Request(testCtx(t), arena.RouteJoin, &arenapb.JoinRequest{Name: name}, nil)
		if rpc.CodeOf(err) != rpc.InvalidArgument {
			t.Errorf("join as %q: %v, want InvalidArgument", name, err)
		}
	}
}

// TestDemoTokens: the demo takes tokens signed with DemoSecret. A client
// logged in by one chats without joining, shown as "@" and its user; a
// player cannot take such a name; a client without a token cannot chat
// before it joins; a token of another secret is refused.
func TestDemoTokens(t *testing.T) {
	httpAddr, _, _ := startDemo(t, fastWorld)
	addr := "ws://" + httpAddr + arena.WebSocketPath
	erin := join(t, addr, "erin")

	j, err := tokenauth.NewJWT([]byte(arena.DemoSecret))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := j.Mint("ann", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ann, err := client.Dial(testCtx(t), client.Config{Addr: addr, Token: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer ann.Close()
	if err := ann.Request(testCtx(t), arena.RouteSay, &arenapb.SayRequest{Text: "hi all"}, new(arenapb.SayReply)); err != nil {
		t.Fatalf("ann says: %v", err)
	}
	waitFor(t, "erin to hear @ann", func() bool { return erin.heard("@ann", "hi all") })

	if err := erin.c.Request(testCtx(t), arena.RouteJoin, &arenapb.JoinRequest{Name: "@ann"}, nil); rpc.CodeOf(err) != rpc.InvalidArgument {
		t.Errorf("join as @ann: %v, want InvalidArgument", err)
	}
	anon := dial(t, addr, "anon")
	if err := anon.c.Request(testCtx(t), arena.RouteSay, &arenapb.SayRequest{Text: "psst"}, new(arenapb.SayReply)); rpc.CodeOf(err) != rpc.Unauthenticated {
		t.Errorf("say without a token or a join: %v, want Unauthenticated", err)
	}
	other, err := tokenauth.NewJWT([]byte("not-the-demo-secret-at-all"))
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := other.Mint("ann", time.Hour)
	if c, err := client.Dial(testCtx(t), client.Config{Addr: addr, Token: forged}); err == nil {
		c.Close()
		t.Error("a token of another secret was taken")
	} else if rpc.CodeOf(err) != rpc.Unauthenticated {
		t.Errorf("a token of another secret: %v, want Unauthenticated", err)
	}
}
