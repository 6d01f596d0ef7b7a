package gate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

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
	s, att, pid, err := g.handshake(c)
	if err != nil {
		g.log.Debug("gate: handshake failed", "remote", c.remoteAddr(), "listener", c.kind(), "err", err)
		lingerClose(c, g.handshakeEnding(err), refusedLinger)
		return
	}
	g.opened(c)
	defer g.stats.sessionOpened(c.kind())()
	defer func() {
		<-att.out.done // the session has left the connection and its last frames are written
		if att.linger != nil {
			att.linger.Stop()
		}
		_ = c.close()
	}()
	if pid.IsZero() { // a new session; a resumed one runs already
		pid, err = g.node.Spawn(func() actor.Actor { return s })
		if err != nil {
			att.out.close(goingAway())
			return
		}
	}
	if draining, closing := g.attach(c, pid); draining {
		// The shutdown began during the handshake and did not see the
		// session: it goes at once.
		_ = g.node.Send(pid, goAway{now: closing})
	}
	g.readLoop(c, s, att, g.sourceOf(c), pid)
}

// sourceOf returns the source entry of an admitted connection, or nil.
func (g *Gateway) sourceOf(c clientConn) *limitEntry {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.conns[c].src
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
// session, not yet started, and the connection's attachment; or, when the
// handshake resumed a session of this gateway (see resume.go), that
// session, running, and its PID. A refused handshake is answered with a
// HandshakeAck carrying the code.
func (g *Gateway) handshake(c clientConn) (*session, *attachment, actor.PID, error) {
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
		return nil, nil, actor.PID{}, err
	}
	var f gatepb.Frame
	if err := gatepb.Decode(body, &f); err != nil {
		return nil, nil, actor.PID{}, refuse(rpc.InvalidArgument, err.Error())
	}
	h := f.GetHandshake()
	if h == nil {
		return nil, nil, actor.PID{}, refuse(rpc.InvalidArgument, "the first frame must be a handshake")
	}
	if h.GetVersion() != gatepb.Version {
		return nil, nil, actor.PID{}, refuse(rpc.FailedPrecondition, fmt.Sprintf("protocol version %d is not supported (this gateway speaks %d)", h.GetVersion(), gatepb.Version))
	}
	// A resume token first: a session of this gateway takes the
	// connection on; one of another gateway is asked by the new session
	// (see session.take). A token that resumes nothing is ignored.
	var plan *resumePlan
	_, adapted := c.(*adapterConn)
	if tok := h.GetResume(); tok != "" && g.lim.ResumeWindow > 0 && !adapted {
		var s *session
		var att *attachment
		var pid actor.PID
		s, att, pid, plan = g.tryResume(c, tok)
		if s != nil {
			return s, att, pid, nil
		}
	}
	var id Identity
	if tok := h.GetToken(); tok != "" {
		if g.cfg.Auth == nil && g.cfg.Identify == nil {
			return nil, nil, actor.PID{}, refuse(rpc.Unauthenticated, "this gateway takes no tokens")
		}
		ctx, cancel := context.WithTimeout(g.ctx, g.lim.RequestTimeout)
		id, err = g.identify(ctx, tok)
		cancel()
		if err != nil {
			return nil, nil, actor.PID{}, refuse(rpc.Unauthenticated, err.Error())
		}
	}
	att := g.newAttachment(c)
	s := &session{
		g:       g,
		att:     att,
		userID:  id.UserID,
		id:      id,
		info:    SessionInfo{Remote: c.remoteAddr(), Listener: c.kind(), Opened: time.Now()},
		adapted: adapted,
		plan:    plan,
	}
	return s, att, actor.PID{}, nil
}

// handshakeEnding returns the ending of a connection whose handshake
// failed with err: a refusal was answered already (a HandshakeAck with
// its code, an adapter's refusal); a client silent past the deadline is told
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

// hook runs a user hook, with a panic in it logged, not spread.
func (g *Gateway) hook(f func()) {
	defer func() {
		if p := recover(); p != nil {
			g.log.Error("gate: a session hook panicked", "panic", p)
			g.node.Report(actor.Failure{Where: "gate hook", Reason: fmt.Sprint(p), Stack: debug.Stack()})
		}
	}()
	f()
}

