package gate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/xtaci/kcp-go/v5"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/rpc"
)

// Gateway is where players connect. It accepts connections on any number
// of listeners (TCP, WebSocket, KCP), runs one session actor per client,
// and routes each request to the service that handles it, anywhere in the
// cluster. Create it with New; Close stops it.
type Gateway struct {
	cfg    Config
	lim    Limits
	log    *slog.Logger
	node   *actor.Node
	client *rpc.Client
	public map[string]bool
	hub    actor.PID // the gateway actor: pushes to several sessions
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	conns     map[clientConn]struct{}
	listeners []func() error // each closes one listener
	wg        sync.WaitGroup // accept loops and connection goroutines

	readBufs sync.Pool // of *[]byte: stream connections' read buffers
}

// New starts a gateway on cfg.Node. It listens nowhere until ListenTCP,
// ListenWebSocket or ListenKCP.
func New(cfg Config) (*Gateway, error) {
	if cfg.Node == nil {
		return nil, fmt.Errorf("%w: Node is nil", ErrBadConfig)
	}
	if err := cfg.Limits.validate(); err != nil {
		return nil, err
	}
	for svc, r := range cfg.Routes {
		switch {
		case r.grainKind != "":
			if cfg.Grains == nil {
				return nil, fmt.Errorf("%w: route %q: UserGrain needs Config.Grains", ErrBadConfig, svc)
			}
		case r.userType > 0 && cfg.Members == nil || r.userType == 0 && r.target == (rpc.Target{}):
			return nil, fmt.Errorf("%w: route %q: a zero Route, or ByUser without Members", ErrBadConfig, svc)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = cfg.Node.Logger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{
		cfg:    cfg,
		lim:    cfg.Limits.withDefaults(),
		log:    cfg.Logger,
		node:   cfg.Node,
		public: make(map[string]bool, len(cfg.Public)),
		conns:  make(map[clientConn]struct{}),
		ctx:    ctx,
		cancel: cancel,
	}
	var opts []rpc.ClientOption
	if cfg.Members != nil {
		opts = append(opts, rpc.WithMembership(cfg.Members))
	}
	if cfg.Grains != nil {
		opts = append(opts, rpc.WithGrains(cfg.Grains))
	}
	g.client = rpc.NewClient(cfg.Node, opts...)
	for _, r := range cfg.Public {
		g.public[r] = true
	}
	hub, err := startHub(ctx, g)
	if err != nil {
		cancel()
		return nil, err
	}
	g.hub = hub
	return g, nil
}

// ListenTCP accepts clients on a TCP address ("127.0.0.1:0" for a random
// port), with TLS when tlsConfig is set, and returns the address it
// listens on.
func (g *Gateway) ListenTCP(addr string, tlsConfig *tls.Config) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gate: listen tcp %s: %w", addr, err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	return ln.Addr(), g.serveListener(ln, "tcp", g.streamConn("tcp"))
}

// ListenKCP accepts clients on a UDP address with KCP (a reliable,
// low-latency protocol over UDP, github.com/xtaci/kcp-go), with no
// encryption at the KCP layer.
func (g *Gateway) ListenKCP(addr string) (net.Addr, error) {
	ln, err := kcp.ListenWithOptions(addr, nil, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("gate: listen kcp %s: %w", addr, err)
	}
	return ln.Addr(), g.serveListener(kcpListener{ln}, "kcp", g.streamConn("kcp"))
}

// streamConn returns the wrapper of a stream listener's connections.
func (g *Gateway) streamConn(network string) func(net.Conn) clientConn {
	return func(nc net.Conn) clientConn { return newStreamConn(nc, network, g.lim.MaxFrame, &g.readBufs) }
}

// kcpListener tunes every accepted KCP session for interactive traffic.
type kcpListener struct{ *kcp.Listener }

func (l kcpListener) Accept() (net.Conn, error) {
	s, err := l.AcceptKCP()
	if err != nil {
		return nil, err
	}
	tuneKCP(s)
	return s, nil
}

// tuneKCP sets KCP's "fast" mode: no delay, 10 ms interval, fast resend,
// no congestion window; both ends use it.
func tuneKCP(s *kcp.UDPSession) {
	s.SetNoDelay(1, 10, 2, 1)
	// Stream mode: frames are length-prefixed, and message mode fails
	// reads into a buffer smaller than a message (the 4-byte prefix).
	// Deprecated upstream without a replacement in v5.6.40.
	//lint:ignore SA1019 stream mode is what the framing needs
	s.SetStreamMode(true)
	s.SetWindowSize(256, 256)
}

// ListenWebSocket accepts clients over WebSocket on addr, at path (for
// example "/ws"), with TLS (wss) when tlsConfig is set. Frames are binary
// messages. To serve WebSocket beside other HTTP handlers (the game's
// page), mount WebSocketHandler on your own server instead.
func (g *Gateway) ListenWebSocket(addr, path string, tlsConfig *tls.Config) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gate: listen websocket %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle(path, g.WebSocketHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: g.lim.HandshakeTimeout, TLSConfig: tlsConfig}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		ln.Close()
		return nil, ErrClosed
	}
	g.listeners = append(g.listeners, func() error { return srv.Close() })
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		var err error
		if tlsConfig != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("gate: websocket listener stopped", "err", err)
		}
	}()
	return ln.Addr(), nil
}

