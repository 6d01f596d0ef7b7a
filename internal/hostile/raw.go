package hostile

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/wire"
)

// rawConn is an attacker's framed-TCP connection, below package client.
type rawConn struct {
	nc net.Conn
	fr *wire.FrameReader
}

// dialRaw connects to t's framed-TCP gateway, with t's attackers' dialer.
func dialRaw(ctx context.Context, t Target) (*rawConn, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nc, err := t.dialer().DialContext(dctx, "tcp", t.TCP)
	if err != nil {
		return nil, err
	}
	return &rawConn{nc: nc, fr: wire.NewFrameReader(nc, 16*gatepb.DefaultMaxFrame)}, nil
}

// send writes frames, within 5 s.
func (r *rawConn) send(frames ...*gatepb.Frame) error {
	var b []byte
	for _, f := range frames {
		var err error
		if b, err = gatepb.AppendStream(b, f); err != nil {
			return err
		}
	}
	return r.write(b)
}

func (r *rawConn) write(b []byte) error {
	_ = r.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.nc.Write(b)
	return err
}

// next reads one frame, within d.
func (r *rawConn) next(d time.Duration) (*gatepb.Frame, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(d))
	b, err := r.fr.Next()
	if err != nil {
		return nil, err
	}
	var f gatepb.Frame
	return &f, gatepb.Decode(b, &f)
}

// handshake opens a session without a token.
func (r *rawConn) handshake() error {
	if err := r.send(&gatepb.Frame{Body: &gatepb.Frame_Handshake{Handshake: &gatepb.Handshake{Version: gatepb.Version, Client: "hostile"}}}); err != nil {
		return err
	}
	f, err := r.next(5 * time.Second)
	if err != nil {
		return err
	}
	if ack := f.GetHandshakeAck(); ack == nil || ack.GetCode() != 0 {
		return errors.New("hostile: handshake refused")
	}
	return nil
}

// untilClosed reads and discards until the gateway ends the connection
// or d passes, and returns the Close frame it sent, if any.
func (r *rawConn) untilClosed(d time.Duration) *gatepb.Close {
	deadline := time.Now().Add(d)
	for {
		f, err := r.next(time.Until(deadline))
		if err != nil {
			return nil
		}
		if c := f.GetClose(); c != nil {
			_ = r.nc.SetReadDeadline(deadline)
			_, _ = io.Copy(io.Discard, r.nc)
			return c
		}
	}
}

// drain reads and discards everything until the connection ends.
func (r *rawConn) drain() {
	_ = r.nc.SetReadDeadline(time.Time{})
	_, _ = io.Copy(io.Discard, r.nc)
}

func (r *rawConn) close() { _ = r.nc.Close() }

func heartbeatFrame() *gatepb.Frame {
	return &gatepb.Frame{Body: &gatepb.Frame_Heartbeat{Heartbeat: &gatepb.Heartbeat{}}}
}

func requestFrame(id uint64, route string, body []byte) *gatepb.Frame {
	return &gatepb.Frame{Body: &gatepb.Frame_Request{Request: &gatepb.Request{Id: id, Route: route, Body: body}}}
}
