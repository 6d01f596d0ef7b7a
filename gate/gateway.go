package gate

import (
	"context"
	"crypto/cipher"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/gate/origin"
	"github.com/guildkit/guild/rpc"
)

// Gateway is where players connect. It accepts connections on any number
// of listeners (TCP, WebSocket, KCP, MQTT), runs one session actor per
// client, and routes each request to the service that handles it,
// anywhere in the cluster. Create it with New; Shutdown stops it
// gracefully, Close at once.
type Gateway struct {
	cfg    Config
	lim    Limits
	log    *slog.Logger
	node   *actor.Node
	client *rpc.Client
	public map[string]bool
	// deltas holds the push routes of the deltas of the routes to
	// guild.propsync.Sync (see Route.DeltasOn): sessions read the pushes
	// on them (see session.syncPush).
	deltas map[string]bool
	// loginHint ends a "log in first" refusal: the public routes, sorted.
	loginHint  string
	rateTail   []byte    // the end of a rate-limit refusal (see rateLimitedFrame)
	sourceTail []byte    // the same for the source's rate before login
	hub        actor.PID // the gateway actor: pushes to several sessions
	ctx        context.Context
	cancel     context.CancelFunc
	limits     *limitTable  // per source and per user, across connections
	refusing   atomic.Int32 // refused connections lingering (see refuse)
	sealer     cipher.AEAD  // seals session records into resume tokens (seal.go); nil: no Config.ResumeKey
	started    atomic.Int64 // when the node joined the membership, once known (see nodeStarted)

	mu        sync.Mutex
	draining  bool                     // Shutdown or Close began: no new connections
	closing   bool                     // Close began
	conns     map[clientConn]connState // each open connection: in its handshake, opened, its session
	detached  map[actor.PID]struct{}   // sessions kept without a connection, for resumption (see resume.go)
	listeners []listener               // not closed yet
	drained   chan struct{}            // closed once draining and no connection is left
	wg        sync.WaitGroup           // accept loops and connection goroutines
	closed    chan struct{}            // closed when Close has returned
	// httpConns are the connections of the gateway's HTTP servers, from
	// their accept until they close or are hijacked (see httpServer),
	// with their sources; they count toward MaxConns.
	httpConns map[net.Conn]*limitEntry

	readBufs sync.Pool // of *[]byte: stream connections' read buffers
	pushes   pushStats // see PushStats
	stats    gateStats // see Stats

	origins *origin.Policy // Config.Origins, parsed
}

// connState is where a connection is: in its handshake, then with its
// session starting (its actor's Started may already write to the client),
// then with its session's PID.
type connState struct {
	opened bool        // the handshake is done
	pid    actor.PID   // the session, once attached
	src    *limitEntry // its source's entry in the limit table, or nil
}

// listener is one of the gateway's listeners.
type listener struct {
	close func() error
	// last: closed by Close only, after the connections, not when the
	// shutdown begins (ServeListener's closeLast; KCP: the listener's UDP
	// socket carries its sessions; until then admit refuses new clients).
	last bool
}

