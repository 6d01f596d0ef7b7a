// Package client is the Go SDK for guild's client protocol: what a game
// client, a bot or a test uses to talk to a gateway over TCP, WebSocket
// or KCP. It connects with an optional auth token, makes requests to
// routes, receives pushes, and reconnects by itself when asked to.
//
//	c, err := client.Dial(ctx, client.Config{Addr: "ws://127.0.0.1:8080/ws", Token: tok})
//	var reply chatpb.SendReply
//	err = c.Request(ctx, "chat.Send", &chatpb.SendRequest{Text: "hi"}, &reply)
//
// docs/PROTOCOL.md describes the protocol itself.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/xtaci/kcp-go/v5"
	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/wire"
)

// Errors of the client. Errors from the gateway are *rpc.Status values.
var (
	// ErrClosed: the client was closed, or its connection ended without
	// reconnection.
	ErrClosed = errors.New("client: closed")
)

// Defaults of Config.
const (
	DefaultRequestTimeout = 10 * time.Second
	DefaultDialTimeout    = 5 * time.Second
	DefaultBackoffMin     = 100 * time.Millisecond
	DefaultBackoffMax     = 5 * time.Second
)

// Config configures a Client.
type Config struct {
	// Addr is the gateway: "tcp://host:port", "kcp://host:port",
	// "ws://host:port/path" or "wss://host:port/path". Required.
	Addr string
	// Token, optional, authenticates the session in the handshake.
	Token string
	// TLS configures tcp (TLS over TCP when set) and wss.
	TLS *tls.Config
	// Reconnect makes the client redial, with backoff between
	// BackoffMin and BackoffMax, when its connection ends; requests in
	// flight then fail with Unavailable, and later ones wait for the new
	// session. Without it a lost connection closes the client.
	Reconnect              bool
	BackoffMin, BackoffMax time.Duration
	// RequestTimeout bounds a request whose ctx has no deadline.
	// Default 10s.
	RequestTimeout time.Duration
	// DialTimeout bounds connecting and the handshake. Default 5s.
	DialTimeout time.Duration
	// OnConnect, optional, is called after each handshake (the first and
	// every reconnection) with the session ID and user ID.
	OnConnect func(sessionID, userID string)
	// OnClose, optional, is called when the gateway closes the session
	// (a kick) or the connection is lost, with why.
	OnClose func(err error)
	// Logger receives the client's logs. Default: discarded.
	Logger *slog.Logger
}

// Client is a connection to a gateway. Its methods are safe for
// concurrent use.
type Client struct {
	cfg Config
	u   *url.URL

	mu        sync.Mutex
	closed    bool
	conn      conn                 // nil while reconnecting
	ready     chan struct{}        // closed when conn is set (replaced on loss)
	pending   map[uint64]chan resp // requests waiting for their Response
	next      uint64
	sessionID string
	userID    string
	pushes    map[string]func(body []byte)
	anyPush   func(route string, body []byte)

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

type resp struct {
	body []byte
	err  error
}

// Dial connects to the gateway, completes the handshake and returns the
// client. A refused handshake returns the gateway's code as an
// *rpc.Status.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.Addr)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("client: Addr %q is not a URL like tcp://host:port", cfg.Addr)
	}
	switch u.Scheme {
	case "tcp", "kcp", "ws", "wss":
	default:
		return nil, fmt.Errorf("client: Addr %q: scheme %q is not tcp, kcp, ws or wss", cfg.Addr, u.Scheme)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		cfg:     cfg,
		u:       u,
		ready:   make(chan struct{}),
		pending: make(map[uint64]chan resp),
		pushes:  make(map[string]func([]byte)),
		done:    make(chan struct{}),
	}
	cn, ack, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	c.install(cn, ack)
	return c, nil
}

// SessionID returns the current session's ID.
func (c *Client) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

// UserID returns the user the session was authenticated as in its
// handshake, if any.
func (c *Client) UserID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userID
}

// OnPush sets the handler of pushes on route; it runs on the client's
// reader goroutine, so it must not block long. body is the push's message,
// encoded: decode it with proto.Unmarshal.
func (c *Client) OnPush(route string, fn func(body []byte)) {
	c.mu.Lock()
	c.pushes[route] = fn
	c.mu.Unlock()
}

// OnAnyPush sets the handler of pushes on routes with no OnPush handler.
func (c *Client) OnAnyPush(fn func(route string, body []byte)) {
	c.mu.Lock()
	c.anyPush = fn
	c.mu.Unlock()
}

