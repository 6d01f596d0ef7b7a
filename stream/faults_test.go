package stream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/stream"
)

// a4Data returns n seeded pseudo-random bytes.
func a4Data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestStreamConcurrentIntegrity: many streams at once, both ways and to
// two peers, each echoing its own data written in random slices: every
// stream reads back exactly its bytes, in order ("ordered,
// flow-controlled byte streams ... multiplexed over one connection per
// pair of nodes").
func TestStreamConcurrentIntegrity(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 10 * time.Second}) // no faults here: a lapse under load is not what it tests
	hosts := startHosts(t, c, stream.Config{StreamWindow: 256 << 10})
	for _, h := range hosts {
		h.Handle("", echo)
	}
	const per = 6
	const size = 512 << 10
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	k := 0
	for from := range 3 {
		for to := range 3 {
			if from == to {
				continue
			}
			for range per {
				k++
				seed := uint64(k)
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := hosts[from].OpenStream(ctxFor(t, 10*time.Second), c.Addrs[to])
					if err != nil {
						errs <- fmt.Errorf("open %d→%d: %w", from, to, err)
						return
					}
					defer s.Close()
					_ = s.SetDeadline(time.Now().Add(60 * time.Second))
					data := a4Data(seed, size)
					werr := make(chan error, 1)
					go func() {
						r := rand.New(rand.NewPCG(seed, 7))
						rest := data
						for len(rest) > 0 {
							n := min(len(rest), 1+r.IntN(100<<10))
							if _, err := s.Write(rest[:n]); err != nil {
								werr <- err
								return
							}
							rest = rest[n:]
						}
						werr <- s.CloseWrite()
					}()
					got, err := io.ReadAll(s)
					if err != nil {
						errs <- fmt.Errorf("stream %d %d→%d: read: %w", seed, from, to, err)
						return
					}
					if err := <-werr; err != nil {
						errs <- fmt.Errorf("stream %d %d→%d: write: %w", seed, from, to, err)
						return
					}
					if !bytes.Equal(got, data) {
						i := 0
						for i < min(len(got), len(data)) && got[i] == data[i] {
							i++
						}
						errs <- fmt.Errorf("stream %d %d→%d: read back %d bytes, want %d; first difference at %d", seed, from, to, len(got), len(data), i)
					}
				}()
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestStreamHandlerWritesThenReturns: "the stream closes when the
// handler returns" and Close: "the peer reads io.EOF after what was
// written". A handler that writes a lot to a slow reader, then returns,
// delivers every byte before the EOF; and a half-closed opener
// (CloseWrite: "this side may still Read") gets the handler's answer.
func TestStreamHandlerWritesThenReturns(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2, TTL: 10 * time.Second}) // no faults here
	hosts := startHosts(t, c, stream.Config{StreamWindow: 256 << 10})
	const size = 2 << 20
	data := a4Data(42, size)
	hosts[1].Handle("dump", func(_ context.Context, s *stream.Stream) { _, _ = s.Write(data) })
	hosts[1].Handle("count", func(_ context.Context, s *stream.Stream) {
		n, _ := io.Copy(io.Discard, s)
		_, _ = fmt.Fprintf(s, "%d", n)
	})
	s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1], stream.WithService("dump"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []byte
	buf := make([]byte, 7777)
	for {
		n, err := s.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("after %d bytes: %v, want io.EOF", len(got), err)
			}
			break
		}
		if len(got)%(256<<10) < 7777 {
			time.Sleep(5 * time.Millisecond) // a slow reader
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, want the %d written (equal prefix: %v)", len(got), len(data), bytes.HasPrefix(data, got))
	}

	s2, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1], stream.WithService("count"))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	_ = s2.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := s2.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := s2.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Write([]byte("x")); !errors.Is(err, stream.ErrStreamClosed) {
		t.Errorf("Write after CloseWrite: %v, want ErrStreamClosed", err)
	}
	ans, err := io.ReadAll(s2)
	if err != nil || string(ans) != fmt.Sprint(size) {
		t.Fatalf("answer after CloseWrite: %q, %v, want %d", ans, err, size)
	}
}

