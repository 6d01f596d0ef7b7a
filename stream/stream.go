package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/guildkit/guild/actor"
)

// Stream is one ordered, flow-controlled byte stream between two nodes,
// multiplexed with the other streams between them over their stream
// connection. It is a net.Conn: Read, Write, deadlines, Close. Read and
// Write may be called concurrently with each other (one reader, one
// writer); Close from any goroutine wakes both.
//
// Errors: io.EOF when the peer closed its side (Close or CloseWrite) and
// every byte has been read; ErrPeerGone when the peer's node died or left
// or the connection broke; ErrClosed when this node's Host closed;
// ErrStreamClosed after this side's Close; os.ErrDeadlineExceeded after a
// deadline. A stream whose peer closed it just before the connection broke
// may report ErrPeerGone instead of io.EOF: treat both as the end, and
// only io.EOF as a clean one.
type Stream struct {
	h       *Host
	sess    *session
	ys      *yamux.Stream
	hdr     openHeader
	inbound bool

	closed    atomic.Bool
	done      chan struct{} // closed by Close: wakes a Write waiting for MaxRate or BusyRate
	closeOnce sync.Once
	wdl       atomic.Pointer[time.Time] // the write deadline, for MaxRate's and BusyRate's waits
}

var _ net.Conn = (*Stream)(nil)

func newStream(h *Host, s *session, ys *yamux.Stream, hdr openHeader, inbound bool) *Stream {
	h.active.Add(1)
	return &Stream{h: h, sess: s, ys: ys, hdr: hdr, inbound: inbound, done: make(chan struct{})}
}

// handshake writes the open header and reads the acceptor's status,
// within ctx.
func (s *Stream) handshake(ctx context.Context) (byte, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = s.ys.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.ys.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var status [1]byte
	_, err := s.ys.Write(appendOpen(make([]byte, 0, 4+len(s.hdr.service)+len(s.hdr.info)), s.hdr))
	if err == nil {
		_, err = io.ReadFull(s.ys, status[:])
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("stream: open to %v: %w", s.sess.peer, ctx.Err())
		}
		if errors.Is(err, yamux.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
			// The deadline is ctx's: yamux's timer can fire a moment
			// before ctx's does.
			return 0, fmt.Errorf("stream: open to %v: %w", s.sess.peer, context.DeadlineExceeded)
		}
		return 0, s.mapErr(err)
	}
	if !stop() {
		return 0, fmt.Errorf("stream: open to %v: %w", s.sess.peer, ctx.Err())
	}
	_ = s.ys.SetDeadline(time.Time{})
	return status[0], nil
}

// Peer returns the address of the node at the other end.
func (s *Stream) Peer() actor.Addr { return s.sess.peer }

// Service returns the service the stream was opened for ("" for the
// default one).
func (s *Stream) Service() string { return s.hdr.service }

// Info returns the info the opener passed (WithInfo): for a stream from a
// gateway, the client's remote address.
func (s *Stream) Info() string { return s.hdr.info }

// Read reads from the stream. See Stream for its errors.
func (s *Stream) Read(b []byte) (int, error) {
	n, err := s.ys.Read(b)
	if err != nil {
		err = s.mapErr(err)
	}
	return n, err
}

// Write writes to the stream. It blocks while the peer's buffer for the
// stream (Config.StreamWindow) is full, until the peer reads or the write
// deadline passes. See Stream for its errors.
func (s *Stream) Write(b []byte) (int, error) {
	total := 0
	for {
		chunk := b[:min(len(b), writeSlice)]
		if err := s.pace(len(chunk)); err != nil {
			return total, err
		}
		n, err := s.ys.Write(chunk)
		total += n
		b = b[n:]
		if err != nil {
			return total, s.mapErr(err)
		}
		if len(b) == 0 {
			return total, nil
		}
		runtime.Gosched()
	}
}

// pace waits until n more bytes fit the Host's MaxRate and, while actor
// messages flow to the stream's peer, its BusyRate.
func (s *Stream) pace(n int) error {
	cfg := &s.h.cfg
	if cfg.MaxRate <= 0 && cfg.BusyRate <= 0 {
		return nil
	}
	var dl time.Time
	if p := s.wdl.Load(); p != nil {
		dl = *p
	}
	err := func() error {
		if cfg.MaxRate > 0 {
			if err := s.h.pace.wait(n, cfg.MaxRate, dl, s.done, s.h.quit); err != nil {
				return err
			}
		}
		if cfg.BusyRate > 0 {
			if p, busy := s.h.act.busy(s.sess.peer); busy {
				return p.wait(n, cfg.BusyRate, dl, s.done, s.h.quit)
			}
		}
		return nil
	}()
	if err != nil && s.closed.Load() {
		err = ErrStreamClosed
	}
	return err
}

