// Package faultnet is a TCP proxy that a test puts in front of a server to
// break the network on purpose: it forwards every connection it accepts to
// its target, and the test decides, per peer, whether the bytes pass, are
// held (a partition) or the connections are reset (a crash).
//
// Everything is real: a Proxy is a net.Listener on 127.0.0.1 and each
// connection through it is a pair of TCP sockets, so the code under test
// sees the same errors, timeouts and backpressure as on a network. Package
// clustertest puts one Proxy in front of every node's transport and one
// between every node and etcd.
//
// # Peers
//
// A Proxy names the far end of each connection, its peer, with
// Config.Identify, which reads the first bytes the client sends (guild's
// hello carries the node's address). Those bytes are forwarded
// unchanged. Without Identify, or when it fails, the peer is "", and the
// default mode applies to it.
//
// # Modes
//
// Pass forwards bytes both ways, as soon as they arrive.
//
// Blackhole is a network partition. Established connections stay open but
// no byte crosses the proxy in either direction, and neither does a close:
// the proxy stops reading, so the sender's kernel buffers fill as they
// would when packets are lost, and whatever it had read is held. Only a
// heartbeat or a timeout tells either end that something is wrong, as in a
// real partition. A new connection from the peer is accepted (the client
// sees its connect succeed, as if the SYN got through and the data did
// not) but the target is not dialled: the client's bytes are held, and if
// the client gives up and closes before the mode changes, the connection
// is dropped without the target ever seeing it, as a lost SYN would be.
// When the mode returns to Pass, held bytes (and closes) are delivered in
// order, as TCP retransmission would after a short partition, and a held
// new connection is dialled to the target then.
//
// Reset is a crash: every connection with the peer is closed at once with
// a TCP reset (RST) on both sides, and a new one from it is reset as soon
// as its peer is known.
//
// # Target
//
// The target may change (SetTarget) while the proxy runs, for a server
// that restarted on another port: existing connections keep their old
// target, new ones dial the new one. While the target is empty, new
// connections wait for one, held as in Blackhole. A target that refuses
// the dial makes the proxy reset the client: the client sees the
// connection reset, as if it had been refused.
package faultnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the zero fields of a Config.
const (
	DefaultIdentifyTimeout = 2 * time.Second
	DefaultDialTimeout     = 2 * time.Second
)

// maxHeld bounds the bytes of a new connection held while it waits for its
// link to open; past it the proxy stops reading the client.
const maxHeld = 64 << 10

// bufSize is the size of each direction's copy buffer.
const bufSize = 32 << 10

// Mode is what a Proxy does with the connections of one peer.
type Mode uint8

const (
	// Pass forwards bytes both ways.
	Pass Mode = iota
	// Blackhole holds every byte and close, in both directions, until the
	// mode changes: a partition. New connections are accepted and held.
	Blackhole
	// Reset closes the connections with a TCP reset, and resets new ones:
	// a crash.
	Reset
)

