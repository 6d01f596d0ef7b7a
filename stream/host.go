package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
)

// Handler serves one stream that a peer opened. It runs on a goroutine of
// its own, owned by the Host; the stream is closed when it returns. ctx
// ends when the Host closes. A Handler must return once its stream fails
// (a Read or Write error), as it does when the peer goes or the Host
// closes. A panic in a Handler is recovered and logged: it closes the
// stream, never the node.
type Handler func(ctx context.Context, s *Stream)

// maxHandshakes bounds the incoming connections in their handshake at
// once: beyond it, a new connection is closed at once.
const maxHandshakes = 64

// Host runs a node's streams: it listens for the stream connections of
// its peers, dials theirs on the first OpenStream, and serves the streams
// they open with the Handlers registered on it.
//
// Its methods are safe for concurrent use.
//
// # Goroutines
//
// The Host owns every goroutine it starts, and Close waits for them: one
// accepting connections; per incoming connection, one that makes its
// handshake and then accepts its streams; per outgoing connection, one
// that waits for its end to forget it; per stream a peer opens, one that
// reads its open header and runs its Handler. yamux runs three of its own
// per connection (reader, writer, keepalive), which end when the
// connection is closed.
type Host struct {
	cfg      Config
	self     actor.Addr
	ms       cluster.Membership
	tls      *tls.Config
	ln       net.Listener
	endpoint string
	log      *slog.Logger
	ymx      *yamux.Config

	// base is the parent of the handlers' ctx; stop cancels it in Close.
	base context.Context // a server's base context, as net/http's BaseContext
	stop context.CancelFunc

	active     atomic.Int64  // streams open, both directions
	handshakes atomic.Int32  // incoming connections in their handshake
	quit       chan struct{} // closed by Close

	// mu guards the fields below. It is a leaf: nothing is called while
	// it is held (no IO, no yamux, no membership, no handler).
	mu       sync.Mutex
	closed   bool                  // Close began: no new goroutine, session or stream
	draining bool                  // Shutdown began: no new stream
	handlers map[string]Handler    // by service name
	out      map[actor.Addr]*dial  // the connection this node dialled to each peer
	in       map[*session]struct{} // connections peers dialled to this node
	unsub    func()                // stops following the membership

	wg  sync.WaitGroup // the Host's goroutines but the handlers
	hwg sync.WaitGroup // the handlers' goroutines

	pace pacer    // Config.MaxRate's budget, all streams together
	act  activity // Config.BusyRate: which peers exchange actor messages
}

// dial is this node's connection to one peer, being dialled or up.
type dial struct {
	done chan struct{} // closed when the dial has ended
	sess *session      // set before done is closed; nil when it failed
	err  error         // set before done is closed
}

// session is one stream connection, with the yamux session over it.
type session struct {
	peer     actor.Addr
	ys       *yamux.Session
	outgoing bool
	streams  atomic.Int32          // streams open on it, against MaxStreamsPerPeer
	why      atomic.Pointer[error] // why it was ended, when this node ended it
}

// end records why the session ends (the first reason wins) and closes it.
// It must not be called with Host.mu held.
func (s *session) end(why error) {
	s.why.CompareAndSwap(nil, &why)
	_ = s.ys.Close()
}

// cause is the error the streams of an ended session report.
func (s *session) cause() error {
	if p := s.why.Load(); p != nil {
		return *p
	}
	return fmt.Errorf("%w: the connection to %v was lost", ErrPeerGone, s.peer)
}

