package tcp

import (
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/wire"
)

// maxSpareBuf is the largest outbox buffer a writer keeps for reuse after
// writing it; a larger one (left by a burst) is dropped so that one burst
// does not pin its memory.
const maxSpareBuf = 1 << 20

// outbox holds the frames waiting to be written to one peer: encoded,
// back to back, in one buffer. Senders append to it under its mutex; the
// connection's writer swaps the whole buffer for an empty one and writes it
// with one system call, so a burst of sends costs a few writes, not one per
// message. It outlives connections, so a reconnect loses nothing that was
// not yet taken by a writer.
type outbox struct {
	peer   actor.Addr
	mu     sync.Mutex
	buf    []byte // whole frames, in send order
	frames int    // frames in buf
	busy   bool   // a writer took frames and has not finished writing them
	// ready has room for one signal. Send signals it when buf goes from
	// empty to non-empty; a writer waits on it.
	ready chan struct{}
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
	wasEmpty := start == 0
	o.mu.Unlock()
	if wasEmpty {
		o.signal()
	}
	return nil
}

// signal wakes the writer, if it is not already due to wake.
func (o *outbox) signal() {
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// take returns the waiting frames and gives the outbox spare, emptied, to
// fill next. The caller owns the returned buffer.
func (o *outbox) take(spare []byte) []byte {
	o.mu.Lock()
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
	o.mu.Unlock()
}

// idle reports whether nothing waits and nothing is being written.
func (o *outbox) idle() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.frames == 0 && !o.busy
}

// pending reports whether frames are waiting.
func (o *outbox) pending() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.frames > 0
}