// String returns "pass", "blackhole" or "reset".
func (m Mode) String() string {
	switch m {
	case Pass:
		return "pass"
	case Blackhole:
		return "blackhole"
	case Reset:
		return "reset"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Config configures a Proxy.
type Config struct {
	// Name prefixes the proxy's log lines. Optional.
	Name string
	// Listen is the address to listen on: default "127.0.0.1:0", a port
	// chosen by the kernel (see Proxy.Addr).
	Listen string
	// Target is the "host:port" every connection is forwarded to. It may
	// be empty and set later with SetTarget; connections wait for it.
	Target string
	// Identify, optional, names the peer of a new connection from the
	// first bytes its client sends, reading them from r. The bytes it
	// reads are forwarded to the target unchanged. It must return once
	// it has read what it needs: reads fail after IdentifyTimeout. On an
	// error the peer is "".
	Identify func(r io.Reader) (peer string, err error)
	// IdentifyTimeout bounds Identify: default 2s.
	IdentifyTimeout time.Duration
	// DialTimeout bounds each dial of the target: default 2s.
	DialTimeout time.Duration
	// Logf, optional, receives a line for each new connection the proxy
	// holds, releases or resets, and each it fails to forward (t.Logf,
	// typically). It is called from the proxy's own goroutines, never with
	// a lock held, and never from a method such as Set.
	Logf func(format string, args ...any)
}

// Proxy forwards the connections it accepts to its target, applying each
// peer's Mode. Create it with Listen; its methods are safe for concurrent
// use. Its one mutex is held for a few map operations at a time, never
// while calling out (Identify, Logf) or doing I/O.
type Proxy struct {
	cfg    Config
	ln     net.Listener
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// allPass is true while every mode is Pass, so that forwarding needs
	// no lock.
	allPass atomic.Bool

	mu      sync.Mutex
	closed  bool
	target  string
	def     Mode
	modes   map[string]Mode
	changed chan struct{} // closed, and replaced, when a mode or the target changes
	links   map[*link]struct{}
}

// Listen starts a Proxy on cfg.Listen.
func Listen(cfg Config) (*Proxy, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.IdentifyTimeout < 0 || cfg.DialTimeout < 0 {
		return nil, errors.New("faultnet: negative timeout")
	}
	if cfg.IdentifyTimeout == 0 {
		cfg.IdentifyTimeout = DefaultIdentifyTimeout
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("faultnet: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		cfg:     cfg,
		ln:      ln,
		ctx:     ctx,
		cancel:  cancel,
		target:  cfg.Target,
		modes:   make(map[string]Mode),
		changed: make(chan struct{}),
		links:   make(map[*link]struct{}),
	}
	p.allPass.Store(true)
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the "host:port" the proxy listens on: what clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the current target.
func (p *Proxy) Target() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target
}

// SetTarget changes the target of new connections; "" makes them wait for
// the next SetTarget. Existing connections keep theirs.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.changedLocked()
	p.mu.Unlock()
}

// Set sets the mode of peer's connections, existing and new. Reset resets
// the existing ones before Set returns.
func (p *Proxy) Set(peer string, m Mode) {
	p.mu.Lock()
	p.modes[peer] = m
	p.changedLocked()
	reset := p.toResetLocked()
	p.mu.Unlock()
	p.reset(reset)
}

// SetDefault sets the mode of the peers that have none of their own (Set),
// the unidentified peer "" included.
func (p *Proxy) SetDefault(m Mode) {
	p.mu.Lock()
	p.def = m
	p.changedLocked()
	reset := p.toResetLocked()
	p.mu.Unlock()
	p.reset(reset)
}

// Mode returns the mode that applies to peer.
func (p *Proxy) Mode(peer string) Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.modeLocked(peer)
}

// Conns returns the number of open connections through the proxy whose
// peer is peer, held ones included.
func (p *Proxy) Conns(peer string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for l := range p.links {
		if l.identified && l.peer == peer {
			n++
		}
	}
	return n
}

// Close stops listening, closes every connection (without a reset) and
// waits for the proxy's goroutines. It is safe to call twice.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	p.cancel()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close(false)
	}
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (p *Proxy) modeLocked(peer string) Mode {
	if m, ok := p.modes[peer]; ok {
		return m
	}
	return p.def
}

// changedLocked wakes every connection waiting for a change. p.mu must be
// held.
func (p *Proxy) changedLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
	all := p.def == Pass
	for _, m := range p.modes {
		all = all && m == Pass
	}
	p.allPass.Store(all)
}

// toResetLocked returns the identified connections whose mode is Reset.
// p.mu must be held.
func (p *Proxy) toResetLocked() []*link {
	var out []*link
	for l := range p.links {
		if l.identified && p.modeLocked(l.peer) == Reset {
			out = append(out, l)
		}
	}
	return out
}

// reset resets links; called without p.mu. It does not log: it runs on
// the caller's goroutine, which may hold locks of its own.
func (p *Proxy) reset(links []*link) {
	for _, l := range links {
		l.close(true)
	}
}

// state returns what applies to a connection of peer now, and the channel
// that is closed at the next change.
func (p *Proxy) state(peer string) (m Mode, target string, changed <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.modeLocked(peer), p.target, p.changed
}