// Start starts a Host for node n: it listens (Config.Listen), publishes its
// endpoint in n's member record (under MetaEndpoint), and follows n's
// membership, so that the streams of a peer that leaves end at once. n
// must have joined (cluster.Start has). Close the Host before the node.
func Start(ctx context.Context, n *cluster.Node, cfg Config) (*Host, error) {
	if n == nil {
		return nil, errors.New("stream: Start needs a cluster node")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &Host{
		cfg:      cfg,
		self:     n.Addr(),
		ms:       n.Membership(),
		log:      cfg.Logger.With("component", "stream"),
		quit:     make(chan struct{}),
		handlers: make(map[string]Handler),
		out:      make(map[actor.Addr]*dial),
		in:       make(map[*session]struct{}),
	}
	h.act.peers = make(map[actor.Addr]*peerActivity)
	if cfg.BusyRate > 0 {
		h.act.stats = n.PeerStats
	}
	switch {
	case cfg.TLS != nil:
		h.tls = cfg.TLS
	case !cfg.Insecure:
		h.tls = n.TLS()
	}
	h.ymx = &yamux.Config{
		AcceptBacklog:          cfg.AcceptBacklog,
		EnableKeepAlive:        true,
		KeepAliveInterval:      cfg.KeepAlive,
		ConnectionWriteTimeout: cfg.WriteTimeout,
		MaxStreamWindowSize:    uint32(cfg.StreamWindow),
		StreamCloseTimeout:     streamCloseTimeout,
		StreamOpenTimeout:      cfg.OpenTimeout,
		Logger:                 yamuxLogger{h.log},
	}
	if err := yamux.VerifyConfig(h.ymx); err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("stream: listen: %w", err)
	}
	h.ln = ln
	h.endpoint = ln.Addr().String()
	if cfg.Advertise != "" {
		h.endpoint = cfg.Advertise
	}
	h.base, h.stop = context.WithCancel(context.Background())
	h.wg.Add(1)
	go h.acceptLoop()
	unsub := h.ms.Subscribe(h.follow)
	h.mu.Lock()
	h.unsub = unsub
	h.mu.Unlock()
	if err := h.publish(ctx); err != nil {
		_ = h.Close()
		return nil, err
	}
	return h, nil
}

// streamCloseTimeout is how long a stream closed on this side waits for
// the peer's close before it is reset and forgotten.
const streamCloseTimeout = 30 * time.Second

// Endpoint returns the endpoint the Host publishes: where peers dial it.
func (h *Host) Endpoint() string { return h.endpoint }

// ListenAddr returns the address the Host listens on (which differs from
// Endpoint when Config.Advertise is set).
func (h *Host) ListenAddr() string { return h.ln.Addr().String() }

// Addr returns the address of the Host's node.
func (h *Host) Addr() actor.Addr { return h.self }

