package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/guildkit/guild/examples/arena"
	"github.com/guildkit/guild/examples/chatroom"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/store/embedded"
)

// demoAbout is the help text of guild demo.
const demoAbout = `Demo runs the arena, a small real-time multiplayer game, and serves its page:
open the printed URL in a browser, pick a name, steer with the arrow keys,
WASD or the mouse (a finger on a phone), pick up orbs to score and chat with
Enter. Rounds last two minutes; the best round score of each name goes on a
leaderboard. Open a second window for a second player, or start bots with
guild bot (the command is printed). Ctrl-C stops it. Its source is
examples/arena.

MQTT clients connect too (docs/MQTT.md): on -mqtt (127.0.0.1:1884, beside a
local broker's 1883), and over WebSocket at /mqtt on the page's address. No
token is needed; a token signed with the demo's public secret logs a client
in as its user (guild token -secret guild-demo-secret-not-for-production
-user ann), which may then chat without joining.

The leaderboard is kept by grains in an embedded store, the file arena.db in
the -data directory, so it survives a restart. Only one demo at a time can
open it: give a second one another -data.

With -nodes 3 the same game runs as three processes (guild run): a gateway
node (with the embedded etcd), a world node and a chat node, from a cluster
file written to a temporary directory; this process serves the page and
passes its WebSocket and MQTT over WebSocket on to the gateway. The world node runs the grains and
opens the store (the same file as with one process).

With -chat, demo runs the older chat of actors on one node instead and prints
what happened: players join a room and talk, one of them crashes and is
restarted by its supervisor, and everyone leaves. Its source is
examples/chatroom; -players, -lines and -v are its flags.`

// Run runs guild demo with its flags args until ctx ends, and returns the
// exit code: 0, 1 for an error, 2 for bad usage (with -h, the help goes to
// stderr and the code is 0). The caller owns the process's signals: it
// ends ctx on an interrupt. With -nodes 3, Run starts the running binary
// (os.Executable) three times as "BINARY run -c FILE --node NAME": that
// binary must be a guild CLI whose modules include Register's.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return demo(ctx, args, stdout, stderr)
}

// Summary is guild demo's line in guild's list of commands.
const Summary = "run the arena demo, a small multiplayer game, and serve its page"

// Flags returns a new flag set of guild demo, the one Run parses, whose
// values nothing reads: it checks a command line without running it.
func Flags(stderr io.Writer) *flag.FlagSet { return demoFlags(new(demoOptions), stderr) }

// Exit codes, as guild's.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// newFlagSet makes the flag set of guild demo, whose errors and help go
// to stderr: as guild's commands do.
func newFlagSet(name, synopsis, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: guild %s\n\n%s\n\nFlags:\n", synopsis, about)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses the flags and rejects arguments left over. When it
// returns false, Run should return code.
func parse(fs *flag.FlagSet, args []string) (ok bool, code int) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return false, exitOK
		}
		return false, exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "guild %s: unexpected argument %q\n\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return false, exitUsage
	}
	return true, exitOK
}

// demoOptions are the flags of guild demo.
type demoOptions struct {
	addr, data, tcpAddr string
	adminAddr           string
	mqttAddr            string
	nodes               int
	chat                bool
	players, lines      int
	verbose             bool
}