// writeSlice is the most Write hands yamux at once: between slices it
// yields the processor (runtime.Gosched), so that a bulk stream does not
// hold both of a small machine's cores while actor traffic waits for one
// (see BenchmarkStreamActorLatency).
const writeSlice = 32 << 10

// CloseWrite closes this side's half: the peer reads io.EOF once it has
// read everything written before; this side may still Read.
func (s *Stream) CloseWrite() error {
	if err := s.ys.Close(); err != nil {
		return s.mapErr(err)
	}
	return nil
}

// Close closes the stream: the peer reads io.EOF after what was written;
// a Read or Write blocked here returns ErrStreamClosed. It frees the
// stream's place under Config.MaxStreamsPerPeer. It is safe to call twice.
func (s *Stream) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.done)
		s.sess.streams.Add(-1)
		s.h.active.Add(-1)
		err = s.ys.Close()
		_ = s.ys.SetDeadline(time.Unix(1, 0)) // wake a blocked Read or Write
		if err != nil && !s.sess.ys.IsClosed() {
			err = s.mapErr(err)
		} else {
			err = nil
		}
	})
	return err
}

// mapErr turns yamux's errors into this package's.
func (s *Stream) mapErr(err error) error {
	if s.closed.Load() {
		return ErrStreamClosed
	}
	switch {
	case errors.Is(err, yamux.ErrTimeout):
		return os.ErrDeadlineExceeded
	case err == io.EOF:
		if s.sess.ys.IsClosed() {
			return s.sess.cause()
		}
		return io.EOF
	case errors.Is(err, yamux.ErrSessionShutdown):
		return s.sess.cause()
	case errors.Is(err, yamux.ErrStreamClosed):
		if s.sess.ys.IsClosed() {
			// yamux closed the stream because its session ended (the
			// peer died or left, or a Host closed): that is why, not a
			// Close of this side's.
			return s.sess.cause()
		}
		return ErrStreamClosed
	case errors.Is(err, yamux.ErrConnectionReset):
		if s.sess.ys.IsClosed() {
			return s.sess.cause()
		}
		return fmt.Errorf("%w: the stream was reset by %v", ErrPeerGone, s.sess.peer)
	}
	if s.sess.ys.IsClosed() {
		return s.sess.cause()
	}
	return fmt.Errorf("stream: %w", err)
}

// LocalAddr returns the local address of the stream's connection.
func (s *Stream) LocalAddr() net.Addr { return s.sess.ys.LocalAddr() }

// RemoteAddr returns the remote address of the stream's connection.
func (s *Stream) RemoteAddr() net.Addr { return s.sess.ys.RemoteAddr() }

// SetDeadline sets the read and write deadlines, as net.Conn's.
func (s *Stream) SetDeadline(t time.Time) error {
	s.wdl.Store(&t)
	return s.ys.SetDeadline(t)
}

// SetReadDeadline sets the read deadline, as net.Conn's.
func (s *Stream) SetReadDeadline(t time.Time) error { return s.ys.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline, as net.Conn's. It bounds a
// wait for Config.MaxRate or Config.BusyRate too.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.wdl.Store(&t)
	return s.ys.SetWriteDeadline(t)
}

// OpenOption is an optional setting of OpenStream.
type OpenOption interface{ apply(*openHeader) }

type optionFunc func(*openHeader)

func (f optionFunc) apply(h *openHeader) { f(h) }

// WithService asks the peer for the handler registered for service
// (Host.Handle) instead of the default one. At most MaxServiceLen bytes.
func WithService(service string) OpenOption {
	return optionFunc(func(h *openHeader) { h.service = service })
}

// WithInfo passes info to the peer's handler (Stream.Info), such as the
// address of the client a gateway opens the stream for. At most
// MaxInfoLen bytes.
func WithInfo(info string) OpenOption {
	return optionFunc(func(h *openHeader) { h.info = info })
}
