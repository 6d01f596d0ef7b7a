package gate_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/gatepb"
	gatekcp "github.com/guildkit/guild/gate/kcp"
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/rpc"
)

// TestListeners runs a session on each listener: the handshake gives a
// session ID, requests get their responses, pushes arrive (from a handler
// and from outside), and Close ends the session with a nil reason.
func TestListeners(t *testing.T) {
	hooks := newHookLog()
	f := startOneNode(t, gate.Config{
		Public:  []string{"chat.Echo", "chat.PushMe"},
		OnOpen:  hooks.onOpen,
		OnClose: hooks.onClose,
		// Heartbeats every second: a client whose heartbeat goroutine a
		// busy machine delays by a second or two is not dropped as lost.
		Limits: gate.Limits{Heartbeat: time.Second},
	})
	wsAddr, err := gatews.Listen(f.g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	kcpAddr, err := gatekcp.Listen(f.g, "127.0.0.1:0", gatekcp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct{ kind, addr string }{
		{"tcp", f.url},
		{"ws", "ws://" + wsAddr.String() + "/ws"},
		{"kcp", "kcp://" + kcpAddr.String()},
	} {
		t.Run(l.kind, func(t *testing.T) {
			c, err := client.Dial(testCtx(t), client.Config{Addr: l.addr})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			pid, err := gate.ParseSessionID(c.SessionID())
			if err != nil {
				t.Fatalf("session ID %q: %v", c.SessionID(), err)
			}
			if pid.Node != f.n.Addr() || pid.String() != c.SessionID() {
				t.Fatalf("session ID %q names %v, not a session of node %v", c.SessionID(), pid, f.n.Addr())
			}
			if info := hooks.nextOpened(t); info.ID != c.SessionID() || info.Listener != l.kind {
				t.Fatalf("OnOpen got %+v, want session %s on %s", info, c.SessionID(), l.kind)
			}
			pushed := make(chan string, 4)
			c.OnPush("chat.Pushed", func(body []byte) {
				var v wrapperspb.StringValue
				_ = proto.Unmarshal(body, &v)
				pushed <- v.Value
			})
			mustCall(t, c, "chat.Echo", l.kind, "echo:"+l.kind)
			mustCall(t, c, "chat.PushMe", "a", "pushed")
			if got := recv(t, pushed, "the handler's push"); got != "push:a" {
				t.Fatalf("push %q, want push:a", got)
			}
			if err := gate.Push(f.n, c.SessionID(), "chat.Pushed", wrapperspb.String("outside")); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, pushed, "the outside push"); got != "outside" {
				t.Fatalf("push %q, want outside", got)
			}
			// A kick reaches the client with its reason before the
			// connection closes.
			kicked := newCloseRecorder()
			k := dial(t, client.Config{Addr: l.addr, OnClose: kicked.onClose})
			hooks.nextOpened(t)
			if err := gate.Kick(f.n, k.SessionID(), "maintenance"); err != nil {
				t.Fatal(err)
			}
			if err := kicked.wait(t); !errContains(err, "maintenance") {
				t.Fatalf("kicked client's OnClose(%v), want the reason \"maintenance\"", err)
			}
			hooks.nextClosed(t)

			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			cl := hooks.nextClosed(t)
			if cl.info.ID != c.SessionID() {
				t.Fatalf("OnClose(%+v, %v), want session %s", cl.info, cl.reason, c.SessionID())
			}
			if cl.reason != nil {
				t.Fatalf("OnClose(%+v, %v), want a nil reason (goodbye)", cl.info, cl.reason)
			}
			waitFor(t, "the gateway to drop the connection", func() bool { return f.g.Conns() == 0 })
			if _, err := call(t, c, "chat.Echo", "x"); err == nil {
				t.Fatal("a request after Close succeeded")
			}
		})
	}
}

// authConfig authenticates token "good" as user "u-good".
func authConfig() gate.Config {
	return gate.Config{
		Public: []string{"chat.Login", "chat.Echo"},
		Auth: func(_ context.Context, token string) (string, error) {
			if token == "good" {
				return "u-good", nil
			}
			return "", errors.New("bad token")
		},
	}
}

func TestAuth(t *testing.T) {
	f := startOneNode(t, authConfig())
	t.Run("bad token", func(t *testing.T) {
		c, err := client.Dial(testCtx(t), client.Config{Addr: f.url, Token: "bad"})
		if err == nil {
			c.Close()
		}
		wantCode(t, "dial with a bad token", err, rpc.Unauthenticated)
	})
	t.Run("good token", func(t *testing.T) {
		c := dial(t, client.Config{Addr: f.url, Token: "good"})
		if c.UserID() != "u-good" {
			t.Fatalf("UserID %q, want u-good", c.UserID())
		}
		mustCall(t, c, "chat.Whoami", "", "u-good")
	})
	t.Run("no token", func(t *testing.T) {
		c := dial(t, client.Config{Addr: f.url})
		if c.UserID() != "" {
			t.Fatalf("UserID %q without a token", c.UserID())
		}
		mustCall(t, c, "chat.Echo", "x", "echo:x")
		_, err := call(t, c, "chat.Whoami", "")
		wantCode(t, "a private route before login", err, rpc.Unauthenticated)
		mustCall(t, c, "chat.Login", "ana", "ana")
		mustCall(t, c, "chat.Whoami", "", "ana")
	})
	t.Run("unknown route", func(t *testing.T) {
		c := dial(t, client.Config{Addr: f.url, Token: "good"})
		_, err := call(t, c, "nope.Do", "")
		wantCode(t, "a route to no service", err, rpc.Unimplemented)
		_, err = call(t, c, "chat.Nope", "")
		wantCode(t, "a method the service lacks", err, rpc.Unimplemented)
	})
	t.Run("unknown route before login", func(t *testing.T) {
		// A route to no service says so even to a session that has not
		// logged in; a private route of a routed service asks to log in,
		// and names the routes open before login.
		c := dial(t, client.Config{Addr: f.url})
		_, err := call(t, c, "nope.Do", "")
		wantCode(t, "a route to no service, before login", err, rpc.Unimplemented)
		if err == nil || !strings.Contains(err.Error(), `no route "nope.Do"`) {
			t.Errorf("a route to no service, before login: %v, want it to say no route", err)
		}
		_, err = call(t, c, "chat.Whoami", "")
		wantCode(t, "a private route before login", err, rpc.Unauthenticated)
		if err == nil || !strings.Contains(err.Error(), "chat.Whoami: log in first (open before login: chat.Echo, chat.Login)") {
			t.Errorf("a private route before login: %v, want it to name the public routes", err)
		}
	})
	t.Run("no Auth hook", func(t *testing.T) {
		g := startOneNode(t, gate.Config{})
		c, err := client.Dial(testCtx(t), client.Config{Addr: g.url, Token: "good"})
		if err == nil {
			c.Close()
		}
		wantCode(t, "a token to a gateway without Auth", err, rpc.Unauthenticated)
	})
}

func TestSessionState(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Login"}})
	t.Run("set get delete", func(t *testing.T) {
		f2 := startTwoServices(t)
		c := dial(t, client.Config{Addr: f2.url})
		mustCall(t, c, "chat.Login", "bob", "bob")
		if _, err := call(t, c, "other.Get", "color"); rpc.CodeOf(err) != rpc.NotFound {
			t.Fatalf("Get before Set: %v, want NotFound", err)
		}
		mustCall(t, c, "chat.Set", "color=red", "")
		mustCall(t, c, "other.Get", "color", "red")
		mustCall(t, c, "chat.Get", "color", "red")
		mustCall(t, c, "other.Set", "color=blue", "")
		mustCall(t, c, "chat.Get", "color", "blue")
		mustCall(t, c, "other.Delete", "color", "")
		_, err := call(t, c, "chat.Get", "color")
		wantCode(t, "Get after Delete", err, rpc.NotFound)
	})
	t.Run("kick from a handler", func(t *testing.T) {
		closed := newCloseRecorder()
		c := dial(t, client.Config{Addr: f.url, OnClose: closed.onClose})
		mustCall(t, c, "chat.Login", "kim", "kim")
		mustCall(t, c, "chat.Kick", "cheating", "bye")
		err := closed.wait(t)
		wantCode(t, "kicked client", err, rpc.PermissionDenied)
		if !errContains(err, "cheating") {
			t.Fatalf("OnClose(%v), want the reason \"cheating\"", err)
		}
	})
	t.Run("kick from outside", func(t *testing.T) {
		closed := newCloseRecorder()
		c := dial(t, client.Config{Addr: f.url, OnClose: closed.onClose})
		if err := gate.Kick(f.n, c.SessionID(), "maintenance"); err != nil {
			t.Fatal(err)
		}
		if err := closed.wait(t); !errContains(err, "maintenance") {
			t.Fatalf("OnClose(%v), want the reason \"maintenance\"", err)
		}
		waitFor(t, "the gateway to drop the kicked connection", func() bool { return f.g.Conns() == 0 })
	})
	t.Run("kick a user", func(t *testing.T) {
		closed := newCloseRecorder()
		c := dial(t, client.Config{Addr: f.url, OnClose: closed.onClose})
		mustCall(t, c, "chat.Login", "kay", "kay")
		if err := gate.KickUser(testCtx(t), f.n, "kay", "banned"); err != nil {
			t.Fatal(err)
		}
		if err := closed.wait(t); !errContains(err, "banned") {
			t.Fatalf("OnClose(%v), want the reason \"banned\"", err)
		}
		err := gate.KickUser(testCtx(t), f.n, "nobody", "x")
		wantCode(t, "KickUser of a user with no session", err, rpc.NotFound)
	})
	t.Run("bad session IDs", func(t *testing.T) {
		for _, id := range []string{"", "x", "1.1.1/0", "nonsense/12"} {
			if err := gate.Kick(f.n, id, "x"); rpc.CodeOf(err) != rpc.InvalidArgument {
				t.Errorf("Kick(%q) = %v, want InvalidArgument", id, err)
			}
		}
	})
}

// startTwoServices is startOneNode with a second service, "other", routed
// on the same gateway.
func startTwoServices(t *testing.T) *oneNodeGate {
	t.Helper()
	n := newNode(t)
	chat := serve(t, n, chatService("chat"))
	other := serve(t, n, chatService("other"))
	g := newGate(t, gate.Config{
		Node:   n,
		Routes: map[string]gate.Route{"chat": gate.To(rpc.To(chat)), "other": gate.To(rpc.To(other))},
		Public: []string{"chat.Login"},
	})
	url, addr := listenTCP(t, g)
	return &oneNodeGate{n: n, g: g, url: url, addr: addr}
}

// TestOneSessionPerUser: a second login of a user kicks the first session.
func TestOneSessionPerUser(t *testing.T) {
	hooks := newHookLog()
	cfg := authConfig()
	cfg.OnClose = hooks.onClose
	f := startOneNode(t, cfg)
	for _, how := range []string{"token", "bind"} {
		t.Run(how, func(t *testing.T) {
			login := func(c *client.Client) {
				if how == "bind" {
					mustCall(t, c, "chat.Login", "u-good", "u-good")
				}
			}
			token := ""
			if how == "token" {
				token = "good"
			}
			closed := newCloseRecorder()
			first := dial(t, client.Config{Addr: f.url, Token: token, OnClose: closed.onClose})
			login(first)
			second := dial(t, client.Config{Addr: f.url, Token: token})
			login(second)
			err := closed.wait(t)
			wantCode(t, "the first session", err, rpc.AlreadyExists)
			if !errContains(err, "logged in elsewhere") {
				t.Fatalf("first session closed with %v, want \"logged in elsewhere\"", err)
			}
			cl := hooks.nextClosed(t)
			if cl.info.ID != first.SessionID() || cl.info.UserID != "u-good" || !errContains(cl.reason, "logged in elsewhere") {
				t.Fatalf("OnClose(%+v, %v), want the first session, kicked", cl.info, cl.reason)
			}
			// PushUser reaches the second session.
			pushed := make(chan struct{}, 1)
			second.OnPush("chat.Hi", func([]byte) { pushed <- struct{}{} })
			if err := gate.PushUser(testCtx(t), f.n, "u-good", "chat.Hi", wrapperspb.String("hi")); err != nil {
				t.Fatal(err)
			}
			recv(t, pushed, "PushUser's push")
			mustCall(t, second, "chat.Whoami", "", "u-good")
			second.Close()
			cl = hooks.nextClosed(t)
			if cl.info.ID != second.SessionID() {
				t.Fatalf("OnClose(%+v), want the second session", cl.info)
			}
			// The user has no session any more.
			waitFor(t, "PushUser to fail with NotFound", func() bool {
				return rpc.CodeOf(gate.PushUser(testCtx(t), f.n, "u-good", "chat.Hi", wrapperspb.String("hi"))) == rpc.NotFound
			})
		})
	}
}

func TestHooks(t *testing.T) {
	hooks := newHookLog()
	cfg := authConfig()
	cfg.OnOpen, cfg.OnClose = hooks.onOpen, hooks.onClose
	f := startOneNode(t, cfg)
	c := dial(t, client.Config{Addr: f.url, Token: "good"})
	open := hooks.nextOpened(t)
	if open.ID != c.SessionID() || open.UserID != "u-good" || open.Listener != "tcp" || open.Remote == "" || open.Opened.IsZero() {
		t.Fatalf("OnOpen(%+v), want session %s of u-good on tcp", open, c.SessionID())
	}
	mustCall(t, c, "chat.Kick", "enough", "bye")
	cl := hooks.nextClosed(t)
	if cl.info.ID != c.SessionID() || cl.info.UserID != "u-good" || cl.info.Listener != "tcp" {
		t.Fatalf("OnClose(%+v), want session %s of u-good on tcp", cl.info, c.SessionID())
	}
	if !errContains(cl.reason, "enough") {
		t.Fatalf("OnClose reason %v, want the kick's", cl.reason)
	}
	// A lost connection: the reason says so.
	r := rawDial(t, f.addr)
	ack := r.handshake()
	hooks.nextOpened(t)
	r.nc.Close()
	cl = hooks.nextClosed(t)
	if cl.info.ID != ack.GetSessionId() || cl.reason == nil {
		t.Fatalf("OnClose(%+v, %v), want session %s with a reason", cl.info, cl.reason, ack.GetSessionId())
	}
}

func TestPanics(t *testing.T) {
	opened := make(chan struct{}, 8)
	f := startOneNode(t, gate.Config{
		Public: []string{"chat.Panic", "chat.Echo"},
		OnOpen: func(*gate.SessionInfo) {
			opened <- struct{}{}
			panic("hook boom")
		},
		OnClose: func(*gate.SessionInfo, error) { panic("close boom") },
	})
	c := dial(t, client.Config{Addr: f.url})
	recv(t, opened, "OnOpen")
	mustCall(t, c, "chat.Echo", "after hook panic", "echo:after hook panic")
	_, err := call(t, c, "chat.Panic", "")
	wantCode(t, "a panicking handler", err, rpc.Internal)
	mustCall(t, c, "chat.Echo", "after handler panic", "echo:after handler panic")
	c.Close()
	waitFor(t, "the session to end", func() bool { return f.g.Conns() == 0 })
	c2 := dial(t, client.Config{Addr: f.url})
	mustCall(t, c2, "chat.Echo", "again", "echo:again")
}

func TestLimitMaxFrame(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, Limits: gate.Limits{MaxFrame: 1024}})
	r := rawDial(t, f.addr)
	r.handshake()
	r.send(requestFrame(1, "chat.Echo", "small"))
	if resp := r.mustNext().GetResponse(); resp.GetCode() != 0 {
		t.Fatalf("a small request: %v", resp)
	}
	// Only the length prefix of a too large frame: the gateway refuses it
	// from the prefix, and no unread bytes make its close a reset.
	r.write(binary.BigEndian.AppendUint32(nil, 2000))
	cl := r.wantClose(rpc.ResourceExhausted)
	if !errContains(errors.New(cl.GetReason()), "1024") {
		t.Errorf("Close reason %q does not name the limit", cl.GetReason())
	}
	waitFor(t, "the gateway to drop the connection", func() bool { return f.g.Conns() == 0 })
	c := dial(t, client.Config{Addr: f.url})
	mustCall(t, c, "chat.Echo", "x", "echo:x")
}

func TestLimitHandshakeTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	f := startOneNode(t, gate.Config{Limits: gate.Limits{HandshakeTimeout: timeout}})
	start := time.Now()
	r := rawDial(t, f.addr)
	r.wantEnd()
	if d := time.Since(start); d < timeout*3/4 || d > 20*timeout {
		t.Fatalf("closed after %v, want about %v", d, timeout)
	}
	waitFor(t, "the gateway to drop the connection", func() bool { return f.g.Conns() == 0 })
}

func TestLimitHeartbeat(t *testing.T) {
	const hb = 100 * time.Millisecond
	f := startOneNode(t, gate.Config{Limits: gate.Limits{Heartbeat: hb}})
	r := rawDial(t, f.addr)
	if ack := r.handshake(); time.Duration(ack.GetHeartbeatMs())*time.Millisecond != hb {
		t.Fatalf("ack heartbeat %d ms, want %v", ack.GetHeartbeatMs(), hb)
	}
	// Heartbeats keep it alive past the idle limit, and are answered.
	for range 6 {
		time.Sleep(hb)
		r.send(&gatepb.Frame{Body: &gatepb.Frame_Heartbeat{Heartbeat: &gatepb.Heartbeat{}}})
		if r.mustNext().GetHeartbeat() == nil {
			t.Fatal("a heartbeat was not answered with one")
		}
	}
	start := time.Now()
	r.wantClose(rpc.DeadlineExceeded)
	if d := time.Since(start); d < 2*hb {
		t.Fatalf("closed after %v of silence, want about %v", d, 3*hb)
	}
	waitFor(t, "the gateway to drop the connection", func() bool { return f.g.Conns() == 0 })
}

