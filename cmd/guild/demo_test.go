package main

import (
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/examples/arena"
	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/examples/demo"
	"github.com/guildkit/guild/internal/await"
)

// demoTimeout bounds each wait of the arena demo's tests.
const demoTimeout = 30 * time.Second

// demoQuickStop is how long guild demo -nodes 3 may take to stop: well
// under the nodes' 10s shutdown timeout, which a node that waits on a
// gone etcd would run into.
const demoQuickStop = 6 * time.Second

var (
	pageLine  = regexp.MustCompile(`open (http://\S+) in a browser`)
	botsLine  = regexp.MustCompile(`bots, from the repository's root: go run \./cmd/guild (bot -addr (tcp://\S+) .*)$`)
	storeLine = regexp.MustCompile(`the leaderboard is kept in (\S+) `)
	mqttLine  = regexp.MustCompile(`MQTT: (\S+), and over WebSocket (ws://\S+) `)
	tokenLine = regexp.MustCompile(`an MQTT password \(optional; it logs you in as ann\): go run \./cmd/guild (token .*)$`)
	nodeLine  = regexp.MustCompile(`node \S+, pid (\d+): `)
	// bannerCommand is a command line in the banner, up to a ")" or the
	// end of the line.
	bannerCommand = regexp.MustCompile(`go run \./cmd/guild ([^)]*)`)
)

// demoBanner is what a test reads in guild demo's banner.
type demoBanner struct {
	page    string   // host:port of the page
	bots    string   // tcp://host:port of the bots
	botArgs []string // the arguments of the bots' command, after "go run ./cmd/guild"
	store   string   // the store's file
	mqtt    string   // host:port of MQTT
	mqttWS  string   // ws://host:port/mqtt
	token   []string // the arguments of the token command, after "go run ./cmd/guild"
	nodes   []int    // the pids of the demo's node processes
}

// readBanner waits for the demo's banner on lines, up to its last line
// ("Press Ctrl-C ..."), and returns what it says. The first line must come
// before anything else: it says the demo is starting.
func readBanner(t *testing.T, lines <-chan string, exited <-chan struct{}) demoBanner {
	t.Helper()
	var b demoBanner
	timeout := time.After(demoTimeout)
	for first, done := true, false; !done; first = false {
		select {
		case l := <-lines:
			done = strings.HasPrefix(l, "Press Ctrl-C")
			if first && !strings.HasPrefix(l, "Starting the arena") {
				t.Errorf("the demo's first line is %q, want it to say it is starting", l)
			}
			if m := pageLine.FindStringSubmatch(l); m != nil {
				b.page = strings.TrimPrefix(m[1], "http://")
			}
			if m := botsLine.FindStringSubmatch(l); m != nil {
				b.botArgs, b.bots = strings.Fields(m[1]), m[2]
			}
			if m := storeLine.FindStringSubmatch(l); m != nil {
				b.store = m[1]
			}
			if m := mqttLine.FindStringSubmatch(l); m != nil {
				b.mqtt, b.mqttWS = m[1], m[2]
			}
			if m := tokenLine.FindStringSubmatch(l); m != nil {
				b.token = strings.Fields(m[1])
			}
			if m := nodeLine.FindStringSubmatch(l); m != nil {
				pid, _ := strconv.Atoi(m[1])
				b.nodes = append(b.nodes, pid)
			}
			// Every command the banner prints parses as guild's.
			for _, m := range bannerCommand.FindAllStringSubmatch(l, -1) {
				if err := checkGuildArgs(strings.Fields(m[1])); err != nil {
					t.Errorf("the banner's command %q: %v", m[0], err)
				}
			}
		case <-exited:
			t.Fatal("the demo exited before it printed its banner")
		case <-timeout:
			t.Fatalf("the demo printed no full banner after %v", demoTimeout)
		}
	}
	if b.page == "" || b.store == "" {
		t.Fatalf("the demo's banner has no page or no store: %+v", b)
	}
	return b
}

// arenaPlayer is a Go client in the arena, with what it was pushed.
type arenaPlayer struct {
	c      *client.Client
	joined *arenapb.JoinReply

	mu     sync.Mutex
	update *arenapb.WorldUpdate
	board  *arenapb.Leaderboard
	chat   []*arenapb.ChatLine
}

