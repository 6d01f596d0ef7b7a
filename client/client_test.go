package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/gatepb"
	gatekcp "github.com/guildkit/guild/gate/kcp"
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/rpc"
)

// errNoGold is the game's own error code, as a handler returns it.
var errNoGold = rpc.Error(1001, "not enough gold")

// env is one node with a gateway listening on TCP, WebSocket and KCP, and
// a service "svc" behind it.
type env struct {
	n       *actor.Node
	g       *gate.Gateway
	addrs   map[string]string // "tcp", "ws", "kcp" → client Addr
	started chan struct{}     // svc.Block has started
	release chan struct{}     // closed: svc.Block returns
	once    sync.Once
}

// newEnv starts an env; edit, when set, changes the gateway's Config.
// Tokens "good:<user>" authenticate as <user>; svc.Login is public.
func newEnv(t *testing.T, edit func(*gate.Config)) *env {
	t.Helper()
	n, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	e := &env{n: n, started: make(chan struct{}, 16), release: make(chan struct{})}
	svc := gate.NewService("svc")
	gate.Handle(svc, "Echo", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String("echo:" + req.Value), nil
	})
	gate.Handle(svc, "Login", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		s.Bind(req.Value)
		return wrapperspb.String("welcome " + req.Value), nil
	})
	gate.Handle(svc, "Push", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		if err := s.Push("svc.Pushed", wrapperspb.String("pushed:"+req.Value)); err != nil {
			return nil, err
		}
		if err := s.Push("svc.Other", wrapperspb.String("other:"+req.Value)); err != nil {
			return nil, err
		}
		return wrapperspb.String("ok"), nil
	})
	gate.Handle(svc, "Fail", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return nil, errNoGold
	})
	gate.Handle(svc, "Block", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		e.started <- struct{}{}
		select {
		case <-e.release:
		case <-time.After(10 * time.Second):
		}
		return wrapperspb.String("unblocked"), nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pid, err := svc.Serve(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	cfg := gate.Config{
		Node:   n,
		Routes: map[string]gate.Route{"svc": gate.To(rpc.To(pid))},
		Public: []string{"svc.Login"},
		Auth: func(ctx context.Context, token string) (string, error) {
			if user, ok := strings.CutPrefix(token, "good:"); ok {
				return user, nil
			}
			return "", errors.New("bad token")
		},
		Limits: gate.Limits{Rate: 100000, Burst: 100000},
		Logger: slog.New(slog.DiscardHandler),
	}
	if edit != nil {
		edit(&cfg)
	}
	e.g, err = gate.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.g.Close() })
	t.Cleanup(e.unblock) // before the gateway and node close
	tcp, err := e.g.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := gatews.Listen(e.g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	kcp, err := gatekcp.Listen(e.g, "127.0.0.1:0", gatekcp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.addrs = map[string]string{
		"tcp": "tcp://" + tcp.String(),
		"ws":  "ws://" + ws.String() + "/ws",
		"kcp": "kcp://" + kcp.String(),
	}
	return e
}

// unblock lets every svc.Block return; it is safe to call twice.
func (e *env) unblock() { e.once.Do(func() { close(e.release) }) }

// dial connects to the env over network with cfg (its Addr set here) and
// closes the client at the end of the test.
func (e *env) dial(t *testing.T, network string, cfg client.Config) *client.Client {
	t.Helper()
	cfg.Addr = e.addrs[network]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial %s: %v", cfg.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var networks = []string{"tcp", "ws", "kcp"}

// wantCode fails the test unless err is an *rpc.Status with code.
func wantCode(t *testing.T, what string, err error, code rpc.Code) {
	t.Helper()
	var st *rpc.Status
	if !errors.As(err, &st) || st.Code != code {
		t.Fatalf("%s: %v, want an *rpc.Status with code %v", what, err, code)
	}
}

func echo(ctx context.Context, c *client.Client, s string) error {
	var reply wrapperspb.StringValue
	if err := c.Request(ctx, "svc.Echo", wrapperspb.String(s), &reply); err != nil {
		return err
	}
	if reply.Value != "echo:"+s {
		return fmt.Errorf("echo %q: got %q", s, reply.Value)
	}
	return nil
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// closedAddr returns an address on which nothing listens.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestDialErrors(t *testing.T) {
	e := newEnv(t, nil)
	ctx := testCtx(t)
	for _, addr := range []string{"", "not a url", "127.0.0.1:80", "tcp://"} {
		if c, err := client.Dial(ctx, client.Config{Addr: addr}); err == nil {
			c.Close()
			t.Errorf("Dial(%q): no error", addr)
		}
	}
	if _, err := client.Dial(ctx, client.Config{Addr: "http://127.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "scheme") {
		t.Errorf("Dial http://: %v, want a scheme error", err)
	}
	dead := closedAddr(t)
	for _, addr := range []string{"tcp://" + dead, "ws://" + dead + "/ws", "kcp://" + dead} {
		start := time.Now()
		_, err := client.Dial(ctx, client.Config{Addr: addr, DialTimeout: 300 * time.Millisecond})
		wantCode(t, "Dial "+addr+" (nothing listening)", err, rpc.Unavailable)
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Dial %s took %v", addr, d)
		}
	}
	for _, nw := range networks {
		_, err := client.Dial(ctx, client.Config{Addr: e.addrs[nw], Token: "forged"})
		wantCode(t, nw+": Dial with a bad token", err, rpc.Unauthenticated)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := client.Dial(cctx, client.Config{Addr: e.addrs["tcp"]})
	wantCode(t, "Dial with a cancelled ctx", err, rpc.Canceled)
}

// TestDialGatewayFull: beyond MaxConns the gateway answers with a Close
// frame, code 14.
func TestDialGatewayFull(t *testing.T) {
	e := newEnv(t, func(c *gate.Config) { c.Limits.MaxConns = 1 })
	e.dial(t, "tcp", client.Config{})
	_, err := client.Dial(testCtx(t), client.Config{Addr: e.addrs["ws"]})
	wantCode(t, "Dial to a full gateway", err, rpc.Unavailable)
}

func TestRequest(t *testing.T) {
	e := newEnv(t, nil)
	for _, nw := range networks {
		t.Run(nw, func(t *testing.T) {
			ctx := testCtx(t)
			c := e.dial(t, nw, client.Config{Token: "good:ana"})
			if c.UserID() != "ana" || c.SessionID() == "" {
				t.Fatalf("UserID %q, SessionID %q", c.UserID(), c.SessionID())
			}
			if err := echo(ctx, c, "hi"); err != nil {
				t.Fatal(err)
			}
			body, err := proto.Marshal(wrapperspb.String("raw"))
			if err != nil {
				t.Fatal(err)
			}
			out, err := c.RequestRaw(ctx, "svc.Echo", body)
			if err != nil {
				t.Fatal(err)
			}
			var reply wrapperspb.StringValue
			if err := proto.Unmarshal(out, &reply); err != nil || reply.Value != "echo:raw" {
				t.Fatalf("RequestRaw: %q, %v", reply.Value, err)
			}
			if err := c.Request(ctx, "svc.Echo", wrapperspb.String("x"), nil); err != nil {
				t.Fatalf("a request with a nil reply: %v", err)
			}
			err = c.Request(ctx, "svc.Fail", wrapperspb.String("x"), &reply)
			if !errors.Is(err, errNoGold) {
				t.Fatalf("svc.Fail: %v, want %v", err, errNoGold)
			}
			wantCode(t, "unknown route", c.Request(ctx, "nope.Do", nil, nil), rpc.Unimplemented)
			wantCode(t, "unknown method", c.Request(ctx, "svc.Nope", nil, nil), rpc.Unimplemented)
		})
	}
}

// TestLogin: a session without a token may call public routes only, until
// one binds it to a user.
func TestLogin(t *testing.T) {
	e := newEnv(t, nil)
	ctx := testCtx(t)
	c := e.dial(t, "tcp", client.Config{})
	if c.UserID() != "" {
		t.Fatalf("UserID %q before login", c.UserID())
	}
	wantCode(t, "before login", echo(ctx, c, "x"), rpc.Unauthenticated)
	var reply wrapperspb.StringValue
	if err := c.Request(ctx, "svc.Login", wrapperspb.String("bo"), &reply); err != nil || reply.Value != "welcome bo" {
		t.Fatalf("login: %q, %v", reply.Value, err)
	}
	if err := echo(ctx, c, "x"); err != nil {
		t.Fatalf("after login: %v", err)
	}
}

// TestRateLimited: requests beyond the burst get ResourceExhausted (8),
// and the session goes on.
func TestRateLimited(t *testing.T) {
	e := newEnv(t, func(c *gate.Config) { c.Limits.Rate, c.Limits.Burst = 0.001, 3 })
	ctx := testCtx(t)
	c := e.dial(t, "tcp", client.Config{Token: "good:ana"})
	for i := range 3 {
		if err := echo(ctx, c, "x"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	wantCode(t, "beyond the burst", echo(ctx, c, "x"), rpc.ResourceExhausted)
}

// TestRequestContext: the end of a request's ctx ends its wait at once,
// though the service has not answered; the client goes on.
func TestRequestContext(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial(t, "tcp", client.Config{Token: "good:ana"})
	ctx, cancel := context.WithCancel(testCtx(t))
	errc := make(chan error, 1)
	go func() { errc <- c.Request(ctx, "svc.Block", wrapperspb.String("x"), nil) }()
	<-e.started
	cancel()
	select {
	case err := <-errc:
		wantCode(t, "cancelled request", err, rpc.Canceled)
	case <-time.After(time.Second):
		t.Fatal("a cancelled request still waits")
	}

	dctx, dcancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer dcancel()
	start := time.Now()
	err := c.Request(dctx, "svc.Block", wrapperspb.String("x"), nil)
	wantCode(t, "request past its deadline", err, rpc.DeadlineExceeded)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a request with a 100ms deadline took %v", d)
	}

	// RequestTimeout bounds a request whose ctx has no deadline.
	c2 := e.dial(t, "ws", client.Config{Token: "good:bo", RequestTimeout: 100 * time.Millisecond})
	start = time.Now()
	err = c2.Request(context.Background(), "svc.Block", wrapperspb.String("x"), nil)
	wantCode(t, "request past RequestTimeout", err, rpc.DeadlineExceeded)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a request with a 100ms RequestTimeout took %v", d)
	}

	// The late replies are dropped; later requests get their own.
	e.unblock()
	if err := echo(testCtx(t), c, "after"); err != nil {
		t.Fatal(err)
	}
}

func TestPush(t *testing.T) {
	e := newEnv(t, nil)
	for _, nw := range networks {
		t.Run(nw, func(t *testing.T) {
			ctx := testCtx(t)
			c := e.dial(t, nw, client.Config{Token: "good:ana"})
			pushed := make(chan string, 4)
			c.OnPush("svc.Pushed", func(body []byte) {
				var v wrapperspb.StringValue
				if err := proto.Unmarshal(body, &v); err != nil {
					pushed <- err.Error()
					return
				}
				pushed <- v.Value
			})
			other := make(chan string, 4)
			c.OnAnyPush(func(route string, body []byte) {
				var v wrapperspb.StringValue
				_ = proto.Unmarshal(body, &v)
				other <- route + " " + v.Value
			})
			if err := c.Request(ctx, "svc.Push", wrapperspb.String("a"), nil); err != nil {
				t.Fatal(err)
			}
			// A handler's pushes reach the client before its reply.
			want := map[chan string]string{pushed: "pushed:a", other: "svc.Other other:a"}
			for ch, w := range want {
				select {
				case got := <-ch:
					if got != w {
						t.Fatalf("push: %q, want %q", got, w)
					}
				default:
					t.Fatalf("no push %q before the reply", w)
				}
			}
			// A push from anywhere, by session ID.
			if err := gate.Push(e.n, c.SessionID(), "news.Flash", wrapperspb.String("b")); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-other:
				if got != "news.Flash b" {
					t.Fatalf("push: %q", got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no push news.Flash")
			}
		})
	}
}

// TestConcurrentRequests: many goroutines share a client; each gets its
// own reply.
func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t, nil)
	for _, nw := range networks {
		t.Run(nw, func(t *testing.T) {
			ctx := testCtx(t)
			c := e.dial(t, nw, client.Config{Token: "good:ana"})
			const goroutines, each = 16, 25
			var wg sync.WaitGroup
			errc := make(chan error, goroutines)
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						if err := echo(ctx, c, fmt.Sprintf("%d-%d", g, i)); err != nil {
							errc <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Error(err)
			}
		})
	}
}

// TestHeartbeat: a client that sends nothing but heartbeats keeps its
// session past three heartbeat periods.
func TestHeartbeat(t *testing.T) {
	e := newEnv(t, func(c *gate.Config) { c.Limits.Heartbeat = 100 * time.Millisecond })
	closed := make(chan error, 1)
	c := e.dial(t, "tcp", client.Config{Token: "good:ana", OnClose: func(err error) { closed <- err }})
	sid := c.SessionID()
	time.Sleep(700 * time.Millisecond) // 7 periods with nothing sent but heartbeats
	select {
	case err := <-closed:
		t.Fatalf("the session closed: %v", err)
	default:
	}
	if err := echo(testCtx(t), c, "x"); err != nil || c.SessionID() != sid {
		t.Fatalf("after idling: %v (session %s, was %s)", err, c.SessionID(), sid)
	}
}

func TestReconnect(t *testing.T) {
	for _, nw := range networks {
		t.Run(nw, func(t *testing.T) {
			e := newEnv(t, nil)
			ctx := testCtx(t)
			connected := make(chan string, 4)
			closed := make(chan error, 4)
			c := e.dial(t, nw, client.Config{
				Token:      "good:ana",
				Reconnect:  true,
				BackoffMin: 10 * time.Millisecond,
				OnConnect: func(sessionID, userID string) {
					if userID != "ana" {
						t.Errorf("OnConnect: user %q", userID)
					}
					connected <- sessionID
				},
				OnClose: func(err error) { closed <- err },
			})
			first := <-connected
			if first != c.SessionID() {
				t.Fatalf("OnConnect got %s, SessionID %s", first, c.SessionID())
			}
			inflight := make(chan error, 1)
			go func() { inflight <- c.Request(ctx, "svc.Block", wrapperspb.String("x"), nil) }()
			<-e.started
			if err := gate.Kick(e.n, first, "test"); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-inflight:
				wantCode(t, "the request in flight", err, rpc.Unavailable)
			case <-time.After(5 * time.Second):
				t.Fatal("the request in flight still waits")
			}
			wantCode(t, "OnClose", <-closed, rpc.PermissionDenied)
			e.unblock()
			// A request made now waits for the new session.
			if err := echo(ctx, c, "again"); err != nil {
				t.Fatalf("after the reconnection: %v", err)
			}
			var second string
			select {
			case second = <-connected:
			case <-time.After(5 * time.Second):
				t.Fatal("OnConnect was not called again")
			}
			if second == first || c.SessionID() != second || c.UserID() != "ana" {
				t.Fatalf("sessions %s then %s, SessionID %s, UserID %q", first, second, c.SessionID(), c.UserID())
			}
		})
	}
}

// TestReconnectCloseWhileDown: Close while the client redials a gateway
// that accepts but never answers returns at once, without waiting for
// DialTimeout.
func TestReconnectCloseWhileDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- nc
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(accepted)
		for nc := range accepted {
			nc.Close()
		}
	})
	// A fake gateway: the first connection gets a HandshakeAck, then is
	// cut; the next ones get nothing.
	go func() {
		nc := <-accepted
		ack, _ := gatepb.AppendStream(nil, &gatepb.Frame{Body: &gatepb.Frame_HandshakeAck{HandshakeAck: &gatepb.HandshakeAck{
			SessionId: "1.1.1/9", HeartbeatMs: 10000, Version: gatepb.Version,
		}}})
		_, _ = nc.Write(ack)
		time.Sleep(50 * time.Millisecond)
		nc.Close()
	}()
	closed := make(chan error, 1)
	c, err := client.Dial(testCtx(t), client.Config{Addr: "tcp://" + ln.Addr().String(), Reconnect: true, BackoffMin: time.Millisecond, OnClose: func(err error) { closed <- err }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the loss of the connection was not noticed")
	}
	var redial net.Conn
	select {
	case redial = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("no redial")
	}
	defer redial.Close()
	time.Sleep(20 * time.Millisecond) // the handshake waits for its answer
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close while reconnecting took %v", d)
	}
}