func TestLimitRate(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, Limits: gate.Limits{Rate: 5, Burst: 5}})
	r := rawDial(t, f.addr)
	r.handshake()
	const n = 12
	frames := make([]*gatepb.Frame, n)
	for i := range frames {
		frames[i] = requestFrame(uint64(i+1), "chat.Echo", "x")
	}
	r.send(frames...) // all at once
	codes := make(map[uint64]rpc.Code)
	for len(codes) < n {
		resp := r.mustNext().GetResponse()
		if resp == nil {
			continue
		}
		codes[resp.GetId()] = rpc.Code(resp.GetCode())
	}
	ok := 0
	for id := uint64(1); id <= n; id++ {
		switch c := codes[id]; {
		case c == rpc.OK:
			ok++
			if id > 6 { // the burst, plus at most one token refilled meanwhile
				t.Errorf("request %d succeeded, beyond the burst", id)
			}
		case c == rpc.ResourceExhausted:
			if id <= 5 {
				t.Errorf("request %d rate limited, within the burst", id)
			}
		default:
			t.Errorf("request %d: code %v", id, c)
		}
	}
	if ok < 5 || ok > 6 {
		t.Errorf("%d of %d immediate requests succeeded, want the burst of 5", ok, n)
	}
	// Tokens come back at 5 per second.
	id := uint64(n)
	waitFor(t, "a request to pass the rate limit again", func() bool {
		time.Sleep(50 * time.Millisecond)
		id++
		r.send(requestFrame(id, "chat.Echo", "x"))
		return r.mustNext().GetResponse().GetCode() == 0
	})
}

