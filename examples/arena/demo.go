package arena

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/admin"
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/gate"
	gatemqtt "github.com/guildkit/guild/gate/mqtt"
	"github.com/guildkit/guild/gate/tokenauth"
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/rpc"
)

// dist is the built web page (web/dist, built with Vite: npm run build in
// web/).
//
//go:embed all:web/dist
var dist embed.FS

// Page returns the built web page's files, to serve over HTTP.
func Page() fs.FS {
	sub, err := fs.Sub(dist, "web/dist")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	return sub
}

// Defaults of DemoOptions.
const (
	DefaultDemoAddr    = ":8080"
	DefaultDemoTCPAddr = "127.0.0.1:7000"
	// DefaultDemoMQTTAddr is the MQTT listener's: port 1884, beside a
	// local MQTT broker's 1883.
	DefaultDemoMQTTAddr = "127.0.0.1:1884"
	// WebSocketPath is where the page's WebSocket connects.
	WebSocketPath = "/ws"
	// MQTTWebSocketPath is where MQTT over WebSocket connects, on the
	// page's HTTP address (MQTT.js: ws://localhost:8080/mqtt).
	MQTTWebSocketPath = "/mqtt"
	// DemoSecret signs the demo's tokens (package gate/tokenauth, HS256):
	// guild token -secret DemoSecret -user NAME mints one. It is public:
	// never use it for anything but the demo.
	DemoSecret = "guild-demo-secret-not-for-production"
)

// shutdownTimeout bounds the demo's graceful shutdown.
const shutdownTimeout = 5 * time.Second

// DemoOptions configures RunDemo. The zero value is usable.
type DemoOptions struct {
	// Addr is the HTTP address of the page and its WebSocket (/ws).
	// Default ":8080".
	Addr string
	// TCPAddr is the gateway's framed-TCP address, for bots. Default
	// "127.0.0.1:7000"; "-" turns it off.
	TCPAddr string
	// MQTTAddr is the gateway's MQTT address. Default "127.0.0.1:1884";
	// "-" turns it off. MQTT over WebSocket is always served on Addr, at
	// MQTTWebSocketPath.
	MQTTAddr string
	// Out receives what the demo prints: where to point a browser and the
	// bots. Default: discarded.
	Out io.Writer
	// Logger receives the node's logs. Default: discarded.
	Logger *slog.Logger
	// World sets the world module's settings.
	World WorldSettings
	// Limits are the gateway's limits; zero fields take gate's defaults.
	Limits gate.Limits
	// Ready, optional, is called once the demo listens, with the addresses
	// it got.
	Ready func(DemoAddrs)
	// AdminAddr, optional, is where the admin dashboard (package admin)
	// listens; "" or "-": none. Its actions need AdminToken; the node has
	// no drain (a drain marks it unavailable only: it is the whole demo).
	AdminAddr string
	// AdminToken is the dashboard's bearer token (at least 16 bytes).
	AdminToken string
}

// DemoAddrs are the addresses a running demo got.
type DemoAddrs struct {
	// HTTP serves the page, its WebSocket and MQTT over WebSocket.
	HTTP string
	// TCP is the gateway's framed-TCP listener; "" without one.
	TCP string
	// MQTT is the gateway's MQTT listener; "" without one.
	MQTT string
	// Admin is the admin dashboard's URL; "" without one.
	Admin string
}

