package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/wire"
)

var _ transport.Transport = (*Transport)(nil)

// errRejected: the acceptor keeps the connection it dialled itself.
var errRejected = errors.New("tcp: peer keeps its own connection")

// Transport is a direct TCP mesh: one connection per pair of nodes, dialled
// lazily by whichever node sends first. Create it with New.
type Transport struct {
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	ctx    context.Context // cancelled by Close: stops dials in progress
	cancel context.CancelFunc
	quit   chan struct{} // closed by Close
	wg     sync.WaitGroup

	// peers maps each known peer to its state. It is copied on write
	// (under mu), so Send finds a peer without locking.
	peers atomic.Pointer[map[actor.Addr]*peer]
	// shut is set by Close, for Send to see without locking.
	shut atomic.Bool

	mu          sync.Mutex
	closed      bool
	handshaking map[net.Conn]struct{} // connections not yet installed
	live        int                   // installed connections not yet closed
}

// dialState is what a peer's dial goroutine is doing.
type dialState uint8

const (
	dialIdle       dialState = iota // no dial goroutine
	dialConnecting                  // connecting or exchanging hellos
	dialWaiting                     // sleeping before the next attempt
)

// peer is what the transport keeps for one remote node. Its outbox
// outlives connections: every connection's writer drains the same outbox,
// so a reconnect or a lost simultaneous dial loses nothing that was queued.
type peer struct {
	addr actor.Addr
	out  *outbox
	// up is true while a connection is installed: Send then needs no lock
	// but the outbox's.
	up atomic.Bool
	// Counters for PeerStats: frames and bytes read (by the connection's
	// reader, one at a time), connections installed (under Transport.mu).
	recvFrames, recvBytes, connects atomic.Uint64

	// Guarded by Transport.mu.
	conn       *conn // the installed connection, or nil
	state      dialState
	backoff    time.Duration // wait before the next dial attempt
	gone       bool          // Forget was called and no Send since: do not dial
	lastWriter chan struct{} // closed when the last installed writer ends
}

// New validates cfg, listens on cfg.Listen and returns the Transport.
func New(cfg Config) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, &listenError{addr: cfg.Listen, err: err}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:         cfg,
		log:         cfg.Logger.With("self", cfg.Self.String()),
		ln:          ln,
		ctx:         ctx,
		cancel:      cancel,
		quit:        make(chan struct{}),
		handshaking: make(map[net.Conn]struct{}),
	}
	t.peers.Store(&map[actor.Addr]*peer{})
	t.wg.Add(1)
	go t.acceptLoop()
	return t, nil
}

var _ transport.StatsReporter = (*Transport)(nil)

// PeerStats returns the counters of every peer the transport knows (see
// transport.StatsReporter). It takes each peer's outbox lock briefly.
func (t *Transport) PeerStats() []transport.PeerStats {
	peers := *t.peers.Load()
	out := make([]transport.PeerStats, 0, len(peers))
	for addr, p := range peers {
		q, fo, bo := p.out.stats()
		out = append(out, transport.PeerStats{
			Peer: addr, Up: p.up.Load(), Queued: q,
			FramesOut: fo, BytesOut: bo,
			FramesIn: p.recvFrames.Load(), BytesIn: p.recvBytes.Load(),
			Connects: p.connects.Load(),
		})
	}
	return out
}

// Addr returns the address the transport listens on.
func (t *Transport) Addr() net.Addr { return t.ln.Addr() }

// Endpoint returns the address the transport listens on, as "host:port":
// what peers dial (see transport.Transport).
func (t *Transport) Endpoint() string { return t.ln.Addr().String() }

// Send encodes env into the outbox of the node at addr and returns at once;
// see transport.Transport. It does not keep env. Besides
// ErrPendingQueueFull and ErrClosed it refuses a nil envelope, an envelope
// to this node itself, and one whose encoding is larger than MaxFrame (an
// error matching wire.ErrFrameTooLarge).
func (t *Transport) Send(addr actor.Addr, env *wire.Envelope) error {
	if env == nil {
		return errors.New("tcp: Send of a nil envelope")
	}
	if addr == t.cfg.Self {
		return fmt.Errorf("tcp: Send to this node itself (%v)", addr)
	}
	if t.shut.Load() {
		return transport.ErrClosed
	}
	p := (*t.peers.Load())[addr]
	if p == nil {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return transport.ErrClosed
		}
		p = t.peerLocked(addr)
		t.mu.Unlock()
	}
	if err := p.out.put(env, t.cfg.PendingQueue, t.cfg.MaxFrame); err != nil {
		return err // it names the peer
	}
	if !p.up.Load() {
		t.mu.Lock()
		p.gone = false
		if !t.closed && p.conn == nil && p.state == dialIdle {
			t.startDialLocked(p)
		}
		t.mu.Unlock()
	}
	return nil
}