// joinArena joins the arena at the WebSocket addr as name.
func joinArena(t *testing.T, ctx context.Context, addr, name string) *arenaPlayer {
	t.Helper()
	c, err := client.Dial(ctx, client.Config{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	p := &arenaPlayer{c: c}
	c.OnPush(arena.PushWorld, func(body []byte) {
		u := new(arenapb.WorldUpdate)
		if proto.Unmarshal(body, u) == nil {
			p.mu.Lock()
			p.update = u
			p.mu.Unlock()
		}
	})
	c.OnPush(arena.PushBoard, func(body []byte) {
		b := new(arenapb.Leaderboard)
		if proto.Unmarshal(body, b) == nil {
			p.mu.Lock()
			p.board = b
			p.mu.Unlock()
		}
	})
	c.OnPush(arena.PushChat, func(body []byte) {
		l := new(arenapb.ChatLine)
		if proto.Unmarshal(body, l) == nil {
			p.mu.Lock()
			p.chat = append(p.chat, l)
			p.mu.Unlock()
		}
	})
	p.joined = new(arenapb.JoinReply)
	if err := c.Request(ctx, arena.RouteJoin, &arenapb.JoinRequest{Name: name}, p.joined); err != nil {
		t.Fatalf("join as %s: %v", name, err)
	}
	p.mu.Lock()
	p.board = p.joined.GetLeaderboard()
	p.mu.Unlock()
	return p
}

// me returns the player as p's last update shows it, with that update.
func (p *arenaPlayer) me() (*arenapb.Player, *arenapb.WorldUpdate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, q := range p.update.GetPlayers() {
		if q.GetId() == p.joined.GetPlayerId() {
			return q, p.update
		}
	}
	return nil, p.update
}

// onBoard returns name's score on p's last leaderboard, if it is there.
func (p *arenaPlayer) onBoard(name string) (uint32, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.board.GetEntries() {
		if e.GetName() == name {
			return e.GetScore(), true
		}
	}
	return 0, false
}

// collectOrb steers p onto the nearest orb in view until its score grows,
// and returns the score.
func (p *arenaPlayer) collectOrb(t *testing.T, ctx context.Context) uint32 {
	t.Helper()
	var (
		score  uint32
		goalID uint32
		sent   time.Time
	)
	await.True(t, demoTimeout, "the player to pick up an orb", func() bool {
		me, u := p.me()
		if me == nil || len(u.GetOrbs()) == 0 {
			return false
		}
		if me.GetScore() > 0 {
			score = me.GetScore()
			_ = p.c.Request(ctx, arena.RouteMove, &arenapb.MoveRequest{}, nil)
			return true
		}
		var goal *arenapb.Orb
		for _, o := range u.GetOrbs() {
			if goal == nil || dist(me, o) < dist(me, goal) {
				goal = o
			}
		}
		if goal.GetId() != goalID || time.Since(sent) > 250*time.Millisecond {
			d := float32(dist(me, goal))
			_ = p.c.Request(ctx, arena.RouteMove, &arenapb.MoveRequest{Dx: (goal.GetX() - me.GetX()) / d, Dy: (goal.GetY() - me.GetY()) / d}, nil)
			goalID, sent = goal.GetId(), time.Now()
		}
		return false
	})
	return score
}

func dist(p *arenapb.Player, o *arenapb.Orb) float64 {
	return math.Hypot(float64(o.GetX()-p.GetX()), float64(o.GetY()-p.GetY()))
}

// checkArena joins the arena at the WebSocket addr as name, picks up an
// orb, waits for the leaderboard to show the score, and chats. It returns
// the score.
func checkArena(t *testing.T, addr, name string) uint32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*demoTimeout)
	defer cancel()
	p := joinArena(t, ctx, addr, name)
	defer p.c.Close()
	score := p.collectOrb(t, ctx)
	await.True(t, demoTimeout, "the leaderboard to show the score", func() bool {
		s, ok := p.onBoard(name)
		return ok && s >= score
	})
	if err := p.c.Request(ctx, arena.RouteSay, &arenapb.SayRequest{Text: "hi"}, nil); err != nil {
		t.Fatalf("say: %v", err)
	}
	await.True(t, demoTimeout, "the chat line", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return slices.ContainsFunc(p.chat, func(l *arenapb.ChatLine) bool { return l.GetFrom() == name && l.GetText() == "hi" })
	})
	return score
}

// checkRecords joins the arena at addr as name, and checks that the join
// reply holds name's best score (at least best) and the leaderboard with
// name on it: what a server that restarted must still know.
func checkRecords(t *testing.T, addr, name string, best uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), demoTimeout)
	defer cancel()
	p := joinArena(t, ctx, addr, name)
	defer p.c.Close()
	if p.joined.GetBest() < best {
		t.Errorf("%s's best after a restart: %d, want at least %d", name, p.joined.GetBest(), best)
	}
	if s, ok := p.onBoard(name); !ok || s < best {
		t.Errorf("the leaderboard after a restart: %v, want %s with at least %d", p.joined.GetLeaderboard(), name, best)
	}
}

// startDemo runs guild demo in this process with args until the test
// ends or stop is called, and returns its banner.
func startDemo(t *testing.T, args ...string) (b demoBanner, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lines := make(chan string, 100)
	stdout := &lineWriter{fn: func(l string) { lines <- l }}
	var stderr syncBuffer
	done := make(chan int, 1)
	exited := make(chan struct{})
	go func() {
		done <- demo.Run(ctx, args, stdout, &stderr)
		close(exited)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				if code != exitOK {
					t.Errorf("exit code %d; stderr:\n%s", code, stderr.String())
				}
			case <-time.After(demoTimeout):
				t.Error("the demo is still running after its ctx ended")
			}
		})
	}
	t.Cleanup(stop)
	return readBanner(t, lines, exited), stop
}

