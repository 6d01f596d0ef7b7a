package stream_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/stream"
)

func TestEcho(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	hosts := startHosts(t, c, stream.Config{})
	type seen struct {
		peer          actor.Addr
		service, info string
	}
	got := make(chan seen, 1)
	hosts[1].Handle("echo", func(ctx context.Context, s *stream.Stream) {
		got <- seen{s.Peer(), s.Service(), s.Info()}
		echo(ctx, s)
	})
	s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1], stream.WithService("echo"), stream.WithInfo("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Peer() != c.Addrs[1] {
		t.Fatalf("Peer %v, want %v", s.Peer(), c.Addrs[1])
	}
	// 4 MiB: several windows' worth, so flow control is exercised.
	data := make([]byte, 4<<20)
	_, _ = rand.Read(data)
	werr := make(chan error, 1)
	go func() {
		_, err := s.Write(data)
		if err == nil {
			err = s.CloseWrite()
		}
		werr <- err
	}()
	back, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(back, data) {
		t.Fatalf("read back %d bytes, not the %d written", len(back), len(data))
	}
	if g := <-got; g != (seen{c.Addrs[0], "echo", "hello"}) {
		t.Fatalf("handler saw %+v", g)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// Many streams at once, both ways, over one connection each way.
	hosts[0].Handle("", echo)
	hosts[1].Handle("", echo)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			from, to := hosts[i%2], c.Addrs[1-i%2]
			s, err := from.OpenStream(ctxFor(t, 10*time.Second), to)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			msg := bytes.Repeat([]byte{byte(i)}, 1000+i)
			if _, err := s.Write(msg); err != nil {
				errs <- err
				return
			}
			_ = s.CloseWrite()
			back, err := io.ReadAll(s)
			if err != nil || !bytes.Equal(back, msg) {
				errs <- errors.Join(err, errors.New("echo differs"))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	await.True(t, 5*time.Second, "every stream to be closed", func() bool {
		return hosts[0].Active() == 0 && hosts[1].Active() == 0
	})
}

func TestOpenErrors(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	hosts := hostsOn(t, c, 2, stream.Config{}) // node 2 runs no Host
	hosts[1].Handle("", echo)
	ctx := ctxFor(t, 10*time.Second)
	if _, err := hosts[0].OpenStream(ctx, c.Addrs[1], stream.WithService("nope")); !errors.Is(err, stream.ErrNoService) {
		t.Errorf("open for an unknown service: %v, want ErrNoService", err)
	}
	if _, err := hosts[0].OpenStream(ctx, actor.MustAddr(1, 1, 99)); !errors.Is(err, stream.ErrNoPeer) {
		t.Errorf("open to a non-member: %v, want ErrNoPeer", err)
	}
	if _, err := hosts[0].OpenStream(ctx, c.Addrs[2]); !errors.Is(err, stream.ErrNoPeer) {
		t.Errorf("open to a member without a Host: %v, want ErrNoPeer", err)
	}
	if _, err := hosts[0].OpenStream(ctx, c.Addrs[1], stream.WithService(string(make([]byte, stream.MaxServiceLen+1)))); !errors.Is(err, stream.ErrBadOption) {
		t.Errorf("a long service name: %v, want ErrBadOption", err)
	}
	if _, err := stream.Start(ctx, c.Nodes[2], stream.Config{StreamWindow: 1000}); err == nil {
		t.Errorf("a window below yamux's minimum was accepted")
	}
	// A handler removed: ErrNoService; a host closed: ErrClosed.
	hosts[1].Handle("", nil)
	if _, err := hosts[0].OpenStream(ctx, c.Addrs[1]); !errors.Is(err, stream.ErrNoService) {
		t.Errorf("open after Handle(nil): %v, want ErrNoService", err)
	}
	if err := hosts[0].Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := hosts[0].OpenStream(ctx, c.Addrs[1]); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("open on a closed host: %v, want ErrClosed", err)
	}
}