// goLocked starts f as one of the proxy's goroutines unless the proxy is
// closed. p.mu must be held, so that wg.Add never races with Close's Wait.
func (p *Proxy) goLocked(f func()) bool {
	if p.closed {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

func (p *Proxy) logf(format string, args ...any) {
	if p.cfg.Logf == nil {
		return
	}
	if p.cfg.Name != "" {
		format = "%s: " + format
		args = append([]any{p.cfg.Name}, args...)
	}
	p.cfg.Logf("faultnet: "+format, args...)
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	var delay time.Duration
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if p.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(delay):
			case <-p.ctx.Done():
				return
			}
			continue
		}
		delay = 0
		ctx, cancel := context.WithCancel(p.ctx)
		l := &link{p: p, client: nc.(*net.TCPConn), ctx: ctx, cancel: cancel}
		p.mu.Lock()
		started := p.goLocked(l.run)
		if started {
			p.links[l] = struct{}{}
		}
		p.mu.Unlock()
		if !started {
			cancel()
			_ = nc.Close()
		}
	}
}

// link is one client connection and, once dialled, its target connection.
type link struct {
	p      *Proxy
	client *net.TCPConn
	ctx    context.Context // cancelled by close
	cancel context.CancelFunc

	// Guarded by p.mu.
	peer       string
	identified bool
	backend    *net.TCPConn

	closeOnce sync.Once
	halves    atomic.Int32 // directions that ended with a clean close
}

// run identifies the peer, waits until the link may open, dials the
// target and forwards the client's bytes; a second goroutine forwards the
// target's.
func (l *link) run() {
	var prefix []byte
	peer := ""
	if id := l.p.cfg.Identify; id != nil {
		_ = l.client.SetReadDeadline(time.Now().Add(l.p.cfg.IdentifyTimeout))
		rec := &recorder{r: l.client}
		name, err := id(rec)
		_ = l.client.SetReadDeadline(time.Time{})
		prefix = rec.buf
		if err == nil {
			peer = name
		} else {
			l.p.logf("connection from %v: peer not identified: %v", l.client.RemoteAddr(), err)
		}
	}
	l.p.mu.Lock()
	l.peer, l.identified = peer, true
	l.p.mu.Unlock()

	prefix, target, ok := l.awaitOpen(prefix)
	if !ok {
		return
	}
	d := net.Dialer{Timeout: l.p.cfg.DialTimeout}
	nc, err := d.DialContext(l.ctx, "tcp", target)
	if err != nil {
		if l.ctx.Err() == nil {
			l.p.logf("connection from %q: dial %s: %v; resetting the client", peer, target, err)
			l.close(true)
		}
		return
	}
	l.p.mu.Lock()
	if l.ctx.Err() != nil { // closed meanwhile
		l.p.mu.Unlock()
		_ = nc.Close()
		return
	}
	l.backend = nc.(*net.TCPConn)
	started := l.p.goLocked(l.down)
	l.p.mu.Unlock()
	if !started {
		l.close(false)
		return
	}
	if len(prefix) > 0 {
		if !l.wait() {
			return
		}
		if _, err := l.backend.Write(prefix); err != nil {
			l.close(true)
			return
		}
	}
	l.copy(l.backend, l.client)
}

// down forwards the target's bytes to the client.
func (l *link) down() { l.copy(l.client, l.backend) }

// copy forwards src to dst until src ends, waiting before each write (and
// before passing on the end) until the peer's mode lets bytes through. A
// clean end (EOF) is passed on as a half close; an error resets dst.
func (l *link) copy(dst, src *net.TCPConn) {
	buf := make([]byte, bufSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !l.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				l.close(true)
				return
			}
		}
		if err != nil {
			if !l.wait() {
				return
			}
			if !errors.Is(err, io.EOF) {
				l.close(true)
				return
			}
			_ = dst.CloseWrite()
			if l.halves.Add(1) == 2 {
				l.close(false)
			}
			return
		}
	}
}