// demoFlags defines the flags of guild demo into o.
func demoFlags(o *demoOptions, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet("demo", "demo [-addr host:port] [-tcp host:port] [-mqtt host:port] [-admin host:port] [-data dir] [-nodes 1|3] | demo -chat [-players N] [-lines N] [-v]", demoAbout, stderr)
	fs.StringVar(&o.addr, "addr", arena.DefaultDemoAddr, "HTTP address of the page, its WebSocket (/ws) and MQTT over WebSocket (/mqtt)")
	fs.StringVar(&o.data, "data", defaultDemoData(), "`directory` of the leaderboard's store (arena.db)")
	fs.StringVar(&o.tcpAddr, "tcp", arena.DefaultDemoTCPAddr, `the gateway's TCP address, for bots ("-": none)`)
	fs.StringVar(&o.mqttAddr, "mqtt", arena.DefaultDemoMQTTAddr, `the gateway's MQTT address ("-": none; MQTT over WebSocket stays on -addr, at /mqtt)`)
	fs.StringVar(&o.adminAddr, "admin", defaultDemoAdmin, `the admin dashboard's address ("-": none); its token is printed at start`)
	fs.IntVar(&o.nodes, "nodes", 1, "run the arena as 1 process, or as 3 (gateway, world, chat)")
	fs.BoolVar(&o.chat, "chat", false, "run the chat of actors instead of the arena")
	fs.IntVar(&o.players, "players", chatroom.DefaultPlayers, fmt.Sprintf("with -chat: number of players, 1 to %d", chatroom.MaxPlayers))
	fs.IntVar(&o.lines, "lines", chatroom.DefaultLines, fmt.Sprintf("with -chat: lines each player says, 1 to %d", chatroom.MaxLines))
	fs.BoolVar(&o.verbose, "v", false, "log the nodes' reports to stderr (with -chat: the deliberate panic with its stack)")
	return fs
}

// demo runs guild demo with its flags args until ctx ends.
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o demoOptions
	fs := demoFlags(&o, stderr)
	if ok, code := parse(fs, args); !ok {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.chat {
		if set["addr"] || set["tcp"] || set["mqtt"] || set["nodes"] || set["data"] || set["admin"] {
			fmt.Fprintln(stderr, "guild demo: -addr, -tcp, -mqtt, -admin, -data and -nodes are the arena's flags, not -chat's")
			return exitUsage
		}
		return chatDemo(ctx, o.players, o.lines, o.verbose, stdout, stderr)
	}
	if set["players"] || set["lines"] {
		fmt.Fprintln(stderr, "guild demo: -players and -lines are flags of guild demo -chat")
		return exitUsage
	}
	if o.nodes != 1 && o.nodes != 3 {
		fmt.Fprintln(stderr, "guild demo: -nodes must be 1 or 3")
		return exitUsage
	}
	if o.data == "" {
		fmt.Fprintln(stderr, "guild demo: -data needs a directory")
		return exitUsage
	}
	dir, err := filepath.Abs(o.data) // the same file for the node processes of -nodes 3
	if err != nil {
		fmt.Fprintf(stderr, "guild demo: -data %s: %v\n", o.data, err)
		return exitUsage
	}
	storePath := filepath.Join(dir, demoStoreFile)
	adminToken, err := newDemoToken()
	if err != nil {
		fmt.Fprintf(stderr, "guild demo: %v\n", err)
		return exitError
	}
	var logger *slog.Logger
	if o.verbose {
		logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	// Say something at once: the rest can take seconds (three processes
	// and an etcd with -nodes 3).
	if o.nodes == 1 {
		fmt.Fprintln(stdout, "Starting the arena on one node…")
		err = arena.RunDemo(ctx, arena.DemoOptions{Addr: o.addr, TCPAddr: o.tcpAddr, MQTTAddr: o.mqttAddr, Out: stdout, Logger: logger, World: arena.WorldSettings{Store: storePath},
			AdminAddr: o.adminAddr, AdminToken: adminToken})
	} else {
		fmt.Fprintln(stdout, "Starting the arena as three processes (an etcd, a gateway, a world and a chat node): a few seconds…")
		var exe string
		if exe, err = os.Executable(); err == nil {
			err = demoNodes(ctx, exe, demoAddrs{page: o.addr, givenTCP: o.tcpAddr, givenMQTT: o.mqttAddr, givenAdmin: o.adminAddr, adminToken: adminToken}, storePath, o.verbose, stdout, stderr)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "guild demo: %v\n", err)
		return exitError
	}
	fmt.Fprintln(stdout, "The arena has stopped.")
	return exitOK
}

// defaultDemoAdmin is the default of guild demo -admin.
const defaultDemoAdmin = "127.0.0.1:9090"

// newDemoToken returns a fresh random token for the demo's admin
// dashboard: its actions (drain a node, kick a player) need it.
func newDemoToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// demoStoreFile is the name of the demo's store file in its -data
// directory.
const demoStoreFile = "arena.db"

// defaultDemoData is the default of guild demo -data: guild/arena in the
// user's cache directory (~/.cache/guild/arena on Linux), or .guild/arena
// in the working directory when there is none.
func defaultDemoData() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "guild", "arena")
	}
	return filepath.Join(".guild", "arena")
}