// Forget drops everything queued for addr, closes its connection and stops
// dialling it, as when addr has left the membership for good. Requests
// waiting on it are failed through Handler.PeerLost. A later Send to addr
// starts afresh.
func (t *Transport) Forget(addr actor.Addr) {
	t.mu.Lock()
	p := (*t.peers.Load())[addr]
	if p == nil || t.closed {
		t.mu.Unlock()
		return
	}
	p.gone = true
	p.backoff = 0
	c := p.conn
	t.mu.Unlock()
	p.out.drop()
	if c != nil {
		c.fail(errors.New("the peer left the membership"))
		return
	}
	t.cfg.Handler.PeerLost(addr, fmt.Errorf("%w: %v left the membership", transport.ErrPeerLost, addr))
}

// Flush waits until every envelope queued for a peer that has a connection
// has been written to its socket, or ctx ends (returning ctx's error).
// Envelopes for peers that cannot be reached are not waited for. A node
// that shuts down calls it before Close, so that its last replies leave.
func (t *Transport) Flush(ctx context.Context) error {
	for {
		done := true
		if m := t.peers.Load(); m != nil {
			for _, p := range *m {
				if p.up.Load() && !p.out.idle() {
					done = false
					break
				}
			}
		}
		if done || t.shut.Load() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// Close closes the listener and every connection and waits for all of the
// transport's goroutines. Queued envelopes are dropped, and Handler.PeerLost
// is not called for the connections it closes. It is safe to call twice.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.shut.Store(true)
	close(t.quit)
	t.cancel()
	var conns []*conn
	for _, p := range *t.peers.Load() {
		if p.conn != nil {
			conns = append(conns, p.conn)
		}
	}
	for nc := range t.handshaking {
		_ = nc.Close()
	}
	t.mu.Unlock()
	err := t.ln.Close()
	for _, c := range conns {
		c.fail(transport.ErrClosed)
	}
	t.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// liveConns returns the number of installed connections not yet closed
// (test hook: one per connected peer when the mesh is settled).
func (t *Transport) liveConns() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.live
}

// peerLocked returns addr's peer, adding it if it is new. t.mu must be held.
func (t *Transport) peerLocked(addr actor.Addr) *peer {
	old := *t.peers.Load()
	if p := old[addr]; p != nil {
		return p
	}
	p := &peer{addr: addr, out: newOutbox(addr, t.cfg.PendingQueue)}
	m := make(map[actor.Addr]*peer, len(old)+1)
	for a, q := range old {
		m[a] = q
	}
	m[addr] = p
	t.peers.Store(&m)
	return p
}

// goLocked starts f as one of the transport's goroutines, unless Close has
// begun. t.mu must be held, so that wg.Add never races with Close's Wait.
func (t *Transport) goLocked(f func()) bool {
	if t.closed {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
}

// track records a connection that is handshaking, so Close can
// close it. It reports false (and closes nc) after Close.
func (t *Transport) track(nc net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		_ = nc.Close()
		return false
	}
	t.handshaking[nc] = struct{}{}
	return true
}

func (t *Transport) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		nc, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.quit:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("tcp: accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-t.quit:
				return
			}
			continue
		}
		delay = 0
		if !t.track(nc) {
			continue
		}
		t.mu.Lock()
		started := t.goLocked(func() { t.acceptHandshake(nc) })
		t.mu.Unlock()
		if !started {
			_ = nc.Close()
		}
	}
}

