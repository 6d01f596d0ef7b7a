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
	"syscall"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/gate"
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
	// WebSocketPath is where the page's WebSocket connects.
	WebSocketPath = "/ws"
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
	// Out receives what the demo prints: where to point a browser and the
	// bots. Default: discarded.
	Out io.Writer
	// Logger receives the node's logs. Default: discarded.
	Logger *slog.Logger
	// World sets the world module's settings.
	World WorldSettings
	// Ready, optional, is called once the demo listens, with the addresses
	// it got (tcpAddr is "" without TCP).
	Ready func(httpAddr, tcpAddr string)
}

// RunDemo runs the arena in this process until ctx ends: one node hosting
// the world and chat modules and a gateway, with an in-memory membership
// (no etcd), the page served over HTTP at opts.Addr beside its WebSocket,
// and a TCP listener for bots. The leaderboard's grains keep their state
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
	g, err := gate.New(gate.Config{Node: node.Actor(), Members: members, Routes: routes, Public: public, Logger: opts.Logger})
	if err != nil {
		return err
	}
	defer g.Close()

	tcpAddr := ""
	if opts.TCPAddr != "-" {
		a, err := g.ListenTCP(opts.TCPAddr, nil)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("arena: gateway tcp listener: %s is in use (change it with guild demo -tcp)", opts.TCPAddr)
			}
			return fmt.Errorf("arena: gateway tcp listener, for bots, on %s (guild demo -tcp changes it): %w", opts.TCPAddr, netCause(err))
		}
		tcpAddr = a.String()
	}

	mux := http.NewServeMux()
	mux.Handle(WebSocketPath, g.WebSocketHandler())
	mux.Handle("/", http.FileServerFS(Page()))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
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

	httpAddr := ln.Addr().String()
	printDemo(opts.Out, httpAddr, tcpAddr, opts.World.Store)
	if opts.Ready != nil {
		opts.Ready(httpAddr, tcpAddr)
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

// StoreNote says where the leaderboard is kept, for a banner.
func StoreNote(path string) string {
	if path == "" {
		return "the leaderboard is kept in memory: it ends with the demo"
	}
	return "the leaderboard is kept in " + path + " (delete it to start afresh)"
}

// printDemo says what runs and what to do.
func printDemo(w io.Writer, httpAddr, tcpAddr, storePath string) {
	url := PageURL(httpAddr)
	fmt.Fprintf(w, "The arena is running: a world and a chat module behind a gateway, on one node.\n\n")
	fmt.Fprintf(w, "  open %s in a browser, pick a name, steer with the arrow keys, WASD or the mouse,\n", url)
	fmt.Fprintf(w, "  pick up orbs to score, chat with Enter (open a second window for a second player)\n")
	if tcpAddr != "" {
		fmt.Fprintf(w, "  bots, from the repository's root: %s\n", BotsCommand(tcpAddr))
	}
	fmt.Fprintf(w, "  %s\n", StoreNote(storePath))
	fmt.Fprintf(w, "\nPress Ctrl-C to stop.\n")
}