// publish puts the endpoint in this node's member record and waits until
// this node's view shows it.
func (h *Host) publish(ctx context.Context) error {
	for {
		rec, found := h.ownRecord()
		if found && rec.Meta[MetaEndpoint] == h.endpoint {
			return nil
		}
		if found {
			if rec.Meta == nil {
				rec.Meta = map[string]string{}
			}
			rec.Meta[MetaEndpoint] = h.endpoint
			if err := h.ms.Update(ctx, rec); err != nil {
				return fmt.Errorf("stream: publish the endpoint in this node's record: %w", err)
			}
		}
		t := time.NewTimer(2 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("stream: waiting for this node's record to show the endpoint: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// ownRecord returns this node's record in its view.
func (h *Host) ownRecord() (cluster.Member, bool) {
	for _, m := range h.ms.Members() {
		if m.Addr == h.self {
			return m, true
		}
	}
	return cluster.Member{}, false
}

// Handle registers h as the handler of the streams opened for service (""
// is the default service, which OpenStream asks for without WithService).
// A later Handle for the same service replaces it; a nil h removes it.
// Streams opened for a service without a handler fail at the opener with
// ErrNoService.
func (h *Host) Handle(service string, fn Handler) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if fn == nil {
		delete(h.handlers, service)
		return
	}
	h.handlers[service] = fn
}

// Active returns the number of streams open on the Host, both directions.
func (h *Host) Active() int { return int(h.active.Load()) }

// goLocked starts f on a goroutine of the Host's, unless Close has begun.
// h.mu must be held.
func (h *Host) goLocked(wg *sync.WaitGroup, f func()) bool {
	if h.closed {
		return false
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		f()
	}()
	return true
}

// follow ends the connections of a peer that left the membership (it
// died and its lease expired, or it left): their streams fail with
// ErrPeerGone on this side, and on the peer's, whose connection drops.
func (h *Host) follow(ev cluster.Event) {
	if ev.Kind != cluster.Leave || ev.Member.Addr == h.self {
		return
	}
	peer := ev.Member.Addr
	h.act.forget(peer)
	var ends []*session
	h.mu.Lock()
	if d := h.out[peer]; d != nil {
		select {
		case <-d.done:
			if d.sess != nil {
				ends = append(ends, d.sess)
			}
			delete(h.out, peer)
		default: // being dialled: the dial fails, or its session ends on its own
		}
	}
	for s := range h.in {
		if s.peer == peer {
			ends = append(ends, s)
		}
	}
	h.mu.Unlock()
	for _, s := range ends {
		s.end(fmt.Errorf("%w: %v left the membership", ErrPeerGone, peer))
	}
	if len(ends) > 0 {
		h.log.Info("stream: peer left the membership, its streams end", "peer", peer.String(), "connections", len(ends))
	}
}

// Shutdown stops the Host in order: no new stream is opened (here or by
// peers), then it waits until every open stream is closed, or ctx ends,
// then closes (Close). It returns ctx's error when the streams did not all
// close in time. It is safe to call twice, and with Close.
func (h *Host) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.draining = true
	h.mu.Unlock()
	var err error
	for h.active.Load() > 0 {
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			err = fmt.Errorf("stream: %d streams still open: %w", h.active.Load(), ctx.Err())
		case <-t.C:
			continue
		}
		break
	}
	return errors.Join(err, h.Close())
}

// Close closes the Host at once: its listener and every connection, so
// that every stream fails (with ErrClosed here, ErrPeerGone at the
// peers); then it waits for its goroutines, and up to Config.CloseTimeout
// for the handlers to return. It stops following the membership but does
// not take the endpoint out of the node's record (the record goes when the
// node leaves). It is safe to call twice.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.wg.Wait()
		return nil
	}
	h.closed = true
	close(h.quit)
	unsub := h.unsub
	var ends []*session
	for _, d := range h.out {
		select {
		case <-d.done:
			if d.sess != nil {
				ends = append(ends, d.sess)
			}
		default: // the dialler sees closed and ends its session itself
		}
	}
	for s := range h.in {
		ends = append(ends, s)
	}
	clear(h.out)
	clear(h.in)
	h.mu.Unlock()
	if unsub != nil {
		unsub()
	}
	err := h.ln.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	for _, s := range ends {
		s.end(fmt.Errorf("%w: this node's stream host is closed", ErrClosed))
	}
	h.stop()
	h.wg.Wait()
	done := make(chan struct{})
	go func() {
		h.hwg.Wait()
		close(done)
	}()
	t := time.NewTimer(h.cfg.CloseTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		h.log.Error("stream: handlers still running after their streams closed: they leak", "timeout", h.cfg.CloseTimeout)
		err = errors.Join(err, fmt.Errorf("stream: handlers did not return within %v of Close", h.cfg.CloseTimeout))
	}
	return err
}

