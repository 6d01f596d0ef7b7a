// Package client is the Go SDK for guild's client protocol: what a game
// client, a bot or a test uses to talk to a gateway over TCP, WebSocket
// or KCP. It connects with an optional auth token, makes requests to
// routes, receives pushes, and reconnects by itself when asked to.
//
//	c, err := client.Dial(ctx, client.Config{Addr: "ws://127.0.0.1:8080/ws", Token: tok})
//	var reply chatpb.SendReply
//	err = c.Request(ctx, "chat.Send", &chatpb.SendRequest{Text: "hi"}, &reply)
//
// # Failover
//
// Given several gateways (Config.Addrs) and Reconnect, a client moves to
// the next gateway when its connection ends, and at once when its gateway
// says it is going away (it shuts down: a Close frame with code 14, which
// OnClose sees as ErrGoingAway). It logs in again with its token, keeps
// its push handlers, and sends on the new session the requests made
// meanwhile and those the old gateway did not forward to a service, so
// that a gateway's graceful shutdown fails none of them. A request whose
// connection was lost with no word has no known outcome: it fails with
// rpc.Unavailable. OnReconnect says where the client went and why.
//
// # Resume
//
// When the gateway keeps sessions for resumption (gate.Limits.ResumeWindow),
// a session bound to a user comes with a resume token. With Reconnect,
// the client keeps the latest one and presents it in each reconnection's
// handshake (with Config.Token, so that a resume that fails still logs in
// by token): the session comes back with its user, state and groups, and
// the pushes sent to it while the client was away arrive first, in
// order. Reconnection.Resumed says whether it did, and Resync whether
// some of those pushes were dropped (fetch the state afresh). A session
// resumed on another gateway has a new ID: SessionID follows it.
//
// docs/PROTOCOL.md describes the protocol itself.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/xtaci/kcp-go/v5"
	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/gate/gatepb"
	gatekcp "github.com/guildkit/guild/gate/kcp"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/wire"
)

// Errors of the client. Errors from the gateway are *rpc.Status values.
var (
	// ErrClosed: the client was closed, or its connection ended without
	// reconnection.
	ErrClosed = errors.New("client: closed")
	// ErrGoingAway: the gateway is shutting down. OnClose gets an error
	// that matches it (errors.Is) when the gateway closes the session with
	// its "going away" Close frame (code 14, rpc.Unavailable; see
	// gate.GoingAway and docs/PROTOCOL.md), and so does Reconnection.Cause
	// after the move to another gateway.
	ErrGoingAway = errors.New("client: the gateway is going away")
	// ErrNoGateway: a request waited for a connection to a gateway until
	// its ctx ended. Its error matches this and ctx's error, and has
	// code rpc.Unavailable: the request was never sent.
	ErrNoGateway = errors.New("client: no connection to a gateway")
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
	// "ws://host:port/path" or "wss://host:port/path". It is shorthand for
	// Addrs with one address; set one of the two.
	Addr string
	// Addrs lists gateways of the same game, in the form of Addr, for
	// failover: Dial tries them in order until one accepts, and with
	// Reconnect the client moves to the next one in the list when its
	// connection ends (round robin, starting after the address that went
	// away).
	Addrs []string
	// Token, optional, authenticates the session in the handshake, and
	// again in each reconnection's.
	Token string
	// TLS configures tcp (TLS over TCP when set) and wss.
	TLS *tls.Config
	// KCPKey, optional, is the secret that encrypts kcp addresses' traffic:
	// the gateway's KCP key (gatekcp.Options.Key, the cluster file's
	// kcp_key or kcp_key_file), at least gatekcp.MinKeyLen bytes. Empty:
	// KCP in the clear. A gateway with another key, or none, drops every
	// packet, so the handshake gets no answer and fails after
	// DialTimeout, saying so. Package gate/kcp says what KCP's encryption
	// protects against, and what not.
	KCPKey []byte
	// Dialer, optional, connects tcp, ws and wss addresses (not kcp):
	// its LocalAddr chooses the source address, for example. Default: a
	// zero net.Dialer.
	Dialer *net.Dialer
	// Reconnect makes the client redial when its connection ends: at once
	// when the gateway says it is going away, else after BackoffMin; the
	// next address of Addrs first, then the others in turn, waiting
	// between full rounds of failed attempts, from BackoffMin doubling up
	// to BackoffMax, with jitter. Requests made meanwhile wait for the new
	// session (until their ctx ends), and so do those the old gateway did
	// not forward to a service (a going-away Close frame, or a refusal
	// with Response.not_forwarded): they are sent again on the new
	// session. Requests whose connection ended without an answer, and
	// whose outcome is unknown, fail with rpc.Unavailable, unless their
	// route is Idempotent. Without Reconnect a lost connection closes the
	// client.
	Reconnect bool
	// Idempotent, optional, with Reconnect, names the routes whose
	// requests may be handled twice without harm (reads, or writes that
	// carry their own ID): a request on one whose connection ended
	// without an answer is sent again on the next session, up to
	// MaxRetries times, instead of failing with rpc.Unavailable. That is
	// how a request in flight on a gateway that was killed still
	// succeeds. It is called from the requesting goroutine.
	Idempotent             func(route string) bool
	BackoffMin, BackoffMax time.Duration
	// RequestTimeout bounds a request whose ctx has no deadline.
	// Default 10s.
	RequestTimeout time.Duration
	// DialTimeout bounds connecting and the handshake, for each address.
	// Default 5s.
	DialTimeout time.Duration
	// OnConnect, optional, is called after each handshake (the first and
	// every reconnection) with the session ID and user ID.
	OnConnect func(sessionID, userID string)
	// OnClose, optional, is called when the gateway closes the session
	// (a kick, a shutdown: see ErrGoingAway) or the connection is lost,
	// with why.
	OnClose func(err error)
	// OnReconnect, optional, is called after each reconnection (after
	// OnConnect) with the address now in use and why the client moved.
	OnReconnect func(r Reconnection)
	// Logger receives the client's logs. Default: discarded.
	Logger *slog.Logger
}

