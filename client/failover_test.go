package client_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
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
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/rpc"
)

// namedGate is a gateway on a node of its own, whose service "svc"
// answers Where with the gateway's name (after a moment of work, so that
// requests are in flight when it shuts down) and Push by pushing
// "svc.Pushed" to the caller.
type namedGate struct {
	name string
	n    *actor.Node
	g    *gate.Gateway
	tcp  string // tcp://...
	ws   string // ws://...
}

// startNamedGate starts a namedGate listening on TCP at tcpAddr
// ("127.0.0.1:0" for any port) and on WebSocket.
func startNamedGate(t *testing.T, name, tcpAddr string) *namedGate {
	t.Helper()
	n, err := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	svc := gate.NewService("svc")
	gate.Handle(svc, "Where", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		time.Sleep(time.Millisecond) // the work a request takes
		return wrapperspb.String(name), nil
	})
	gate.Handle(svc, "Push", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String(name), s.Push("svc.Pushed", wrapperspb.String(name+":"+req.Value))
	})
	pid, err := svc.Serve(testCtx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{
		Node:   n,
		Routes: map[string]gate.Route{"svc": gate.To(rpc.To(pid))},
		Public: []string{"svc.Where", "svc.Push"},
		Auth: func(ctx context.Context, token string) (string, error) {
			if user, ok := strings.CutPrefix(token, "good:"); ok {
				return user, nil
			}
			return "", errors.New("bad token")
		},
		Limits: gate.Limits{Rate: 100000, Burst: 100000},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	tcp, err := g.ListenTCP(tcpAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := gatews.Listen(g, "127.0.0.1:0", "/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	return &namedGate{name: name, n: n, g: g, tcp: "tcp://" + tcp.String(), ws: "ws://" + ws.String() + "/ws"}
}

func where(ctx context.Context, c *client.Client) (string, error) {
	var reply wrapperspb.StringValue
	err := c.Request(ctx, "svc.Where", wrapperspb.String("?"), &reply)
	return reply.Value, err
}

// TestFailoverNoRequestFails: a client with two gateway addresses keeps
// 8 requests going while its gateway shuts down. Not one fails: each is
// answered by the first gateway, or (refused as not forwarded, or
// unanswered at the going-away Close, or made while reconnecting) sent
// on the second. The client says where it went and why, keeps its
// token's user and its push handlers.
func TestFailoverNoRequestFails(t *testing.T) {
	for _, nw := range []string{"tcp", "ws"} {
		t.Run(nw, func(t *testing.T) {
			a := startNamedGate(t, "a", "127.0.0.1:0")
			b := startNamedGate(t, "b", "127.0.0.1:0")
			addrs := map[string][]string{"tcp": {a.tcp, b.tcp}, "ws": {a.ws, b.ws}}[nw]
			moved := make(chan client.Reconnection, 4)
			c, err := client.Dial(testCtx(t), client.Config{
				Addrs:       addrs,
				Token:       "good:ana",
				Reconnect:   true,
				BackoffMin:  10 * time.Millisecond,
				OnReconnect: func(r client.Reconnection) { moved <- r },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			pushed := make(chan string, 4)
			c.OnPush("svc.Pushed", func(body []byte) {
				var v wrapperspb.StringValue
				_ = proto.Unmarshal(body, &v)
				pushed <- v.Value
			})

			var (
				mu     sync.Mutex
				count  = map[string]int{}
				failed []error
			)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			ctx := testCtx(t)
			for range 8 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						got, err := where(ctx, c)
						mu.Lock()
						if err != nil {
							failed = append(failed, err)
						} else {
							count[got]++
						}
						mu.Unlock()
					}
				})
			}
			answered := func(name string, n int) func() bool {
				return func() bool {
					mu.Lock()
					defer mu.Unlock()
					return count[name] >= n || len(failed) > 0
				}
			}
			waitUntil(t, "50 answers from gateway a", answered("a", 50))
			shutdown := make(chan error, 1)
			go func() { shutdown <- a.g.Shutdown(ctx) }()
			waitUntil(t, "50 answers from gateway b", answered("b", 50))
			close(stop)
			wg.Wait()
			if len(failed) > 0 {
				t.Fatalf("%d requests failed during the failover, the first: %v", len(failed), failed[0])
			}
			select {
			case err := <-shutdown:
				if err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
			case <-ctx.Done():
				t.Fatal("Shutdown did not return")
			}

			r := <-moved
			if r.Addr != addrs[1] || r.From != addrs[0] || !errors.Is(r.Cause, client.ErrGoingAway) || r.Attempts != 1 {
				t.Fatalf("OnReconnect got %+v, want a move from %s to %s, going away, in 1 attempt", r, addrs[0], addrs[1])
			}
			if c.Addr() != addrs[1] || c.UserID() != "ana" {
				t.Fatalf("now on %s as %q, want %s as ana", c.Addr(), c.UserID(), addrs[1])
			}
			var reply wrapperspb.StringValue
			if err := c.Request(ctx, "svc.Push", wrapperspb.String("x"), &reply); err != nil || reply.Value != "b" {
				t.Fatalf("svc.Push: %q, %v", reply.Value, err)
			}
			select {
			case p := <-pushed:
				if p != "b:x" {
					t.Fatalf("push %q, want b:x", p)
				}
			case <-ctx.Done():
				t.Fatal("the push handler set before the failover got nothing")
			}
		})
	}
}

// waitUntil polls cond every 5ms until it holds, failing t after 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFailoverWaitsForAGateway: a request made while no gateway can be
// reached waits, and is sent on the session opened when one comes up.
func TestFailoverWaitsForAGateway(t *testing.T) {
	a := startNamedGate(t, "a", "127.0.0.1:0")
	spare := closedAddr(t) // gateway b starts later, here
	moved := make(chan client.Reconnection, 4)
	c, err := client.Dial(testCtx(t), client.Config{
		Addrs:       []string{a.tcp, "tcp://" + spare},
		Reconnect:   true,
		BackoffMin:  10 * time.Millisecond,
		BackoffMax:  50 * time.Millisecond,
		OnReconnect: func(r client.Reconnection) { moved <- r },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := a.g.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	answer := make(chan string, 1)
	go func() {
		got, err := where(testCtx(t), c)
		if err != nil {
			got = err.Error()
		}
		answer <- got
	}()
	select {
	case got := <-answer:
		t.Fatalf("the request ended with %q while no gateway was up", got)
	case <-time.After(100 * time.Millisecond):
	}
	startNamedGate(t, "b", spare)
	select {
	case got := <-answer:
		if got != "b" {
			t.Fatalf("the request waiting for a gateway: %q, want b", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request still waits")
	}
	if r := <-moved; r.Addr != "tcp://"+spare || r.Attempts < 2 {
		t.Fatalf("OnReconnect %+v, want %s after several attempts", r, spare)
	}
}

// TestFailoverAllDown: with every gateway down, a request fails at its
// ctx's deadline, not before and not much after, with Unavailable, an
// error that matches ErrNoGateway and context.DeadlineExceeded, and says
// why the last attempt failed.
func TestFailoverAllDown(t *testing.T) {
	a := startNamedGate(t, "a", "127.0.0.1:0")
	b := startNamedGate(t, "b", "127.0.0.1:0")
	c, err := client.Dial(testCtx(t), client.Config{
		Addrs:      []string{a.tcp, b.tcp},
		Reconnect:  true,
		BackoffMin: 10 * time.Millisecond,
		BackoffMax: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := b.g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.g.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	const wait = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	start := time.Now()
	_, err = where(ctx, c)
	took := time.Since(start)
	switch {
	case rpc.CodeOf(err) != rpc.Unavailable:
		t.Fatalf("%v (code %v), want Unavailable", err, rpc.CodeOf(err))
	case !errors.Is(err, client.ErrNoGateway) || !errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("%v: want it to match ErrNoGateway and context.DeadlineExceeded", err)
	case !strings.Contains(err.Error(), "connection refused"):
		t.Fatalf("%v: want the last attempt's error", err)
	case took < wait || took > wait+3*time.Second:
		t.Fatalf("failed after %v, want at the %v deadline", took, wait)
	}
}

// TestInFlightOnLostConnection: a request in flight on a connection that
// ends without an answer and without a going-away Close (its outcome is
// unknown) fails at once with Unavailable: it is not sent again, and it
// does not wait for its deadline.
func TestInFlightOnLostConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	requests := make(chan string, 8)
	// A gateway that takes the handshake and the first request, then
	// drops the connection without a word.
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer nc.Close()
				fr := newFrameReader(nc)
				if _, err := fr.next(); err != nil {
					return
				}
				ack, _ := gatepb.AppendStream(nil, &gatepb.Frame{Body: &gatepb.Frame_HandshakeAck{HandshakeAck: &gatepb.HandshakeAck{
					SessionId: "1.1.1/9", HeartbeatMs: 10000, Version: gatepb.Version,
				}}})
				if _, err := nc.Write(ack); err != nil {
					return
				}
				f, err := fr.next()
				if err != nil {
					return
				}
				requests <- f.GetRequest().GetRoute()
			})
		}
	})
	c, err := client.Dial(testCtx(t), client.Config{Addrs: []string{"tcp://" + ln.Addr().String()}, Reconnect: true, BackoffMin: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err = where(ctx, c)
	if rpc.CodeOf(err) != rpc.Unavailable || errors.Is(err, client.ErrNoGateway) || time.Since(start) > 3*time.Second {
		t.Fatalf("after %v: %v, want Unavailable at once (the connection was lost)", time.Since(start), err)
	}
	if got := <-requests; got != "svc.Where" {
		t.Fatalf("the gateway got %q", got)
	}
	select {
	case got := <-requests:
		t.Fatalf("the request was sent again (%q): its outcome was unknown", got)
	default:
	}
}

type frameReader struct{ nc net.Conn }

func newFrameReader(nc net.Conn) *frameReader { return &frameReader{nc} }

// next reads one stream frame, waiting at most 10s.
func (r *frameReader) next() (*gatepb.Frame, error) {
	_ = r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [gatepb.HeaderSize]byte
	if _, err := readFull(r.nc, hdr[:]); err != nil {
		return nil, err
	}
	n := int(hdr[0])<<24 | int(hdr[1])<<16 | int(hdr[2])<<8 | int(hdr[3])
	b := make([]byte, n)
	if _, err := readFull(r.nc, b); err != nil {
		return nil, err
	}
	var f gatepb.Frame
	return &f, gatepb.Decode(b, &f)
}

func readFull(nc net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := nc.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestDialAddrs: Dial takes Addr or Addrs, not both, and moves on to the
// next address when one cannot be reached.
func TestDialAddrs(t *testing.T) {
	b := startNamedGate(t, "b", "127.0.0.1:0")
	down := "tcp://" + closedAddr(t)
	for _, cfg := range []client.Config{
		{},
		{Addr: b.tcp, Addrs: []string{b.tcp}},
		{Addrs: []string{b.tcp, "http://x"}},
		{Addrs: []string{"nope"}},
	} {
		if c, err := client.Dial(testCtx(t), cfg); err == nil {
			c.Close()
			t.Errorf("Dial(%+v) worked", cfg)
		}
	}
	c, err := client.Dial(testCtx(t), client.Config{Addrs: []string{down, b.tcp}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := where(testCtx(t), c); err != nil || got != "b" || c.Addr() != b.tcp {
		t.Fatalf("on %s: %q, %v; want b", c.Addr(), got, err)
	}
	_, err = client.Dial(testCtx(t), client.Config{Addrs: []string{down, down}})
	if rpc.CodeOf(err) != rpc.Unavailable || strings.Count(err.Error(), "connection refused") != 2 {
		t.Fatalf("Dial with every gateway down: %v, want Unavailable and both errors", err)
	}
}

// TestGoingAwayResendsUnanswered: a request still unanswered when the
// gateway's going-away Close arrives was handled by no service (the
// gateway answers all it forwarded first): it is sent again, at once
// (BackoffMin is far longer than the request's deadline), to the next
// gateway. A fake gateway plays the first, to make that moment certain.
func TestGoingAwayResendsUnanswered(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	got := make(chan string, 1)
	wg.Go(func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		fr := newFrameReader(nc)
		if _, err := fr.next(); err != nil {
			return
		}
		ack, _ := gatepb.AppendStream(nil, &gatepb.Frame{Body: &gatepb.Frame_HandshakeAck{HandshakeAck: &gatepb.HandshakeAck{
			SessionId: "1.1.1/9", HeartbeatMs: 10000, Version: gatepb.Version,
		}}})
		if _, err := nc.Write(ack); err != nil {
			return
		}
		f, err := fr.next()
		if err != nil {
			return
		}
		got <- f.GetRequest().GetRoute()
		bye, _ := gatepb.AppendStream(nil, &gatepb.Frame{Body: &gatepb.Frame_Close{Close: &gatepb.Close{
			Code: uint32(gate.GoingAway), Reason: gate.GoingAwayReason,
		}}})
		_, _ = nc.Write(bye)
	})
	b := startNamedGate(t, "b", "127.0.0.1:0")
	moved := make(chan client.Reconnection, 1)
	closed := make(chan error, 1)
	first := "tcp://" + ln.Addr().String()
	c, err := client.Dial(testCtx(t), client.Config{
		Addrs:       []string{first, b.tcp},
		Reconnect:   true,
		BackoffMin:  time.Minute,
		OnReconnect: func(r client.Reconnection) { moved <- r },
		OnClose:     func(err error) { closed <- err },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	answer, err := where(ctx, c)
	if err != nil || answer != "b" {
		t.Fatalf("%q, %v; want the answer of gateway b", answer, err)
	}
	if r := <-got; r != "svc.Where" {
		t.Fatalf("the first gateway got %q", r)
	}
	if err := <-closed; !errors.Is(err, client.ErrGoingAway) || rpc.CodeOf(err) != rpc.Unavailable {
		t.Fatalf("OnClose: %v, want ErrGoingAway, Unavailable", err)
	}
	if r := <-moved; r.From != first || r.Addr != b.tcp || !errors.Is(r.Cause, client.ErrGoingAway) {
		t.Fatalf("OnReconnect: %+v", r)
	}
}

// TestIdempotentRetry: a request on an idempotent route (Config.Idempotent)
// whose connection ends without an answer is sent again on the next
// session: it succeeds when a later gateway answers, and fails with
// Unavailable after MaxRetries more attempts when none does. A route not
// idempotent is never sent again (TestInFlightOnLostConnection).
func TestIdempotentRetry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		drops int // connections that drop the request before one answers
		want  error
	}{
		{"answered on the third connection", 2, nil},
		{"never answered", 1000, rpc.Error(rpc.Unavailable, "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			t.Cleanup(func() {
				ln.Close()
				wg.Wait()
			})
			var mu sync.Mutex
			sent := 0
			wg.Go(func() {
				for {
					nc, err := ln.Accept()
					if err != nil {
						return
					}
					wg.Go(func() {
						defer nc.Close()
						fr := newFrameReader(nc)
						if _, err := fr.next(); err != nil {
							return
						}
						ack, _ := gatepb.AppendStream(nil, &gatepb.Frame{Body: &gatepb.Frame_HandshakeAck{HandshakeAck: &gatepb.HandshakeAck{
							SessionId: "1.1.1/9", HeartbeatMs: 10000, Version: gatepb.Version,
						}}})
						if _, err := nc.Write(ack); err != nil {
							return
						}
						f, err := fr.next()
						if err != nil || f.GetRequest() == nil {
							return
						}
						mu.Lock()
						sent++
						drop := sent <= tc.drops
						mu.Unlock()
						if drop {
							return // without a word: the outcome is unknown
						}
						body, _ := proto.Marshal(wrapperspb.String("here"))
						resp, _ := gatepb.AppendStream(nil, &gatepb.Frame{Body: &gatepb.Frame_Response{Response: &gatepb.Response{Id: f.GetRequest().GetId(), Body: body}}})
						_, _ = nc.Write(resp)
						_, _ = fr.next() // until the client closes
					})
				}
			})
			c, err := client.Dial(testCtx(t), client.Config{
				Addrs: []string{"tcp://" + ln.Addr().String()}, Reconnect: true, BackoffMin: time.Millisecond,
				Idempotent: func(route string) bool { return route == "svc.Where" },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := where(ctx, c)
			mu.Lock()
			n := sent
			mu.Unlock()
			if tc.want == nil {
				if err != nil || got != "here" || n != tc.drops+1 {
					t.Fatalf("%q, %v after %d sends; want \"here\" after %d", got, err, n, tc.drops+1)
				}
				return
			}
			if rpc.CodeOf(err) != rpc.Unavailable || n != 1+client.MaxRetries {
				t.Fatalf("%v after %d sends; want Unavailable after %d", err, n, 1+client.MaxRetries)
			}
		})
	}
}