// wait blocks until the link's mode is Pass, and reports false if the link
// closed (or was reset) first.
func (l *link) wait() bool {
	if l.p.allPass.Load() {
		return l.ctx.Err() == nil
	}
	for {
		l.p.mu.Lock()
		m := l.p.modeLocked(l.peer)
		changed := l.p.changed
		l.p.mu.Unlock()
		switch m {
		case Pass:
			return l.ctx.Err() == nil
		case Reset:
			l.close(true)
			return false
		}
		select {
		case <-changed:
		case <-l.ctx.Done():
			return false
		}
	}
}

// held is what the watcher of a held new connection read.
type held struct {
	data []byte
	err  error // nil: maxHeld reached, the watcher stopped reading
}

// awaitOpen waits until a new connection may be forwarded: its mode is
// Pass and there is a target. Meanwhile it keeps reading the client, to
// hold what it sends and to notice when it gives up, in which case the
// connection is dropped and awaitOpen reports false.
func (l *link) awaitOpen(prefix []byte) ([]byte, string, bool) {
	m, target, changed := l.p.state(l.peer)
	switch {
	case m == Reset:
		l.p.logf("connection from %q: reset", l.peer)
		l.close(true)
		return nil, "", false
	case m == Pass && target != "":
		return prefix, target, true
	}
	if m == Blackhole {
		l.p.logf("connection from %q: held (blackhole)", l.peer)
	} else {
		l.p.logf("connection from %q: held until there is a target", l.peer)
	}
	watch := make(chan held, 1)
	l.p.mu.Lock()
	started := l.p.goLocked(func() { l.watch(watch) })
	l.p.mu.Unlock()
	if !started {
		l.close(false)
		return nil, "", false
	}
	watching := watch
	for {
		select {
		case h := <-watching:
			prefix = append(prefix, h.data...)
			watching = nil
			if h.err != nil {
				// The client left (or failed) before the link opened:
				// the target never hears of it.
				l.p.logf("connection from %q: the client left while held (%v); dropped", l.peer, h.err)
				l.close(false)
				return nil, "", false
			}
		case <-changed:
		case <-l.ctx.Done():
			if watching != nil {
				<-watching
			}
			return nil, "", false
		}
		m, target, changed = l.p.state(l.peer)
		if m == Reset {
			l.close(true)
			if watching != nil {
				<-watching
			}
			return nil, "", false
		}
		if m == Pass && target != "" {
			if watching != nil {
				_ = l.client.SetReadDeadline(time.Now()) // stop the watcher
				h := <-watching
				_ = l.client.SetReadDeadline(time.Time{})
				prefix = append(prefix, h.data...)
				if h.err != nil && !errors.Is(h.err, os.ErrDeadlineExceeded) {
					l.close(false)
					return nil, "", false
				}
			}
			l.p.logf("connection from %q: released", l.peer)
			return prefix, target, true
		}
	}
}

// watch reads the client of a held connection into a buffer, up to
// maxHeld, and reports what it read when the read fails or the buffer is
// full.
func (l *link) watch(out chan<- held) {
	var data []byte
	buf := make([]byte, 4096)
	for len(data) < maxHeld {
		n, err := l.client.Read(buf[:min(len(buf), maxHeld-len(data))])
		data = append(data, buf[:n]...)
		if err != nil {
			out <- held{data: data, err: err}
			return
		}
	}
	out <- held{data: data}
}

// close closes both connections, with a reset if rst, and forgets the
// link. It is safe to call more than once and from any goroutine that
// does not hold p.mu.
func (l *link) close(rst bool) {
	l.closeOnce.Do(func() {
		l.cancel()
		l.p.mu.Lock()
		delete(l.p.links, l)
		backend := l.backend
		l.p.mu.Unlock()
		if rst {
			_ = l.client.SetLinger(0)
			if backend != nil {
				_ = backend.SetLinger(0)
			}
		}
		_ = l.client.Close()
		if backend != nil {
			_ = backend.Close()
		}
	})
}

// recorder keeps a copy of what is read through it.
type recorder struct {
	r   io.Reader
	buf []byte
}

func (r *recorder) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.buf = append(r.buf, b[:n]...)
	return n, err
}
