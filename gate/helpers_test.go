package gate_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/gatepb"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/wire"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 10 * time.Second

// testCtx returns a context that ends with the test or after waitTimeout.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, and fails t after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recv returns the next value of ch, failing t after waitTimeout.
func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		panic("unreachable")
	}
}

// newNode starts a one-process node, closed when the test ends.
func newNode(t testing.TB) *actor.Node {
	t.Helper()
	n, err := actor.NewNode(actor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

// chatService is the service of most tests. Its routes:
//
//	Echo    replies "echo:<req>"
//	Login   binds the session to user <req>
//	Whoami  replies the session's user ID
//	Set     sets state "k=v" (req), Get replies state <req> or NotFound,
//	Delete  deletes state <req>
//	PushMe  pushes "chat.Pushed" "push:<req>" to the session, then replies
//	Kick    kicks the session with reason <req>
//	Panic   panics
func chatService(name string) *gate.Service {
	svc := gate.NewService(name)
	gate.Handle(svc, "Echo", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String("echo:" + req.Value), nil
	})
	gate.Handle(svc, "Login", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		s.Bind(req.Value)
		return wrapperspb.String(s.UserID()), nil
	})
	gate.Handle(svc, "Whoami", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String(s.UserID()), nil
	})
	gate.Handle(svc, "Set", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		k, v, _ := strings.Cut(req.Value, "=")
		s.Set(k, v)
		return wrapperspb.String(""), nil
	})
	gate.Handle(svc, "Get", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		v, ok := s.Get(req.Value)
		if !ok {
			return nil, rpc.Errorf(rpc.NotFound, "no state %q", req.Value)
		}
		return wrapperspb.String(v), nil
	})
	gate.Handle(svc, "Delete", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		s.Delete(req.Value)
		return wrapperspb.String(""), nil
	})
	gate.Handle(svc, "PushMe", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if err := s.Push("chat.Pushed", wrapperspb.String("push:"+req.Value)); err != nil {
			return nil, err
		}
		return wrapperspb.String("pushed"), nil
	})
	gate.Handle(svc, "Kick", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		s.Kick(req.Value)
		return wrapperspb.String("bye"), nil
	})
	gate.Handle(svc, "Panic", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		panic("boom")
	})
	return svc
}

// serve serves svc on n.
func serve(t testing.TB, n *actor.Node, svc *gate.Service) actor.PID {
	t.Helper()
	pid, err := svc.Serve(testCtx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// newGate starts a gateway, closed when the test ends (before its node).
func newGate(t testing.TB, cfg gate.Config) *gate.Gateway {
	t.Helper()
	g, err := gate.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("gateway close: %v", err)
		}
	})
	return g
}

// listenTCP listens on a random port and returns the client address
// ("tcp://...") and the raw host:port.
func listenTCP(t testing.TB, g *gate.Gateway) (url, hostport string) {
	t.Helper()
	a, err := g.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	return "tcp://" + a.String(), a.String()
}

// oneNodeGate is a node serving chatService("chat") and a gateway on it
// routing "chat" there, listening on TCP.
type oneNodeGate struct {
	n    *actor.Node
	g    *gate.Gateway
	url  string // tcp://host:port
	addr string // host:port
}

func startOneNode(t testing.TB, cfg gate.Config) *oneNodeGate {
	t.Helper()
	n := newNode(t)
	pid := serve(t, n, chatService("chat"))
	cfg.Node = n
	if cfg.Routes == nil {
		cfg.Routes = map[string]gate.Route{"chat": gate.To(rpc.To(pid))}
	}
	g := newGate(t, cfg)
	url, addr := listenTCP(t, g)
	return &oneNodeGate{n: n, g: g, url: url, addr: addr}
}