// Reconnection tells Config.OnReconnect what happened.
type Reconnection struct {
	// Addr is the gateway address the client now uses, and From the one
	// whose connection ended (the same when Addrs has one address).
	Addr, From string
	// Cause is why the connection to From ended: it matches ErrGoingAway
	// when that gateway shut down.
	Cause error
	// Attempts counts the dials it took, this one included.
	Attempts int
	// Resumed: the gateway gave the session back (see the package doc's
	// Resume): same user, state and groups, and the pushes sent while the
	// client was away. Otherwise the session is new: logged in by
	// Config.Token, or not logged in.
	Resumed bool
	// Resync, with Resumed: pushes were dropped while the client was away.
	Resync bool
}

// Client is a connection to a gateway, and to the next one after it
// when it fails over (Config.Addrs). Its methods are safe for concurrent
// use.
type Client struct {
	cfg   Config
	addrs []*url.URL

	// mu guards what follows. It is never held while calling out: not
	// for a hook, a push handler, or a write to a connection.
	mu           sync.Mutex
	closed       bool
	link         *link              // where requests go; nil while reconnecting
	latest       *link              // the last connection installed: its end starts a reconnection
	ready        chan struct{}      // closed when link is set (replaced when it is unset)
	live         map[*link]struct{} // connections not ended yet (a gateway going away may still answer)
	reconnecting bool               // a reconnect goroutine runs
	lastErr      error              // why the last dial failed, for requests that time out waiting
	current      string             // the address of link, or of the last one
	next         uint64
	sessionID    string
	userID       string
	resumeToken  string // the latest resume token, presented on reconnection
	pushes       map[string]func(body []byte)
	anyPush      func(route string, body []byte)

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

// link is one connection and the requests waiting on it.
type link struct {
	cn      conn
	addr    int                  // index in Client.addrs
	pending map[uint64]chan resp // requests sent on it, waiting for their Response; guarded by Client.mu
	ended   bool                 // guarded by Client.mu: lost has run
	kill    *time.Timer          // guarded by Client.mu: closes it, after a failed write
}

type resp struct {
	body []byte
	err  error
	// resend: the gateway did not forward the request (it is going away):
	// send it again on the next connection.
	resend bool
	// lost: the connection ended without an answer (err says so): the
	// request may or may not have been handled.
	lost bool
}

// MaxRetries bounds how often a request on an idempotent route
// (Config.Idempotent) is sent again after its connection was lost
// without an answer: a request that brings every gateway down fails
// after that.
const MaxRetries = 3

// Dial connects to the gateway, completes the handshake and returns the
// client. With several addresses it tries each in turn, and fails when
// none accepts. A refused handshake returns the gateway's code as an
// *rpc.Status.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	raw := cfg.Addrs
	switch {
	case cfg.Addr != "" && len(cfg.Addrs) > 0:
		return nil, errors.New("client: set Addr or Addrs, not both")
	case cfg.Addr != "":
		raw = []string{cfg.Addr}
	case len(cfg.Addrs) == 0:
		return nil, errors.New("client: no gateway address: set Addr or Addrs")
	}
	addrs := make([]*url.URL, len(raw))
	for i, a := range raw {
		u, err := url.Parse(a)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("client: address %q is not a URL like tcp://host:port", a)
		}
		switch u.Scheme {
		case "tcp", "kcp", "ws", "wss":
		default:
			return nil, fmt.Errorf("client: address %q: scheme %q is not tcp, kcp, ws or wss", a, u.Scheme)
		}
		addrs[i] = u
	}
	if len(cfg.KCPKey) > 0 {
		if _, err := gatekcp.DeriveKey(cfg.KCPKey); err != nil {
			return nil, fmt.Errorf("client: KCPKey: %w", err)
		}
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
		cfg:    cfg,
		addrs:  addrs,
		ready:  make(chan struct{}),
		live:   make(map[*link]struct{}),
		pushes: make(map[string]func([]byte)),
		done:   make(chan struct{}),
	}
	var errs []error
	for i := range addrs {
		cn, ack, err := c.connect(ctx, i)
		if err == nil {
			c.install(cn, i, ack)
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	last := errs[len(errs)-1]
	if len(errs) == 1 {
		return nil, last
	}
	// The last error carries the code (the gateway's refusal, or
	// Unavailable); the message has every address's.
	earlier := make([]string, len(errs)-1)
	for i, err := range errs[:len(errs)-1] {
		earlier[i] = err.Error()
	}
	return nil, fmt.Errorf("client: no gateway accepted: %s; %w", strings.Join(earlier, "; "), last)
}

// SessionID returns the current session's ID. It changes when the client
// reconnects, unless the session was resumed on the same gateway.
func (c *Client) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

// UserID returns the user the session is bound to: authenticated as in
// its handshake, or bound later by a login route (when the gateway says
// so: it does when it gives resume tokens), if any.
func (c *Client) UserID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userID
}

