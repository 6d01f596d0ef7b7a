package gate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
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
	close() error
	remoteAddr() string
	// kind names the listener: "tcp", "kcp" or "ws".
	kind() string
}

// streamConn is a client on a byte stream (TCP, KCP): every frame is a
// length prefix and the encoded Frame. It reads without a buffered reader:
// the prefix, then the body into a pooled buffer, so that an idle
// connection, blocked on its next prefix, holds no read buffer.
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
	if _, err := io.ReadFull(c.nc, c.hdr[:]); err != nil {
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
	if _, err := io.ReadFull(c.nc, buf[:n]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
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

func (c *streamConn) close() error       { return c.nc.Close() }
func (c *streamConn) remoteAddr() string { return c.nc.RemoteAddr().String() }
func (c *streamConn) kind() string       { return c.network }

// wsConn is a client on WebSocket: every frame is one binary message.
type wsConn struct {
	ws     *websocket.Conn
	remote string
	ctx    context.Context // ends when the connection's HTTP request does
}

func (c *wsConn) read(deadline time.Time) ([]byte, error) {
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	typ, b, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, errTextMessage
	}
	return b, nil
}

// errTextMessage: the protocol is binary.
var errTextMessage = errors.New("gate: a WebSocket text message (frames are binary messages)")

func (c *wsConn) writeFrames(frames [][]byte) error {
	ctx, cancel := context.WithTimeout(c.ctx, writeTimeout)
	defer cancel()
	for _, f := range frames {
		if err := c.ws.Write(ctx, websocket.MessageBinary, f); err != nil {
			return err
		}
	}
	return nil
}

func (c *wsConn) close() error       { return c.ws.CloseNow() }
func (c *wsConn) remoteAddr() string { return c.remote }
func (c *wsConn) kind() string       { return "ws" }

// isWSTooBig reports whether err is WebSocket's "message too big" (the
// read limit, which is MaxFrame).
func isWSTooBig(err error) bool {
	return websocket.CloseStatus(err) == websocket.StatusMessageTooBig || strings.Contains(err.Error(), "read limited at")
}