// Request calls route with req and decodes the reply into resp (which
// may be nil to ignore it). An error from the gateway or the service is
// an *rpc.Status with its code.
func (c *Client) Request(ctx context.Context, route string, req, resp proto.Message) error {
	var body []byte
	if req != nil {
		b, err := proto.Marshal(req)
		if err != nil {
			return fmt.Errorf("client: %s: %w", route, err)
		}
		body = b
	}
	out, err := c.RequestRaw(ctx, route, body)
	if err != nil {
		return err
	}
	if resp != nil {
		if err := proto.Unmarshal(out, resp); err != nil {
			return fmt.Errorf("client: %s: the reply does not decode as %T: %w", route, resp, err)
		}
	}
	return nil
}

// RequestRaw calls route with an encoded body and returns the encoded
// reply.
func (c *Client) RequestRaw(ctx context.Context, route string, body []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	cn, err := c.waitConn(ctx)
	if err != nil {
		return nil, err
	}
	ch := make(chan resp, 1)
	c.mu.Lock()
	c.next++
	id := c.next
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	f := &gatepb.Frame{Body: &gatepb.Frame_Request{Request: &gatepb.Request{Id: id, Route: route, Body: body}}}
	if err := cn.write(f); err != nil {
		// The connection is going: this is a lost connection, like a
		// request in flight when it goes (not an Unknown error).
		return nil, rpc.Errorf(rpc.Unavailable, "%s: %v: %v", route, ErrClosed, err)
	}
	select {
	case r := <-ch:
		return r.body, r.err
	case <-ctx.Done():
		return nil, rpc.StatusOf(ctx.Err())
	case <-c.done:
		// The answer may have arrived just before the connection ended (a
		// kick sends the response, then Close): it wins.
		select {
		case r := <-ch:
			return r.body, r.err
		default:
		}
		return nil, rpc.Errorf(rpc.Unavailable, "%s: %v", route, ErrClosed)
	}
}

// waitConn returns the connection, waiting for a reconnection in progress.
func (c *Client) waitConn(ctx context.Context) (conn, error) {
	for {
		c.mu.Lock()
		cn, ready, closed := c.conn, c.ready, c.closed
		c.mu.Unlock()
		if closed {
			return nil, rpc.Errorf(rpc.Unavailable, "%v", ErrClosed)
		}
		if cn != nil {
			return cn, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, rpc.StatusOf(ctx.Err())
		case <-c.done:
			return nil, rpc.Errorf(rpc.Unavailable, "%v", ErrClosed)
		}
	}
}

// Close says goodbye to the gateway and closes the connection. It is safe
// to call twice.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	cn := c.conn
	close(c.done)
	c.mu.Unlock()
	if cn != nil {
		_ = cn.write(&gatepb.Frame{Body: &gatepb.Frame_Close{Close: &gatepb.Close{Reason: "goodbye"}}})
		if sc, ok := cn.(*streamConn); ok {
			sc.flush(goodbyeFlush)
		}
		_ = cn.close()
	}
	c.wg.Wait()
	return nil
}

// goodbyeFlush bounds Close's wait for KCP to send the goodbye: closing a
// KCP session drops what it has not sent yet.
const goodbyeFlush = 500 * time.Millisecond

// connect dials and runs the handshake. A gateway that cannot be reached
// or does not answer is Unavailable; the end of parent is Canceled or
// DeadlineExceeded.
func (c *Client) connect(parent context.Context) (conn, *gatepb.HandshakeAck, error) {
	ctx, cancel := context.WithTimeout(parent, c.cfg.DialTimeout)
	defer cancel()
	failed := func(what string, err error) error {
		if perr := parent.Err(); perr != nil {
			return rpc.StatusOf(fmt.Errorf("client: %s %s: %w", what, c.cfg.Addr, perr))
		}
		return rpc.Errorf(rpc.Unavailable, "client: %s %s: %v", what, c.cfg.Addr, err)
	}
	cn, err := c.dial(ctx)
	if err != nil {
		return nil, nil, failed("dial", err)
	}
	// A read on a stream does not watch ctx: closing the connection when
	// ctx ends stops the handshake at once (Close while reconnecting).
	stop := context.AfterFunc(ctx, func() { cn.close() })
	defer stop()
	hs := &gatepb.Frame{Body: &gatepb.Frame_Handshake{Handshake: &gatepb.Handshake{Version: gatepb.Version, Token: c.cfg.Token, Client: "guild-go"}}}
	if err := cn.write(hs); err != nil {
		cn.close()
		return nil, nil, failed("handshake with", err)
	}
	dl, _ := ctx.Deadline()
	body, err := cn.read(dl)
	if err != nil {
		cn.close()
		return nil, nil, failed("handshake with", err)
	}
	if !stop() {
		// ctx ended as the answer came: the connection is closed.
		return nil, nil, failed("handshake with", ctx.Err())
	}
	var f gatepb.Frame
	if err := gatepb.Decode(body, &f); err != nil {
		cn.close()
		return nil, nil, rpc.Errorf(rpc.Internal, "client: handshake: %v", err)
	}
	if cl := f.GetClose(); cl != nil {
		cn.close()
		return nil, nil, rpc.Errorf(rpc.Code(cl.GetCode()), "%s", cl.GetReason())
	}
	ack := f.GetHandshakeAck()
	if ack == nil {
		cn.close()
		return nil, nil, rpc.Errorf(rpc.Internal, "client: handshake: the gateway answered a %T", f.Body)
	}
	if ack.GetCode() != 0 {
		cn.close()
		return nil, nil, rpc.Errorf(rpc.Code(ack.GetCode()), "%s", ack.GetMessage())
	}
	return cn, ack, nil
}