// Addr returns the address of the gateway the client is connected to,
// or was last connected to while it reconnects.
func (c *Client) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// OnPush sets the handler of pushes on route; it runs on the client's
// reader goroutine, so it must not block long. body is the push's message,
// encoded: decode it with proto.Unmarshal. Handlers stay set across
// reconnections.
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
// reply. While the client reconnects, the request waits for the new
// session (see Config.Reconnect), at most until ctx ends: then it fails
// with rpc.Unavailable, matching ErrNoGateway and ctx's error.
func (c *Client) RequestRaw(ctx context.Context, route string, body []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	f := &gatepb.Frame{Body: &gatepb.Frame_Request{Request: &gatepb.Request{Route: route, Body: body}}}
	retries := 0
	for {
		l, err := c.waitLink(ctx, route)
		if err != nil {
			return nil, err
		}
		ch := make(chan resp, 1)
		c.mu.Lock()
		if l.ended || c.link != l {
			c.mu.Unlock()
			continue // it went meanwhile: wait for the next
		}
		c.next++
		id := c.next
		l.pending[id] = ch
		c.mu.Unlock()
		f.GetRequest().Id = id
		if err := l.cn.write(f); err != nil {
			// The frame did not go out whole, so the gateway did not take
			// it: the connection is broken, and the request goes on the
			// next one (or fails, without Reconnect).
			c.forget(l, id)
			c.cfg.Logger.Debug("client: a write failed", "addr", c.addrs[l.addr].String(), "err", err)
			c.unlink(l)
			continue
		}
		select {
		case r := <-ch:
			if r.resend {
				continue
			}
			if r.lost && retries < MaxRetries && c.cfg.Reconnect && c.cfg.Idempotent != nil && c.cfg.Idempotent(route) {
				retries++
				c.cfg.Logger.Debug("client: a request lost with its connection is sent again", "route", route, "retry", retries)
				continue
			}
			return r.body, r.err
		case <-ctx.Done():
			c.forget(l, id)
			return nil, rpc.StatusOf(ctx.Err())
		case <-c.done:
			c.forget(l, id)
			// The answer may have arrived just before the connection ended
			// (a kick sends the response, then Close): it wins.
			select {
			case r := <-ch:
				if !r.resend {
					return r.body, r.err
				}
			default:
			}
			return nil, rpc.Errorf(rpc.Unavailable, "%s: %v", route, ErrClosed)
		}
	}
}

