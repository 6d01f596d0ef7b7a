package gate

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

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

// wsConn is a client on WebSocket: every frame is one binary message.
type wsConn struct {
	ws *websocket.Conn
	// raw is the connection under ws (see hijackConn), where reads get
	// their deadline: a read whose context ends closes the WebSocket at
	// once, leaving no way to tell the client why. nil when the handler
	// could not see it: reads then take a context deadline.
	raw    net.Conn
	remote string
	ctx    context.Context // ends when the gateway closes
	max    int             // Limits.MaxFrame
}

func (c *wsConn) read(deadline time.Time) ([]byte, error) {
	ctx := c.ctx
	if c.raw != nil {
		if err := c.raw.SetReadDeadline(deadline); err != nil {
			return nil, err
		}
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(c.ctx, deadline)
		defer cancel()
	}
	typ, r, err := c.ws.Reader(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, errTextMessage
	}
	// One byte more than the limit tells a message too large, which is
	// left unread (the close handshake skips it); the WebSocket's own
	// limit, just above, would close the connection without a word.
	b, err := io.ReadAll(io.LimitReader(r, int64(c.max)+1))
	if err != nil {
		if isTimeout(err) {
			return nil, &SlowFrameError{Got: len(b), Err: err}
		}
		return nil, err
	}
	if len(b) > c.max {
		return nil, fmt.Errorf("%w: a WebSocket message of more than %d bytes", wire.ErrFrameTooLarge, c.max)
	}
	return b, nil
}

// errTextMessage: the protocol is binary.
var errTextMessage = errors.New("gate: a WebSocket text message (frames are binary messages)")

func (c *wsConn) writeFrames(frames [][]byte) error {
	// Not bounded by the gateway's end: Close cuts off a slow client by
	// closing the connection, after the last frames had their chance (and
	// a refusal's Close frame goes out even after Close).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), writeTimeout)
	defer cancel()
	for _, f := range frames {
		if err := c.ws.Write(ctx, websocket.MessageBinary, f); err != nil {
			return err
		}
	}
	return nil
}

// finish writes the Close frame, then closes the WebSocket with its
// status and reason: the close handshake, which waits for the client's
// close (the caller bounds the wait by closing the connection).
func (c *wsConn) finish(e ending) bool {
	if e.code != 0 && !e.told {
		if b, err := gatepb.Encode(closeFrame(uint32(e.code), e.reason)); err == nil {
			_ = c.writeFrames([][]byte{b})
		}
	}
	wsClose(c.ws, c.raw, e.ws, e.reason)
	return false
}

// wsClose closes ws with a close handshake: status and reason, then the
// client's close, read under a fresh deadline (a reader that timed out
// left one in the past), bounded by lingerTimeout.
func wsClose(ws *websocket.Conn, raw net.Conn, status websocket.StatusCode, reason string) {
	if raw != nil {
		_ = raw.SetReadDeadline(time.Now().Add(lingerTimeout))
	}
	_ = ws.Close(status, wsReason(reason))
}

// close closes the connection at once: the socket first, which ends a
// close handshake in progress (ws.CloseNow would wait for it).
func (c *wsConn) close() error {
	if c.raw != nil {
		_ = c.raw.Close()
	}
	return c.ws.CloseNow()
}
func (c *wsConn) remoteAddr() string { return c.remote }
func (c *wsConn) kind() string       { return "ws" }

// hijackConn is an http.ResponseWriter that keeps the connection
// websocket.Accept hijacks, so that the gateway can set read deadlines on
// it (see wsConn.raw).
type hijackConn struct {
	http.ResponseWriter
	conn net.Conn
}

// Hijack implements http.Hijacker.
func (h *hijackConn) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if nc != nil {
		// The server's read and write deadlines (ReadTimeout,
		// WriteTimeout) are not the session's: it sets its own.
		_ = nc.SetDeadline(time.Time{})
	}
	h.conn = nc
	return nc, brw, err
}

// Unwrap returns the ResponseWriter it wraps (see http.ResponseController).
func (h *hijackConn) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// isWSTooBig reports whether err is WebSocket's "message too big" (the
// read limit, which is MaxFrame).
func isWSTooBig(err error) bool {
	return websocket.CloseStatus(err) == websocket.StatusMessageTooBig || strings.Contains(err.Error(), "read limited at")
}