func TestLimits(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	hosts := startHosts(t, c, stream.Config{MaxStreamsPerPeer: 2})
	block := func(_ context.Context, s *stream.Stream) { _ = readErr(s) }
	hosts[1].Handle("", block)
	ctx := ctxFor(t, 10*time.Second)
	var open []*stream.Stream
	for range 2 {
		s, err := hosts[0].OpenStream(ctx, c.Addrs[1])
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, s)
	}
	if _, err := hosts[0].OpenStream(ctx, c.Addrs[1]); !errors.Is(err, stream.ErrTooManyStreams) {
		t.Fatalf("third stream: %v, want ErrTooManyStreams", err)
	}
	_ = open[0].Close()
	await.True(t, 5*time.Second, "the peer to close its side", func() bool { return hosts[1].Active() == 1 })
	s, err := hosts[0].OpenStream(ctx, c.Addrs[1])
	if err != nil {
		t.Fatalf("a stream after one closed: %v", err)
	}
	_ = s.Close()
	_ = open[1].Close()

	// The acceptor's limit holds against an opener with a larger one.
	c2 := clustertest.Start(t, clustertest.Options{Nodes: 2})
	h0, err := stream.Start(ctx, c2.Nodes[0], stream.Config{MaxStreamsPerPeer: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer h0.Close()
	h1, err := stream.Start(ctx, c2.Nodes[1], stream.Config{MaxStreamsPerPeer: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer h1.Close()
	h1.Handle("", block)
	awaitEndpoints(t, c2, []*stream.Host{h0, h1})
	first, err := h0.OpenStream(ctx, c2.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := h0.OpenStream(ctx, c2.Addrs[1]); !errors.Is(err, stream.ErrTooManyStreams) {
		t.Fatalf("past the acceptor's limit: %v, want ErrTooManyStreams", err)
	}
}

// TestFlowControl: a writer whose reader does not read gets at most the
// stream window ahead, then blocks until its deadline.
func TestFlowControl(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	const window = 256 << 10
	hosts := startHosts(t, c, stream.Config{StreamWindow: window})
	release := make(chan struct{})
	hosts[1].Handle("", func(ctx context.Context, s *stream.Stream) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		_, _ = io.Copy(io.Discard, s)
	})
	s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_ = s.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
	n, err := s.Write(make([]byte, 4*window))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past the window: %v, want a deadline error", err)
	}
	if n > window {
		t.Fatalf("%d bytes written ahead of a reader with a window of %d", n, window)
	}
	close(release)
	_ = s.SetWriteDeadline(time.Time{})
	if _, err := s.Write(make([]byte, 4*window)); err != nil {
		t.Fatalf("write once the reader reads: %v", err)
	}
}

// TestKill: a node killed while streams are open both ways: every stream
// fails promptly on both sides, with ErrPeerGone, and nothing hangs.
func TestKill(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	hosts := startHosts(t, c, stream.Config{})
	const per = 8
	handlerErrs := make(chan error, 4*per)
	reader := func(_ context.Context, s *stream.Stream) { handlerErrs <- readErr(s) }
	for _, h := range hosts {
		h.Handle("", reader)
	}
	ctx := ctxFor(t, 10*time.Second)
	openerErrs := make(chan error, 4*per)
	open := func(from int, to int) {
		s, err := hosts[from].OpenStream(ctx, c.Addrs[to])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		go func() { openerErrs <- readErr(s) }()
	}
	for range per {
		open(0, 1)
		open(1, 0)
	}
	// A stream between two survivors is untouched.
	open(0, 2)
	await.True(t, 5*time.Second, "the streams to be served", func() bool { return hosts[1].Active() == 2*per })
	start := time.Now()
	c.Kill(1)
	for i := range 2 * per {
		for _, ch := range []chan error{openerErrs, handlerErrs} {
			err := recvErr(t, ch, 5*time.Second, "a stream's end after the kill")
			if !errors.Is(err, stream.ErrPeerGone) {
				t.Errorf("stream %d ended with %v, want ErrPeerGone", i, err)
			}
		}
	}
	t.Logf("every stream of the killed node ended within %v", time.Since(start).Round(time.Millisecond))
	select {
	case err := <-openerErrs:
		t.Fatalf("the stream between the survivors ended: %v", err)
	default:
	}
	// Node 0 opens to node 1 again: it fails at once, it does not hang.
	if _, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1]); err == nil {
		t.Fatal("a stream opened to a killed node")
	}
	// Its record goes within the TTL; then it is no peer at all.
	await.True(t, 3*c.TTL, "node 0 to see node 1 leave", func() bool {
		_, err := hosts[0].OpenStream(ctxFor(t, time.Second), c.Addrs[1])
		return errors.Is(err, stream.ErrNoPeer)
	})
}

