package tcp

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/wire"
)

// maxSpareBuf is the largest outbox buffer a writer keeps for reuse after
// writing it; a larger one (left by a burst) is dropped so that one burst
// does not pin its memory.
const maxSpareBuf = 1 << 20

// directAfter is how long a connection must have been quiet (no write
// ended) for a sender to write to it directly. A request every round trip
// (tens of µs) is written at once; a stream of sends, closer than this,
// goes to the writer, which writes them in batches.
const directAfter = 10 * time.Microsecond

// outbox holds the frames waiting to be written to one peer: encoded,
// back to back, in one buffer. Senders append to it under its mutex; the
// connection's writer swaps the whole buffer for an empty one and writes it
// with one system call, so a burst of sends costs a few writes, not one per
// message. It outlives connections, so a reconnect loses nothing that was
// not yet taken by a writer.
//
// When nothing is being written, a sender writes the frames itself (see
// put): one non-blocking write from the sender's goroutine, instead of
// waking the writer goroutine, which on a busy machine costs more than
// the write. What the socket does not take at once goes back to the front
// of the buffer for the writer. Whoever writes holds busy, so frames leave
// in order and never interleave.
type outbox struct {
	peer   actor.Addr
	mu     sync.Mutex
	buf    []byte // whole frames, in send order
	frames int    // frames in buf
	busy   bool   // a writer (or a sender writing directly) took frames and has not finished writing them
	// direct is the connection senders may write to themselves, set by its
	// writer once it may write (nil while there is none, and for TLS).
	direct *conn
	spare  []byte // an emptied buffer for put's direct writes to swap in
	// lastWrite is when the last write ended (monotonic clock, see
	// elapsed): a sender writes directly only to a connection that has
	// been quiet for directAfter, so a stream of sends is batched by the
	// writer, not written one system call each.
	lastWrite time.Time
	// rest is what a direct write left of a frame the socket took only
	// part of, with the frames after it: it must follow on restConn, the
	// connection that has the frame's start, before anything else; any
	// other connection drops it (see take), as a failed write loses what
	// it had taken.
	rest     []byte
	restConn *conn
	// Direct writes made, and those the socket did not take whole: for
	// tests, which must see both paths taken.
	directWrites, directShort int
	// ready has room for one signal. Send signals it when buf goes from
	// empty to non-empty; a writer waits on it.
	ready chan struct{}
	// sentFrames and sentBytes count the frames put queued and their
	// bytes, for Transport.PeerStats (under mu, as put holds it anyway).
	sentFrames, sentBytes uint64
	// full is the error put returns when the outbox is full, made once:
	// under overload, refusing must stay cheap.
	full error
}

func newOutbox(peer actor.Addr, limit int) *outbox {
	return &outbox{
		peer:  peer,
		ready: make(chan struct{}, 1),
		full:  fmt.Errorf("%w: peer %v, %d envelopes", transport.ErrPendingQueueFull, peer, limit),
	}
}

// put encodes env as a frame at the end of the buffer. It fails when limit
// frames are already waiting, or when the frame body exceeds maxFrame.
func (o *outbox) put(env *wire.Envelope, limit, maxFrame int) error {
	o.mu.Lock()
	if o.frames >= limit {
		o.mu.Unlock()
		return o.full
	}
	start := len(o.buf)
	// Frame header first, patched once the body's length is known: one
	// pass over the envelope, no copy of the body.
	o.buf = append(o.buf, 0, 0, 0, 0)
	o.buf = env.AppendTo(o.buf)
	body := len(o.buf) - start - wire.FrameHeaderSize
	if body > maxFrame {
		o.buf = o.buf[:start]
		o.mu.Unlock()
		return fmt.Errorf("tcp: envelope to %v of %d bytes, MaxFrame %d: %w", o.peer, body, maxFrame, wire.ErrFrameTooLarge)
	}
	binary.BigEndian.PutUint32(o.buf[start:], uint32(body))
	o.frames++
	o.sentFrames++
	o.sentBytes += uint64(body + wire.FrameHeaderSize)
	if c := o.direct; c != nil && !o.busy && o.rest == nil && !c.closing() && time.Since(o.lastWrite) >= directAfter {
		o.writeDirect(c) // unlocks o.mu
		return nil
	}
	wasEmpty := start == 0
	o.mu.Unlock()
	if wasEmpty {
		o.signal()
	}
	return nil
}