// forget drops a request's wait on l.
func (c *Client) forget(l *link, id uint64) {
	c.mu.Lock()
	delete(l.pending, id)
	c.mu.Unlock()
}

// waitLink returns the connection for requests, waiting for a
// reconnection in progress.
func (c *Client) waitLink(ctx context.Context, route string) (*link, error) {
	for {
		c.mu.Lock()
		l, ready, closed := c.link, c.ready, c.closed
		c.mu.Unlock()
		if closed {
			return nil, rpc.Errorf(rpc.Unavailable, "%s: %v", route, ErrClosed)
		}
		if l != nil {
			return l, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			c.mu.Lock()
			last := c.lastErr
			c.mu.Unlock()
			why := "reconnecting"
			if last != nil {
				why = fmt.Sprintf("reconnecting; the last attempt: %v", last)
			}
			return nil, &waitError{st: rpc.Errorf(rpc.Unavailable, "%s: %v: %v (%s)", route, ErrNoGateway, ctx.Err(), why), ctx: ctx.Err()}
		case <-c.done:
			return nil, rpc.Errorf(rpc.Unavailable, "%s: %v", route, ErrClosed)
		}
	}
}

// waitError is a request's failure to get a connection before its ctx
// ended: an *rpc.Status (Unavailable) that also matches ErrNoGateway and
// ctx's error.
type waitError struct {
	st  *rpc.Status
	ctx error
}

func (e *waitError) Error() string   { return e.st.Error() }
func (e *waitError) Unwrap() []error { return []error{e.st, ErrNoGateway, e.ctx} }

// Close says goodbye to the gateway and closes the connection. It is safe
// to call twice.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	cur := c.link
	links := make([]*link, 0, len(c.live))
	for l := range c.live {
		links = append(links, l)
	}
	close(c.done)
	c.mu.Unlock()
	for _, l := range links {
		if l == cur {
			_ = l.cn.write(&gatepb.Frame{Body: &gatepb.Frame_Close{Close: &gatepb.Close{Reason: "goodbye"}}})
			if sc, ok := l.cn.(*streamConn); ok {
				sc.flush(goodbyeFlush)
			}
		}
		_ = l.cn.close()
	}
	c.wg.Wait()
	return nil
}

// goodbyeFlush bounds Close's wait for KCP to send the goodbye: closing a
// KCP session drops what it has not sent yet.
const goodbyeFlush = 500 * time.Millisecond