// RunDemo runs the arena in this process until ctx ends: one node hosting
// the world and chat modules and a gateway, with an in-memory membership
// (no etcd), the page served over HTTP at opts.Addr beside its WebSocket
// and MQTT over WebSocket, a TCP listener for bots and an MQTT listener.
// Clients need no token (arena.Join is public); a token signed with
// DemoSecret logs one in as its user. The leaderboard's grains keep their state
// in opts.World.Store (in memory when it is empty). It then shuts down
// gracefully (the grains write their state) and returns nil, or an error
// if it could not start.
func RunDemo(ctx context.Context, opts DemoOptions) (err error) {
	if opts.Addr == "" {
		opts.Addr = DefaultDemoAddr
	}
	if opts.TCPAddr == "" {
		opts.TCPAddr = DefaultDemoTCPAddr
	}
	if opts.MQTTAddr == "" {
		opts.MQTTAddr = DefaultDemoMQTTAddr
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := opts.World.Validate(); err != nil {
		return err
	}

	// The page's port first: a port in use is the likeliest mistake, and
	// nothing else has started yet.
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("arena: cannot serve the page on %s (guild demo -addr changes it): %w", opts.Addr, netCause(err))
	}
	defer ln.Close() // after srv.Serve took it, a second Close does nothing

	// One node of type 1 hosts everything.
	const nodeType = 1
	addr := actor.MustAddr(1, nodeType, 1)
	store := cluster.NewMemory()
	members := store.Membership(addr)
	defer members.Close()
	node, err := cluster.Start(ctx, cluster.NodeConfig{
		Actor:      actor.Config{Addr: addr, Logger: opts.Logger},
		Listen:     "127.0.0.1:0",
		Membership: members,
		Names:      store.Names(),
		Logger:     opts.Logger,
	})
	if err != nil {
		return fmt.Errorf("arena: start the node: %w", err)
	}
	defer node.Close()

	types := func(string) (int, bool) { return nodeType, true }
	env := func(module string, settings func(v any) error) *app.Env {
		return &app.Env{
			NodeName: "demo",
			Actor:    node.Actor(),
			Cluster:  node,
			Members:  members,
			RPC:      rpc.NewClient(node.Actor(), rpc.WithMembership(members)),
			NodeType: types,
			Settings: settings,
			Logger:   opts.Logger.With("module", module),
		}
	}
	world, chat := NewWorld(), NewChat()
	worldSettings := func(v any) error {
		s, ok := v.(*WorldSettings)
		if !ok {
			return fmt.Errorf("arena: world settings into a %T", v)
		}
		*s = opts.World
		return nil
	}
	if err := world.Start(ctx, env(ModuleWorld, worldSettings)); err != nil {
		return err
	}
	defer stopModule(world)
	if err := chat.Start(ctx, env(ModuleChat, func(any) error { return nil })); err != nil {
		return err
	}
	defer stopModule(chat)

	routes, public, err := Routes(types)
	if err != nil {
		return err
	}
	tokens, err := tokenauth.NewJWT([]byte(DemoSecret))
	if err != nil {
		return err
	}
	g, err := gate.New(gate.Config{Node: node.Actor(), Members: members, Routes: routes, Public: public, Auth: tokens.Auth, Logger: opts.Logger,
		Validate: Validate, Limits: opts.Limits})
	if err != nil {
		return err
	}
	defer g.Close()

	var addrs DemoAddrs
	if opts.TCPAddr != "-" {
		a, err := g.ListenTCP(opts.TCPAddr, nil)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("arena: gateway tcp listener: %s is in use (change it with guild demo -tcp)", opts.TCPAddr)
			}
			return fmt.Errorf("arena: gateway tcp listener, for bots, on %s (guild demo -tcp changes it): %w", opts.TCPAddr, netCause(err))
		}
		addrs.TCP = a.String()
	}
	if opts.MQTTAddr != "-" {
		a, err := gatemqtt.Listen(g, opts.MQTTAddr, nil)
		if err != nil {
			return fmt.Errorf("arena: cannot listen for MQTT on %s (guild demo -mqtt changes it): %w", opts.MQTTAddr, netCause(err))
		}
		addrs.MQTT = a.String()
	}

	if opts.AdminAddr != "" && opts.AdminAddr != "-" {
		agent, err := admin.StartAgent(ctx, admin.AgentConfig{Node: node, Name: "demo", Gateway: g, Logger: opts.Logger})
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			_ = agent.Stop(sctx)
		}()
		dash, err := admin.Serve(admin.Config{Listen: opts.AdminAddr, Node: node, Members: members, Token: opts.AdminToken, Logger: opts.Logger})
		if err != nil {
			return fmt.Errorf("arena: the admin dashboard on %s (guild demo -admin changes it): %w", opts.AdminAddr, netCause(err))
		}
		defer dash.Close()
		addrs.Admin = dash.URL()
	}

	mux := http.NewServeMux()
	mux.Handle(WebSocketPath, gatews.Handler(g))
	mux.Handle(MQTTWebSocketPath, gatemqtt.WebSocketHandler(g))
	mux.Handle("/", http.FileServerFS(Page()))
	// The gateway's limits: header size and time, idle keep-alive, and
	// every connection counted toward its MaxConns and per-source limits.
	srv := g.HTTPServer(mux)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		// Shutdown stops the listener; the WebSocket connections it has
		// handed over are the gateway's, which g.Close (deferred earlier,
		// so run after this) closes.
		_ = srv.Shutdown(sctx)
		if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}()

	addrs.HTTP = ln.Addr().String()
	printDemo(opts.Out, addrs, opts.World.Store, opts.AdminToken)
	if opts.Ready != nil {
		opts.Ready(addrs)
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-served:
		served <- err // for the deferred shutdown
		return fmt.Errorf("arena: http server: %w", err)
	}
}

