package gate

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
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
// length prefix and the encoded Frame.
type streamConn struct {
	nc      net.Conn
	fr      *wire.FrameReader
	network string
	headers []byte // writer's scratch: the length prefixes of a batch
	bufs    net.Buffers
}

func newStreamConn(nc net.Conn, network string, maxFrame int) *streamConn {
	return &streamConn{nc: nc, fr: wire.NewFrameReader(nc, maxFrame), network: network}
}

func (c *streamConn) read(deadline time.Time) ([]byte, error) {
	if err := c.nc.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	return c.fr.Next()
}

func (c *streamConn) writeFrames(frames [][]byte) error {
	c.headers = c.headers[:0]
	for _, f := range frames {
		c.headers = binary.BigEndian.AppendUint32(c.headers, uint32(len(f)))
	}
	c.bufs = c.bufs[:0]
	for i, f := range frames {
		c.bufs = append(c.bufs, c.headers[i*gatepb.HeaderSize:(i+1)*gatepb.HeaderSize], f)
	}
	if err := c.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	bufs := c.bufs // WriteTo consumes its receiver
	_, err := bufs.WriteTo(c.nc)
	clear(c.bufs)
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