// connect dials address i and runs the handshake. A gateway that cannot
// be reached or does not answer is Unavailable; the end of parent is
// Canceled or DeadlineExceeded.
func (c *Client) connect(parent context.Context, i int) (conn, *gatepb.HandshakeAck, error) {
	addr := c.addrs[i].String()
	c.mu.Lock()
	resume := c.resumeToken
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(parent, c.cfg.DialTimeout)
	defer cancel()
	failed := func(what string, err error) error {
		if perr := parent.Err(); perr != nil {
			return rpc.StatusOf(fmt.Errorf("client: %s %s: %w", what, addr, perr))
		}
		return rpc.Errorf(rpc.Unavailable, "client: %s %s: %v", what, addr, err)
	}
	cn, err := c.dial(ctx, c.addrs[i])
	if err != nil {
		return nil, nil, failed("dial", err)
	}
	// A read on a stream does not watch ctx: closing the connection when
	// ctx ends stops the handshake at once (Close while reconnecting).
	stop := context.AfterFunc(ctx, func() { cn.close() })
	defer stop()
	hs := &gatepb.Frame{Body: &gatepb.Frame_Handshake{Handshake: &gatepb.Handshake{Version: gatepb.Version, Token: c.cfg.Token, Client: "guild-go", Resume: resume}}}
	if err := cn.write(hs); err != nil {
		cn.close()
		return nil, nil, failed("handshake with", err)
	}
	dl, _ := ctx.Deadline()
	body, err := cn.read(dl)
	if err != nil {
		cn.close()
		var ne net.Error
		timedOut := ctx.Err() != nil || errors.As(err, &ne) && ne.Timeout()
		if c.addrs[i].Scheme == "kcp" && parent.Err() == nil && timedOut {
			// KCP has no connection to refuse: a gateway that cannot
			// decrypt the packets drops them without a word.
			err = fmt.Errorf("no answer within %v (is a gateway there, and is Config.KCPKey its key? A KCP gateway drops the packets it cannot decrypt without a word): %w", c.cfg.DialTimeout, err)
		}
		return nil, nil, failed("handshake with", err)
	}
	if !stop() {
		// ctx ended as the answer came: the connection is closed.
		return nil, nil, failed("handshake with", ctx.Err())
	}
	var f gatepb.Frame
	if err := gatepb.Decode(body, &f); err != nil {
		cn.close()
		return nil, nil, rpc.Errorf(rpc.Internal, "client: handshake with %s: %v", addr, err)
	}
	if cl := f.GetClose(); cl != nil {
		cn.close()
		return nil, nil, rpc.Errorf(rpc.Code(cl.GetCode()), "%s: %s", addr, cl.GetReason())
	}
	ack := f.GetHandshakeAck()
	if ack == nil {
		cn.close()
		return nil, nil, rpc.Errorf(rpc.Internal, "client: handshake with %s: the gateway answered a %T", addr, f.Body)
	}
	if ack.GetCode() != 0 {
		cn.close()
		return nil, nil, rpc.Errorf(rpc.Code(ack.GetCode()), "%s", ack.GetMessage())
	}
	return cn, ack, nil
}