func TestKickWithoutReconnect(t *testing.T) {
	for _, nw := range networks {
		t.Run(nw, func(t *testing.T) {
			e := newEnv(t, nil)
			closed := make(chan error, 1)
			c := e.dial(t, nw, client.Config{Token: "good:ana", OnClose: func(err error) { closed <- err }})
			if err := gate.Kick(e.n, c.SessionID(), "test"); err != nil {
				t.Fatal(err)
			}
			var err error
			select {
			case err = <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("OnClose was not called")
			}
			wantCode(t, "OnClose", err, rpc.PermissionDenied)
			if !strings.Contains(err.Error(), "test") {
				t.Fatalf("OnClose: %v, want the reason %q", err, "test")
			}
			start := time.Now()
			wantCode(t, "a request after the kick", echo(testCtx(t), c, "x"), rpc.Unavailable)
			if d := time.Since(start); d > time.Second {
				t.Fatalf("a request after the kick took %v", d)
			}
		})
	}
}

// TestLoggedInElsewhere: a second session of the same user closes the
// first with code 6.
func TestLoggedInElsewhere(t *testing.T) {
	e := newEnv(t, nil)
	closed := make(chan error, 1)
	first := e.dial(t, "tcp", client.Config{Token: "good:ana", OnClose: func(err error) { closed <- err }})
	// The gateway sends the HandshakeAck before it binds the session to
	// its user: a request's answer shows the binding is done.
	if err := echo(testCtx(t), first, "x"); err != nil {
		t.Fatal(err)
	}
	e.dial(t, "ws", client.Config{Token: "good:ana"})
	select {
	case err := <-closed:
		wantCode(t, "OnClose", err, rpc.AlreadyExists)
	case <-time.After(5 * time.Second):
		t.Fatal("the first session was not closed")
	}
}