// chatDemo runs the chat room demo.
func chatDemo(ctx context.Context, players, lines int, verbose bool, stdout, stderr io.Writer) int {
	opts := chatroom.Options{Players: players, Lines: lines}
	if err := opts.Validate(); err != nil || players < 1 || lines < 1 {
		fmt.Fprintf(stderr, "guild demo: -players must be 1 to %d and -lines 1 to %d\n", chatroom.MaxPlayers, chatroom.MaxLines)
		return exitUsage
	}
	if verbose {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	if err := chatroom.Run(ctx, stdout, opts); err != nil {
		if errors.Is(err, context.Canceled) {
			err = errors.New("interrupted")
		}
		fmt.Fprintf(stderr, "guild demo: %v\n", err)
		return exitError
	}
	fmt.Fprint(stdout, nextSteps)
	return exitOK
}

// nextSteps follows the chat demo's transcript: what happened, and where
// to look next.
const nextSteps = `
What happened: every name above is an actor, a value with a Receive method
that handles one message at a time, so its state needs no locks. The players
found the room by its local name ".room", joined it with Call, asked who was
there with Request, and spoke with Send; the room answered with Respond. The
lobby's supervisor restarted the player that panicked, and the room's Watch
noticed the one that stopped without leaving. Next: the README's Concepts
section explains each of these; examples/chatroom is this demo's source, one
file per actor; "go doc github.com/guildkit/guild/actor" lists the API, with
runnable examples.
`

// Bounds of demoNodes.
const (
	demoStartTimeout = 60 * time.Second // a node's port opens
	demoStopTimeout  = 10 * time.Second // a node exits after its interrupt
)

// demoNode is one process of demoNodes.
type demoNode struct {
	name, addr, modules string
	cmd                 *exec.Cmd
	exited              chan struct{}
	err                 error         // set before exited closes
	ready               chan struct{} // closed when guild run printed its ready line
}

// demoAddrs are the addresses of guild demo -nodes 3: its flags, then
// the gateway node's listeners (with the ports picked for them).
type demoAddrs struct {
	page       string                 // -addr: the page, /ws and /mqtt
	tcp, mqtt  string                 // -tcp and -mqtt, with the ports picked for them; "" for none
	givenTCP   string                 // -tcp as given ("" for none), port 0 included
	givenMQTT  string                 // -mqtt as given
	free       func() (string, error) // picks a port; nil for freeAddr (tests take one)
	etcd       string                 // the gateway node's embedded etcd
	ws         string                 // the gateway node's WebSocket, behind /ws
	mqttWS     string                 // the gateway node's MQTT over WebSocket, behind /mqtt
	givenAdmin string                 // -admin as given ("-": none)
	admin      string                 // the gateway node's admin dashboard, with the port picked for it; "" for none
	adminToken string                 // its token
}

// demoNodes runs the arena as three guild run processes and serves the
// page on a.page, passing /ws and /mqtt on to the gateway node.
// exe is the guild binary the nodes run.
func demoNodes(ctx context.Context, exe string, a demoAddrs, storePath string, verbose bool, stdout, stderr io.Writer) error {
	// The world node opens the store: find out now if another process
	// holds it, rather than from a node that exits.
	if err := os.MkdirAll(filepath.Dir(storePath), 0o755); err != nil {
		return fmt.Errorf("the leaderboard's directory (-data): %w", err)
	}
	st, err := embedded.Open(storePath)
	if err != nil {
		return fmt.Errorf("the leaderboard's store %s (another guild demo? -data changes it): %w", storePath, err)
	}
	if err := st.Close(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "guild-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for _, l := range []struct {
		at         *string
		flag, what string
	}{{&a.givenTCP, "tcp", "bots (TCP)"}, {&a.givenMQTT, "mqtt", "MQTT"}, {&a.givenAdmin, "admin", "the admin dashboard"}} {
		if *l.at == "-" {
			*l.at = ""
			continue
		}
		// The gateway node listens there: say now, and which flag moves
		// it, if the port is taken (a local broker on MQTT's, say).
		ln, err := net.Listen("tcp", *l.at)
		if err != nil {
			return fmt.Errorf("cannot listen for %s on %s (-%s changes it): %w", l.what, *l.at, l.flag, listenCause(err))
		}
		ln.Close()
	}
	file := filepath.Join(dir, "arena.yaml")

	// The page: its address is the user's, so it is taken first.
	ln, err := net.Listen("tcp", a.page)
	if err != nil {
		return fmt.Errorf("cannot serve the page on %s (-addr changes it): %w", a.page, listenCause(err))
	}
	defer ln.Close()

	var (
		wg    sync.WaitGroup
		procs []*demoNode
	)
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
		wg.Wait()
	}()
	start := func(p *demoNode) error {
		p.cmd = exec.Command(exe, "run", "-c", file, "--node", p.name)
		ownGroup(p.cmd)
		p.ready = make(chan struct{})
		p.cmd.Stdout = &prefixWriter{w: stderr, prefix: "[" + p.name + "] ", quiet: !verbose, ready: p.ready}
		p.cmd.Stderr = &prefixWriter{w: stderr, prefix: "[" + p.name + "] ", quiet: !verbose}
		if err := p.cmd.Start(); err != nil {
			return fmt.Errorf("start the %s node: %w", p.name, err)
		}
		p.exited = make(chan struct{})
		procs = append(procs, p)
		wg.Go(func() {
			p.err = p.cmd.Wait()
			close(p.exited)
		})
		return nil
	}

	// The gateway node runs etcd: it starts first, the others join it.
	// The ports of its listeners are picked here (the other nodes must be
	// told etcd's), so another program may take one before the node
	// listens: then the node is started again with other ports.
	for attempt := 1; ; attempt++ {
		if err := a.pickPorts(); err != nil {
			return err
		}
		if err := os.WriteFile(file, []byte(demoClusterFile(a, storePath)), 0o600); err != nil {
			return err
		}
		g := &demoNode{name: "gate", addr: "1.1.1", modules: "gateway: ws " + a.ws + tcpNote(a.tcp) + mqttNote(a) + ", embedded etcd " + a.etcd}
		if err := start(g); err != nil {
			return err
		}
		err := waitReady(ctx, g)
		if err == nil {
			break
		}
		select {
		case <-g.exited:
		default:
			return err // not ready in time, or interrupted
		}
		if attempt == demoGateAttempts {
			return err
		}
		procs = procs[:0]
		fmt.Fprintf(stderr, "guild demo: the gate node exited at start (%v; a port picked for it was taken?): starting it again with other ports\n", g.err)
	}
	for _, p := range []*demoNode{
		{name: "world", addr: "1.2.1", modules: "module world, with the leaderboard's grains"},
		{name: "chat", addr: "1.3.1", modules: "module chat"},
	} {
		if err := start(p); err != nil {
			return err
		}
	}

	// The page, with /ws and /mqtt passed on to the gateway node.
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: a.ws})
	proxy.ErrorLog = log.New(stderr, "guild demo: proxy: ", 0)
	mqttProxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: a.mqttWS})
	mqttProxy.ErrorLog = proxy.ErrorLog
	mux := http.NewServeMux()
	mux.Handle(arena.WebSocketPath, proxy)
	mux.Handle(arena.MQTTWebSocketPath, mqttProxy)
	mux.Handle("/", http.FileServerFS(arena.Page()))
	// Bounded headers and idle keep-alive (the gateway's defaults). No
	// WriteTimeout: the proxied WebSockets keep the deadline it sets.
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    gate.DefaultMaxHeaderBytes,
		IdleTimeout:       gate.DefaultHTTPIdleTimeout,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), demoStopTimeout)
		defer cancel()
		_ = srv.Shutdown(sctx)
		_ = srv.Close() // the proxied WebSockets, hijacked, are not waited for
		<-served
	}()

	for _, p := range procs {
		if err := waitReady(ctx, p); err != nil {
			return err
		}
	}
	// Every node has joined; give the gateway's watch of the membership a
	// moment to see the last of them before players arrive.
	time.Sleep(demoSettle)

	fmt.Fprintf(stdout, "The arena is running as three processes (go run ./cmd/guild run -c %s --node NAME):\n\n", file)
	for _, p := range procs {
		fmt.Fprintf(stdout, "  %-6s node %s, pid %d: %s\n", p.name, p.addr, p.cmd.Process.Pid, p.modules)
	}
	fmt.Fprintf(stdout, "  this process serves the page on %s and passes /ws and /mqtt on to the gateway\n\n", ln.Addr())
	fmt.Fprintf(stdout, "  open %s in a browser, pick a name, steer with the arrow keys, WASD or the mouse,\n", arena.PageURL(ln.Addr().String()))
	fmt.Fprintf(stdout, "  pick up orbs to score, chat with Enter (open a second window for a second player)\n")
	if a.admin != "" {
		fmt.Fprintf(stdout, "  %s\n", arena.AdminNote("http://"+a.admin+"/", a.adminToken))
	}
	if a.tcp != "" {
		fmt.Fprintf(stdout, "  bots, from the repository's root: %s\n", arena.BotsCommand(a.tcp))
	}
	fmt.Fprintf(stdout, "  %s\n", arena.MQTTNote(ln.Addr().String(), a.mqtt))
	fmt.Fprintf(stdout, "  an MQTT password (optional; it logs you in as ann): %s\n", arena.TokenCommand("ann"))
	fmt.Fprintf(stdout, "  %s, by the world node\n", arena.StoreNote(storePath))
	fmt.Fprintf(stdout, "\nPress Ctrl-C to stop all three.\n")

	exited := make(chan *demoNode, len(procs))
	for _, p := range procs {
		wg.Go(func() {
			<-p.exited
			exited <- p
		})
	}
	for left := len(procs); ; {
		select {
		case <-ctx.Done():
			return nil
		case p := <-exited:
			left--
			if p.err != nil || left == 0 {
				return fmt.Errorf("the %s node exited: %v (run with -v to see its logs)", p.name, p.err)
			}
			// A clean exit: drained from the admin dashboard. The others
			// go on.
			fmt.Fprintf(stdout, "The %s node has stopped (drained); the others go on.\n", p.name)
		case err := <-served:
			served <- err
			return fmt.Errorf("http server: %w", err)
		}
	}
}