// dial connects a client, closed when the test ends (before the gateway).
func dial(t testing.TB, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.Dial(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", cfg.Addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// call makes a request with a string and returns the reply's string.
func call(t testing.TB, c *client.Client, route, arg string) (string, error) {
	t.Helper()
	var reply wrapperspb.StringValue
	err := c.Request(testCtx(t), route, wrapperspb.String(arg), &reply)
	return reply.Value, err
}

// mustCall is call that fails t on an error or an unexpected reply.
func mustCall(t testing.TB, c *client.Client, route, arg, want string) {
	t.Helper()
	got, err := call(t, c, route, arg)
	if err != nil || got != want {
		t.Fatalf("%s(%q) = %q, %v; want %q", route, arg, got, err, want)
	}
}

// wantCode fails t unless err carries code.
func wantCode(t testing.TB, what string, err error, code rpc.Code) {
	t.Helper()
	if got := rpc.CodeOf(err); got != code {
		t.Fatalf("%s: %v (code %v), want code %v", what, err, got, code)
	}
}

// closeRecorder records what a client's OnClose gets.
type closeRecorder chan error

func newCloseRecorder() closeRecorder     { return make(closeRecorder, 1) }
func (r closeRecorder) onClose(err error) { r <- err }
func (r closeRecorder) wait(t testing.TB) error {
	t.Helper()
	return recv(t, r, "the client's OnClose")
}

// rawConn speaks the stream framing by hand, to misbehave on purpose.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	fr *wire.FrameReader
}

func rawDial(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawConn{t: t, nc: nc, fr: wire.NewFrameReader(nc, 16*gatepb.DefaultMaxFrame)}
}

func (r *rawConn) send(frames ...*gatepb.Frame) {
	r.t.Helper()
	var b []byte
	for _, f := range frames {
		var err error
		if b, err = gatepb.AppendStream(b, f); err != nil {
			r.t.Fatal(err)
		}
	}
	r.write(b)
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	_ = r.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("raw write: %v", err)
	}
}

// next reads the next frame, waiting at most waitTimeout.
func (r *rawConn) next() (*gatepb.Frame, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	b, err := r.fr.Next()
	if err != nil {
		return nil, err
	}
	var f gatepb.Frame
	if err := gatepb.Decode(b, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

func (r *rawConn) mustNext() *gatepb.Frame {
	r.t.Helper()
	f, err := r.next()
	if err != nil {
		r.t.Fatalf("raw read: %v", err)
	}
	return f
}

// handshake opens a session and returns its ack.
func (r *rawConn) handshake() *gatepb.HandshakeAck {
	r.t.Helper()
	r.send(handshakeFrame(""))
	ack := r.mustNext().GetHandshakeAck()
	if ack == nil || ack.GetCode() != 0 {
		r.t.Fatalf("handshake: %v", ack)
	}
	return ack
}

// wantClose reads frames until a Close frame, which must carry code, and
// then the end of the connection.
func (r *rawConn) wantClose(code rpc.Code) *gatepb.Close {
	r.t.Helper()
	for {
		f, err := r.next()
		if err != nil {
			r.t.Fatalf("read: %v before a Close frame with code %v", err, code)
		}
		if cl := f.GetClose(); cl != nil {
			if rpc.Code(cl.GetCode()) != code {
				r.t.Fatalf("Close %v (%q), want code %v", rpc.Code(cl.GetCode()), cl.GetReason(), code)
			}
			r.wantEnd()
			return cl
		}
	}
}

// wantEnd reads until the gateway closes the connection.
func (r *rawConn) wantEnd() {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err := io.Copy(io.Discard, r.nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		r.t.Fatalf("the gateway did not close the connection within %v", waitTimeout)
	}
}

func handshakeFrame(token string) *gatepb.Frame {
	return &gatepb.Frame{Body: &gatepb.Frame_Handshake{Handshake: &gatepb.Handshake{Version: gatepb.Version, Token: token, Client: "raw-test"}}}
}

func requestFrame(id uint64, route, arg string) *gatepb.Frame {
	b, err := proto.Marshal(wrapperspb.String(arg))
	if err != nil {
		panic(err)
	}
	return &gatepb.Frame{Body: &gatepb.Frame_Request{Request: &gatepb.Request{Id: id, Route: route, Body: b}}}
}

// hookLog records the gateway's OnOpen and OnClose calls.
type hookLog struct {
	opened chan gate.SessionInfo
	closed chan closedSession
}

type closedSession struct {
	info   gate.SessionInfo
	reason error
}

func newHookLog() *hookLog {
	return &hookLog{opened: make(chan gate.SessionInfo, 64), closed: make(chan closedSession, 64)}
}

func (h *hookLog) onOpen(s *gate.SessionInfo) { h.opened <- *s }
func (h *hookLog) onClose(s *gate.SessionInfo, reason error) {
	h.closed <- closedSession{info: *s, reason: reason}
}

func (h *hookLog) nextClosed(t testing.TB) closedSession {
	t.Helper()
	return recv(t, h.closed, "OnClose")
}

func (h *hookLog) nextOpened(t testing.TB) gate.SessionInfo {
	t.Helper()
	return recv(t, h.opened, "OnOpen")
}

func errContains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }
