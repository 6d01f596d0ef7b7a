package main

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/examples/arena"
	"github.com/guildkit/guild/examples/arena/arenapb"
)

// demoTimeout bounds each wait of the arena demo's tests.
const demoTimeout = 30 * time.Second

var (
	pageLine = regexp.MustCompile(`open (http://\S+) in a browser`)
	botsLine = regexp.MustCompile(`guild bot -addr (tcp://\S+)`)
)

// demoAddrs waits for the demo's instructions on lines and returns the
// page's address (host:port) and the bots' address (tcp://host:port).
func demoAddrs(t *testing.T, lines <-chan string, exited <-chan struct{}) (page, bots string) {
	t.Helper()
	timeout := time.After(demoTimeout)
	for page == "" || bots == "" {
		select {
		case l := <-lines:
			if m := pageLine.FindStringSubmatch(l); m != nil {
				page = strings.TrimPrefix(m[1], "http://")
			}
			if m := botsLine.FindStringSubmatch(l); m != nil {
				bots = m[1]
			}
		case <-exited:
			t.Fatal("the demo exited before it printed its addresses")
		case <-timeout:
			t.Fatalf("the demo printed no addresses after %v", demoTimeout)
		}
	}
	return page, bots
}

// checkArena joins the arena at the WebSocket addr, moves, and waits for
// a world update that shows the move, and for its own chat line.
func checkArena(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	updates := make(chan *arenapb.WorldUpdate, 100)
	c.OnPush(arena.PushWorld, func(body []byte) {
		u := new(arenapb.WorldUpdate)
		if proto.Unmarshal(body, u) == nil {
			select {
			case updates <- u:
			default:
			}
		}
	})
	chat := make(chan *arenapb.ChatLine, 10)
	c.OnPush(arena.PushChat, func(body []byte) {
		l := new(arenapb.ChatLine)
		if proto.Unmarshal(body, l) == nil {
			chat <- l
		}
	})
	var joined arenapb.JoinReply
	if err := c.Request(ctx, arena.RouteJoin, &arenapb.JoinRequest{Name: "tester"}, &joined); err != nil {
		t.Fatalf("join: %v", err)
	}
	dx := float32(1)
	if joined.GetX() > arena.DefaultWidth/2 {
		dx = -1
	}
	if err := c.Request(ctx, arena.RouteMove, &arenapb.MoveRequest{Dx: dx}, nil); err != nil {
		t.Fatalf("move: %v", err)
	}
	for moved := false; !moved; {
		select {
		case u := <-updates:
			for _, p := range u.GetPlayers() {
				if p.GetId() == joined.GetPlayerId() && p.GetX() != joined.GetX() {
					moved = true
				}
			}
		case <-ctx.Done():
			t.Fatal("no world update shows the move")
		}
	}
	if err := c.Request(ctx, arena.RouteSay, &arenapb.SayRequest{Text: "hi"}, nil); err != nil {
		t.Fatalf("say: %v", err)
	}
	select {
	case l := <-chat:
		if l.GetFrom() != "tester" || l.GetText() != "hi" {
			t.Errorf("chat line %v", l)
		}
	case <-ctx.Done():
		t.Fatal("no chat line")
	}
}

// TestDemoArena runs guild demo on free ports, plays it over WebSocket,
// runs the bots of examples/arena/bots.yaml against it, and stops it.
func TestDemoArena(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lines := make(chan string, 100)
	stdout := &lineWriter{fn: func(l string) { lines <- l }}
	var stderr syncBuffer
	done := make(chan int, 1)
	exited := make(chan struct{})
	go func() {
		done <- demo(ctx, []string{"-addr", "127.0.0.1:0", "-tcp", "127.0.0.1:0"}, stdout, &stderr)
		close(exited)
	}()
	page, bots := demoAddrs(t, lines, exited)
	checkArena(t, "ws://"+page+arena.WebSocketPath)

	var botOut, botErr syncBuffer
	code := bot(ctx, []string{"-addr", bots, "-scenario", "../../examples/arena/bots.yaml", "-n", "3", "-duration", "1500ms"}, &botOut, &botErr)
	if code != exitOK {
		t.Errorf("bots: exit code %d; stderr:\n%s", code, botErr.String())
	}
	contains(t, "the bots' report", botOut.String(), "clients            3 connected of 3", "errors             0")

	time.Sleep(200 * time.Millisecond) // the bots' sessions stop (see examples/arena's sessionsSettle)
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit code %d; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(demoTimeout):
		t.Fatal("the demo is still running after its ctx ended")
	}
}

func TestDemoArenaBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "-nodes", "2"},
		{"demo", "-players", "3"},
		{"demo", "-chat", "-addr", ":9999"},
		{"demo", "-addr", "no-such-host-or-port"},
	} {
		code, out, errOut := runCmd(args...)
		if code == exitOK {
			t.Errorf("%q: exit code 0", args)
		}
		if errOut == "" {
			t.Errorf("%q: nothing on stderr; stdout:\n%s", args, out)
		}
	}
}

func TestDemoClusterFile(t *testing.T) {
	f := demoClusterFile("127.0.0.1:2379", "127.0.0.1:8081", "127.0.0.1:7000")
	contains(t, "the cluster file", f,
		`master: "127.0.0.1:2379"`, `ws: "127.0.0.1:8081"`, `tcp: "127.0.0.1:7000"`,
		"public: [arena.Join]", "arena: {module: world}", "chat: {module: chat}",
		"modules: [world]", "modules: [chat]", "tick: 66.666666ms")
	if strings.Contains(demoClusterFile("127.0.0.1:2379", "127.0.0.1:8081", ""), "tcp:") {
		t.Error("a cluster file without TCP has a tcp listener")
	}
}

// TestDemoNodes runs guild demo -nodes 3 as a process: three guild run
// processes behind it, the page and its WebSocket proxied by it.
func TestDemoNodes(t *testing.T) {
	if _, ok := lookup("run"); !ok {
		t.Skip("guild run is not there yet")
	}
	if testing.Short() {
		t.Skip("builds guild and starts four processes")
	}
	bin := buildGuild(t)
	cmd := exec.Command(bin, "demo", "-nodes", "3", "-addr", "127.0.0.1:0", "-tcp", "127.0.0.1:0", "-v")
	lines := make(chan string, 100)
	cmd.Stdout = &lineWriter{fn: func(l string) {
		t.Logf("stdout: %s", l)
		lines <- l
	}}
	cmd.Stderr = &lineWriter{fn: func(l string) { t.Logf("stderr: %s", l) }}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	})
	page, bots := demoAddrs(t, lines, exited)
	if strings.HasSuffix(bots, ":0") {
		t.Errorf("the bots' address %s has no port", bots)
	}
	checkArena(t, "ws://"+page+arena.WebSocketPath)

	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("guild demo -nodes 3: %v", waitErr)
		}
	case <-time.After(demoTimeout):
		t.Fatal("guild demo -nodes 3 still runs after an interrupt")
	}
}
