package gate

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/wire"
)

// An ending is why the gateway ends a connection: the framed protocol's
// Close frame (code and reason), and a cause where the code alone does
// not say. An adapter's protocol says it in its own terms from the code
// and the cause (see Ending), and so does a transport (WebSocket: package
// gate/websocket gives each ending a close status). Every way a
// connection ends that the gateway chooses has one, so that the client is
// told why (docs/PROTOCOL.md, section 3.6). The session decides it; the
// connection says it after the last frames (clientConn.finish).
type ending struct {
	// code is the Close frame's code; 0 for a clean end (the client's
	// goodbye, or the client closed the connection), which has no Close
	// frame.
	code   rpc.Code
	reason string
	// cause tells apart endings of the same code (see Cause).
	cause Cause
	// told: the client was told already, in its own protocol's terms (a
	// refusing HandshakeAck, or an adapter's answer): no Close frame
	// follows, and an adapter's transport ends cleanly (WebSocket: 1000).
	told bool
	// refuse: the gateway refuses the connection before its handshake
	// (full, shutting down, its source over its limits): an adapter may
	// await the client's handshake briefly, to answer it with the refusal.
	refuse bool
	// err is the adapter's *EndError that ended the reads, for its Finish.
	err error
	// silent: a refusal of a source that was told why refusalTells times
	// in the last second: the connection is closed without a word (see
	// limitTable.open).
	silent bool
}

// clean is the ending of a connection that its client ended: no Close
// frame (WebSocket: 1000).
var clean = ending{}

// endingOf returns the ending for a Close frame with code and reason, of
// the usual cause; see the functions below for the endings with a cause
// of their own.
func endingOf(code rpc.Code, reason string) ending {
	return ending{code: code, reason: reason}
}

// GoingAway is the code of the Close frame that tells a client its gateway
// is shutting down (Shutdown or Close): rpc.Unavailable, 14. It is
// distinct from a kick (rpc.PermissionDenied) and a login elsewhere
// (rpc.AlreadyExists). It comes after the answer to every request the
// gateway forwarded to a service, so a request still unanswered was
// handled by none: a client may send it again, to another gateway.
// WebSocket clients (package gate/websocket) then get close status 1001
// (going away) too; MQTT 5 clients (package gate/mqtt) get DISCONNECT
// 0x8B (Server shutting down) instead.
const GoingAway = rpc.Unavailable

// GoingAwayReason is the reason of the GoingAway Close frame.
const GoingAwayReason = "gateway shutting down"

// goingAway is the ending of a session whose gateway shuts down.
func goingAway() ending { return endingOf(GoingAway, GoingAwayReason) }

// gatewayFull is the ending of a connection refused because the gateway
// has max connections: Close{14}, CauseGatewayFull (WebSocket 1013, try
// again later).
func gatewayFull(max int) ending {
	e := endingOf(rpc.Unavailable, fmt.Sprintf("the gateway is full (%d connections)", max))
	e.cause = CauseGatewayFull
	return e
}

// slowClient is the ending of a client too slow to read its frames (its
// write queue is over its bounds, which why names: "write queue full:
// 262144 bytes", "write queue 5s behind"): Close{8}, CauseSlowClient
// (WebSocket 1008, policy violation).
func slowClient(why string) ending {
	e := endingOf(rpc.ResourceExhausted, fmt.Sprintf("the client does not read fast enough (%s)", why))
	e.cause = CauseSlowClient
	return e
}

// errSlowClient is the close reason of a client that does not read fast
// enough.
var errSlowClient = errors.New("gate: the client does not read fast enough")

// idleError is a read that found nothing within the connection's idle
// limit: 3 × Limits.Heartbeat.
type idleError struct {
	limit time.Duration
	err   error
}

func (e *idleError) Error() string {
	return fmt.Sprintf("nothing received for %v (heartbeat lost)", e.limit)
}

func (e *idleError) Unwrap() error { return e.err }

// A SlowFrameError is a read that timed out in the middle of a frame:
// the client began the frame and did not finish it before the read
// deadline (a frame must arrive whole within it), which is not the same
// as sending nothing. The gateway's stream connections return it, and a
// Transport's Read does. It ends the connection with DeadlineExceeded,
// and its session is not kept for resumption: the client is too slow,
// not lost.
type SlowFrameError struct {
	// Got is the bytes of the frame received, its length prefix (on a
	// stream) included.
	Got int
	// Size is the frame's size, with its prefix; 0 when unknown (a
	// message's size is known only once it ends).
	Size int
	// Err is the read's timeout error.
	Err error
}

// Error says how much of the frame arrived.
func (e *SlowFrameError) Error() string {
	if e.Size > 0 {
		return fmt.Sprintf("a frame did not arrive whole in time (%d of %d bytes)", e.Got, e.Size)
	}
	return fmt.Sprintf("a frame did not arrive whole in time (%d bytes)", e.Got)
}

// Unwrap returns Err.
func (e *SlowFrameError) Unwrap() error { return e.Err }

// handshakeError is a handshake that failed: refused (its client was told
// by a HandshakeAck), or broken.
type handshakeError struct {
	e   ending
	err error
}

func (e *handshakeError) Error() string { return e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// readEnding returns the ending for err, the error that ended a
// connection's reads (its reader's), and the error OnClose gets (nil for a
// goodbye, which is err nil).
func (g *Gateway) readEnding(err error, idle time.Duration) (ending, error) {
	if err == nil {
		return clean, nil
	}
	var he *handshakeError
	if errors.As(err, &he) {
		return he.e, err
	}
	var ee *EndError
	if errors.As(err, &ee) {
		e := endingOf(ee.Code, ee.Reason)
		e.told, e.err = ee.Told, ee
		return e, err
	}
	var ie *idleError
	var se *SlowFrameError
	switch {
	case errors.As(err, &se):
		err = fmt.Errorf("%s: a frame must arrive whole within the read deadline, %v (3 × heartbeat)", se.Error(), idle)
		return endingOf(rpc.DeadlineExceeded, err.Error()), err
	case errors.Is(err, wire.ErrFrameTooLarge):
		err = fmt.Errorf("frame too large (limit %d bytes)", g.lim.MaxFrame)
		return endingOf(rpc.ResourceExhausted, err.Error()), err
	case errors.As(err, &ie):
		return endingOf(rpc.DeadlineExceeded, ie.Error()), ie
	case isTimeout(err):
		ie = &idleError{limit: idle, err: err}
		return endingOf(rpc.DeadlineExceeded, ie.Error()), ie
	case errors.Is(err, io.EOF):
		return clean, errors.New("the client closed the connection")
	}
	// The connection failed (reset, closed under the reader): nobody is
	// left to tell.
	return clean, err
}

// lostConn reports whether err, the error that ended a connection's
// reads, says the connection was lost rather than ended: reset, closed
// without a goodbye, silent past the heartbeat deadline. A resumable
// session detaches then (see resume.go); a goodbye (err nil) and a broken
// rule (a frame too large or too slow, an adapter's or a transport's
// EndError, a WebSocket text message say) end it.
func lostConn(err error) bool {
	var he *handshakeError
	var ee *EndError
	var se *SlowFrameError
	switch {
	case err == nil, errors.As(err, &he), errors.As(err, &ee), errors.As(err, &se),
		errors.Is(err, wire.ErrFrameTooLarge):
		return false
	}
	return true
}