// acceptLoop accepts stream connections until the listener closes.
func (h *Host) acceptLoop() {
	defer h.wg.Done()
	pause := time.Duration(0)
	for {
		conn, err := h.ln.Accept()
		if err != nil {
			select {
			case <-h.quit:
				return
			default:
			}
			// Out of file descriptors, say: back off, as net/http does.
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			h.log.Warn("stream: accept failed", "err", err, "retry_in", pause)
			t := time.NewTimer(pause)
			select {
			case <-h.quit:
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		pause = 0
		if h.handshakes.Add(1) > maxHandshakes {
			h.handshakes.Add(-1)
			h.log.Warn("stream: too many connections in their handshake, closing a new one", "remote", conn.RemoteAddr().String())
			_ = conn.Close()
			continue
		}
		h.mu.Lock()
		ok := h.goLocked(&h.wg, func() { h.serveConn(conn) })
		h.mu.Unlock()
		if !ok {
			h.handshakes.Add(-1)
			_ = conn.Close()
			return
		}
	}
}

// serveConn makes the acceptor's handshake on conn and then accepts the
// streams its peer opens, until the connection ends.
func (h *Host) serveConn(raw net.Conn) {
	peer, conn, err := h.handshakeIn(raw)
	h.handshakes.Add(-1)
	if err != nil {
		_ = raw.Close()
		h.log.Warn("stream: incoming connection refused", "remote", raw.RemoteAddr().String(), "err", err)
		return
	}
	ys, err := yamux.Server(conn, h.ymx)
	if err != nil { // the config was verified in Start
		_ = conn.Close()
		return
	}
	s := &session{peer: peer, ys: ys}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		s.end(ErrClosed)
		return
	}
	h.in[s] = struct{}{}
	h.mu.Unlock()
	h.log.Debug("stream: peer connected", "peer", peer.String())
	for {
		ys, err := s.ys.AcceptStream()
		if err != nil {
			break
		}
		h.mu.Lock()
		ok := h.goLocked(&h.hwg, func() { h.serveStream(s, ys) })
		h.mu.Unlock()
		if !ok {
			_ = ys.Close()
			break
		}
	}
	s.end(s.cause())
	h.mu.Lock()
	delete(h.in, s)
	h.mu.Unlock()
	h.log.Debug("stream: peer's connection ended", "peer", peer.String(), "why", s.cause())
}

// handshakeIn runs TLS (when set) and the hellos on an accepted
// connection, within DialTimeout, and returns the peer's address.
func (h *Host) handshakeIn(raw net.Conn) (actor.Addr, net.Conn, error) {
	_ = raw.SetDeadline(time.Now().Add(h.cfg.DialTimeout))
	stop := context.AfterFunc(h.base, func() { _ = raw.SetDeadline(time.Unix(1, 0)) }) // Close cuts it short
	defer stop()
	conn := raw
	if h.tls != nil {
		tc := tls.Server(raw, h.tls)
		if err := tc.Handshake(); err != nil {
			return 0, nil, fmt.Errorf("%w: TLS: %w", ErrHandshake, err)
		}
		conn = tc
	}
	peer, err := readHello(conn)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if _, err := conn.Write(appendHello(nil, h.self)); err != nil {
		return 0, nil, fmt.Errorf("%w: writing hello: %w", ErrHandshake, err)
	}
	if !stop() {
		return 0, nil, ErrClosed
	}
	_ = raw.SetDeadline(time.Time{})
	return peer, conn, nil
}

// serveStream reads the open header of a stream a peer opened, answers
// it and runs the service's handler.
func (h *Host) serveStream(s *session, ys *yamux.Stream) {
	_ = ys.SetReadDeadline(time.Now().Add(h.cfg.OpenTimeout))
	hdr, err := readOpen(ys)
	_ = ys.SetReadDeadline(time.Time{})
	status := statusOK
	var fn Handler
	switch {
	case err != nil:
		h.log.Warn("stream: bad open header", "peer", s.peer.String(), "err", err)
		status = statusBadHeader
	default:
		h.mu.Lock()
		fn = h.handlers[hdr.service]
		draining := h.draining || h.closed
		h.mu.Unlock()
		switch {
		case draining:
			status = statusClosing
		case fn == nil:
			status = statusNoService
		case s.streams.Add(1) > int32(h.cfg.MaxStreamsPerPeer):
			s.streams.Add(-1)
			status = statusTooMany
		}
	}
	if status != statusOK {
		_ = ys.SetWriteDeadline(time.Now().Add(h.cfg.OpenTimeout))
		_, _ = ys.Write([]byte{status})
		_ = ys.Close()
		return
	}
	st := newStream(h, s, ys, hdr, true)
	_ = ys.SetWriteDeadline(time.Now().Add(h.cfg.OpenTimeout))
	if _, err := ys.Write([]byte{statusOK}); err != nil {
		_ = st.Close()
		return
	}
	_ = ys.SetWriteDeadline(time.Time{})
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("stream: handler panicked; its stream is closed, the node runs on",
				"peer", s.peer.String(), "service", hdr.service, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
		_ = st.Close()
	}()
	fn(h.base, st)
}

// OpenStream opens a stream to the node at addr, served there by the
// Handler registered for the service asked for (WithService; the default
// service otherwise). It dials the peer's stream connection the first
// time (from the endpoint its member record publishes), and opens a
// stream on it, multiplexed with the other streams between the two nodes.
//
// It fails with ErrNoPeer (addr is not a member, or runs no Host),
// ErrTooManyStreams, ErrNoService, ErrRefused, ErrPeerGone, ErrClosed,
// ErrHandshake, or ctx's error; it gives up after Config.OpenTimeout when
// ctx has no earlier deadline. The caller must Close the stream.
func (h *Host) OpenStream(ctx context.Context, addr actor.Addr, opts ...OpenOption) (*Stream, error) {
	var hdr openHeader
	for _, o := range opts {
		o.apply(&hdr)
	}
	if err := checkOpen(hdr); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.cfg.OpenTimeout)
		defer cancel()
	}
	h.mu.Lock()
	refuse := h.closed || h.draining
	h.mu.Unlock()
	if refuse {
		return nil, ErrClosed
	}
	s, err := h.session(ctx, addr)
	if err != nil {
		return nil, err
	}
	if s.streams.Add(1) > int32(h.cfg.MaxStreamsPerPeer) {
		s.streams.Add(-1)
		return nil, fmt.Errorf("%w: %d open to %v", ErrTooManyStreams, h.cfg.MaxStreamsPerPeer, addr)
	}
	ys, err := s.ys.OpenStream()
	if err != nil {
		s.streams.Add(-1)
		if errors.Is(err, yamux.ErrStreamsExhausted) || errors.Is(err, yamux.ErrRemoteGoAway) {
			h.retire(s)
		}
		if s.ys.IsClosed() {
			return nil, s.cause()
		}
		return nil, fmt.Errorf("stream: open to %v: %w", addr, err)
	}
	st := newStream(h, s, ys, hdr, false)
	status, err := st.handshake(ctx)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	switch status {
	case statusOK:
		return st, nil
	case statusNoService:
		err = fmt.Errorf("%w: %q on %v", ErrNoService, hdr.service, addr)
	case statusTooMany:
		err = fmt.Errorf("%w: %v holds its limit of this node's streams", ErrTooManyStreams, addr)
	case statusClosing:
		err = fmt.Errorf("%w: %v is shutting down", ErrRefused, addr)
	default:
		err = fmt.Errorf("%w: %v answered status %d", ErrRefused, addr, status)
	}
	_ = st.Close()
	return nil, err
}

