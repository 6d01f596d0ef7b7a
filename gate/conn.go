package gate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/wire"
)

// writeTimeout bounds one write to a client: a client that takes no bytes
// for this long is cut off.
const writeTimeout = 10 * time.Second

// clientConn is one client connection, whatever its listener. read is
// called by the connection's reader goroutine only, writeFrames by its
// writer goroutine only; close from anywhere, more than once.
type clientConn interface {
	// read returns the next frame's bytes, valid until the next read. It
	// fails once deadline has passed with nothing read.
	read(deadline time.Time) ([]byte, error)
	// writeFrames writes encoded frames (without length prefixes), in
	// order.
	writeFrames(frames [][]byte) error
	// finish ends the connection after its last frames, from the writer
	// (or from the goroutine that refuses a connection, when no writer
	// runs): it tells the client why, as its protocol says it (a Close
	// frame, an adapter's Conn.Finish, a WebSocket close status), then shuts
	// down the sending side where the transport has one (TCP, TLS), so
	// that the client reads everything, sees the end and closes its side,
	// which ends the reader. It reports whether the connection is left to
	// linger so, or was closed; the caller bounds both (a WebSocket's
	// close handshake waits for the client), by closing the connection.
	// Closing at once could lose the last frames: a TCP close with unread
	// input resets the connection and drops unsent output.
	finish(e ending) bool
	close() error
	remoteAddr() string
	// kind names the listener: "tcp", "ws", ServeListener's network
	// ("kcp"), or an adapter's ("mqtt", "mqtt-ws").
	kind() string
}

// streamConn is a client on a byte stream (TCP, KCP, any listener given
// to ServeListener): every frame is a length prefix and the encoded
// Frame. It reads without a buffered reader: the prefix, then the body
// into a pooled buffer, so that an idle connection, blocked on its next
// prefix, holds no read buffer.
type streamConn struct {
	nc      net.Conn
	network string
	max     int
	bufs    *sync.Pool // of *[]byte, the gateway's read buffers
	hdr     [gatepb.HeaderSize]byte
	body    *[]byte // the last frame's buffer, returned on the next read
	headers []byte  // writer's scratch: the length prefixes of a batch
	out     net.Buffers
}

func newStreamConn(nc net.Conn, network string, maxFrame int, bufs *sync.Pool) *streamConn {
	return &streamConn{nc: nc, network: network, max: maxFrame, bufs: bufs}
}

// pooledBuf is the size of the pooled read buffers; larger frames get a
// buffer of their own.
const pooledBuf = 4 << 10

func (c *streamConn) read(deadline time.Time) ([]byte, error) {
	if c.body != nil {
		c.bufs.Put(c.body)
		c.body = nil
	}
	if err := c.nc.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	if got, err := io.ReadFull(c.nc, c.hdr[:]); err != nil {
		if got > 0 && isTimeout(err) {
			return nil, &SlowFrameError{Got: got, Err: err}
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(c.hdr[:]))
	if n > c.max || n < 0 {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", wire.ErrFrameTooLarge, n, c.max)
	}
	var buf []byte
	if n <= pooledBuf {
		p, _ := c.bufs.Get().(*[]byte)
		if p == nil {
			b := make([]byte, pooledBuf)
			p = &b
		}
		c.body, buf = p, *p
	} else {
		buf = make([]byte, n)
	}
	if got, err := io.ReadFull(c.nc, buf[:n]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		if isTimeout(err) {
			return nil, &SlowFrameError{Got: gatepb.HeaderSize + got, Size: gatepb.HeaderSize + n, Err: err}
		}
		return nil, err
	}
	return buf[:n:n], nil
}

func (c *streamConn) writeFrames(frames [][]byte) error {
	c.headers = c.headers[:0]
	for _, f := range frames {
		c.headers = binary.BigEndian.AppendUint32(c.headers, uint32(len(f)))
	}
	c.out = c.out[:0]
	for i, f := range frames {
		c.out = append(c.out, c.headers[i*gatepb.HeaderSize:(i+1)*gatepb.HeaderSize], f)
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	bufs := c.out // WriteTo consumes its receiver
	_, err := bufs.WriteTo(c.nc)
	clear(c.out)
	return err
}

func (c *streamConn) finish(e ending) bool {
	if e.code != 0 && !e.told {
		if b, err := gatepb.Encode(closeFrame(uint32(e.code), e.reason)); err == nil {
			_ = c.writeFrames([][]byte{b})
		}
	}
	if hc, ok := c.nc.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite() == nil
	}
	if l, ok := c.nc.(interface{ Linger() time.Duration }); ok {
		// No half close (KCP): the transport says how long its client
		// needs to take what was written (see ServeListener).
		time.Sleep(l.Linger())
	}
	_ = c.nc.Close()
	return false
}

func (c *streamConn) close() error       { return c.nc.Close() }
func (c *streamConn) remoteAddr() string { return c.nc.RemoteAddr().String() }
func (c *streamConn) kind() string       { return c.network }