func TestLimitWriteQueue(t *testing.T) {
	hooks := newHookLog()
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, OnClose: hooks.onClose, Limits: gate.Limits{WriteQueue: 4}})
	good := dial(t, client.Config{Addr: f.url})
	slow := rawDial(t, f.addr)
	ack := slow.handshake() // and then never reads
	big := wrapperspb.Bytes(make([]byte, 32<<10))
	waitFor(t, "the gateway to cut the slow client off", func() bool {
		for range 32 {
			if err := gate.Push(f.n, ack.GetSessionId(), "flood", big); err != nil {
				return true // the session is gone
			}
		}
		return f.g.Conns() == 1
	})
	for {
		cl := hooks.nextClosed(t)
		if cl.info.ID == ack.GetSessionId() {
			if !errContains(cl.reason, "write queue") {
				t.Fatalf("the slow client closed with %v, want the write queue's reason", cl.reason)
			}
			break
		}
	}
	mustCall(t, good, "chat.Echo", "still", "echo:still")
	// OnClose runs as the session stops, a moment before its connection
	// is released.
	waitFor(t, "the good client's connection only", func() bool { return f.g.Conns() == 1 })
}

func TestLimitMaxConns(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}, Limits: gate.Limits{MaxConns: 2}})
	a := dial(t, client.Config{Addr: f.url})
	dial(t, client.Config{Addr: f.url})
	// A raw third connection sends nothing, so that the gateway's close
	// leaves no unread bytes that would turn it into a reset.
	r := rawDial(t, f.addr)
	cl := r.wantClose(rpc.Unavailable)
	if !errContains(errors.New(cl.GetReason()), "full") {
		t.Errorf("Close reason %q, want it to say the gateway is full", cl.GetReason())
	}
	_, err := client.Dial(testCtx(t), client.Config{Addr: f.url})
	if err == nil {
		t.Fatal("a third client was admitted")
	}
	mustCall(t, a, "chat.Echo", "x", "echo:x")
	a.Close()
	waitFor(t, "a free slot", func() bool { return f.g.Conns() == 1 })
	c := dial(t, client.Config{Addr: f.url})
	mustCall(t, c, "chat.Echo", "y", "echo:y")
}

