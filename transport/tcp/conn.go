package tcp

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/guildkit/guild/wire"
)

// conn is one established connection to a peer. It has exactly two
// goroutines, readLoop and writeLoop, both started by installLocked and
// both ended by fail.
type conn struct {
	t      *Transport
	peer   *peer
	nc     net.Conn // raw, or the *tls.Conn over it
	raw    net.Conn // the TCP connection
	dialed bool     // this node dialled it
	// rawConn writes to raw without Go's blocking write (see tryWrite);
	// nil over TLS, where senders never write directly.
	rawConn syscall.RawConn
	try     tryState // tryWrite's

	established time.Time     // set by installLocked
	prevWriter  chan struct{} // the previous connection's writerDone: wait for it
	writerDone  chan struct{} // closed when writeLoop ends

	done     chan struct{} // closed by fail
	failOnce sync.Once
}

func (t *Transport) newConn(p *peer, nc, raw net.Conn, dialed bool) *conn {
	c := &conn{
		t: t, peer: p, nc: nc, raw: raw, dialed: dialed,
		writerDone: make(chan struct{}),
		done:       make(chan struct{}),
	}
	if sc, ok := raw.(syscall.Conn); ok && nc == raw && !t.cfg.QueuedWrites {
		if rc, err := sc.SyscallConn(); err == nil && canTryWrite {
			c.rawConn = rc
			c.initTry()
		}
	}
	return c
}

// fail closes the connection for cause, once, and tells the transport.
func (c *conn) fail(cause error) {
	c.failOnce.Do(func() {
		close(c.done)
		_ = c.raw.Close()
		c.t.connLost(c, cause)
	})
}

// closing reports whether fail has been called.
func (c *conn) closing() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// deadlineReader sets the read deadline before each read of the socket, so
// a peer that sends nothing for d is detected. A bufio-backed FrameReader
// reads the socket only when its buffer is empty, so this costs one
// deadline update per batch of frames, not per frame.
type deadlineReader struct {
	nc net.Conn
	d  time.Duration
}

func (r deadlineReader) Read(b []byte) (int, error) {
	if err := r.nc.SetReadDeadline(time.Now().Add(r.d)); err != nil {
		return 0, err
	}
	return r.nc.Read(b)
}

// readLoop reads frames and hands their envelopes to the Handler until the
// connection fails.
func (c *conn) readLoop() {
	t := c.t
	peer := c.peer.addr
	frames, bytes := &c.peer.recvFrames, &c.peer.recvBytes
	fr := wire.NewFrameReader(deadlineReader{c.nc, t.cfg.DeadAfter}, t.cfg.MaxFrame)
	var env wire.Envelope
	for {
		body, err := fr.Next()
		if err != nil {
			c.readFailed(err)
			return
		}
		if len(body) == 0 {
			continue // heartbeat
		}
		frames.Add(1)
		bytes.Add(uint64(len(body) + wire.FrameHeaderSize))
		if err := env.Unmarshal(body); err != nil {
			t.log.Warn("tcp: closing connection: corrupt frame", "peer", peer.String(), "err", err)
			c.fail(err)
			return
		}
		if !env.Kind.Known() {
			t.log.Debug("tcp: dropped an envelope of unknown kind", "peer", peer.String(), "kind", env.Kind.String())
			continue
		}
		t.cfg.Handler.HandleEnvelope(peer, &env)
	}
}

// readFailed logs why reading stopped, by cause, and closes the connection.
func (c *conn) readFailed(err error) {
	log, peer := c.t.log, c.peer.addr.String()
	switch {
	case c.closing():
		// Closed by this node (Close, replacement, write error).
	case errors.Is(err, io.EOF):
		log.Info("tcp: peer closed the connection", "peer", peer)
	case errors.Is(err, os.ErrDeadlineExceeded):
		log.Warn("tcp: closing connection: peer is dead (nothing received)", "peer", peer, "dead_after", c.t.cfg.DeadAfter)
	case errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, io.ErrUnexpectedEOF):
		log.Warn("tcp: closing connection: corrupt frame", "peer", peer, "err", err)
	default:
		log.Info("tcp: connection failed", "peer", peer, "err", err)
	}
	c.fail(err)
}

// writeFailed logs a failed write (unless the connection was closing
// anyway) and closes the connection.
func (c *conn) writeFailed(err error) {
	if !c.closing() {
		c.t.log.Info("tcp: write failed", "peer", c.peer.addr.String(), "err", err)
	}
	c.fail(err)
}

// directFailed handles a failed direct write, on a sender's goroutine: it
// logs it and closes the socket, so that the reader fails the connection
// from its own goroutine (the sender's may hold its caller's locks, and
// PeerLost calls into the cluster).
func (c *conn) directFailed(err error) {
	if !c.closing() {
		c.t.log.Info("tcp: write failed", "peer", c.peer.addr.String(), "err", err)
	}
	_ = c.raw.Close()
}

// writeLoop drains the peer's outbox into the connection: each time the
// outbox is signalled it takes every waiting frame and writes them with one
// call, never waiting on a timer. It writes a heartbeat when nothing was
// written for HeartbeatInterval.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	if c.prevWriter != nil {
		// Keep one writer per peer at a time, so envelopes leave in queue
		// order even across a replacement.
		select {
		case <-c.prevWriter:
		case <-c.done:
			return
		}
	}
	t := c.t
	out := c.peer.out
	if c.rawConn != nil {
		out.attach(c)
		defer out.detach(c)
	}
	out.signal() // frames may have waited for this connection
	var spare []byte
	beat := make([]byte, wire.FrameHeaderSize) // a heartbeat: an empty frame
	hb := time.NewTimer(t.cfg.HeartbeatInterval)
	defer hb.Stop()
	for {
		var err error
		select {
		case <-c.done:
			return
		case <-out.ready:
			b := out.take(spare, c)
			if len(b) == 0 {
				spare = b
				continue
			}
			_ = c.nc.SetWriteDeadline(time.Now().Add(t.cfg.DeadAfter))
			_, err = c.nc.Write(b)
			out.written()
			if cap(b) <= maxSpareBuf {
				spare = b[:0]
			} else {
				spare = nil
			}
		case <-hb.C:
			if out.claim() { // else a sender is writing: no need to beat
				_ = c.nc.SetWriteDeadline(time.Now().Add(t.cfg.DeadAfter))
				_, err = c.nc.Write(beat)
				out.written()
			}
		}
		if err != nil {
			c.writeFailed(err)
			return
		}
		hb.Reset(t.cfg.HeartbeatInterval)
	}
}