// retire forgets s as this node's connection to its peer, so that the next
// OpenStream dials a new one; the streams open on s go on.
func (h *Host) retire(s *session) {
	h.mu.Lock()
	if d := h.out[s.peer]; d != nil && d.sess == s {
		delete(h.out, s.peer)
	}
	h.mu.Unlock()
}

// session returns this node's connection to peer, dialling it when there
// is none; concurrent callers share one dial.
func (h *Host) session(ctx context.Context, peer actor.Addr) (*session, error) {
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, ErrClosed
		}
		d := h.out[peer]
		if d == nil {
			d = &dial{done: make(chan struct{})}
			h.out[peer] = d
			h.mu.Unlock()
			h.dial(ctx, peer, d)
			if d.err != nil {
				return nil, d.err
			}
			return d.sess, nil
		}
		h.mu.Unlock()
		select {
		case <-d.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("stream: waiting for the connection to %v: %w", peer, ctx.Err())
		}
		if d.err != nil {
			return nil, d.err
		}
		if !d.sess.ys.IsClosed() {
			return d.sess, nil
		}
		// It ended: its watcher forgets it; dial anew.
		h.mu.Lock()
		if h.out[peer] == d {
			delete(h.out, peer)
		}
		h.mu.Unlock()
	}
}

// dial makes d: it resolves the peer's endpoint, connects, runs TLS and
// the hellos, and starts the yamux session, then closes d.done.
func (h *Host) dial(ctx context.Context, peer actor.Addr, d *dial) {
	sess, err := h.connect(ctx, peer)
	h.mu.Lock()
	closed := h.closed
	if err == nil && !closed {
		s := sess
		h.goLocked(&h.wg, func() { h.watch(s) })
	}
	if err != nil || closed {
		if h.out[peer] == d {
			delete(h.out, peer)
		}
	}
	h.mu.Unlock()
	if err == nil && closed {
		sess.end(ErrClosed)
		sess, err = nil, ErrClosed
	}
	d.sess, d.err = sess, err
	close(d.done)
	if err != nil {
		h.log.Debug("stream: dial failed", "peer", peer.String(), "err", err)
	}
}