// TestStreamBlockedWriterPeerKilled: a writer blocked on a full window
// (no deadline) whose peer is killed returns ErrPeerGone promptly; it
// does not hang ("A stream ends ... with ErrPeerGone when the peer's node
// died").
func TestStreamBlockedWriterPeerKilled(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	const window = 256 << 10
	hosts := startHosts(t, c, stream.Config{StreamWindow: window})
	hosts[1].Handle("", func(ctx context.Context, s *stream.Stream) { <-ctx.Done() })
	s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	werr := make(chan error, 1)
	var written int
	go func() {
		n, err := s.Write(make([]byte, 16*window))
		written = n
		werr <- err
	}()
	select {
	case err := <-werr:
		t.Fatalf("a write past the window of an idle reader returned: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	start := time.Now()
	c.Kill(1)
	err = recvErr(t, werr, 10*time.Second, "the blocked write's end after the kill")
	t.Logf("blocked write ended after %v with %v (%d bytes)", time.Since(start), err, written)
	if !errors.Is(err, stream.ErrPeerGone) {
		t.Errorf("blocked write: %v, want ErrPeerGone", err)
	}
	if written > 2*window {
		t.Errorf("%d bytes written to a reader with a window of %d", written, window)
	}
}

// TestStreamPause: the peer's network freezes (Pause: no reset, no
// FIN). Both ends of a busy stream end with ErrPeerGone ("or the
// connection broke (a reset, or no answer to keepalives for
// Config.WriteTimeout)", or the peer leaving the membership), neither
// hangs; after Resume, a new stream to the node works.
func TestStreamPause(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	cfg := stream.Config{KeepAlive: 500 * time.Millisecond, WriteTimeout: 2 * time.Second}
	hosts := startHosts(t, c, cfg)
	handlerErr := make(chan error, 2)
	served := make(chan struct{}, 1)
	hosts[1].Handle("", func(_ context.Context, s *stream.Stream) {
		served <- struct{}{}
		werr := make(chan error, 1)
		go func() {
			for {
				if _, err := s.Write(make([]byte, 4096)); err != nil {
					werr <- err
					return
				}
			}
		}()
		handlerErr <- readErr(s)
		handlerErr <- <-werr
	})
	s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	<-served
	openerErr := make(chan error, 2)
	go func() { openerErr <- readErr(s) }()
	go func() {
		for {
			if _, err := s.Write(make([]byte, 4096)); err != nil {
				openerErr <- err
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // bytes flow both ways
	start := time.Now()
	c.Pause(1)
	limit := 3*c.TTL + cfg.WriteTimeout + 3*time.Second
	for i := range 2 {
		err := recvErr(t, openerErr, limit, "the opener's end after the pause")
		t.Logf("opener end %d after %v: %v", i, time.Since(start), err)
		if !errors.Is(err, stream.ErrPeerGone) {
			t.Errorf("opener: %v, want ErrPeerGone", err)
		}
	}
	for i := range 2 {
		err := recvErr(t, handlerErr, limit, "the paused node's handler's end")
		t.Logf("handler end %d after %v: %v", i, time.Since(start), err)
		if !errors.Is(err, stream.ErrPeerGone) {
			t.Errorf("paused node's handler: %v, want ErrPeerGone", err)
		}
	}
	c.Resume(1)
	hosts[1].Handle("", echo)
	await.True(t, 20*time.Second, "a stream to the resumed node", func() bool {
		s, err := hosts[0].OpenStream(ctxFor(t, 2*time.Second), c.Addrs[1])
		if err != nil {
			return false
		}
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := s.Write([]byte("ping")); err != nil {
			return false
		}
		b := make([]byte, 4)
		_, err = io.ReadFull(s, b)
		return err == nil && string(b) == "ping"
	})
}

// TestStreamWriterLoopPeerKilled: writers that keep writing (in a loop,
// as io.Copy does) on streams to a peer that is killed, or that leaves,
// must see ErrPeerGone: "ErrPeerGone when the peer's node died, left the
// membership, or the connection broke"; ErrStreamClosed is only for "Read
// or Write on a stream this side has closed", and this side closed none.
func TestStreamWriterLoopPeerKilled(t *testing.T) {
	for _, fault := range []string{"kill", "leave"} {
		t.Run(fault, func(t *testing.T) {
			c := clustertest.Start(t, clustertest.Options{Nodes: 2})
			hosts := startHosts(t, c, stream.Config{})
			hosts[1].Handle("", func(_ context.Context, s *stream.Stream) { _, _ = io.Copy(io.Discard, s) })
			const n = 8
			errs := make(chan error, n)
			for range n {
				s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				go func() {
					buf := make([]byte, 1024)
					for {
						if _, err := s.Write(buf); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			await.True(t, 5*time.Second, "the streams to be served", func() bool { return hosts[1].Active() == n })
			if fault == "kill" {
				c.Kill(1)
			} else if err := c.Nodes[1].Close(); err != nil {
				t.Fatal(err)
			}
			bad := 0
			for range n {
				err := recvErr(t, errs, 10*time.Second, "a writer's end")
				if !errors.Is(err, stream.ErrPeerGone) {
					bad++
					t.Errorf("writer ended with %v (ErrStreamClosed: %v), want ErrPeerGone", err, errors.Is(err, stream.ErrStreamClosed))
				}
			}
			t.Logf("%d of %d writers ended without ErrPeerGone", bad, n)
		})
	}
}

// TestStreamShortPauseIntact: a network freeze of the peer shorter than
// the keepalive timeout (Config.WriteTimeout) and the lease TTL breaks
// nothing: streams echoing their own data through the freeze read back
// exactly their bytes, in order (the bytes are delayed, not lost).
func TestStreamShortPauseIntact(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2, TTL: 6 * time.Second})
	hosts := startHosts(t, c, stream.Config{WriteTimeout: 10 * time.Second})
	hosts[1].Handle("", echo)
	const n = 4
	const size = 4 << 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	var progress sync.Map
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			_ = s.SetDeadline(time.Now().Add(60 * time.Second))
			data := a4Data(uint64(100+k), size)
			go func() {
				for off := 0; off < len(data); off += 8 << 10 {
					if _, err := s.Write(data[off:min(off+8<<10, len(data))]); err != nil {
						return
					}
					progress.Store(k, off)
				}
				_ = s.CloseWrite()
			}()
			got, err := io.ReadAll(s)
			if err != nil {
				errs <- fmt.Errorf("stream %d: after %d bytes: %w", k, len(got), err)
				return
			}
			if !bytes.Equal(got, data) {
				i := 0
				for i < min(len(got), len(data)) && got[i] == data[i] {
					i++
				}
				errs <- fmt.Errorf("stream %d: read back %d bytes, want %d; first difference at %d", k, len(got), len(data), i)
			}
		}()
	}
	await.True(t, 10*time.Second, "bytes to flow", func() bool {
		m := 0
		progress.Range(func(_, _ any) bool { m++; return true })
		return m == n
	})
	c.Pause(1)
	time.Sleep(1500 * time.Millisecond) // the freeze itself
	c.Resume(1)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestStreamPeerRestarted: a peer killed and restarted at the same
// address (and endpoint) with a new Host: the old streams end with
// ErrPeerGone and new ones open and carry bytes, with no leftover of the
// old connection in the way.
func TestStreamPeerRestarted(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	proxies := make([]interface {
		Addr() string
		SetTarget(string)
	}, 2)
	start := func(i int) *stream.Host {
		h, err := stream.Start(ctxFor(t, 10*time.Second), c.Nodes[i], stream.Config{Advertise: proxies[i].Addr()})
		if err != nil {
			t.Fatalf("host of node %d: %v", i, err)
		}
		proxies[i].SetTarget(h.ListenAddr())
		t.Cleanup(func() { _ = h.Close() })
		h.Handle("", echo)
		return h
	}
	for i := range 2 {
		proxies[i] = c.FrontProxy(i, "stream")
	}
	h0, h1 := start(0), start(1)
	awaitEndpoints(t, c, []*stream.Host{h0, h1})
	s, err := h0.OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ended := make(chan error, 1)
	go func() { ended <- readErr(s) }()
	c.Kill(1)
	if err := recvErr(t, ended, 10*time.Second, "the old stream's end"); !errors.Is(err, stream.ErrPeerGone) {
		t.Errorf("old stream: %v, want ErrPeerGone", err)
	}
	c.Restart(t, 1)
	h1b := start(1)
	awaitEndpoints(t, c, []*stream.Host{h0, h1b})
	await.True(t, 20*time.Second, "a stream to the restarted node", func() bool {
		s, err := h0.OpenStream(ctxFor(t, 2*time.Second), c.Addrs[1])
		if err != nil {
			t.Logf("open: %v", err)
			return false
		}
		defer s.Close()
		_ = s.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := s.Write([]byte("ping")); err != nil {
			return false
		}
		b := make([]byte, 4)
		_, err = io.ReadFull(s, b)
		return err == nil && string(b) == "ping"
	})
	if h1b.Active() > 1 {
		t.Errorf("the new host has %d active streams", h1b.Active())
	}
}

// TestStreamOpenToFrozenPeer: OpenStream to a peer whose network froze
// "gives up after Config.OpenTimeout when ctx has no earlier deadline"
// (and DialTimeout bounds a dial), failing with one of the documented
// errors; it never hangs. Both with a connection already up and with a
// fresh dial.
func TestStreamOpenToFrozenPeer(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, TTL: 30 * time.Second})
	cfg := stream.Config{OpenTimeout: time.Second, DialTimeout: time.Second, WriteTimeout: 20 * time.Second, KeepAlive: 10 * time.Second}
	hosts := startHosts(t, c, cfg)
	for _, h := range hosts {
		h.Handle("", echo)
	}
	// Node 0 has a connection to node 1, none to node 2.
	s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	c.Pause(1)
	c.Pause(2)
	documented := []error{stream.ErrNoPeer, stream.ErrTooManyStreams, stream.ErrNoService, stream.ErrRefused,
		stream.ErrHandshake, stream.ErrClosed, stream.ErrPeerGone, context.DeadlineExceeded}
	for _, to := range []int{1, 2} {
		start := time.Now()
		s, err := hosts[0].OpenStream(context.Background(), c.Addrs[to])
		d := time.Since(start)
		t.Logf("open to frozen node %d: %v after %v", to, err, d)
		if err == nil {
			_ = s.Close()
			t.Errorf("a stream opened to a frozen node %d", to)
			continue
		}
		if d > cfg.OpenTimeout+cfg.DialTimeout+time.Second {
			t.Errorf("open to frozen node %d took %v, OpenTimeout %v", to, d, cfg.OpenTimeout)
		}
		ok := false
		for _, e := range documented {
			ok = ok || errors.Is(err, e)
		}
		if !ok {
			t.Errorf("open to frozen node %d: %v, not a documented error", to, err)
		}
	}
	c.Resume(1)
	c.Resume(2)
}

// TestStreamCloseTimeout: Host.Close waits for the handlers at most
// Config.CloseTimeout ("Close's wait for the handlers (Config.CloseTimeout)"),
// even for a handler that ignores its stream's end and its ctx.
func TestStreamCloseTimeout(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	cfg := stream.Config{CloseTimeout: time.Second}
	hosts := startHosts(t, c, cfg)
	stuck := make(chan struct{})
	defer close(stuck)
	entered := make(chan struct{}, 1)
	hosts[1].Handle("", func(context.Context, *stream.Stream) {
		entered <- struct{}{}
		<-stuck
	})
	s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	<-entered
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- hosts[1].Close() }()
	select {
	case err := <-done:
		t.Logf("Close returned after %v: %v", time.Since(start), err)
		if d := time.Since(start); d > cfg.CloseTimeout+2*time.Second {
			t.Errorf("Close took %v with CloseTimeout %v", d, cfg.CloseTimeout)
		}
	case <-time.After(cfg.CloseTimeout + 10*time.Second):
		t.Fatalf("Close did not return within %v", cfg.CloseTimeout+10*time.Second)
	}
}

// TestStreamWritersHostClose: writers busy on streams when a Host
// closes: "ErrClosed when this side's Host closed" on the closing side,
// ErrPeerGone at the peer; never ErrStreamClosed, which is for "Read or
// Write on a stream this side has closed".
func TestStreamWritersHostClose(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2})
	hosts := startHosts(t, c, stream.Config{CloseTimeout: 2 * time.Second})
	const n = 8
	handlerErrs := make(chan error, n)
	hosts[1].Handle("", func(_ context.Context, s *stream.Stream) {
		go func() { _, _ = io.Copy(io.Discard, s) }()
		buf := make([]byte, 1024)
		for {
			if _, err := s.Write(buf); err != nil {
				handlerErrs <- err
				return
			}
		}
	})
	openerErrs := make(chan error, n)
	for range n {
		s, err := hosts[0].OpenStream(ctxFor(t, 5*time.Second), c.Addrs[1])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		go func() { _, _ = io.Copy(io.Discard, s) }()
		go func() {
			buf := make([]byte, 1024)
			for {
				if _, err := s.Write(buf); err != nil {
					openerErrs <- err
					return
				}
			}
		}()
	}
	await.True(t, 5*time.Second, "the streams to be served", func() bool { return hosts[1].Active() == n })
	time.Sleep(100 * time.Millisecond) // bytes flow
	if err := hosts[1].Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	badH, badO := 0, 0
	for range n {
		if err := recvErr(t, handlerErrs, 10*time.Second, "a handler writer's end"); !errors.Is(err, stream.ErrClosed) {
			badH++
			t.Errorf("writer on the closed host: %v, want ErrClosed", err)
		}
		if err := recvErr(t, openerErrs, 10*time.Second, "an opener writer's end"); !errors.Is(err, stream.ErrPeerGone) {
			badO++
			t.Errorf("writer at the peer: %v, want ErrPeerGone", err)
		}
	}
	t.Logf("wrong errors: %d of %d on the closed host, %d of %d at the peer", badH, n, badO, n)
}