// New starts a gateway on cfg.Node. It listens nowhere until ListenTCP,
// ServeListener (KCP: package gate/kcp), ListenHTTP (WebSocket: package
// gate/websocket) or ListenConns (MQTT: package gate/mqtt).
func New(cfg Config) (*Gateway, error) {
	if cfg.Node == nil {
		return nil, fmt.Errorf("%w: Node is nil", ErrBadConfig)
	}
	if err := cfg.Limits.validate(); err != nil {
		return nil, err
	}
	origins, err := origin.Parse(cfg.Origins)
	if err != nil {
		return nil, fmt.Errorf("%w: Origins: %w", ErrBadConfig, err)
	}
	for svc, r := range cfg.Routes {
		switch {
		case r.mayWatch != nil && !r.byEntity:
			return nil, fmt.Errorf("%w: route %q: WatchedBy is for SyncGrain routes", ErrBadConfig, svc)
		case r.pushRoute != "" && !r.syncs():
			return nil, fmt.Errorf("%w: route %q: DeltasOn is for routes to %s (SyncGrain, UserGrain(kind, propsync.Service))", ErrBadConfig, svc, syncService)
		case r.grainKind != "":
			if cfg.Grains == nil {
				return nil, fmt.Errorf("%w: route %q: UserGrain and SyncGrain need Config.Grains", ErrBadConfig, svc)
			}
		case r.userType > 0 && cfg.Members == nil || r.userType == 0 && r.target == (rpc.Target{}):
			return nil, fmt.Errorf("%w: route %q: a zero Route, or ByUser without Members", ErrBadConfig, svc)
		}
	}
	if cfg.Auth != nil && cfg.Identify != nil {
		return nil, fmt.Errorf("%w: set Auth or Identify, not both", ErrBadConfig)
	}
	sealer, err := newSealer(cfg.ResumeKey)
	if err != nil {
		return nil, err
	}
	if sealer != nil && cfg.Limits.ResumeWindow <= 0 {
		return nil, fmt.Errorf("%w: a ResumeKey without Limits.ResumeWindow: sessions are not kept for resumption", ErrBadConfig)
	}
	if cfg.Logger == nil {
		cfg.Logger = cfg.Node.Logger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	lim := cfg.Limits.withDefaults()
	g := &Gateway{
		cfg:       cfg,
		lim:       lim,
		limits:    newLimitTable(lim),
		httpConns: make(map[net.Conn]*limitEntry),
		log:       cfg.Logger,
		node:      cfg.Node,
		public:    make(map[string]bool, len(cfg.Public)),
		conns:     make(map[clientConn]connState),
		detached:  make(map[actor.PID]struct{}),
		sealer:    sealer,
		drained:   make(chan struct{}),
		closed:    make(chan struct{}),
		ctx:       ctx,
		cancel:    cancel,
		origins:   origins,
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
	for _, r := range cfg.Routes {
		if r.syncs() {
			if g.deltas == nil {
				g.deltas = make(map[string]bool)
			}
			g.deltas[r.deltas()] = true
		}
	}
	g.loginHint = loginHint(g.public)
	g.rateTail, g.sourceTail = rateLimitedTail(g.lim), sourceLimitedTail(g.lim)
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
		return nil, &listenError{kind: "tcp", addr: addr, err: err}
	}
	ln = g.proxyListener(ln)
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	return ln.Addr(), g.serveListener(ln, "tcp", false, g.streamConn("tcp"))
}

// ServeListener serves clients of the framed protocol (stream frames, as
// on TCP: docs/PROTOCOL.md) on ln, a stream listener that the gateway did
// not open: KCP's (package gate/kcp calls it, so that a gateway without
// KCP does not link a KCP library), or a transport of your own. It
// returns at once: a goroutine of the gateway accepts ln's connections
// until ln is closed, and each is served as ListenTCP's are, under the
// same limits (per source, MaxConns, the handshake and the session's).
// The per-source limits go by each connection's RemoteAddr: a transport
// whose connections have no distinct remote addresses counts them all as
// one source.
//
// network names the listener: sessions show it as SessionInfo.Listener,
// logs as "listener", and Stats counts its sessions when it is one of
// ListenerKinds ("tcp", "kcp"; other names are not counted). It must not
// be empty, nor "ws", "mqtt" or "mqtt-ws", whose listeners speak other
// framings (mqtt and mqtt-ws: package gate/mqtt's).
//
// The gateway closes ln: when Shutdown or Close begins, or, with
// closeLast, only when Close tears the gateway down, after the
// connections. closeLast is for a transport whose connections ride on the
// listener's socket (KCP: one UDP socket carries every session), where
// closing the listener would cut the sessions off before they said
// goodbye; meanwhile the gateway answers a new connection on it with
// Close{14} (going away).
//
// A connection with no half close (no CloseWrite method, as a TCP
// connection has) may have a method Linger() time.Duration: after the
// session's last frames (its Close frame), the gateway leaves it open that
// long before closing it, so that the client can take them. Keep it short
// (KCP's is a second at most): Close waits for it.
//
// ServeListener returns ErrClosed once Shutdown or Close has begun, and an
// error for a bad network name; it closes ln whenever it returns an
// error.
func (g *Gateway) ServeListener(ln net.Listener, network string, closeLast bool) error {
	switch network {
	case "", "ws", "mqtt", "mqtt-ws":
		_ = ln.Close()
		return fmt.Errorf("gate: ServeListener: network %q: give a name of the listener's own, such as \"kcp\", not empty nor ws, mqtt or mqtt-ws", network)
	}
	return g.serveListener(ln, network, closeLast, g.streamConn(network))
}

// streamConn returns the wrapper of a stream listener's connections.
func (g *Gateway) streamConn(network string) func(net.Conn) clientConn {
	return func(nc net.Conn) clientConn { return newStreamConn(nc, network, g.lim.MaxFrame, &g.readBufs) }
}

// ErrClosed is returned by the Listen methods once Shutdown or Close has
// begun, and is the reason OnClose gets for the sessions they close.
var ErrClosed = errors.New("gate: gateway closed")

// serveListener accepts connections on ln until it is closed (when the
// shutdown begins, or at Close for a last listener), wrapping each with
// wrap. Each one is admitted (or refused, with a Close frame or a CONNACK
// that may wait for the client) and served on its own goroutine, so a
// slow client never holds up the accept loop.
func (g *Gateway) serveListener(ln net.Listener, network string, last bool, wrap func(net.Conn) clientConn) error {
	g.mu.Lock()
	if g.draining {
		g.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	g.listeners = append(g.listeners, listener{close: ln.Close, last: last})
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
			g.wg.Add(1) // the accept loop is counted: never an idle WaitGroup
			go func() {
				defer g.wg.Done()
				// Here, not in the accept loop: behind a trusted proxy,
				// RemoteAddr reads the PROXY header first.
				src, e, ok := g.limits.open(nc.RemoteAddr().String(), time.Now())
				if ok {
					g.tuneSocket(nc)
				}
				c := wrap(nc)
				if !ok {
					g.refuse(c, e)
				} else if g.admit(c, src) {
					g.serve(c)
				}
			}()
		}
	}()
	return nil
}