// TestLeave: a node that leaves (its node closes, its Host does not) has
// its streams ended by its peers when they see it leave.
func TestLeave(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	hosts := startHosts(t, c, stream.Config{})
	handlerErr := make(chan error, 1)
	hosts[1].Handle("", func(_ context.Context, s *stream.Stream) { handlerErr <- readErr(s) })
	s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	openerErr := make(chan error, 1)
	go func() { openerErr <- readErr(s) }()
	await.True(t, 5*time.Second, "the stream to be served", func() bool { return hosts[1].Active() == 1 })
	if err := c.Nodes[1].Close(); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan error{openerErr, handlerErr} {
		if err := recvErr(t, ch, 5*time.Second, "the stream's end after the leave"); !errors.Is(err, stream.ErrPeerGone) {
			t.Errorf("ended with %v, want ErrPeerGone", err)
		}
	}
}

// TestHostClose: closing a Host ends its streams with ErrClosed here and
// ErrPeerGone at the peer, and waits for its handlers.
func TestHostClose(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	hosts := startHosts(t, c, stream.Config{})
	handlerErr := make(chan error, 1)
	hosts[1].Handle("", func(_ context.Context, s *stream.Stream) { handlerErr <- readErr(s) })
	s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	openerErr := make(chan error, 1)
	go func() { openerErr <- readErr(s) }()
	await.True(t, 5*time.Second, "the stream to be served", func() bool { return hosts[1].Active() == 1 })
	if err := hosts[1].Close(); err != nil {
		t.Fatal(err)
	}
	if err := recvErr(t, handlerErr, time.Second, "the handler's end"); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("the closed host's handler: %v, want ErrClosed", err)
	}
	if err := recvErr(t, openerErr, 5*time.Second, "the opener's end"); !errors.Is(err, stream.ErrPeerGone) {
		t.Errorf("the opener: %v, want ErrPeerGone", err)
	}
}

// TestShutdown: Shutdown refuses new streams and waits for the open ones.
func TestShutdown(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	hosts := startHosts(t, c, stream.Config{})
	hosts[1].Handle("", echo)
	s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- hosts[1].Shutdown(ctxFor(t, 10*time.Second)) }()
	await.True(t, 5*time.Second, "new streams to be refused", func() bool {
		s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
		if err == nil { // opened before Shutdown began
			_ = s.Close()
		}
		return errors.Is(err, stream.ErrRefused)
	})
	// The open stream still works until it is closed.
	if _, err := s.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(s, b); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if err := recvErr(t, done, 5*time.Second, "Shutdown"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestHandlerPanic: a handler's panic closes its stream, not the node.
func TestHandlerPanic(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	hosts := startHosts(t, c, stream.Config{})
	hosts[1].Handle("", func(_ context.Context, s *stream.Stream) {
		buf := make([]byte, 1)
		if _, err := s.Read(buf); err == nil && buf[0] == '!' {
			panic("boom")
		}
		_, _ = s.Write(buf)
	})
	ctx := ctxFor(t, 5*time.Second)
	s, err := hosts[0].OpenStream(ctx, c.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.Write([]byte("!"))
	if n, err := s.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("after the panic: %d bytes, %v", n, err)
	}
	_ = s.Close()
	s, err = hosts[0].OpenStream(ctx, c.Addrs[1])
	if err != nil {
		t.Fatalf("a stream after the panic: %v", err)
	}
	defer s.Close()
	_, _ = s.Write([]byte("a"))
	b := make([]byte, 1)
	if _, err := io.ReadFull(s, b); err != nil || b[0] != 'a' {
		t.Fatalf("the node does not serve after the panic: %q, %v", b, err)
	}
}

// TestCloseWakesReader: Close wakes a blocked Read with ErrStreamClosed.
func TestCloseWakesReader(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	hosts := startHosts(t, c, stream.Config{})
	hosts[1].Handle("", echo)
	s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- readErr(s) }()
	_ = s.Close()
	if err := recvErr(t, got, 5*time.Second, "the blocked Read"); !errors.Is(err, stream.ErrStreamClosed) {
		t.Fatalf("Read after Close: %v, want ErrStreamClosed", err)
	}
}