// install makes cn, to address i, the connection and starts its reader
// and heartbeat, unless the client was closed meanwhile: then it closes
// cn. It reports whether it did.
func (c *Client) install(cn conn, i int, ack *gatepb.HandshakeAck) bool {
	l := &link{cn: cn, addr: i, pending: make(map[uint64]chan resp)}
	c.mu.Lock()
	c.reconnecting = false
	if c.closed {
		// Close ran after the reconnection's handshake: it did not see cn,
		// and nothing else would close it.
		c.mu.Unlock()
		cn.close()
		return false
	}
	c.link = l
	c.latest = l
	c.live[l] = struct{}{}
	c.current = c.addrs[i].String()
	c.lastErr = nil
	c.sessionID, c.userID = ack.GetSessionId(), ack.GetUserId()
	if c.cfg.Reconnect {
		c.resumeToken = ack.GetResumeToken()
	}
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
		err := c.readLoop(l, 3*hb)
		close(stop)
		c.lost(l, err)
	}()
	return true
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
func (c *Client) readLoop(l *link, idle time.Duration) error {
	var f gatepb.Frame
	for {
		body, err := l.cn.read(time.Now().Add(idle))
		if err != nil {
			return err
		}
		// Not gatepb.Decode, which refuses a frame with no body: a body
		// that a later protocol revision added decodes as none, and is
		// ignored (below).
		if err := proto.Unmarshal(body, &f); err != nil {
			return fmt.Errorf("%w: %v", gatepb.ErrBadFrame, err)
		}
		switch b := f.Body.(type) {
		case *gatepb.Frame_Response:
			r := b.Response
			c.mu.Lock()
			ch := l.pending[r.GetId()]
			delete(l.pending, r.GetId())
			c.mu.Unlock()
			if ch == nil {
				continue // its caller gave up
			}
			switch {
			case r.GetCode() == 0:
				deliver(ch, resp{body: append([]byte(nil), r.GetBody()...)})
			case r.GetNotForwarded() && rpc.Code(r.GetCode()) == rpc.Unavailable && c.cfg.Reconnect:
				// The gateway is going away and did not take the request:
				// it goes to the next gateway, and so do the next ones
				// (retired first, so that it is not sent here again).
				c.retire(l, fmt.Errorf("%w: %s", ErrGoingAway, r.GetMessage()))
				deliver(ch, resp{resend: true})
			default:
				deliver(ch, resp{err: rpc.Error(rpc.Code(r.GetCode()), r.GetMessage())})
			}
		case *gatepb.Frame_Push:
			c.push(b.Push.GetRoute(), append([]byte(nil), b.Push.GetBody()...))
		case *gatepb.Frame_SessionUpdate:
			c.mu.Lock()
			if c.latest == l {
				c.userID = b.SessionUpdate.GetUserId()
				if c.cfg.Reconnect {
					c.resumeToken = b.SessionUpdate.GetResumeToken()
				}
			}
			c.mu.Unlock()
		case *gatepb.Frame_Close:
			st := rpc.Errorf(rpc.Code(b.Close.GetCode()), "closed by the gateway: %s", b.Close.GetReason())
			if st.Code == rpc.Unavailable {
				return fmt.Errorf("%w: %w", ErrGoingAway, st)
			}
			// A kick, a login elsewhere or an expiry ended the session:
			// there is nothing left to resume.
			c.mu.Lock()
			if c.latest == l {
				c.resumeToken = ""
			}
			c.mu.Unlock()
			return st
		case *gatepb.Frame_Heartbeat:
		default:
			// A frame of a later protocol revision (a nil body: an
			// unknown oneof field): ignored.
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

// unlink stops sending requests on l, whose write failed: its reader,
// which sees why the connection ended (a going-away Close may wait in
// its buffer), settles it and reconnects. A reader that would see
// nothing for long, on a dead connection, is stopped after unlinkGrace.
func (c *Client) unlink(l *link) {
	c.mu.Lock()
	if c.link == l {
		c.link = nil
		c.ready = make(chan struct{})
	}
	if l.kill == nil && !l.ended {
		l.kill = time.AfterFunc(unlinkGrace, func() { _ = l.cn.close() })
	}
	c.mu.Unlock()
}

// unlinkGrace bounds the wait for the reader of a connection whose write
// failed.
const unlinkGrace = time.Second

// retire stops sending requests on l, which is going away, and, when l
// is the latest connection, starts a reconnection (to the next address)
// unless one runs, while l may still deliver the answers it owes.
func (c *Client) retire(l *link, cause error) {
	c.mu.Lock()
	if c.link == l {
		c.link = nil
		c.ready = make(chan struct{})
	}
	start := c.cfg.Reconnect && !c.closed && !c.reconnecting && c.latest == l
	if start {
		c.reconnecting = true
		c.wg.Add(1)
	}
	c.mu.Unlock()
	if start {
		go func() {
			defer c.wg.Done()
			c.reconnect(l.addr, cause)
		}()
	}
}

// lost handles the end of connection l: settle what waits on it, then
// reconnect or close.
func (c *Client) lost(l *link, err error) {
	l.cn.close()
	// After a going-away Close every request the gateway forwarded has
	// its answer: those still waiting were handled by no service.
	resend := c.cfg.Reconnect && errors.Is(err, ErrGoingAway)
	c.mu.Lock()
	l.ended = true
	if l.kill != nil {
		l.kill.Stop()
	}
	delete(c.live, l)
	if c.link == l {
		c.link = nil
		c.ready = make(chan struct{})
	}
	closed := c.closed
	pending := l.pending
	l.pending = nil
	c.mu.Unlock()
	for _, ch := range pending {
		if resend {
			deliver(ch, resp{resend: true})
		} else {
			deliver(ch, resp{err: rpc.Errorf(rpc.Unavailable, "the connection was lost: %v", err), lost: true})
		}
	}
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
	// Unless l was retired already (its gateway going away), and the
	// reconnection it started runs or has ended.
	c.retire(l, err)
}

// reconnect dials until a gateway accepts, starting with the address
// after from, or until Close.
func (c *Client) reconnect(from int, cause error) {
	n := len(c.addrs)
	backoff := c.cfg.BackoffMin
	// A gateway going away is left at once; a lost connection may be the
	// network's fault, and everyone redialling at once makes it worse.
	wait := !errors.Is(cause, ErrGoingAway)
	attempts := 0
	for {
		if wait {
			select {
			case <-c.done:
				c.mu.Lock()
				c.reconnecting = false
				c.mu.Unlock()
				return
			case <-time.After(jitter(backoff)):
			}
			backoff = min(2*backoff, c.cfg.BackoffMax)
		}
		wait = true
		for k := 1; k <= n; k++ {
			i := (from + k) % n
			attempts++
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-c.done:
					cancel()
				case <-ctx.Done():
				}
			}()
			cn, ack, err := c.connect(ctx, i)
			cancel()
			if err == nil {
				if c.install(cn, i, ack) && c.cfg.OnReconnect != nil {
					c.cfg.OnReconnect(Reconnection{Addr: c.addrs[i].String(), From: c.addrs[from].String(), Cause: cause, Attempts: attempts, Resumed: ack.GetResumed(), Resync: ack.GetResync()})
				}
				return
			}
			c.mu.Lock()
			c.lastErr = err
			closed := c.closed
			c.mu.Unlock()
			c.cfg.Logger.Info("client: reconnect failed", "addr", c.addrs[i].String(), "err", err)
			if closed {
				c.mu.Lock()
				c.reconnecting = false
				c.mu.Unlock()
				return
			}
		}
	}
}

// jitter returns d less a random part of up to a half, so that clients
// that lost the same gateway do not all redial at once.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d - rand.N(d/2)
}