// writeDirect writes the waiting frames to c from the caller's goroutine,
// with one non-blocking write; o.mu is held, and released. When the
// socket takes nothing (it is full) the frames go back to the front of
// the buffer, for any connection's writer; when it takes part, the rest
// (which starts inside a frame) is kept for c's writer only (o.rest). A
// failed write closes the connection (its reader then fails it, from its
// own goroutine), which loses the frames as a writer's failed write does,
// unless the socket took none of them (it was closed already: the
// connection failed, and its writer has not detached yet): then they go
// back to the front of the buffer, for the next connection, as what is
// sent once a peer is lost is kept.
func (o *outbox) writeDirect(c *conn) {
	b := o.buf
	nb := o.frames
	o.buf, o.spare = o.spare[:0], nil
	o.frames = 0
	o.busy = true
	o.mu.Unlock()

	n, err := c.tryWrite(b)

	o.mu.Lock()
	o.busy = false
	o.lastWrite = time.Now()
	o.directWrites++
	if rest := b[n:]; err == nil && len(rest) > 0 {
		o.directShort++
		if n == 0 { // whole frames: first in line, before what was put meanwhile
			b = append(b, o.buf...)
			o.spare, o.buf = o.buf[:0], b
		} else {
			o.rest, o.restConn = rest, c
		}
		o.frames++ // at least one frame, whole or in part
	} else if err != nil && n == 0 {
		b = append(b, o.buf...)
		o.spare, o.buf = o.buf[:0], b
		o.frames += nb
	} else if cap(b) <= maxSpareBuf {
		o.spare = b[:0]
	}
	wake := len(o.buf) > 0 || o.rest != nil
	o.mu.Unlock()
	if err != nil {
		c.directFailed(err)
	}
	if wake {
		o.signal()
	}
}

// attach lets senders write to c directly (see writeDirect); its writer
// calls it once it is the peer's only writer.
func (o *outbox) attach(c *conn) {
	o.mu.Lock()
	o.direct = c
	o.mu.Unlock()
}

// detach stops direct writes to c; its writer calls it as it ends.
func (o *outbox) detach(c *conn) {
	o.mu.Lock()
	if o.direct == c {
		o.direct = nil
	}
	o.mu.Unlock()
}

// claim takes the right to write (for a heartbeat) if nobody is writing
// and no direct write left part of a frame to finish (a heartbeat then
// would land inside that frame: the stream would be corrupt); written
// gives it back.
func (o *outbox) claim() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.busy || o.rest != nil {
		return false
	}
	o.busy = true
	return true
}

// drop discards the waiting frames.
func (o *outbox) drop() {
	o.mu.Lock()
	o.buf = o.buf[:0]
	o.rest, o.restConn = nil, nil
	o.frames = 0
	o.mu.Unlock()
}

// signal wakes the writer, if it is not already due to wake.
func (o *outbox) signal() {
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// take returns the waiting frames for c's writer and gives the outbox
// spare, emptied, to fill next. The caller owns the returned buffer. While
// a sender writes directly it returns spare, empty: that sender wakes the
// writer again if frames are left when it is done. What a direct write
// left of a frame on c comes first; left on another connection, it is
// dropped.
func (o *outbox) take(spare []byte, c *conn) []byte {
	o.mu.Lock()
	if o.busy {
		o.mu.Unlock()
		return spare[:0]
	}
	if o.rest != nil {
		rest, on := o.rest, o.restConn
		o.rest, o.restConn = nil, nil
		if on == c {
			out := make([]byte, 0, len(rest)+len(o.buf))
			out = append(append(out, rest...), o.buf...)
			o.buf = o.buf[:0] // copied into out
			o.frames = 0
			o.busy = true
			o.mu.Unlock()
			return out
		}
	}
	out := o.buf
	o.buf = spare[:0]
	o.frames = 0
	o.busy = len(out) > 0
	o.mu.Unlock()
	return out
}

// written tells the outbox that the frames last taken are written (or
// failed).
func (o *outbox) written() {
	o.mu.Lock()
	o.busy = false
	o.lastWrite = time.Now()
	o.mu.Unlock()
}

// idle reports whether nothing waits and nothing is being written.
func (o *outbox) idle() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.frames == 0 && !o.busy && o.rest == nil
}

// pending reports whether frames are waiting.
func (o *outbox) pending() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.frames > 0
}

// stats returns the outbox's share of a PeerStats: frames waiting, and
// frames and bytes queued since it was made.
func (o *outbox) stats() (queued int, frames, bytes uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.frames, o.sentFrames, o.sentBytes
}