// watch forgets an outgoing connection once it has ended.
func (h *Host) watch(s *session) {
	<-s.ys.CloseChan()
	h.mu.Lock()
	if d := h.out[s.peer]; d != nil && d.sess == s {
		delete(h.out, s.peer)
	}
	h.mu.Unlock()
	h.log.Debug("stream: connection ended", "peer", s.peer.String(), "why", s.cause())
}

// connect dials peer's stream endpoint and makes the handshake.
func (h *Host) connect(ctx context.Context, peer actor.Addr) (*session, error) {
	endpoint, err := h.resolve(peer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.DialTimeout)
	defer cancel()
	var nd net.Dialer
	raw, err := nd.DialContext(ctx, "tcp", endpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %v at %s: %w", ErrPeerGone, peer, endpoint, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	conn := raw
	if h.tls != nil {
		cfg := h.tls
		if cfg.ServerName == "" {
			host, _, _ := net.SplitHostPort(endpoint)
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, fmt.Errorf("%w: TLS with %v at %s: %w", ErrHandshake, peer, endpoint, err)
		}
		conn = tc
	}
	if _, err := conn.Write(appendHello(nil, h.self)); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("%w: writing hello to %v at %s: %w", ErrHandshake, peer, endpoint, err)
	}
	got, err := readHello(conn)
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("%w: from %v at %s: %w", ErrHandshake, peer, endpoint, err)
	}
	if got != peer {
		_ = raw.Close()
		return nil, fmt.Errorf("%w: %s answered as %v, not %v", ErrHandshake, endpoint, got, peer)
	}
	if !stop() {
		_ = raw.Close()
		return nil, fmt.Errorf("stream: dial %v: %w", peer, ctx.Err())
	}
	_ = raw.SetDeadline(time.Time{})
	ys, err := yamux.Client(conn, h.ymx)
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("stream: %w", err)
	}
	return &session{peer: peer, ys: ys, outgoing: true}, nil
}

// resolve returns the stream endpoint peer publishes.
func (h *Host) resolve(peer actor.Addr) (string, error) {
	for _, m := range h.ms.Members() {
		if m.Addr == peer {
			if ep := m.Meta[MetaEndpoint]; ep != "" {
				return ep, nil
			}
			return "", fmt.Errorf("%w: %v publishes no stream endpoint (it runs no stream host)", ErrNoPeer, peer)
		}
	}
	return "", fmt.Errorf("%w: %v is not a member", ErrNoPeer, peer)
}

// yamuxLogger sends yamux's logs to slog, at debug level: what yamux
// reports (a connection that broke) the Host reports itself.
type yamuxLogger struct{ l *slog.Logger }

func (y yamuxLogger) Print(v ...any) { y.l.Debug("yamux: " + fmt.Sprint(v...)) }
func (y yamuxLogger) Printf(format string, v ...any) {
	y.l.Debug("yamux: " + fmt.Sprintf(format, v...))
}
func (y yamuxLogger) Println(v ...any) { y.l.Debug("yamux: " + fmt.Sprint(v...)) }