// netCause returns the cause of a failed listen ("bind: address already
// in use") without the "listen tcp ADDR" around it, which the caller says
// better.
func netCause(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

func stopModule(m app.Module) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	_ = m.Stop(ctx)
}

// AdminNote says where the admin dashboard is and its token, for a
// banner.
func AdminNote(url, token string) string {
	return "the admin dashboard: " + url + " (its token, for the actions: " + token + ")"
}

// PageURL returns the URL a browser on this machine opens for a server
// listening on addr (":8080" -> "http://localhost:8080").
func PageURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// BotsCommand returns the command line that starts 50 bots against the
// gateway's TCP address, as a banner prints it: run from the repository's
// root, it needs nothing installed.
func BotsCommand(tcpAddr string) string {
	return "go run ./cmd/guild bot -addr tcp://" + tcpAddr + " -scenario examples/arena/bots.yaml -n 50"
}

// MQTTNote says where MQTT clients connect, for a banner: mqttAddr (""
// for none) and MQTT over WebSocket on the page's httpAddr.
func MQTTNote(httpAddr, mqttAddr string) string {
	ws := "ws://" + strings.TrimPrefix(PageURL(httpAddr), "http://") + MQTTWebSocketPath
	if mqttAddr == "" {
		return "MQTT over WebSocket: " + ws + " (docs/MQTT.md)"
	}
	return "MQTT: " + mqttAddr + ", and over WebSocket " + ws + " (docs/MQTT.md)"
}

// TokenCommand returns the command line that mints a demo token for user
// (for MQTT, the password), as a banner prints it.
func TokenCommand(user string) string {
	return "go run ./cmd/guild token -secret " + DemoSecret + " -user " + user
}

// StoreNote says where the leaderboard is kept, for a banner.
func StoreNote(path string) string {
	if path == "" {
		return "the leaderboard is kept in memory: it ends with the demo"
	}
	return "the leaderboard is kept in " + path + " (delete it to start afresh)"
}

// printDemo says what runs and what to do.
func printDemo(w io.Writer, addrs DemoAddrs, storePath, adminToken string) {
	url := PageURL(addrs.HTTP)
	fmt.Fprintf(w, "The arena is running: a world and a chat module behind a gateway, on one node.\n\n")
	fmt.Fprintf(w, "  open %s in a browser, pick a name, steer with the arrow keys, WASD or the mouse,\n", url)
	if addrs.Admin != "" {
		fmt.Fprintf(w, "  %s\n", AdminNote(addrs.Admin, adminToken))
	}
	fmt.Fprintf(w, "  pick up orbs to score, chat with Enter (open a second window for a second player)\n")
	if addrs.TCP != "" {
		fmt.Fprintf(w, "  bots, from the repository's root: %s\n", BotsCommand(addrs.TCP))
	}
	fmt.Fprintf(w, "  %s\n", MQTTNote(addrs.HTTP, addrs.MQTT))
	fmt.Fprintf(w, "  an MQTT password (optional; it logs you in as ann): %s\n", TokenCommand("ann"))
	fmt.Fprintf(w, "  %s\n", StoreNote(storePath))
	fmt.Fprintf(w, "\nPress Ctrl-C to stop.\n")
}