// install makes cn the connection and starts its reader and heartbeat,
// unless the client was closed meanwhile: then it closes cn.
func (c *Client) install(cn conn, ack *gatepb.HandshakeAck) {
	c.mu.Lock()
	if c.closed {
		// Close ran after the reconnection's handshake: it did not see cn,
		// and nothing else would close it.
		c.mu.Unlock()
		cn.close()
		return
	}
	c.conn = cn
	c.sessionID, c.userID = ack.GetSessionId(), ack.GetUserId()
	close(c.ready)
	c.mu.Unlock()
	if c.cfg.OnConnect != nil {
		c.cfg.OnConnect(ack.GetSessionId(), ack.GetUserId())
	}
	hb := time.Duration(ack.GetHeartbeatMs()) * time.Millisecond
	if hb <= 0 {
		hb = 10 * time.Second
	}
	stop := make(chan struct{})
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		c.heartbeat(cn, hb, stop)
	}()
	go func() {
		defer c.wg.Done()
		err := c.readLoop(cn, 3*hb)
		close(stop)
		c.lost(cn, err)
	}()
}

func (c *Client) heartbeat(cn conn, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if cn.write(&gatepb.Frame{Body: &gatepb.Frame_Heartbeat{Heartbeat: &gatepb.Heartbeat{}}}) != nil {
				return
			}
		case <-stop:
			return
		case <-c.done:
			return
		}
	}
}

// readLoop reads frames until the connection fails or is closed.
func (c *Client) readLoop(cn conn, idle time.Duration) error {
	var f gatepb.Frame
	for {
		body, err := cn.read(time.Now().Add(idle))
		if err != nil {
			return err
		}
		if err := gatepb.Decode(body, &f); err != nil {
			return err
		}
		switch b := f.Body.(type) {
		case *gatepb.Frame_Response:
			r := b.Response
			c.mu.Lock()
			ch := c.pending[r.GetId()]
			c.mu.Unlock()
			if ch == nil {
				continue // its caller gave up
			}
			if r.GetCode() != 0 {
				deliver(ch, resp{err: rpc.Error(rpc.Code(r.GetCode()), r.GetMessage())})
			} else {
				deliver(ch, resp{body: append([]byte(nil), r.GetBody()...)})
			}
		case *gatepb.Frame_Push:
			c.push(b.Push.GetRoute(), append([]byte(nil), b.Push.GetBody()...))
		case *gatepb.Frame_Close:
			return rpc.Errorf(rpc.Code(b.Close.GetCode()), "closed by the gateway: %s", b.Close.GetReason())
		case *gatepb.Frame_Heartbeat:
		}
	}
}

// deliver hands r to a waiting request without ever blocking: the channel
// holds one answer, and only the first counts.
func deliver(ch chan resp, r resp) {
	select {
	case ch <- r:
	default:
	}
}

func (c *Client) push(route string, body []byte) {
	c.mu.Lock()
	fn, any := c.pushes[route], c.anyPush
	c.mu.Unlock()
	switch {
	case fn != nil:
		fn(body)
	case any != nil:
		any(route, body)
	}
}

// lost handles the end of connection cn: fail what waits on it, then
// reconnect or close.
func (c *Client) lost(cn conn, err error) {
	cn.close()
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
		c.ready = make(chan struct{})
	}
	closed := c.closed
	for id, ch := range c.pending {
		deliver(ch, resp{err: rpc.Errorf(rpc.Unavailable, "the connection was lost: %v", err)})
		delete(c.pending, id)
	}
	c.mu.Unlock()
	if closed {
		return
	}
	if c.cfg.OnClose != nil {
		c.cfg.OnClose(err)
	}
	if !c.cfg.Reconnect {
		c.mu.Lock()
		if !c.closed {
			c.closed = true
			close(c.done)
		}
		c.mu.Unlock()
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.reconnect()
	}()
}

