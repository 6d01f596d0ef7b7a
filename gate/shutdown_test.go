package gate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/gate/internal/nodepb"
	gatekcp "github.com/guildkit/guild/gate/kcp"
	gatemqtt "github.com/guildkit/guild/gate/mqtt"
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/rpc"
)

// slowBackend is the actor behind the "slow" service of these tests: it
// answers "slow.Echo" at once with "echo:<req>", and holds every other
// request until it gets releaseAll, then answers each with "done:<req>".
// It can hold any number at once (a gate.Service runs one at a time).
type slowBackend struct {
	held    []heldRequest
	holding chan int // the number held, after each new one
}

type heldRequest struct {
	r   actor.Responder
	arg string
}

type releaseAll struct{}

func (b *slowBackend) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case *nodepb.ClientRequest:
		var req wrapperspb.StringValue
		_ = proto.Unmarshal(m.GetBody(), &req)
		if m.GetRoute() == "slow.Echo" {
			c.Respond(stringReply("echo:" + req.Value))
			return
		}
		b.held = append(b.held, heldRequest{c.Responder(), req.Value})
		b.holding <- len(b.held)
	case releaseAll:
		for _, h := range b.held {
			h.r.Respond(stringReply("done:" + h.arg))
		}
		b.held = nil
	}
}

func stringReply(s string) *nodepb.ClientReply {
	b, _ := proto.Marshal(wrapperspb.String(s))
	return &nodepb.ClientReply{Body: b}
}

// slowGate is a gateway routing "slow" to a slowBackend, listening on
// TCP, WebSocket, KCP and MQTT.
type slowGate struct {
	n       *actor.Node
	g       *gate.Gateway
	backend actor.PID
	holding chan int
	tcp     string // host:port
	ws      string // ws://...
	kcp     string // kcp://...
	mqtt    string // host:port
	hooks   *hookLog
}