// WebSocketHandler returns the http.Handler that upgrades requests to
// WebSocket sessions, to mount on a server of your own (beside the game's
// web page, say).
func (g *Gateway) WebSocketHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return // Accept has answered the HTTP request
		}
		ws.SetReadLimit(int64(g.lim.MaxFrame))
		c := &wsConn{ws: ws, remote: r.RemoteAddr, ctx: g.ctx}
		if !g.admit(c) {
			return
		}
		// The handler's goroutine serves the connection: net/http keeps
		// the hijacked connection while it runs.
		g.serve(c)
	})
}

// ErrClosed is returned by the Listen methods after Close.
var ErrClosed = errors.New("gate: gateway closed")

// serveListener accepts connections on ln until Close, wrapping each with
// wrap. Each one is admitted (or refused, with a Close frame or a CONNACK
// that may wait for the client) and served on its own goroutine, so a
// slow client never holds up the accept loop.
func (g *Gateway) serveListener(ln net.Listener, network string, wrap func(net.Conn) clientConn) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	g.listeners = append(g.listeners, ln.Close)
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		var delay time.Duration
		for {
			nc, err := ln.Accept()
			if err != nil {
				if g.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return
				}
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				g.log.Warn("gate: accept failed", "network", network, "err", err, "retry_in", delay)
				select {
				case <-time.After(delay):
				case <-g.ctx.Done():
					return
				}
				continue
			}
			delay = 0
			c := wrap(nc)
			g.wg.Add(1) // the accept loop is counted: never an idle WaitGroup
			go func() {
				defer g.wg.Done()
				if g.admit(c) {
					g.serve(c)
				}
			}()
		}
	}()
	return nil
}

// admit counts c in, or refuses it with a Close frame when the gateway is
// full or closed. An admitted connection is counted in g.wg, under g.mu,
// so that Close (which sets closed under g.mu, then waits) waits for it
// whichever goroutine serves it (an HTTP handler's, for WebSocket);
// serve marks it done.
func (g *Gateway) admit(c clientConn) bool {
	g.mu.Lock()
	full := len(g.conns) >= g.lim.MaxConns
	if !g.closed && !full {
		g.conns[c] = struct{}{}
		g.wg.Add(1)
		g.mu.Unlock()
		return true
	}
	g.mu.Unlock()
	reason := "the gateway is closing"
	if full {
		reason = fmt.Sprintf("the gateway is full (%d connections)", g.lim.MaxConns)
	}
	if b, err := gatepb.Encode(closeFrame(uint32(rpc.Unavailable), reason)); err == nil {
		_ = c.writeFrames([][]byte{b})
	}
	_ = c.close()
	return false
}

func (g *Gateway) release(c clientConn) {
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

// Conns returns the number of open client connections.
func (g *Gateway) Conns() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// Close stops the listeners, closes every client connection (their
// sessions end with OnClose) and waits for the gateway's goroutines. It is
// safe to call twice.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	listeners := g.listeners
	conns := make([]clientConn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	g.cancel()
	var errs []error
	for _, close := range listeners {
		if err := close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for _, c := range conns {
		_ = c.close()
	}
	g.wg.Wait()
	_ = g.node.Stop(g.hub)
	return errors.Join(errs...)
}

// closeFrame builds a Close frame.
func closeFrame(code uint32, reason string) *gatepb.Frame {
	return &gatepb.Frame{Body: &gatepb.Frame_Close{Close: &gatepb.Close{Code: code, Reason: reason}}}
}