// acceptHandshake runs the acceptor's side of the handshake on nc and
// installs the connection unless it loses to the one this node dialled.
func (t *Transport) acceptHandshake(raw net.Conn) {
	installed := false
	defer func() {
		if !installed {
			t.untrack(raw)
			_ = raw.Close()
		}
	}()
	_ = raw.SetDeadline(time.Now().Add(t.cfg.DialTimeout))
	nc := raw
	if t.cfg.TLS != nil {
		tc := tls.Server(raw, t.cfg.TLS)
		if err := tc.HandshakeContext(t.ctx); err != nil {
			t.log.Warn("tcp: TLS handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
			return
		}
		nc = tc
	}
	h, err := readHello(nc)
	if err != nil {
		t.log.Warn("tcp: closing connection: bad hello", "remote", raw.RemoteAddr().String(), "err", err)
		return
	}
	if h.addr == t.cfg.Self {
		t.log.Warn("tcp: closing connection: peer claims this node's own address", "remote", raw.RemoteAddr().String(), "peer", h.addr.String())
		return
	}

	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	p := t.peerLocked(h.addr)
	// The connection dialled by the lower address wins. This node is the
	// lower one when the dialler's address is higher: it then refuses the
	// dialler's connection while its own dial is in progress or installed.
	if t.cfg.Self < h.addr && (p.state == dialConnecting || (p.conn != nil && p.conn.dialed)) {
		t.mu.Unlock()
		_, _ = nc.Write(appendHello(nil, t.cfg.Self, flagReject))
		t.log.Debug("tcp: refused the peer's connection: this node's own dial wins", "peer", h.addr.String())
		return
	}
	c := t.newConn(p, nc, raw, false)
	// The hello is written under the lock, before the writer starts, so
	// nothing can precede it. It is 16 bytes on a fresh socket: it does not
	// block (and the deadline bounds it anyway).
	_, err = nc.Write(appendHello(nil, t.cfg.Self, 0))
	if err != nil {
		t.mu.Unlock()
		t.log.Warn("tcp: writing hello failed", "peer", h.addr.String(), "err", err)
		return
	}
	old := t.installLocked(c)
	installed = true
	t.mu.Unlock()
	t.announce(p.addr, old, "replaced by a new connection from the peer")
}

// announce tells the Handler that peer is up, once the connection that the
// new one replaced, if any, has been closed and reported lost.
func (t *Transport) announce(peer actor.Addr, old *conn, why string) {
	if old != nil {
		old.fail(errors.New(why))
	}
	t.cfg.Handler.PeerUp(peer)
}

func (t *Transport) untrack(nc net.Conn) {
	t.mu.Lock()
	delete(t.handshaking, nc)
	t.mu.Unlock()
}

// installLocked makes c its peer's connection and starts its reader and
// writer. It returns the connection c replaces, for the caller to close
// once t.mu is released.
func (t *Transport) installLocked(c *conn) *conn {
	p := c.peer
	delete(t.handshaking, c.raw)
	old := p.conn
	p.conn = c
	p.up.Store(true)
	p.connects.Add(1)
	c.established = time.Now()
	c.prevWriter = p.lastWriter
	p.lastWriter = c.writerDone
	t.live++
	_ = c.nc.SetDeadline(time.Time{})
	if !t.goLocked(c.readLoop) || !t.goLocked(c.writeLoop) {
		panic("tcp: installLocked after Close") // callers check t.closed under t.mu
	}
	return old
}

// startDialLocked starts p's dial goroutine.
func (t *Transport) startDialLocked(p *peer) {
	if t.goLocked(func() { t.dialLoop(p) }) {
		p.state = dialConnecting
		if p.backoff > 0 {
			p.state = dialWaiting
		}
	}
}

// dialLoop connects to p, retrying with backoff until it succeeds, another
// connection to p is installed, or Close. It reports PeerLost once, at the
// first failed attempt.
func (t *Transport) dialLoop(p *peer) {
	reported := false
	for {
		t.mu.Lock()
		wait := p.backoff
		t.mu.Unlock()
		if wait > 0 {
			// Jitter: wait between half and all of the backoff.
			wait = wait/2 + rand.N(wait/2+1)
			timer := time.NewTimer(wait)
			select {
			case <-timer.C:
			case <-t.quit:
				timer.Stop()
				return
			}
		}
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return
		}
		if p.conn != nil || p.gone { // the peer dialled us meanwhile, or was forgotten
			p.state = dialIdle
			t.mu.Unlock()
			return
		}
		p.state = dialConnecting
		t.mu.Unlock()

		c, err := t.dial(p)

		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			if c != nil {
				_ = c.raw.Close()
			}
			return
		}
		if err == nil {
			p.state = dialIdle
			old := t.installLocked(c)
			t.mu.Unlock()
			t.announce(p.addr, old, "replaced by a new connection to the peer")
			return
		}
		p.backoff = t.nextBackoff(p.backoff)
		if p.conn != nil {
			p.state = dialIdle
			t.mu.Unlock()
			return
		}
		p.state = dialWaiting
		t.mu.Unlock()
		if errors.Is(err, errRejected) {
			// The peer keeps its own dial, which will arrive here.
			continue
		}
		t.log.Info("tcp: dial failed", "peer", p.addr.String(), "err", err)
		if !reported {
			reported = true
			t.cfg.Handler.PeerLost(p.addr, fmt.Errorf("%w: %v: %w", transport.ErrPeerLost, p.addr, err))
		}
	}
}