// stop interrupts the node's process, and kills it if it has not exited
// within demoStopTimeout.
func (p *demoNode) stop() {
	if p.exited == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(demoStopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func tcpNote(tcpAddr string) string {
	if tcpAddr == "" {
		return ""
	}
	return ", tcp " + tcpAddr
}

func mqttNote(a demoAddrs) string {
	s := ", mqtt-ws " + a.mqttWS
	if a.mqtt != "" {
		s = ", mqtt " + a.mqtt + s
	}
	return s
}

// demoClusterFile returns the cluster file of demoNodes: a gateway node
// that also runs the embedded etcd, a world node (whose grains keep the
// leaderboard in storePath) and a chat node, with the gateway's routes
// from the arena's own table (arena.ServiceModules) and the demo's token
// secret (arena.DemoSecret).
func demoClusterFile(a demoAddrs, storePath string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by guild demo -nodes 3: the arena on three nodes.\n")
	fmt.Fprintf(&b, "cluster:\n  etcd:\n    ttl: 5s\n")
	if a.admin != "" {
		fmt.Fprintf(&b, "admin:\n  token: %q\n", a.adminToken)
	}
	fmt.Fprintf(&b, "nodes:\n")
	fmt.Fprintf(&b, "  gate:\n    addr: 1.1.1\n    master: %q\n", a.etcd)
	if a.admin != "" {
		fmt.Fprintf(&b, "    admin: {listen: %q}\n", a.admin)
	}
	fmt.Fprintf(&b, "    gateway:\n      ws: %q\n", a.ws)
	if a.tcp != "" {
		fmt.Fprintf(&b, "      tcp: %q\n", a.tcp)
	}
	if a.mqtt != "" {
		fmt.Fprintf(&b, "      mqtt: %q\n", a.mqtt)
	}
	fmt.Fprintf(&b, "      mqtt_ws: %q\n", a.mqttWS)
	fmt.Fprintf(&b, "      auth: {jwt_secret: %q}\n", arena.DemoSecret)
	fmt.Fprintf(&b, "      public: [%s]\n      routes:\n", strings.Join(arena.PublicRoutes(), ", "))
	services := arena.ServiceModules()
	names := make([]string, 0, len(services))
	for svc := range services {
		names = append(names, svc)
	}
	slices.Sort(names)
	for _, svc := range names {
		fmt.Fprintf(&b, "        %s: {module: %s}\n", svc, services[svc])
	}
	fmt.Fprintf(&b, "  world:\n    addr: 1.2.1\n    modules: [%s]\n", arena.ModuleWorld)
	fmt.Fprintf(&b, "  chat:\n    addr: 1.3.1\n    modules: [%s]\n", arena.ModuleChat)
	fmt.Fprintf(&b, "modules:\n  %s:\n    tick: %v\n    cell: %d\n    store: %q\n", arena.ModuleWorld, arena.DefaultTick, arena.DefaultCell, storePath)
	return b.String()
}

// listenCause returns the cause of a failed listen ("bind: address
// already in use") without the "listen tcp ADDR" around it.
func listenCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// demoGateAttempts is how many times demoNodes starts the gateway node
// when it exits at start (a port picked for it was taken meanwhile).
const demoGateAttempts = 3

// pickPorts picks the ports of the gateway node's listeners: new ones for
// etcd and the proxied WebSockets, and for -tcp and -mqtt when their port
// is 0 (a.given keeps the flags).
func (a *demoAddrs) pickPorts() error {
	free := a.free
	if free == nil {
		free = freeAddr
	}
	var err error
	for _, p := range []*string{&a.etcd, &a.ws, &a.mqttWS} {
		if *p, err = free(); err != nil {
			return err
		}
	}
	if a.tcp, err = freeIfZero(a.givenTCP); err != nil {
		return err
	}
	if a.mqtt, err = freeIfZero(a.givenMQTT); err != nil {
		return err
	}
	a.admin, err = freeIfZero(a.givenAdmin)
	return err
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago.
func freeAddr() (string, error) { return freeIfZero("127.0.0.1:0") }

// freeIfZero returns addr ("" stays ""), or with port 0, addr with a port that was free
// a moment ago: the node processes must be told the ports in advance.
func freeIfZero(addr string) (string, error) {
	if _, port, err := net.SplitHostPort(addr); addr == "" || err != nil || port != "0" {
		return addr, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// demoSettle is how long demoNodes waits, once every node is ready, for the
// gateway's view of the membership to catch up.
const demoSettle = 200 * time.Millisecond

// waitReady waits for p's ready line.
func waitReady(ctx context.Context, p *demoNode) error {
	select {
	case <-p.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-p.exited:
		return fmt.Errorf("the %s node exited: %v (run with -v to see its logs)", p.name, p.err)
	case <-time.After(demoStartTimeout):
		return fmt.Errorf("the %s node is not ready after %v", p.name, demoStartTimeout)
	}
}

// prefixWriter writes each complete line to w with a prefix; quiet drops
// them. When ready is set, it is closed at the first ready line (guild
// run's JSON line with "event":"ready").
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	quiet  bool
	ready  chan struct{}
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := p.buf[:i]
		if p.ready != nil && bytes.Contains(line, []byte(`"event":"ready"`)) {
			close(p.ready)
			p.ready = nil
		}
		if !p.quiet {
			fmt.Fprintf(p.w, "%s%s\n", p.prefix, line)
		}
		p.buf = p.buf[i+1:]
	}
}