// TestDemoArena runs guild demo on free ports, plays it over WebSocket
// (an orb, the leaderboard, the chat), runs the bots' command that its
// banner prints, stops it, and starts it again on the same -data: the
// leaderboard and the player's best are still there.
func TestDemoArena(t *testing.T) {
	data := t.TempDir()
	args := []string{"-addr", "127.0.0.1:0", "-tcp", "127.0.0.1:0", "-mqtt", "127.0.0.1:0", "-data", data}
	b, stop := startDemo(t, args...)
	if b.bots == "" {
		t.Fatal("the banner has no bots' command")
	}
	if want := filepath.Join(data, "arena.db"); b.store != want {
		t.Errorf("the banner's store %q, want %q", b.store, want)
	}
	score := checkArena(t, "ws://"+b.page+arena.WebSocketPath, "tester")

	// The bots' command as printed (run from the repository's root, so
	// the scenario's path is fixed up), with fewer bots for less time.
	botArgs := slices.Clone(b.botArgs[1:])
	for i, a := range botArgs {
		if a == "-scenario" {
			botArgs[i+1] = filepath.Join("..", "..", botArgs[i+1])
		}
	}
	botArgs = append(botArgs, "-n", "3", "-duration", "2s")
	var botOut, botErr syncBuffer
	if code := bot(context.Background(), botArgs, &botOut, &botErr); code != exitOK {
		t.Errorf("bots %q: exit code %d; stderr:\n%s", botArgs, code, botErr.String())
	}
	contains(t, "the bots' report", botOut.String(), "clients            3 connected of 3", "errors             0")
	stop()

	b, _ = startDemo(t, args...)
	checkRecords(t, "ws://"+b.page+arena.WebSocketPath, "tester", score)
}

// TestDemoStoreInUse runs two demos on one -data: the second says the
// store is in use.
func TestDemoStoreInUse(t *testing.T) {
	data := t.TempDir()
	startDemo(t, "-addr", "127.0.0.1:0", "-tcp", "-", "-mqtt", "-", "-data", data)
	code, _, errOut := runCmd("demo", "-addr", "127.0.0.1:0", "-tcp", "-", "-mqtt", "-", "-data", data)
	if code == exitOK || !strings.Contains(errOut, "in use by another process") || !strings.Contains(errOut, data) {
		t.Errorf("a second demo on the same -data: exit code %d, stderr:\n%s", code, errOut)
	}
}

func TestDemoArenaBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"demo", "-nodes", "2"},
		{"demo", "-players", "3"},
		{"demo", "-chat", "-addr", ":9999"},
		{"demo", "-chat", "-data", "x"},
		{"demo", "-chat", "-mqtt", "127.0.0.1:0"},
		{"demo", "-data", ""},
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

// TestDemoNodes runs guild demo -nodes 3 as a process: three guild run
// processes behind it, the page and its WebSocket proxied by it. It plays
// (the world node's grains keep the score), stops it as a terminal's
// Ctrl-C does (SIGINT to its whole process group), and runs it again on
// the same -data: the world node's grains wrote the leaderboard on the
// way out, and read it back. Stopping takes seconds, not the nodes'
// shutdown timeouts.
func TestDemoNodes(t *testing.T) {
	if _, ok := lookup("run"); !ok {
		t.Skip("guild run is not there yet")
	}
	if testing.Short() {
		t.Skip("builds guild and starts four processes, twice")
	}
	bin := buildGuild(t)
	data := t.TempDir()
	run := func() (b demoBanner, stop func()) {
		cmd := exec.Command(bin, "demo", "-nodes", "3", "-addr", "127.0.0.1:0", "-tcp", "127.0.0.1:0", "-mqtt", "127.0.0.1:0", "-data", data, "-v")
		startGroup(cmd) // a process group, as a shell makes
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
		var nodes []int
		t.Cleanup(func() {
			killGroup(cmd)
			<-exited
			// A demo killed before it stopped its nodes (a failed test)
			// leaves them running, in process groups of their own,
			// holding their ports: the next run could not start.
			for _, pid := range nodes {
				killStray(bin, pid)
			}
		})
		b = readBanner(t, lines, exited)
		nodes = b.nodes
		if b.bots == "" || strings.HasSuffix(b.bots, ":0") {
			t.Errorf("the bots' address %s has no port", b.bots)
		}
		return b, func() {
			start := time.Now()
			interruptGroup(cmd) // Ctrl-C in a terminal
			select {
			case <-exited:
				if waitErr != nil {
					t.Errorf("guild demo -nodes 3: %v", waitErr)
				}
			case <-time.After(demoTimeout):
				t.Fatal("guild demo -nodes 3 still runs after an interrupt")
			}
			if d := time.Since(start); d > demoQuickStop {
				t.Errorf("guild demo -nodes 3 took %v to stop after a Ctrl-C, want less than %v", d, demoQuickStop)
			}
		}
	}
	b, stop := run()
	score := checkArena(t, "ws://"+b.page+arena.WebSocketPath, "tester")
	checkDemoMQTT(t, b) // through the gateway node's listeners, /mqtt proxied
	stop()
	b, stop = run()
	checkRecords(t, "ws://"+b.page+arena.WebSocketPath, "tester", score)
	stop()
}