// admit counts c in, or refuses it with a Close frame when the gateway is
// full or shutting down. An admitted connection is counted in g.wg, under
// g.mu, so that Close (which sets draining under g.mu, then waits) waits
// for it whichever goroutine serves it (an HTTP handler's, for
// WebSocket); serve marks it done. src, its source's entry in the limit
// table (or nil), is given back when it ends (release), or now if it is
// refused.
func (g *Gateway) admit(c clientConn, src *limitEntry) bool {
	g.mu.Lock()
	full := len(g.conns)+len(g.httpConns) >= g.lim.MaxConns
	if !g.draining && !full {
		g.conns[c] = connState{src: src}
		g.wg.Add(1)
		g.mu.Unlock()
		return true
	}
	g.mu.Unlock()
	g.limits.close(src)
	e := goingAway()
	if full {
		e = gatewayFull(g.lim.MaxConns)
	}
	e.refuse = true
	g.refuse(c, e)
	return false
}

// maxRefusing bounds the refused connections that linger at once (see
// refuse).
const maxRefusing = 64

// refuse ends a connection refused before its handshake with e: it
// lingers for the client to take its Close frame (lingerClose), unless
// maxRefusing refused connections linger already; then the connection is
// closed at once, without a word, so that a flood of refused connections
// costs little.
func (g *Gateway) refuse(c clientConn, e ending) {
	if e.silent {
		_ = c.close()
		return
	}
	if g.refusing.Add(1) > maxRefusing {
		g.refusing.Add(-1)
		_ = c.close()
		return
	}
	defer g.refusing.Add(-1)
	lingerClose(c, e, refusedLinger)
}

