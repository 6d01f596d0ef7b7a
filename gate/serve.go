package gate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/rpc"
)

// maxBatch bounds the frames a writer hands the connection at once.
const maxBatch = 64

// serve runs one connection: the handshake, then its reader loop, in the
// calling goroutine; it starts the writer goroutine and the session actor.
// It returns when the connection is done.
func (g *Gateway) serve(c clientConn) {
	defer g.wg.Done() // counted by admit
	defer g.release(c)
	s, err := g.handshake(c)
	if err != nil {
		g.log.Debug("gate: handshake failed", "remote", c.remoteAddr(), "listener", c.kind(), "err", err)
		lingerClose(c, g.handshakeEnding(err), refusedLinger)
		return
	}
	g.opened(c)
	defer func() {
		<-s.out.done // the session has stopped and its last frames are written
		if s.linger != nil {
			s.linger.Stop()
		}
		_ = c.close()
	}()
	pid, err := g.node.Spawn(func() actor.Actor { return s })
	if err != nil {
		s.out.close(goingAway())
		return
	}
	if draining, closing := g.attach(c, pid); draining {
		// The shutdown began during the handshake and did not see the
		// session: it goes at once.
		_ = g.node.Send(pid, goAway{now: closing})
	}
	g.readLoop(c, s, pid)
}

// lingerTimeout bounds how long a connection whose last frames are
// written waits for its client to close it (see clientConn.finish).
const lingerTimeout = 2 * time.Second

// startWriter runs a connection's writer on a new goroutine, counted in
// the gateway's WaitGroup. serve, itself counted (by admit), waits for the
// last writer of its connection, so this never adds to an idle WaitGroup.
func (g *Gateway) startWriter(run func()) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		run()
	}()
}

// handshake reads and checks the client's Handshake and returns its
// session, not yet started. A refused handshake is answered with a
// HandshakeAck carrying the code.
func (g *Gateway) handshake(c clientConn) (*session, error) {
	refuse := func(code rpc.Code, msg string) error {
		b, err := gatepb.Encode(&gatepb.Frame{Body: &gatepb.Frame_HandshakeAck{HandshakeAck: &gatepb.HandshakeAck{
			Code: uint32(code), Message: msg, Version: gatepb.Version,
		}}})
		if err == nil {
			_ = c.writeFrames([][]byte{b})
		}
		e := endingOf(code, msg)
		e.told = true
		return &handshakeError{e: e, err: fmt.Errorf("%v: %s", code, msg)}
	}
	body, err := c.read(time.Now().Add(g.lim.HandshakeTimeout))
	if err != nil {
		return nil, err
	}
	var f gatepb.Frame
	if err := gatepb.Decode(body, &f); err != nil {
		return nil, refuse(rpc.InvalidArgument, err.Error())
	}
	h := f.GetHandshake()
	if h == nil {
		return nil, refuse(rpc.InvalidArgument, "the first frame must be a handshake")
	}
	if h.GetVersion() != gatepb.Version {
		return nil, refuse(rpc.FailedPrecondition, fmt.Sprintf("protocol version %d is not supported (this gateway speaks %d)", h.GetVersion(), gatepb.Version))
	}
	var uid string
	if tok := h.GetToken(); tok != "" {
		if g.cfg.Auth == nil {
			return nil, refuse(rpc.Unauthenticated, "this gateway takes no tokens")
		}
		ctx, cancel := context.WithTimeout(g.ctx, g.lim.RequestTimeout)
		uid, err = g.authenticate(ctx, tok)
		cancel()
		if err != nil {
			return nil, refuse(rpc.Unauthenticated, err.Error())
		}
	}
	s := &session{
		g:      g,
		conn:   c,
		userID: uid,
		info:   SessionInfo{Remote: c.remoteAddr(), Listener: c.kind(), Opened: time.Now()},
	}
	s.out = newFrameQueue(g.queueLimits(), c.writeFrames, func() { _ = c.close() }, s.finish, g.startWriter)
	return s, nil
}

// handshakeEnding returns the ending of a connection whose handshake
// failed with err: a refusal was answered already (a HandshakeAck with
// its code, a refusing CONNACK); a client silent past the deadline is told
// so.
func (g *Gateway) handshakeEnding(err error) ending {
	var he *handshakeError
	var ie *idleError
	switch {
	case errors.As(err, &he):
		return he.e
	case errors.As(err, &ie) || isTimeout(err):
		return endingOf(rpc.DeadlineExceeded, fmt.Sprintf("no handshake within %v", g.lim.HandshakeTimeout))
	}
	e, _ := g.readEnding(err, g.lim.HandshakeTimeout)
	return e
}

// authenticate runs the Auth hook, with a panic in it turned into an error.
func (g *Gateway) authenticate(ctx context.Context, token string) (uid string, err error) {
	defer func() {
		if p := recover(); p != nil {
			g.log.Error("gate: the Auth hook panicked", "panic", p)
			err = fmt.Errorf("authentication failed")
		}
	}()
	uid, err = g.cfg.Auth(ctx, token)
	if err == nil && uid == "" {
		err = errors.New("the token names no user")
	}
	return uid, err
}

// hook runs a user hook, with a panic in it logged, not spread.
func (g *Gateway) hook(f func()) {
	defer func() {
		if p := recover(); p != nil {
			g.log.Error("gate: a session hook panicked", "panic", p)
		}
	}()
	f()
}

// readLoop reads the client's frames and hands them to its session until
// the connection ends.
func (g *Gateway) readLoop(c clientConn, s *session, pid actor.PID) {
	idle := 3 * g.lim.Heartbeat
	bucket := newTokenBucket(g.lim.Rate, g.lim.Burst)
	end := func(err error) {
		e, why := g.readEnding(err, idle)
		_ = g.node.Send(pid, connEnded{err: why, e: e})
	}
	protocolError := func(err error) {
		_ = g.node.Send(pid, connEnded{err: err, e: endingOf(rpc.InvalidArgument, err.Error())})
	}
	var f gatepb.Frame
	for {
		body, err := c.read(time.Now().Add(idle))
		if err != nil {
			end(err)
			return
		}
		if err := gatepb.Decode(body, &f); err != nil {
			protocolError(err)
			return
		}
		switch b := f.Body.(type) {
		case *gatepb.Frame_Heartbeat:
			_ = g.node.Send(pid, clientHeartbeat{})
		case *gatepb.Frame_Request:
			r := b.Request
			if !bucket.take(time.Now()) {
				_ = g.node.Send(pid, &clientRequest{id: r.GetId(), route: rateLimitedRoute, body: nil})
				continue
			}
			// Decoded bodies alias the read buffer: the session gets its own.
			_ = g.node.Send(pid, &clientRequest{id: r.GetId(), route: r.GetRoute(), body: append([]byte(nil), r.GetBody()...)})
		case *gatepb.Frame_Close:
			end(nil)
			return
		default:
			protocolError(fmt.Errorf("a client may not send a %T", b))
			return
		}
	}
}

// isTimeout reports whether a read failed on its deadline: TCP's
// os.ErrDeadlineExceeded, WebSocket's context.DeadlineExceeded, or KCP's
// own error, a net.Error whose Timeout is true.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout()
}

// rateLimitedRoute marks a request refused by the rate limit: the session
// answers it with ResourceExhausted, in order with its other answers.
const rateLimitedRoute = "\x00rate-limited"

// tokenBucket is a session's rate limit, owned by its reader goroutine.
type tokenBucket struct {
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, burst int) *tokenBucket {
	return &tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

func (b *tokenBucket) take(now time.Time) bool {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
