package client_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/gatepb"
)

// cutProxy forwards TCP connections to a gateway, and cuts them (closes
// both sides, with no goodbye) on demand, as a network loss would; while
// down it closes the connections it accepts at once.
type cutProxy struct {
	ln   net.Listener
	to   string
	mu   sync.Mutex
	down bool
	open map[net.Conn]struct{}
	wg   sync.WaitGroup
}

func newCutProxy(t *testing.T, to string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, to: to, open: make(map[net.Conn]struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) addr() string { return "tcp://" + p.ln.Addr().String() }

func (p *cutProxy) accept() {
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			nc.Close()
			continue
		}
		up, err := net.Dial("tcp", p.to)
		if err != nil {
			nc.Close()
			continue
		}
		p.mu.Lock()
		p.open[nc], p.open[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(up, nc); up.Close(); nc.Close() })
		p.wg.Go(func() { _, _ = io.Copy(nc, up); up.Close(); nc.Close() })
	}
}

// cut closes every connection; setDown keeps new ones out, or lets them in.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.open {
		c.Close()
	}
	clear(p.open)
}

func (p *cutProxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

// pushLog records the pushes a client gets on one route.
type pushLog struct {
	mu  sync.Mutex
	got []string
}

func (l *pushLog) on(body []byte) {
	var v wrapperspb.StringValue
	_ = proto.Unmarshal(body, &v)
	l.mu.Lock()
	l.got = append(l.got, v.Value)
	l.mu.Unlock()
}

func (l *pushLog) list() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.got, " ")
}

// TestResume: a client whose connection is cut reconnects with its
// resume token and gets its session back: the same session ID, the pushes
// sent while it was away, in order, and Reconnection.Resumed; with a
// token from the handshake, or from a login route (SessionUpdate).
func TestResume(t *testing.T) {
	for _, how := range []string{"token", "login"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, func(c *gate.Config) { c.Limits.ResumeWindow = 10 * time.Second })
			p := newCutProxy(t, strings.TrimPrefix(e.addrs["tcp"], "tcp://"))
			recon := make(chan client.Reconnection, 4)
			cfg := client.Config{Addr: p.addr(), Reconnect: true, BackoffMin: 50 * time.Millisecond, OnReconnect: func(r client.Reconnection) { recon <- r }}
			user := "ana-" + how
			if how == "token" {
				cfg.Token = "good:" + user
			}
			c, err := client.Dial(testCtx(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if how == "login" {
				if err := c.Request(testCtx(t), "svc.Login", wrapperspb.String(user), nil); err != nil {
					t.Fatal(err)
				}
				if c.UserID() != user {
					t.Fatalf("UserID after login = %q", c.UserID())
				}
			}
			var log pushLog
			c.OnPush("svc.P", log.on)
			id := c.SessionID()
			p.setDown(true)
			p.cut()
			waitUntil(t, "the session to detach", func() bool { return e.g.Detached() == 1 })
			var want []string
			for i := range 5 {
				v := fmt.Sprint("p", i)
				if err := gate.Push(e.n, id, "svc.P", wrapperspb.String(v)); err != nil {
					t.Fatal(err)
				}
				want = append(want, v)
			}
			p.setDown(false)
			var r client.Reconnection
			select {
			case r = <-recon:
			case <-time.After(10 * time.Second):
				t.Fatal("no reconnection")
			}
			if !r.Resumed || r.Resync || c.SessionID() != id || c.UserID() != user {
				t.Fatalf("reconnection %+v, session %s (was %s), user %q: want resumed, the same session", r, c.SessionID(), id, c.UserID())
			}
			waitUntil(t, "the pushes kept", func() bool { return log.list() == strings.Join(want, " ") })
			if err := echo(testCtx(t), c, "x"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestResumeFailsLogsInByToken: a client back after its session's window
// is not resumed, and logs in again by its token: Reconnection.Resumed is
// false, and the session is new.
func TestResumeFailsLogsInByToken(t *testing.T) {
	e := newEnv(t, func(c *gate.Config) { c.Limits.ResumeWindow = 100 * time.Millisecond })
	p := newCutProxy(t, strings.TrimPrefix(e.addrs["tcp"], "tcp://"))
	recon := make(chan client.Reconnection, 4)
	c, err := client.Dial(testCtx(t), client.Config{Addr: p.addr(), Token: "good:bea", Reconnect: true, BackoffMin: 20 * time.Millisecond, OnReconnect: func(r client.Reconnection) { recon <- r }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := c.SessionID()
	p.setDown(true)
	p.cut()
	waitUntil(t, "the session to detach", func() bool { return e.g.Detached() == 1 })
	waitUntil(t, "the window to pass", func() bool { return e.g.Detached() == 0 })
	p.setDown(false)
	var r client.Reconnection
	select {
	case r = <-recon:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnection")
	}
	if r.Resumed || c.SessionID() == id || c.UserID() != "bea" {
		t.Fatalf("reconnection %+v, session %s (was %s), user %q: want a new session of bea", r, c.SessionID(), id, c.UserID())
	}
}

// TestUnknownFrameIgnored: a frame whose body a later protocol revision
// added (an unknown oneof field: a nil body here) is ignored, as an older
// client ignores SessionUpdate.
func TestUnknownFrameIgnored(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		if _, err := newFrameReader(nc).next(); err != nil {
			return
		}
		b, _ := gatepb.AppendStream(nil, &gatepb.Frame{Body: &gatepb.Frame_HandshakeAck{HandshakeAck: &gatepb.HandshakeAck{SessionId: "1.1.1/9", HeartbeatMs: 10000, Version: gatepb.Version}}})
		if _, err := nc.Write(b); err != nil {
			return
		}
		// After the client's first request: its push handler is set.
		req, err := newFrameReader(nc).next()
		if err != nil {
			return
		}
		b = nil
		unknown := protowire.AppendString(protowire.AppendTag(nil, 99, protowire.BytesType), "from the future")
		b = binary.BigEndian.AppendUint32(b, uint32(len(unknown)))
		b = append(b, unknown...)
		b, _ = gatepb.AppendStream(b, &gatepb.Frame{Body: &gatepb.Frame_Push{Push: &gatepb.Push{Route: "svc.P", Body: []byte{}}}})
		b, _ = gatepb.AppendStream(b, &gatepb.Frame{Body: &gatepb.Frame_Response{Response: &gatepb.Response{Id: req.GetRequest().GetId()}}})
		_, _ = nc.Write(b)
		_, _ = io.Copy(io.Discard, nc)
	}()
	c, err := client.Dial(testCtx(t), client.Config{Addr: "tcp://" + ln.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 1)
	c.OnPush("svc.P", func([]byte) { got <- struct{}{} })
	if _, err := c.RequestRaw(testCtx(t), "svc.X", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the push after an unknown frame did not arrive")
	}
	c.Close()
	<-done
}