func (c *Client) reconnect() {
	backoff := c.cfg.BackoffMin
	for {
		select {
		case <-c.done:
			return
		case <-time.After(backoff):
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-c.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		cn, ack, err := c.connect(ctx)
		cancel()
		if err == nil {
			c.install(cn, ack)
			return
		}
		c.cfg.Logger.Info("client: reconnect failed", "addr", c.cfg.Addr, "err", err, "retry_in", backoff)
		backoff = min(2*backoff, c.cfg.BackoffMax)
	}
}

// conn is one connection to the gateway.
type conn interface {
	read(deadline time.Time) ([]byte, error)
	write(f *gatepb.Frame) error
	close() error
}

func (c *Client) dial(ctx context.Context) (conn, error) {
	switch c.u.Scheme {
	case "ws", "wss":
		var opts *websocket.DialOptions
		if c.cfg.TLS != nil {
			// Config.TLS configures wss too (a private CA, a client
			// certificate); without it websocket.Dial uses the defaults.
			opts = &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: c.cfg.TLS}}}
		}
		ws, _, err := websocket.Dial(ctx, c.u.String(), opts)
		if err != nil {
			return nil, err
		}
		ws.SetReadLimit(gatepb.DefaultMaxFrame * 16)
		return &wsConn{ws: ws}, nil
	case "kcp":
		s, err := kcp.DialWithOptions(c.u.Host, nil, 0, 0)
		if err != nil {
			return nil, err
		}
		s.SetNoDelay(1, 10, 2, 1)
		// Stream mode: frames are length-prefixed, and message mode fails
		// reads into a buffer smaller than a message (the 4-byte prefix).
		// Deprecated upstream without a replacement in v5.6.40.
		//lint:ignore SA1019 stream mode is what the framing needs
		s.SetStreamMode(true)
		s.SetWindowSize(256, 256)
		return newStreamConn(s), nil
	}
	d := net.Dialer{}
	nc, err := d.DialContext(ctx, "tcp", c.u.Host)
	if err != nil {
		return nil, err
	}
	if c.cfg.TLS != nil {
		cfg := c.cfg.TLS
		if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
			// As tls.Dial does: verify the certificate against the host
			// dialled (tls.Client alone refuses a config with no name).
			cfg = cfg.Clone()
			cfg.ServerName = c.u.Hostname()
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	return newStreamConn(nc), nil
}

// streamConn speaks length-prefixed frames over TCP or KCP.
type streamConn struct {
	nc net.Conn
	fr *wire.FrameReader
	mu sync.Mutex // serialises writes
}

func newStreamConn(nc net.Conn) *streamConn {
	return &streamConn{nc: nc, fr: wire.NewFrameReader(nc, gatepb.DefaultMaxFrame*16)}
}

func (s *streamConn) read(deadline time.Time) ([]byte, error) {
	if err := s.nc.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	return s.fr.Next()
}

func (s *streamConn) write(f *gatepb.Frame) error {
	b, err := gatepb.AppendStream(nil, f)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.nc.SetWriteDeadline(time.Now().Add(DefaultDialTimeout)); err != nil {
		return err
	}
	_, err = s.nc.Write(b)
	return err
}

func (s *streamConn) close() error { return s.nc.Close() }

// flush gives a KCP session time to send what was written to it (its
// update runs every 10 ms; this kcp-go version has no way to ask whether
// the send queue is empty): a few intervals plus the smoothed round trip,
// at most max. TCP needs no wait: the kernel sends what was written.
func (s *streamConn) flush(max time.Duration) {
	ks, ok := s.nc.(*kcp.UDPSession)
	if !ok {
		return
	}
	time.Sleep(min(max, 30*time.Millisecond+time.Duration(ks.GetSRTT())*time.Millisecond))
}

// wsConn speaks one frame per binary WebSocket message.
type wsConn struct {
	ws *websocket.Conn
}

func (w *wsConn) read(deadline time.Time) ([]byte, error) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	_, b, err := w.ws.Read(ctx)
	return b, err
}

func (w *wsConn) write(f *gatepb.Frame) error {
	b, err := gatepb.Encode(f)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultDialTimeout)
	defer cancel()
	return w.ws.Write(ctx, websocket.MessageBinary, b)
}

func (w *wsConn) close() error { return w.ws.CloseNow() }