// refusedLinger bounds how long a refused connection waits for its
// client to close its side after the Close frame.
const refusedLinger = time.Second

// lingerClose ends c with e (see clientConn.finish) and closes it once
// the client has closed its side (reading whatever it sends meanwhile), or
// after d: closing a connection with unread input resets it, and the
// client could lose the last frames. finish itself may wait up to d (an
// adapter's handshake to refuse, a WebSocket close handshake): all of it is
// bounded by 2 × d.
func lingerClose(c clientConn, e ending, d time.Duration) {
	bound := time.AfterFunc(2*d, func() { _ = c.close() })
	defer bound.Stop()
	if c.finish(e) {
		deadline := time.Now().Add(d)
		for {
			if _, err := c.read(deadline); err != nil {
				break
			}
		}
	}
	_ = c.close()
}

// opened records that the handshake of c is done: from now on a shutdown
// leaves it to its session (see attach), which says goodbye, instead of
// closing it as a connection still in its handshake.
func (g *Gateway) opened(c clientConn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if st, ok := g.conns[c]; ok {
		st.opened = true
		g.conns[c] = st
	}
}

// attach records the session of c, once its actor runs, and reports
// whether the gateway is shutting down already, and whether it is closing:
// then the session must be told (goAway), since the shutdown did not see
// it.
func (g *Gateway) attach(c clientConn, pid actor.PID) (draining, closing bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.conns[c]
	st.opened, st.pid = true, pid
	g.conns[c] = st
	return g.draining, g.closing
}

// sessions returns the PIDs of the gateway's open sessions.
func (g *Gateway) sessions() []actor.PID {
	g.mu.Lock()
	defer g.mu.Unlock()
	pids := make([]actor.PID, 0, len(g.conns))
	for _, st := range g.conns {
		if !st.pid.IsZero() {
			pids = append(pids, st.pid)
		}
	}
	return pids
}

func (g *Gateway) release(c clientConn) {
	g.mu.Lock()
	src := g.conns[c].src
	delete(g.conns, c)
	g.checkDrainedLocked()
	g.mu.Unlock()
	g.limits.close(src)
}

// checkDrainedLocked closes g.drained once the gateway is draining and
// its last connection is gone, and its last detached session. g.mu is
// held.
func (g *Gateway) checkDrainedLocked() {
	if g.draining && len(g.conns) == 0 && len(g.detached) == 0 {
		select {
		case <-g.drained:
		default:
			close(g.drained)
		}
	}
}

// Conns returns the number of open client connections.
func (g *Gateway) Conns() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// closeGrace bounds how long Close lets sessions write their last frames
// (the answers it gives for them, the GoingAway Close frame) before it
// closes their connections: a slow client is not waited for.
const closeGrace = time.Second

// Shutdown stops the gateway gracefully. At once, every listener stops
// accepting connections, connections still in their handshake are closed,
// and every session stops taking requests: one that arrives now is
// answered rpc.Unavailable with Response.not_forwarded set (see
// docs/PROTOCOL.md), which a client reads as "send it to another gateway".
// Each session lets the requests it forwarded already finish and delivers
// their answers, then sends its client a Close frame with code GoingAway
// and reason GoingAwayReason (MQTT 5: DISCONNECT 0x8B; MQTT 3.1.1: nothing)
// and closes the connection once it is written. Shutdown returns when
// every connection is closed, after tearing the gateway down as Close
// does, with the error of closing the listeners, if any.
//
// With Limits.ResumeWindow, a session bound to a user does not end at its
// GoingAway Close frame: it detaches, so that its client, which moves to
// another gateway, resumes it there (the session hands itself over, see
// the package doc); Shutdown waits for those handovers too, each at most
// for the window, then ends the sessions left.
//
// When ctx ends first, Shutdown calls Close, which answers the requests
// still in flight at once, and returns ctx.Err(). Shutdown and Close may
// both be called, more than once, from any goroutine; the Listen methods
// return ErrClosed once either has begun.
func (g *Gateway) Shutdown(ctx context.Context) error {
	err := g.drain(false)
	select {
	case <-g.drained:
		return errors.Join(err, g.Close())
	case <-ctx.Done():
		_ = g.Close()
		return ctx.Err()
	}
}