func TestBadBytes(t *testing.T) {
	f := startOneNode(t, gate.Config{Public: []string{"chat.Echo"}})
	t.Run("first frame not a handshake", func(t *testing.T) {
		r := rawDial(t, f.addr)
		r.send(requestFrame(1, "chat.Echo", "x"))
		ack := r.mustNext().GetHandshakeAck()
		if ack == nil || rpc.Code(ack.GetCode()) != rpc.InvalidArgument || ack.GetSessionId() != "" {
			t.Fatalf("ack %v, want InvalidArgument and no session", ack)
		}
		r.wantEnd()
	})
	t.Run("wrong version", func(t *testing.T) {
		r := rawDial(t, f.addr)
		r.send(&gatepb.Frame{Body: &gatepb.Frame_Handshake{Handshake: &gatepb.Handshake{Version: 99}}})
		ack := r.mustNext().GetHandshakeAck()
		if ack == nil || rpc.Code(ack.GetCode()) != rpc.FailedPrecondition {
			t.Fatalf("ack %v, want FailedPrecondition", ack)
		}
		r.wantEnd()
	})
	t.Run("first frame garbage", func(t *testing.T) {
		r := rawDial(t, f.addr)
		r.write(wireFrame([]byte{0xff, 0xff, 0xff}))
		ack := r.mustNext().GetHandshakeAck()
		if ack == nil || ack.GetCode() == 0 {
			t.Fatalf("ack %v, want a non-zero code", ack)
		}
		r.wantEnd()
	})
	t.Run("undecodable frame after the handshake", func(t *testing.T) {
		r := rawDial(t, f.addr)
		r.handshake()
		r.write(wireFrame([]byte{0xff, 0xff, 0xff}))
		r.wantClose(rpc.InvalidArgument)
	})
	t.Run("a frame a client may not send", func(t *testing.T) {
		r := rawDial(t, f.addr)
		r.handshake()
		r.send(&gatepb.Frame{Body: &gatepb.Frame_Push{Push: &gatepb.Push{Route: "x"}}})
		r.wantClose(rpc.InvalidArgument)
	})
	t.Run("random garbage", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		var wg sync.WaitGroup
		for i := range 20 {
			garbage := make([]byte, 1+rng.IntN(4096))
			for j := range garbage {
				garbage[j] = byte(rng.Uint32())
			}
			if i%2 == 0 { // a plausible length, then garbage
				copy(garbage, binary.BigEndian.AppendUint32(nil, uint32(rng.IntN(len(garbage)))))
			}
			r := rawDial(t, f.addr)
			r.handshake()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = r.nc.SetWriteDeadline(time.Now().Add(waitTimeout))
				_, _ = r.nc.Write(garbage)
				_ = r.nc.(interface{ CloseWrite() error }).CloseWrite()
			}()
			r.wantEnd()
		}
		wg.Wait()
		waitFor(t, "the gateway to drop every connection", func() bool { return f.g.Conns() == 0 })
	})
	c := dial(t, client.Config{Addr: f.url})
	mustCall(t, c, "chat.Echo", "fine", "echo:fine")
}

// wireFrame prefixes body with its length.
func wireFrame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}