func TestClose(t *testing.T) {
	e := newEnv(t, nil)
	for _, nw := range networks {
		t.Run(nw, func(t *testing.T) {
			var onClose int
			var mu sync.Mutex
			c := e.dial(t, nw, client.Config{Token: "good:" + nw, OnClose: func(error) {
				mu.Lock()
				onClose++
				mu.Unlock()
			}})
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			start := time.Now()
			wantCode(t, "a request after Close", echo(context.Background(), c, "x"), rpc.Unavailable)
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Fatalf("a request after Close took %v", d)
			}
			mu.Lock()
			defer mu.Unlock()
			if onClose != 0 {
				t.Fatalf("OnClose called %d times for the client's own Close", onClose)
			}
		})
	}
}

// TestTLS: Config.TLS secures tcp:// and wss://, the server name taken
// from Addr.
func TestTLS(t *testing.T) {
	e := newEnv(t, nil)
	srv := httptest.NewUnstartedServer(gatews.Handler(e.g))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig
	tcp, err := e.g.ListenTCP("127.0.0.1:0", srv.TLS)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"wss://" + srv.Listener.Addr().String() + "/", "tcp://" + tcp.String()} {
		ctx := testCtx(t)
		c, err := client.Dial(ctx, client.Config{Addr: addr, TLS: roots, Token: "good:ana"})
		if err != nil {
			t.Fatalf("Dial %s: %v", addr, err)
		}
		err = echo(ctx, c, "x")
		c.Close()
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
	}
}

// TestKCPKeyFailover: Config.KCPKey encrypts kcp addresses; a gateway
// with another key never answers, so Dial gives it up after DialTimeout
// and moves to the next address, whose key is the client's.
func TestKCPKeyFailover(t *testing.T) {
	e := newEnv(t, nil)
	other, err := gatekcp.Listen(e.g, "127.0.0.1:0", gatekcp.Options{Key: []byte("the other gateway's 32-byte key!")})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := gatekcp.Listen(e.g, "127.0.0.1:0", gatekcp.Options{Key: []byte("the client's own key, 32 bytes!!")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	c, err := client.Dial(ctx, client.Config{
		Addrs:       []string{"kcp://" + other.String(), "kcp://" + mine.String()},
		KCPKey:      []byte("the client's own key, 32 bytes!!"),
		Token:       "good:ann",
		DialTimeout: 300 * time.Millisecond,
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.Addr(); got != "kcp://"+mine.String() {
		t.Errorf("connected to %s, want the gateway with the client's key", got)
	}
	if err := echo(ctx, c, "encrypted"); err != nil {
		t.Fatal(err)
	}
}
