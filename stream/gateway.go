package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guildkit/guild/cluster"
)

// Defaults of GatewayConfig.
const (
	DefaultGatewayMaxConns     = 10000
	DefaultGatewayIdleTimeout  = 2 * time.Minute
	DefaultGatewayWriteTimeout = 10 * time.Second
)

// GatewayConfig configures a stream Gateway.
type GatewayConfig struct {
	// Host opens the streams to the backends. Required.
	Host *Host
	// NodeType is the node type of the backends: a client's stream goes
	// to an available member of that type (of the Host's cluster, or an
	// exported one of another) whose node runs a Host.
	NodeType int
	// Service is the backends' handler (Host.Handle); "" is the default.
	Service string
	// Pick chooses among the backends: cluster.Random (the zero value),
	// cluster.RoundRobin, or cluster.ConsistentHash keyed by the client's
	// IP address (a client that reconnects reaches the same backend while
	// the backends stay the same).
	Pick cluster.Pick
	// MaxConns bounds the clients served at once; a client beyond it is
	// closed as soon as it connects. Default DefaultGatewayMaxConns.
	MaxConns int
	// IdleTimeout closes a client that sends nothing for that long (game
	// clients send heartbeats), and bounds how long the gateway waits for
	// the backend's last bytes after the client closed its side. Default
	// DefaultGatewayIdleTimeout (2 min).
	IdleTimeout time.Duration
	// WriteTimeout closes a client that does not take the backend's bytes
	// for that long (it stopped reading). Default
	// DefaultGatewayWriteTimeout (10s).
	WriteTimeout time.Duration
	// Logger receives the gateway's logs. Default: the Host's.
	Logger *slog.Logger
}

// Gateway is the gateway's stream mode, for games that keep their own
// wire protocol (clustergo's gateserver): per client connection it opens
// a stream to a backend chosen by node type and pipes the bytes both ways
// without looking at them, so the backend's Handler sees each client as a
// Stream (whose Info is the client's remote address).
//
// # Goroutines
//
// Serve runs the accept loop on its caller's goroutine; per client the
// Gateway owns two goroutines, one per direction, and Close waits for
// them all.
type Gateway struct {
	cfg   GatewayConfig
	log   *slog.Logger
	sel   cluster.Selector
	conns atomic.Int64

	// mu guards the fields below; a leaf lock, nothing is called while it
	// is held.
	quit      chan struct{} // closed by Close
	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	clients   map[net.Conn]struct{}
	wg        sync.WaitGroup
}

// ErrGatewayClosed is returned by Serve after Close.
var ErrGatewayClosed = errors.New("stream: gateway closed")

// NewGateway returns a Gateway; Serve it on a listener.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	if cfg.Host == nil {
		return nil, errors.New("stream: GatewayConfig.Host is nil")
	}
	if err := checkOpen(openHeader{service: cfg.Service}); err != nil {
		return nil, err
	}
	if cfg.MaxConns < 0 || cfg.IdleTimeout < 0 || cfg.WriteTimeout < 0 {
		return nil, errors.New("stream: GatewayConfig has a negative limit")
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultGatewayMaxConns
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultGatewayIdleTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultGatewayWriteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = cfg.Host.log
	}
	switch cfg.Pick {
	case cluster.Random, cluster.RoundRobin, cluster.ConsistentHash:
	default:
		return nil, fmt.Errorf("stream: GatewayConfig.Pick: %w: %v", cluster.ErrBadPick, cfg.Pick)
	}
	return &Gateway{
		cfg:       cfg,
		quit:      make(chan struct{}),
		log:       cfg.Logger.With("component", "stream-gateway"),
		listeners: make(map[net.Listener]struct{}),
		clients:   make(map[net.Conn]struct{}),
	}, nil
}

// Conns returns the number of clients being served.
func (g *Gateway) Conns() int { return int(g.conns.Load()) }

// Serve accepts clients on ln until Close (it returns ErrGatewayClosed)
// or until ln fails. It closes ln when it returns.
func (g *Gateway) Serve(ln net.Listener) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		_ = ln.Close()
		return ErrGatewayClosed
	}
	g.listeners[ln] = struct{}{}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.listeners, ln)
		g.mu.Unlock()
		_ = ln.Close()
	}()
	pause := time.Duration(0)
	for {
		conn, err := ln.Accept()
		if err != nil {
			g.mu.Lock()
			closed := g.closed
			g.mu.Unlock()
			if closed {
				return ErrGatewayClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, net.ErrClosed) {
				return err
			}
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			g.log.Warn("stream gateway: accept failed", "err", err, "retry_in", pause)
			t := time.NewTimer(pause) // a full file table: as net/http, back off
			select {
			case <-g.quit:
				t.Stop()
				return ErrGatewayClosed
			case <-t.C:
			}
			continue
		}
		pause = 0
		if g.conns.Add(1) > int64(g.cfg.MaxConns) {
			g.conns.Add(-1)
			g.log.Debug("stream gateway: at MaxConns, closing a new client", "remote", conn.RemoteAddr().String(), "max", g.cfg.MaxConns)
			_ = conn.Close()
			continue
		}
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			g.conns.Add(-1)
			_ = conn.Close()
			return ErrGatewayClosed
		}
		g.clients[conn] = struct{}{}
		g.wg.Add(1)
		g.mu.Unlock()
		go g.serveClient(conn)
	}
}

// Close stops every Serve, closes every client (and so its stream) and
// waits for the gateway's goroutines. It is safe to call twice.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.quit)
	}
	lns := make([]net.Listener, 0, len(g.listeners))
	for ln := range g.listeners {
		lns = append(lns, ln)
	}
	conns := make([]net.Conn, 0, len(g.clients))
	for c := range g.clients {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
	for _, c := range conns {
		_ = c.Close()
	}
	g.wg.Wait()
	return nil
}

// backend picks the member a new client's stream goes to.
func (g *Gateway) backend(client net.Conn) (cluster.Member, error) {
	view := g.cfg.Host.ms.Members()
	withHost := view[:0]
	for _, m := range view {
		if m.Meta[MetaEndpoint] != "" {
			withHost = append(withHost, m)
		}
	}
	key := ""
	if g.cfg.Pick == cluster.ConsistentHash {
		key, _, _ = net.SplitHostPort(client.RemoteAddr().String())
	}
	return g.sel.Pick(withHost, g.cfg.Host.self, g.cfg.NodeType, g.cfg.Pick, key)
}

// serveClient pipes one client to a stream until either side ends.
func (g *Gateway) serveClient(client net.Conn) {
	defer g.wg.Done()
	defer func() {
		_ = client.Close()
		g.mu.Lock()
		delete(g.clients, client)
		g.mu.Unlock()
		g.conns.Add(-1)
	}()
	m, err := g.backend(client)
	if err != nil {
		g.log.Warn("stream gateway: no backend for a client", "remote", client.RemoteAddr().String(), "node_type", g.cfg.NodeType, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.Host.cfg.OpenTimeout)
	s, err := g.cfg.Host.OpenStream(ctx, m.Addr, WithService(g.cfg.Service), WithInfo(client.RemoteAddr().String()))
	cancel()
	if err != nil {
		g.log.Warn("stream gateway: open a stream for a client", "remote", client.RemoteAddr().String(), "backend", m.Addr.String(), "err", err)
		return
	}
	defer s.Close()
	down := make(chan struct{})
	g.wg.Add(1)
	go func() { // backend → client
		defer g.wg.Done()
		defer close(down)
		_, _ = io.CopyBuffer(deadlineWriter{client, g.cfg.WriteTimeout}, s, make([]byte, pipeBuffer))
		_ = client.Close() // the backend is done (or failed): so is the client
	}()
	// client → backend
	_, err = io.CopyBuffer(s, deadlineReader{client, g.cfg.IdleTimeout}, make([]byte, pipeBuffer))
	if err == nil { // the client closed its side: let the backend finish, within IdleTimeout
		_ = s.CloseWrite()
		_ = s.SetReadDeadline(time.Now().Add(g.cfg.IdleTimeout))
	} else {
		_ = s.Close()
	}
	<-down
}

// pipeBuffer is the buffer of each direction of a client's pipe.
const pipeBuffer = 16 << 10

// deadlineReader sets a read deadline d ahead before every Read.
type deadlineReader struct {
	c net.Conn
	d time.Duration
}

func (r deadlineReader) Read(b []byte) (int, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(r.d))
	return r.c.Read(b)
}

// deadlineWriter sets a write deadline d ahead before every Write.
type deadlineWriter struct {
	c net.Conn
	d time.Duration
}

func (w deadlineWriter) Write(b []byte) (int, error) {
	_ = w.c.SetWriteDeadline(time.Now().Add(w.d))
	return w.c.Write(b)
}