// conn is one connection to the gateway.
type conn interface {
	read(deadline time.Time) ([]byte, error)
	write(f *gatepb.Frame) error
	close() error
}

func (c *Client) dial(ctx context.Context, u *url.URL) (conn, error) {
	switch u.Scheme {
	case "ws", "wss":
		var opts *websocket.DialOptions
		if c.cfg.TLS != nil || c.cfg.Dialer != nil {
			// Config.TLS configures wss too (a private CA, a client
			// certificate), and Config.Dialer connects; without them
			// websocket.Dial uses the defaults.
			tr := &http.Transport{TLSClientConfig: c.cfg.TLS}
			if c.cfg.Dialer != nil {
				tr.DialContext = c.cfg.Dialer.DialContext
			}
			opts = &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}}
		}
		ws, _, err := websocket.Dial(ctx, u.String(), opts)
		if err != nil {
			return nil, err
		}
		ws.SetReadLimit(gatepb.DefaultMaxFrame * 16)
		return &wsConn{ws: ws}, nil
	case "kcp":
		s, err := gatekcp.Dial(ctx, u.Host, gatekcp.Options{Key: c.cfg.KCPKey})
		if err != nil {
			return nil, err
		}
		return newStreamConn(s), nil
	}
	d := c.cfg.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if c.cfg.TLS != nil {
		cfg := c.cfg.TLS
		if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
			// As tls.Dial does: verify the certificate against the host
			// dialled (tls.Client alone refuses a config with no name).
			cfg = cfg.Clone()
			cfg.ServerName = u.Hostname()
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