// TestBadConnections: a connection that sends garbage, or nothing, is
// closed; the Host serves on, and Close does not wait out a handshake.
func TestBadConnections(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	hosts := startHosts(t, c, stream.Config{DialTimeout: 10 * time.Second})
	hosts[1].Handle("", echo)
	garbage, err := net.Dial("tcp", hosts[1].ListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer garbage.Close()
	_, _ = garbage.Write([]byte("\x00\x00\x00\x0cGUILD1\x01\x00\x00\x00\x00\x01")) // a mesh hello
	_ = garbage.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := garbage.Read(make([]byte, 64)); n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a mesh hello on the stream port: %d bytes back, %v", n, err)
	}
	s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
	if err != nil {
		t.Fatalf("after a bad connection: %v", err)
	}
	_ = s.Close()
	silent, err := net.Dial("tcp", hosts[1].ListenAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	_, _ = silent.Write([]byte("\x00\x00")) // half a hello: the Host waits for the rest
	start := time.Now()
	if err := hosts[1].Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v with a connection in its handshake (DialTimeout 10s)", d)
	}
}

// TestMaxRate: a Host's MaxRate paces its streams' writes, and a write
// deadline bounds the wait.
func TestMaxRate(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	const rate = 1 << 20 // 1 MiB/s
	hosts := startHosts(t, c, stream.Config{MaxRate: rate})
	hosts[1].Handle("", func(_ context.Context, s *stream.Stream) { _, _ = io.Copy(io.Discard, s) })
	s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	if _, err := s.Write(make([]byte, rate/2)); err != nil {
		t.Fatal(err)
	}
	// Half a second's worth, less the burst of a hundredth: about 0.49s.
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("half a second's budget written in %v", d)
	}
	_ = s.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := s.Write(make([]byte, rate)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a write past its deadline under MaxRate: %v", err)
	}
	_ = s.SetWriteDeadline(time.Time{})
	werr := make(chan error, 1)
	go func() { _, err := s.Write(make([]byte, 4*rate)); werr <- err }()
	_ = s.Close() // wakes the paced Write
	if err := recvErr(t, werr, 5*time.Second, "the paced Write after Close"); !errors.Is(err, stream.ErrStreamClosed) {
		t.Fatalf("a paced Write when its stream closes: %v", err)
	}
}

// TestBusyRate: while actor messages flow between two nodes, the streams
// between them are paced to the Host's BusyRate; with none, they are not.
func TestBusyRate(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	const rate = 64 << 10 // 64 KiB/s: a paced megabyte takes 16 s
	hosts := startHosts(t, c, stream.Config{BusyRate: rate})
	hosts[1].Handle("", func(_ context.Context, s *stream.Stream) { _, _ = io.Copy(io.Discard, s) })
	s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// No actor message between the nodes: 4 MiB go through unpaced (at
	// the BusyRate they would need a minute, and a paced Write that cannot
	// make its deadline fails at once).
	_ = s.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := s.Write(make([]byte, 4<<20)); err != nil {
		t.Fatalf("a write with no actor traffic: %v (paced to BusyRate?)", err)
	}

	// Actor messages flowing: node 0 calls an actor on node 1 in a loop.
	pid, err := c.Node(1).SpawnFunc(func(ctx *actor.Context) { ctx.Respond(ctx.Message()) })
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = c.Node(0).Call(ctxFor(t, 5*time.Second), pid, wrapperspb.String("ping"))
		}
	}()
	await.True(t, 20*time.Second, "a megabyte's write to fail its 1 s deadline under BusyRate", func() bool {
		_ = s.SetWriteDeadline(time.Now().Add(time.Second))
		_, err := s.Write(make([]byte, 1<<20))
		return errors.Is(err, os.ErrDeadlineExceeded)
	})
	close(stop)
	wg.Wait()

	// The calls stopped: the pacing stops within busyHold (50 ms).
	await.True(t, 20*time.Second, "4 MiB to go through unpaced once the calls stopped", func() bool {
		_ = s.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := s.Write(make([]byte, 4<<20))
		return err == nil
	})
}