// Close stops the gateway at once: it stops the listeners, answers every
// request in flight with rpc.Unavailable (the service may or may not have
// handled it), sends every session's client the GoingAway Close frame
// (MQTT 5: DISCONNECT 0x8B) as best it can, giving slow clients at most a
// second, closes every connection (their sessions end with OnClose, reason
// ErrClosed) and waits for the gateway's goroutines. It may be called more
// than once, and during or after Shutdown: later calls wait for the first.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closing {
		g.mu.Unlock()
		<-g.closed
		return nil
	}
	g.closing = true
	g.mu.Unlock()
	err := g.drain(true)
	grace := time.NewTimer(closeGrace)
	select {
	case <-g.drained:
	case <-grace.C:
	}
	grace.Stop()
	g.cancel()
	g.mu.Lock()
	conns := make([]clientConn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	listeners := g.listeners
	g.listeners = nil
	g.mu.Unlock()
	for _, c := range conns {
		_ = c.close()
	}
	errs := []error{err}
	for _, l := range listeners {
		errs = append(errs, closeListener(l))
	}
	g.wg.Wait()
	_ = g.node.Stop(g.hub)
	close(g.closed)
	return errors.Join(errs...)
}

// drain begins the shutdown, or hurries it (now): it closes the listeners
// (the first time), closes the connections still in their handshake and
// tells every session to go away. It returns the listeners' errors.
func (g *Gateway) drain(now bool) error {
	g.mu.Lock()
	g.draining = true
	var listeners []listener
	rest := g.listeners[:0]
	for _, l := range g.listeners {
		if l.last {
			rest = append(rest, l)
		} else {
			listeners = append(listeners, l)
		}
	}
	g.listeners = rest
	var sessions, detached []actor.PID
	var handshaking []clientConn
	if now {
		for pid := range g.detached {
			detached = append(detached, pid)
		}
	}
	for c, st := range g.conns {
		switch {
		case !st.opened:
			handshaking = append(handshaking, c)
		case st.pid != (actor.PID{}):
			sessions = append(sessions, st.pid)
		}
		// A session starting is told by attach.
	}
	g.checkDrainedLocked()
	g.mu.Unlock()
	var errs []error
	for _, l := range listeners {
		errs = append(errs, closeListener(l))
	}
	for _, c := range handshaking {
		_ = c.close()
	}
	for _, pid := range sessions {
		_ = g.node.Send(pid, goAway{now: now})
	}
	for _, pid := range detached {
		_ = g.node.Send(pid, resumeEnd{})
	}
	return errors.Join(errs...)
}

// closeListener closes l; closing one closed already is no error.
func closeListener(l listener) error {
	if err := l.close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// closeFrame builds a Close frame.
func closeFrame(code uint32, reason string) *gatepb.Frame {
	return &gatepb.Frame{Body: &gatepb.Frame_Close{Close: &gatepb.Close{Code: code, Reason: reason}}}
}

// listenError is a listener the gateway could not open. Its message names
// the listener and the address once ("gate: tcp listener: 127.0.0.1:7000
// is in use"), where net's says "listen tcp" around its own cause; it
// wraps net's error, so errors.Is(err, syscall.EADDRINUSE) holds for an
// address in use.
type listenError struct {
	kind, addr string
	err        error
}

func (e *listenError) Error() string {
	if errors.Is(e.err, syscall.EADDRINUSE) {
		return fmt.Sprintf("gate: %s listener: %s is in use", e.kind, e.addr)
	}
	cause := e.err
	var op *net.OpError
	if errors.As(cause, &op) && op.Err != nil {
		cause = op.Err
	}
	return fmt.Sprintf("gate: %s listener on %s: %v", e.kind, e.addr, cause)
}

func (e *listenError) Unwrap() error { return e.err }
