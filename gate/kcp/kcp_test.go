package gatekcp_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/gate"
	gatekcp "github.com/guildkit/guild/gate/kcp"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/rpc"
)

// *gate.Gateway is what Listen serves its listener on.
var _ gatekcp.Server = (*gate.Gateway)(nil)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 10 * time.Second

// secret is the tests' shared KCP secret.
var secret = []byte("0123456789abcdef0123456789abcdef")

// testCtx returns a context that ends with the test or after waitTimeout.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// kcpEnv is a gateway on a node of its own, whose service "chat" has
// Echo (replies "echo:<req>") and PushMe (pushes "chat.Pushed"
// "push:<req>", then replies). Every route is public.
type kcpEnv struct {
	g *gate.Gateway

	mu        sync.Mutex
	listeners []string // SessionInfo.Listener of each session opened
}

func newEnv(t *testing.T) *kcpEnv {
	t.Helper()
	n, err := actor.NewNode(actor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	svc := gate.NewService("chat")
	gate.Handle(svc, "Echo", func(_ *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return wrapperspb.String("echo:" + req.GetValue()), nil
	})
	gate.Handle(svc, "PushMe", func(s *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return req, s.Push("chat.Pushed", wrapperspb.String("push:"+req.GetValue()))
	})
	pid, err := svc.Serve(testCtx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	env := &kcpEnv{}
	env.g, err = gate.New(gate.Config{
		Node:   n,
		Routes: map[string]gate.Route{"chat": gate.To(rpc.To(pid))},
		Public: []string{"chat.Echo", "chat.PushMe"},
		OnOpen: func(s *gate.SessionInfo) {
			env.mu.Lock()
			env.listeners = append(env.listeners, s.Listener)
			env.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.g.Close() }) // before the node's Close
	return env
}

// listen opens a KCP listener on env's gateway and returns its kcp:// URL.
func (env *kcpEnv) listen(t *testing.T, opts gatekcp.Options) string {
	t.Helper()
	a, err := gatekcp.Listen(env.g, "127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	return "kcp://" + a.String()
}

// TestKCPEncryptedRoundTrip: a client with the gateway's key makes a
// request and gets its reply, then gets a push, over encrypted KCP; the
// session is a "kcp" one, in SessionInfo and in Stats.
func TestKCPEncryptedRoundTrip(t *testing.T) {
	env := newEnv(t)
	addr := env.listen(t, gatekcp.Options{Key: secret})
	ctx := testCtx(t)
	c, err := client.Dial(ctx, client.Config{Addr: addr, KCPKey: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var reply wrapperspb.StringValue
	if err := c.Request(ctx, "chat.Echo", wrapperspb.String("hi"), &reply); err != nil || reply.GetValue() != "echo:hi" {
		t.Fatalf("chat.Echo: %q, %v", reply.GetValue(), err)
	}
	pushed := make(chan string, 1)
	c.OnPush("chat.Pushed", func(body []byte) {
		var v wrapperspb.StringValue
		if err := proto.Unmarshal(body, &v); err == nil {
			pushed <- v.GetValue()
		}
	})
	if err := c.Request(ctx, "chat.PushMe", wrapperspb.String("p"), &reply); err != nil {
		t.Fatalf("chat.PushMe: %v", err)
	}
	select {
	case p := <-pushed:
		if p != "push:p" {
			t.Errorf("push %q, want push:p", p)
		}
	case <-ctx.Done():
		t.Fatal("no push")
	}
	env.mu.Lock()
	listeners := env.listeners
	env.mu.Unlock()
	if len(listeners) != 1 || listeners[0] != "kcp" {
		t.Errorf("sessions opened on %q, want one on kcp", listeners)
	}
	for _, l := range env.g.Stats().Listeners {
		if want := map[bool]int64{true: 1}[l.Kind == "kcp"]; l.Open != want {
			t.Errorf("Stats: %d %s sessions open, want %d", l.Open, l.Kind, want)
		}
	}
}

// TestKCPWrongKey: against an encrypted gateway, a client with no key or
// another key gets no answer (the gateway drops what it cannot decrypt)
// and fails within its DialTimeout, with Unavailable and an error that
// points at the key; so does a client with a key against a gateway
// without one. The gateway opens no session for any of them.
func TestKCPWrongKey(t *testing.T) {
	env := newEnv(t)
	encrypted := env.listen(t, gatekcp.Options{Key: secret})
	plain := env.listen(t, gatekcp.Options{})
	const dialTimeout = 500 * time.Millisecond
	for _, tc := range []struct {
		name, addr string
		key        []byte
	}{
		{"no key", encrypted, nil},
		{"wrong key", encrypted, []byte("another-secret-of-32-bytes-here!")},
		{"key against a plain gateway", plain, secret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			c, err := client.Dial(testCtx(t), client.Config{Addr: tc.addr, KCPKey: tc.key, DialTimeout: dialTimeout})
			took := time.Since(start)
			if err == nil {
				c.Close()
				t.Fatal("connected")
			}
			if rpc.CodeOf(err) != rpc.Unavailable || !strings.Contains(err.Error(), "Config.KCPKey") {
				t.Errorf("error %v (code %v), want Unavailable naming Config.KCPKey", err, rpc.CodeOf(err))
			}
			// The handshake's deadline is DialTimeout; the rest is the
			// machine's scheduling, generous for a loaded one.
			if took < dialTimeout || took > dialTimeout+2*time.Second {
				t.Errorf("failed after %v, want DialTimeout (%v)", took, dialTimeout)
			}
		})
	}
	// A packet from the last client may have opened a session on the
	// plain listener (garbage to KCP): it never completes a handshake.
	env.mu.Lock()
	defer env.mu.Unlock()
	if len(env.listeners) != 0 {
		t.Errorf("sessions opened: %q, want none", env.listeners)
	}
}

// TestKCPShortKey: a key shorter than MinKeyLen is refused by Listen and
// by the client, without showing it.
func TestKCPShortKey(t *testing.T) {
	env := newEnv(t)
	short := []byte("sekrit")
	if _, err := gatekcp.Listen(env.g, "127.0.0.1:0", gatekcp.Options{Key: short}); !errors.Is(err, gatekcp.ErrShortKey) || strings.Contains(err.Error(), "sekrit") {
		t.Errorf("Listen with a 6-byte key: %v, want ErrShortKey", err)
	}
	if _, err := gatekcp.Dial(testCtx(t), "127.0.0.1:1", gatekcp.Options{Key: short}); !errors.Is(err, gatekcp.ErrShortKey) {
		t.Errorf("Dial with a 6-byte key: %v, want ErrShortKey", err)
	}
	_, err := client.Dial(testCtx(t), client.Config{Addr: "kcp://127.0.0.1:1", KCPKey: short})
	if !errors.Is(err, gatekcp.ErrShortKey) || !strings.Contains(err.Error(), "client: KCPKey") || strings.Contains(err.Error(), "sekrit") {
		t.Errorf("client.Dial with a 6-byte key: %v, want ErrShortKey", err)
	}
}

// TestKCPListenErrors: an address in use is named once and wraps
// EADDRINUSE, as the gateway's own listeners say it; once the gateway
// began to close, Listen returns gate.ErrClosed and releases the port.
func TestKCPListenErrors(t *testing.T) {
	env := newEnv(t)
	a, err := gatekcp.Listen(env.g, "127.0.0.1:0", gatekcp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = gatekcp.Listen(env.g, a.String(), gatekcp.Options{})
	want := fmt.Sprintf("gate: kcp listener: %s is in use", a)
	if err == nil || err.Error() != want || !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("KCP on an address in use: %v, want %q wrapping EADDRINUSE", err, want)
	}
	if _, err := gatekcp.Listen(env.g, "nowhere", gatekcp.Options{}); err == nil || !strings.HasPrefix(err.Error(), "gate: kcp listener on nowhere: ") {
		t.Errorf("KCP on a bad address: %v", err)
	}

	closed := newEnv(t)
	if err := closed.g.Close(); err != nil {
		t.Fatal(err)
	}
	free, err := gatekcp.Listen(env.g, "127.0.0.1:0", gatekcp.Options{}) // a port to reuse
	if err != nil {
		t.Fatal(err)
	}
	if err := env.g.Close(); err != nil { // frees it
		t.Fatal(err)
	}
	if a, err := gatekcp.Listen(closed.g, free.String(), gatekcp.Options{}); !errors.Is(err, gate.ErrClosed) || a != nil {
		t.Errorf("Listen after Close: %v, %v, want gate.ErrClosed", a, err)
	}
	// The refused listener was closed: its port is free again.
	other := newEnv(t)
	await.True(t, waitTimeout, "the port of the refused listener to be free", func() bool {
		_, err := gatekcp.Listen(other.g, free.String(), gatekcp.Options{})
		return err == nil
	})
}