// readLoop reads the client's frames and hands them to its session until
// the connection ends. It applies the rate limits: a request takes a
// token from its user's bucket once the session is bound to one (kept
// across reconnects, see limitTable), before that from the session's own
// bucket and from its source's (src, nil for none); a heartbeat takes one
// from the connection's heartbeat bucket. A refused request is answered
// with a frame built without the session's help beyond queueing it; a
// refused heartbeat gets no answer. Too many refusals close the session.
func (g *Gateway) readLoop(c clientConn, s *session, att *attachment, src *limitEntry, pid actor.PID) {
	idle := 3 * g.lim.Heartbeat
	own := newBucket(g.lim.Rate, g.lim.Burst)
	beats := newBucket(heartbeatRate(g.lim.Heartbeat), heartbeatBurst)
	var refusedN int
	var window time.Time
	// refused counts a refusal and reports whether the session is to be
	// closed for too many.
	refused := func(now time.Time) bool {
		if now.Sub(window) > refusedWindow {
			window, refusedN = now, 0
		}
		refusedN++
		if g.lim.MaxRefused > 0 && refusedN > g.lim.MaxRefused {
			_ = g.node.Send(pid, connEnded{att: att, err: errTooManyRefused, e: tooManyRefused(g.lim.MaxRefused)})
			return true
		}
		return false
	}
	end := func(err error) {
		e, why := g.readEnding(err, idle)
		_ = g.node.Send(pid, connEnded{att: att, err: why, e: e, lost: lostConn(err)})
	}
	protocolError := func(err error) {
		_ = g.node.Send(pid, connEnded{att: att, err: err, e: endingOf(rpc.InvalidArgument, err.Error())})
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
			if now := time.Now(); !beats.take(now) {
				if refused(now) {
					return
				}
				continue
			}
			_ = g.node.Send(pid, clientHeartbeat{att: att})
		case *gatepb.Frame_Request:
			r := b.Request
			now := time.Now()
			ok, tail := true, g.rateTail
			if u := s.limUser.Load(); u != nil {
				ok = g.limits.take(u, now)
			} else if ok = own.take(now); ok && src != nil {
				ok, tail = g.limits.take(src, now), g.sourceTail
			}
			if !ok {
				_ = g.node.Send(pid, refusedRequest{att: att, frame: rateLimitedFrame(r.GetId(), tail)})
				if refused(now) {
					return
				}
				continue
			}
			// Decoded bodies alias the read buffer: the session gets its own.
			_ = g.node.Send(pid, &clientRequest{att: att, id: r.GetId(), route: r.GetRoute(), body: append([]byte(nil), r.GetBody()...)})
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
// os.ErrDeadlineExceeded, a context's DeadlineExceeded, or KCP's
// own error, a net.Error whose Timeout is true.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &ne) && ne.Timeout()
}

// refusedWindow is the window in which Limits.MaxRefused counts.
const refusedWindow = 10 * time.Second

// heartbeatBurst is the burst of a connection's heartbeat bucket.
const heartbeatBurst = 10

// heartbeatRate is the rate of a connection's heartbeat bucket: one per
// second, or three per heartbeat interval if that is more.
func heartbeatRate(hb time.Duration) float64 {
	return max(1, 3/hb.Seconds())
}

// errTooManyRefused is the close reason of a session closed for too many
// refused requests.
var errTooManyRefused = errors.New("gate: too many requests refused by the rate limit")

// tooManyRefused is the ending of a session closed for more than max
// refusals within refusedWindow: Close{8}, CauseRateLimit (WebSocket
// 1008, policy violation).
func tooManyRefused(max int) ending {
	e := endingOf(rpc.ResourceExhausted, fmt.Sprintf("too many requests refused by the rate limit (more than %d within %v)", max, refusedWindow))
	e.cause = CauseRateLimit
	return e
}

// rateLimitedFrame returns the Response frame that refuses request id for
// a rate limit, appended by hand to one of the gateway's precomputed
// tails (code and message: rateTail, sourceTail): a refusal costs one
// small allocation, no protobuf marshalling.
func rateLimitedFrame(id uint64, tail []byte) []byte {
	n := 1 + protowire.SizeVarint(id) + len(tail)
	b := make([]byte, 0, 1+protowire.SizeVarint(uint64(n))+n)
	b = protowire.AppendTag(b, 5, protowire.BytesType) // Frame.response
	b = protowire.AppendVarint(b, uint64(n))
	b = protowire.AppendTag(b, 1, protowire.VarintType) // Response.id
	b = protowire.AppendVarint(b, id)
	return append(b, tail...)
}

// rateLimitedTail encodes the code and message fields of the Response
// that refuses a request over the session's or user's rate (Rate, Burst).
func rateLimitedTail(lim Limits) []byte {
	return refusalTail(fmt.Sprintf("rate limited: %g requests per second, bursts of %d", lim.Rate, lim.Burst))
}

// sourceLimitedTail is rateLimitedTail for the source's rate before login
// (SourceRate, SourceBurst).
func sourceLimitedTail(lim Limits) []byte {
	return refusalTail(fmt.Sprintf("rate limited: your address's sessions not logged in: %g requests per second, bursts of %d", lim.SourceRate, lim.SourceBurst))
}

// refusalTail encodes a ResourceExhausted code and msg as the end of a
// Response.
func refusalTail(msg string) []byte {
	b := protowire.AppendTag(nil, 2, protowire.VarintType) // Response.code
	b = protowire.AppendVarint(b, uint64(rpc.ResourceExhausted))
	b = protowire.AppendTag(b, 3, protowire.BytesType) // Response.message
	return protowire.AppendString(b, msg)
}