func startSlowGate(t *testing.T, lim gate.Limits) *slowGate {
	t.Helper()
	n := newNode(t)
	holding := make(chan int, 1024)
	backend, err := n.Spawn(func() actor.Actor { return &slowBackend{holding: holding} })
	if err != nil {
		t.Fatal(err)
	}
	hooks := &hookLog{opened: make(chan gate.SessionInfo, 1024), closed: make(chan closedSession, 1024)}
	g := newGate(t, gate.Config{
		Node:    n,
		Routes:  map[string]gate.Route{"slow": gate.To(rpc.To(backend))},
		Public:  []string{"slow.Wait", "slow.Echo"},
		OnOpen:  hooks.onOpen,
		OnClose: hooks.onClose,
		Limits:  lim,
	})
	// Answer what is still held when the test ends, before the gateway
	// closes (cleanups run last first).
	t.Cleanup(func() { _ = n.Send(backend, releaseAll{}) })
	sg := &slowGate{n: n, g: g, backend: backend, holding: holding, hooks: hooks}
	_, sg.tcp = listenTCP(t, g)
	ws, err := gatews.Listen(g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	sg.ws = "ws://" + ws.String() + "/ws"
	kcp, err := gatekcp.Listen(g, "127.0.0.1:0", gatekcp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sg.kcp = "kcp://" + kcp.String()
	mq, err := gatemqtt.Listen(g, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	sg.mqtt = mq.String()
	return sg
}

// waitHeld waits until the backend holds n requests.
func (sg *slowGate) waitHeld(t *testing.T, n int) {
	t.Helper()
	for {
		if got := recv(t, sg.holding, fmt.Sprintf("the backend to hold %d requests", n)); got >= n {
			return
		}
	}
}

// mqtt311Client is a paho.mqtt.golang (MQTT 3.1.1) client that records
// the loss of its connection.
func mqtt311Client(t *testing.T, addr string, in *mqttInbox) (mqtt.Client, chan error) {
	t.Helper()
	lost := make(chan error, 1)
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("v3").
		SetProtocolVersion(4).SetKeepAlive(5 * time.Second).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetCleanSession(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			in.Add(mqttMsg{Topic: m.Topic(), Payload: bytes.Clone(m.Payload()), QoS: m.Qos()})
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
	c := mqtt.NewClient(opts)
	mqttWait(t, c.Connect())
	t.Cleanup(func() { c.Disconnect(0) })
	mqttWait(t, c.Subscribe("res/#", 1, nil))
	mqttWait(t, c.Subscribe("err/#", 1, nil))
	return c, lost
}

// mqtt5Client is a paho.golang (MQTT 5) client subscribed to res/#; the
// channel gets the DISCONNECT the gateway sends.
func mqtt5Client(t *testing.T, addr string, in *mqttInbox) (*paho.Client, chan *paho.Disconnect) {
	t.Helper()
	disc := make(chan *paho.Disconnect, 1)
	c, _, err := dial5(t, addr, "v5", "", 30, in, func(d *paho.Disconnect) { disc <- d })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	if _, err := c.Subscribe(testCtx(t), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "res/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	return c, disc
}

// wantDisconnect8B checks an MQTT 5 client's DISCONNECT: 0x8B, Server
// shutting down, with the gateway's reason.
func wantDisconnect8B(t *testing.T, disc chan *paho.Disconnect) {
	t.Helper()
	d := recv(t, disc, "the MQTT 5 client's DISCONNECT")
	if d.ReasonCode != 0x8B || d.Properties == nil || d.Properties.ReasonString != gate.GoingAwayReason {
		t.Fatalf("DISCONNECT %#x %+v, want 0x8B (Server shutting down) with reason %q", d.ReasonCode, d.Properties, gate.GoingAwayReason)
	}
}

// TestShutdownDrains: Shutdown begins while 50 requests wait on a slow
// backend, from clients on every listener. The listeners stop at once, a
// new request is refused with Unavailable and not_forwarded, Shutdown
// waits, and when the backend answers, every one of the 50 gets its real
// answer, and then every client is told the gateway is going away: the
// Close frame (code GoingAway, in order after the answers), DISCONNECT
// 0x8B for MQTT 5, a closed connection for MQTT 3.1.1.
func TestShutdownDrains(t *testing.T) {
	sg := startSlowGate(t, gate.Limits{})
	ctx := testCtx(t)

	// 5 raw TCP sessions with 6 requests each: 30.
	var raws []*rawConn
	for i := range 5 {
		r := rawDial(t, sg.tcp)
		r.handshake()
		for j := range 6 {
			r.send(requestFrame(uint64(j+1), "slow.Wait", fmt.Sprintf("raw%d-%d", i, j)))
		}
		raws = append(raws, r)
	}
	// Go clients on WebSocket and KCP, 5 each: 40.
	type answer struct {
		want string
		got  string
		err  error
	}
	answers := make(chan answer, 50)
	var goClosed []closeRecorder
	for _, addr := range []string{sg.ws, sg.kcp} {
		rec := newCloseRecorder()
		goClosed = append(goClosed, rec)
		c := dial(t, client.Config{Addr: addr, OnClose: rec.onClose})
		for j := range 5 {
			arg := fmt.Sprintf("%s-%d", addr[:3], j)
			go func() {
				var reply wrapperspb.StringValue
				err := c.Request(ctx, "slow.Wait", wrapperspb.String(arg), &reply)
				answers <- answer{"done:" + arg, reply.Value, err}
			}()
		}
	}
	// MQTT 5 and 3.1.1, 5 each: 50.
	in5, in3 := &mqttInbox{}, &mqttInbox{}
	c5, disc5 := mqtt5Client(t, sg.mqtt, in5)
	c3, lost3 := mqtt311Client(t, sg.mqtt, in3)
	for j := range 5 {
		id := strconv.Itoa(j + 1)
		if _, err := c5.Publish(ctx, &paho.Publish{Topic: "req/slow.Wait/" + id, QoS: 1, Payload: mqttStr(t, "v5-"+id)}); err != nil {
			t.Fatal(err)
		}
		mqttWait(t, c3.Publish("req/slow.Wait/"+id, 1, false, mqttStr(t, "v3-"+id)))
	}
	sg.waitHeld(t, 50)

	shutdown := make(chan error, 1)
	go func() { shutdown <- sg.g.Shutdown(ctx) }()

	// Every listener stops at once.
	waitFor(t, "the TCP listener to close", func() bool {
		nc, err := net.DialTimeout("tcp", sg.tcp, time.Second)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	if _, err := client.Dial(ctx, client.Config{Addr: sg.ws}); err == nil {
		t.Fatal("a client connected on WebSocket during the shutdown")
	}
	if _, err := client.Dial(ctx, client.Config{Addr: "tcp://" + sg.mqtt}); err == nil {
		t.Fatal("a client connected on the MQTT listener during the shutdown")
	}
	// A new request is refused, not forwarded, once the session knows
	// (until then it is answered: slow.Echo does not wait).
	r := raws[0]
	for id := uint64(100); ; id++ {
		r.send(requestFrame(id, "slow.Echo", "late"))
		res := r.mustNext().GetResponse()
		if res == nil || res.GetId() != id {
			t.Fatalf("got %v, want the answer to request %d", res, id)
		}
		if res.GetCode() == 0 {
			continue
		}
		if rpc.Code(res.GetCode()) != rpc.Unavailable || !res.GetNotForwarded() {
			t.Fatalf("a request during the shutdown: %v, want Unavailable, not forwarded", res)
		}
		break
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v with 50 requests in flight", err)
	default:
	}

	if err := sg.n.Send(sg.backend, releaseAll{}); err != nil {
		t.Fatal(err)
	}
	// Raw sessions: the 6 answers, then the Close frame, then the end.
	for i, r := range raws {
		seen := map[uint64]bool{}
		for len(seen) < 6 {
			f := r.mustNext()
			res := f.GetResponse()
			if res == nil {
				t.Fatalf("raw %d: %v before its 6 answers (got %d)", i, f, len(seen))
			}
			var v wrapperspb.StringValue
			_ = proto.Unmarshal(res.GetBody(), &v)
			if want := fmt.Sprintf("done:raw%d-%d", i, res.GetId()-1); res.GetCode() != 0 || v.Value != want {
				t.Fatalf("raw %d: answer %v (%q), want %q", i, res, v.Value, want)
			}
			seen[res.GetId()] = true
		}
		if cl := r.wantClose(gate.GoingAway); cl.GetReason() != gate.GoingAwayReason {
			t.Fatalf("raw %d: Close reason %q", i, cl.GetReason())
		}
	}
	for range 10 {
		a := recv(t, answers, "a Go client's answer")
		if a.err != nil || a.got != a.want {
			t.Fatalf("Go client: %q, %v; want %q", a.got, a.err, a.want)
		}
	}
	for _, rec := range goClosed {
		err := rec.wait(t)
		if !errors.Is(err, client.ErrGoingAway) || rpc.CodeOf(err) != gate.GoingAway || !errContains(err, gate.GoingAwayReason) {
			t.Fatalf("Go client's OnClose: %v, want ErrGoingAway, code GoingAway, %q", err, gate.GoingAwayReason)
		}
	}
	wantDisconnect8B(t, disc5)
	recv(t, lost3, "the MQTT 3.1.1 connection's end")
	for j := range 5 {
		id := strconv.Itoa(j + 1)
		if got := mqttUnstr(t, in5.Wait(t, "res/"+id).Payload); got != "done:v5-"+id {
			t.Fatalf("MQTT 5 res/%s: %q", id, got)
		}
		if got := mqttUnstr(t, in3.Wait(t, "res/"+id).Payload); got != "done:v3-"+id {
			t.Fatalf("MQTT 3.1.1 res/%s: %q", id, got)
		}
	}

	if err := recv(t, shutdown, "Shutdown"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := sg.g.Conns(); n != 0 {
		t.Fatalf("%d connections after Shutdown", n)
	}
	for range 9 {
		if cl := sg.hooks.nextClosed(t); !errors.Is(cl.reason, gate.ErrClosed) {
			t.Fatalf("OnClose of %s: %v, want gate.ErrClosed", cl.info.Listener, cl.reason)
		}
	}
	// Both are safe to repeat, and to combine.
	if err := sg.g.Shutdown(ctx); err != nil {
		t.Fatalf("a second Shutdown: %v", err)
	}
	if err := sg.g.Close(); err != nil {
		t.Fatalf("Close after Shutdown: %v", err)
	}
	if _, err := sg.g.ListenTCP("127.0.0.1:0", nil); !errors.Is(err, gate.ErrClosed) {
		t.Fatalf("ListenTCP after Shutdown: %v, want ErrClosed", err)
	}
}

// TestShutdownDeadline: when Shutdown's ctx ends before the backend
// answers, it falls back to Close and returns ctx's error; the requests
// in flight are answered Unavailable (their outcome unknown, so not
// "not forwarded"), then the Close frame comes, and DISCONNECT 0x8B.
func TestShutdownDeadline(t *testing.T) {
	sg := startSlowGate(t, gate.Limits{})
	r := rawDial(t, sg.tcp)
	r.handshake()
	r.send(requestFrame(1, "slow.Wait", "a"))
	in5 := &mqttInbox{}
	c5, disc5 := mqtt5Client(t, sg.mqtt, in5)
	if _, err := c5.Publish(testCtx(t), &paho.Publish{Topic: "req/slow.Wait/7", QoS: 1, Payload: mqttStr(t, "b")}); err != nil {
		t.Fatal(err)
	}
	sg.waitHeld(t, 2)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := sg.g.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want context.DeadlineExceeded", err)
	}
	res := r.mustNext().GetResponse()
	if res.GetId() != 1 || rpc.Code(res.GetCode()) != rpc.Unavailable || res.GetNotForwarded() {
		t.Fatalf("the request in flight: %v, want Unavailable, forwarded", res)
	}
	r.wantClose(gate.GoingAway)
	if m := in5.Wait(t, "res/7"); m.User["code"] != "14" {
		t.Fatalf("MQTT 5 res/7: %+v, want code 14", m)
	}
	wantDisconnect8B(t, disc5)
	if n := sg.g.Conns(); n != 0 {
		t.Fatalf("%d connections after Shutdown", n)
	}
}

// TestCloseSendsGoingAway: Close, without Shutdown, still tells every
// client why (the Close frame, DISCONNECT 0x8B), and does not wait for a
// client that reads nothing: its connection is cut after a bounded
// grace, well before the 10s write timeout.
func TestCloseSendsGoingAway(t *testing.T) {
	sg := startSlowGate(t, gate.Limits{WriteQueue: 1 << 16, WriteQueueBytes: 64 << 20, SlowClientAfter: time.Minute})
	r := rawDial(t, sg.tcp)
	r.handshake()
	rec := newCloseRecorder()
	dial(t, client.Config{Addr: sg.ws, OnClose: rec.onClose})
	_, disc5 := mqtt5Client(t, sg.mqtt, &mqttInbox{})
	_, lost3 := mqtt311Client(t, sg.mqtt, &mqttInbox{})

	// A client that reads nothing, its socket buffers full of pushes.
	stuck := rawDial(t, sg.tcp)
	stuck.send(handshakeFrame(""))
	var sid string
	for sid == "" {
		if info := sg.hooks.nextOpened(t); info.Remote == stuck.nc.LocalAddr().String() {
			sid = info.ID
		}
	}
	big := wrapperspb.String(string(make([]byte, 60<<10)))
	for range 400 { // 24 MB: more than loopback's socket buffers hold
		if err := gate.Push(sg.n, sid, "big", big); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	if err := sg.g.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v: it waited for the client that reads nothing", d)
	}
	r.wantClose(gate.GoingAway)
	if err := rec.wait(t); !errors.Is(err, client.ErrGoingAway) || rpc.CodeOf(err) != gate.GoingAway {
		t.Fatalf("Go client's OnClose: %v, want ErrGoingAway, code GoingAway", err)
	}
	wantDisconnect8B(t, disc5)
	recv(t, lost3, "the MQTT 3.1.1 connection's end")
	if err := sg.g.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if err := sg.g.Shutdown(testCtx(t)); err != nil {
		t.Fatalf("Shutdown after Close: %v", err)
	}
}

// TestShutdownHandshaking: a connection still in its handshake does not
// hold Shutdown up until its handshake deadline: it is closed at once.
func TestShutdownHandshaking(t *testing.T) {
	sg := startSlowGate(t, gate.Limits{HandshakeTimeout: time.Minute})
	r := rawDial(t, sg.tcp) // sends nothing
	waitFor(t, "the connection to be admitted", func() bool { return sg.g.Conns() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sg.g.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (it waited for the handshake)", err)
	}
	r.wantEnd()
}

// TestShutdownWebSocketHandler: a WebSocketHandler mounted on the game's
// own server refuses new clients with Close{14} once the shutdown began.
func TestShutdownWebSocketHandler(t *testing.T) {
	sg := startSlowGate(t, gate.Limits{})
	if err := sg.g.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gatews.Handler(sg.g))
	defer srv.Close()
	_, err := client.Dial(testCtx(t), client.Config{Addr: "ws" + strings.TrimPrefix(srv.URL, "http") + "/"})
	if rpc.CodeOf(err) != rpc.Unavailable || !errContains(err, gate.GoingAwayReason) {
		t.Fatalf("Dial after Shutdown: %v, want Unavailable, %q", err, gate.GoingAwayReason)
	}
}