func (t *Transport) nextBackoff(d time.Duration) time.Duration {
	return min(max(2*d, t.cfg.ReconnectBackoffMin), t.cfg.ReconnectBackoffMax)
}

// dial makes one connection attempt to p: resolve, connect, TLS, hellos.
func (t *Transport) dial(p *peer) (*conn, error) {
	endpoint, err := t.cfg.Resolve(p.addr)
	if err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	d := net.Dialer{Timeout: t.cfg.DialTimeout}
	raw, err := d.DialContext(t.ctx, "tcp", endpoint)
	if err != nil {
		return nil, err
	}
	if !t.track(raw) {
		return nil, transport.ErrClosed
	}
	ok := false
	defer func() {
		if !ok {
			t.untrack(raw)
			_ = raw.Close()
		}
	}()
	_ = raw.SetDeadline(time.Now().Add(t.cfg.DialTimeout))
	nc := raw
	if t.cfg.TLS != nil {
		cfg := t.cfg.TLS
		if cfg.ServerName == "" {
			host, _, err := net.SplitHostPort(endpoint)
			if err != nil {
				return nil, err
			}
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(t.ctx); err != nil {
			return nil, fmt.Errorf("TLS handshake with %s: %w", endpoint, err)
		}
		nc = tc
	}
	if _, err := nc.Write(appendHello(nil, t.cfg.Self, 0)); err != nil {
		return nil, fmt.Errorf("writing hello to %s: %w", endpoint, err)
	}
	h, err := readHello(nc)
	if err != nil {
		return nil, fmt.Errorf("hello from %s: %w", endpoint, err)
	}
	if h.addr != p.addr {
		return nil, fmt.Errorf("%s answered as node %v, want %v", endpoint, h.addr, p.addr)
	}
	if h.flags&flagReject != 0 {
		return nil, errRejected
	}
	ok = true
	return t.newConn(p, nc, raw, true), nil
}

// connLost is called once for every installed connection that closes.
func (t *Transport) connLost(c *conn, cause error) {
	p := c.peer
	t.mu.Lock()
	t.live--
	if t.closed {
		t.mu.Unlock()
		return
	}
	if p.conn == c {
		p.conn = nil
		p.up.Store(false)
		if time.Since(c.established) >= t.cfg.ReconnectBackoffMax {
			p.backoff = 0 // a long-lived connection: redial at once
		} else {
			p.backoff = t.nextBackoff(p.backoff)
		}
		// Keep the mesh: redial a peer we have talked to until it is
		// forgotten (it left the membership), so that it is known to be
		// back as soon as it is.
		if p.state == dialIdle && !p.gone {
			t.startDialLocked(p)
		}
	}
	t.mu.Unlock()
	t.cfg.Handler.PeerLost(p.addr, fmt.Errorf("%w: %v: %w", transport.ErrPeerLost, p.addr, cause))
}

// listenError is a failed listen on addr. Its message names the address
// once ("tcp: node-to-node listener: 127.0.0.1:7946 is in use"), where
// net's says "listen tcp ADDR" around its cause; it wraps net's error, so
// errors.Is(err, syscall.EADDRINUSE) holds for an address in use.
type listenError struct {
	addr string
	err  error
}

func (e *listenError) Error() string {
	if errors.Is(e.err, syscall.EADDRINUSE) {
		return fmt.Sprintf("tcp: node-to-node listener: %s is in use", e.addr)
	}
	cause := e.err
	var op *net.OpError
	if errors.As(cause, &op) && op.Err != nil {
		cause = op.Err
	}
	return fmt.Sprintf("tcp: node-to-node listener on %s: %v", e.addr, cause)
}

func (e *listenError) Unwrap() error { return e.err }
