package tcp

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/wire"
)

var (
	addrA = actor.MustAddr(1, 2, 1)
	addrB = actor.MustAddr(1, 2, 2)
	addrC = actor.MustAddr(1, 2, 3)
)

func TestExchangeBothWaysKeepsOrder(t *testing.T) {
	const n = 10000
	res := newResolver()
	ha, hb := newRecorder(), newRecorder()
	a := start(t, fastConfig(addrA, res, ha), res)
	b := start(t, fastConfig(addrB, res, hb), res)

	var wg sync.WaitGroup
	for _, s := range []struct {
		from *Transport
		self actor.Addr
		to   actor.Addr
	}{{a, addrA, addrB}, {b, addrB, addrA}} {
		wg.Go(func() {
			for i := range n {
				sendRetry(t, s.from, s.to, seqEnv(s.self, uint64(i)))
			}
		})
	}
	wg.Wait()
	waitFor(t, 10*time.Second, "all envelopes", func() bool { return ha.count(addrB) == n && hb.count(addrA) == n })
	checkOrder(t, hb.received(addrA), n)
	checkOrder(t, ha.received(addrB), n)
	got := hb.received(addrA)[5]
	if got.Kind != wire.KindSend || string(got.Payload) != "payload" || got.PayloadType != wire.RawBytesType || got.Sender.Node != uint32(addrA) {
		t.Fatalf("envelope arrived changed: %+v", got)
	}
	if a.liveConns() != 1 || b.liveConns() != 1 {
		t.Fatalf("live connections: a %d, b %d, want 1 each", a.liveConns(), b.liveConns())
	}
}

// TestSimultaneousDial makes both nodes dial each other at the same moment
// (the resolver is a barrier) and checks that one connection survives, the
// same one on both sides, and that nothing is lost or reordered.
func TestSimultaneousDial(t *testing.T) {
	for round := range 5 {
		const n = 2000
		res := newResolver()
		var (
			barrier sync.WaitGroup
			calls   atomic.Int32
		)
		barrier.Add(2)
		resolve := func(a actor.Addr) (string, error) {
			// The first dial of each side waits for the other's; a later
			// one (a retry on a busy machine) passes.
			if calls.Add(1) <= 2 {
				barrier.Done()
				barrier.Wait()
			}
			return res.resolve(a)
		}
		ha, hb := newRecorder(), newRecorder()
		ca, cb := fastConfig(addrA, res, ha), fastConfig(addrB, res, hb)
		ca.Resolve, cb.Resolve = resolve, resolve
		a, err := New(ca)
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(cb)
		if err != nil {
			t.Fatal(err)
		}
		res.set(addrA, a.Addr().String())
		res.set(addrB, b.Addr().String())

		var wg sync.WaitGroup
		wg.Go(func() {
			for i := range n {
				sendRetry(t, a, addrB, seqEnv(addrA, uint64(i)))
			}
		})
		wg.Go(func() {
			for i := range n {
				sendRetry(t, b, addrA, seqEnv(addrB, uint64(i)))
			}
		})
		wg.Wait()
		waitFor(t, 10*time.Second, "all envelopes", func() bool { return ha.count(addrB) == n && hb.count(addrA) == n })
		checkOrder(t, hb.received(addrA), n)
		checkOrder(t, ha.received(addrB), n)
		waitFor(t, 2*time.Second, "one connection each", func() bool { return a.liveConns() == 1 && b.liveConns() == 1 })
		// Both ends hold the same TCP connection, the one A (lower) dialled.
		a.mu.Lock()
		ac := (*a.peers.Load())[addrB].conn
		a.mu.Unlock()
		b.mu.Lock()
		bc := (*b.peers.Load())[addrA].conn
		b.mu.Unlock()
		if ac == nil || bc == nil || ac.raw.LocalAddr().String() != bc.raw.RemoteAddr().String() {
			t.Fatalf("round %d: the two sides hold different connections", round)
		}
		if !ac.dialed || bc.dialed {
			t.Fatalf("round %d: kept the connection dialled by the higher address", round)
		}
		if ha.lostCount(addrB) != 0 || hb.lostCount(addrA) != 0 {
			t.Fatalf("round %d: PeerLost called (a %d, b %d)", round, ha.lostCount(addrB), hb.lostCount(addrA))
		}
		_ = a.Close()
		_ = b.Close()
	}
}

func TestPendingQueueBound(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String()
	_ = ln.Close()

	res := newResolver()
	res.set(addrB, closedPort)
	ha := newRecorder()
	cfg := fastConfig(addrA, res, ha)
	cfg.PendingQueue = 16
	a := start(t, cfg, res)
	for i := range 16 {
		if err := a.Send(addrB, seqEnv(addrA, uint64(i))); err != nil {
			t.Fatalf("Send %d: %v", i, err)
		}
	}
	if err := a.Send(addrB, seqEnv(addrA, 16)); !errors.Is(err, transport.ErrPendingQueueFull) {
		t.Fatalf("Send to a full queue: %v, want ErrPendingQueueFull", err)
	}
	// The unreachable peer is reported once for the whole failing sequence
	// of attempts, however many retries follow.
	waitFor(t, 2*time.Second, "PeerLost", func() bool { return ha.lostCount(addrB) == 1 })
	time.Sleep(300 * time.Millisecond) // several backoff rounds
	if got := ha.lostCount(addrB); got != 1 {
		t.Fatalf("PeerLost called %d times for one failing sequence, want 1", got)
	}
}

// TestUnreachableThenUp: envelopes queued while the peer is down are all
// delivered, in order, once it comes up.
func TestUnreachableThenUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().String()
	_ = ln.Close()
	res := newResolver()
	res.set(addrB, port)
	ha, hb := newRecorder(), newRecorder()
	a := start(t, fastConfig(addrA, res, ha), res)
	for i := range 100 {
		if err := a.Send(addrB, seqEnv(addrA, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 2*time.Second, "PeerLost", func() bool { return ha.lostCount(addrB) >= 1 })
	start(t, fastConfig(addrB, res, hb), res) // registers its new port
	waitFor(t, 5*time.Second, "queued envelopes", func() bool { return hb.count(addrA) == 100 })
	checkOrder(t, hb.received(addrA), 100)
}

func TestDeadPeerAndRestart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to actor.Addr
		samePort bool
	}{
		{"lower sends, new port", addrA, addrB, false},
		{"lower sends, same port", addrA, addrB, true},
		{"higher sends, new port", addrB, addrA, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := newResolver()
			hs, hp := newRecorder(), newRecorder()
			s := start(t, fastConfig(tc.from, res, hs), res)
			p := start(t, fastConfig(tc.to, res, hp), res)

			stop := make(chan struct{})
			var sender sync.WaitGroup
			sender.Go(func() {
				for i := uint64(0); ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					_ = s.Send(tc.to, seqEnv(tc.from, i)) // ErrPendingQueueFull while the peer is down is fine
					time.Sleep(100 * time.Microsecond)
				}
			})
			defer func() {
				select {
				case <-stop:
				default:
					close(stop)
				}
				sender.Wait()
			}()
			waitFor(t, 5*time.Second, "traffic", func() bool { return hp.count(tc.from) > 100 })
			killed := time.Now()
			oldAddr := p.Addr().String()
			_ = p.Close()
			waitFor(t, 200*time.Millisecond, "PeerLost within DeadAfter", func() bool { return hs.lostCount(tc.to) >= 1 })
			t.Logf("PeerLost %v after the peer closed", time.Since(killed))

			// A new process with the same address, on a new port or the old one.
			hp2 := newRecorder()
			cfg := fastConfig(tc.to, res, hp2)
			if tc.samePort {
				cfg.Listen = oldAddr
			}
			p2 := start(t, cfg, res)
			waitFor(t, 5*time.Second, "traffic to the restarted peer", func() bool { return hp2.count(tc.from) > 100 })
			close(stop)
			sender.Wait()
			waitFor(t, 2*time.Second, "one live connection", func() bool { return s.liveConns() == 1 && p2.liveConns() == 1 })
			// Sequence numbers still increase at the new peer.
			envs := hp2.received(tc.from)
			for i := 1; i < len(envs); i++ {
				if envs[i].CorrelationID <= envs[i-1].CorrelationID {
					t.Fatalf("order lost at the restarted peer: %d after %d", envs[i].CorrelationID, envs[i-1].CorrelationID)
				}
			}
		})
	}
}

// TestSilentPeerDetected: a peer that completes the handshake and then
// sends nothing, not even heartbeats, is declared dead after DeadAfter.
func TestSilentPeerDetected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	res := newResolver()
	res.set(addrB, ln.Addr().String())
	ha := newRecorder()
	a := start(t, fastConfig(addrA, res, ha), res)

	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if _, err := readHello(c); err == nil {
			_, _ = c.Write(appendHello(nil, addrB, 0))
		}
		accepted <- c
	}()
	if err := a.Send(addrB, seqEnv(addrA, 0)); err != nil {
		t.Fatal(err)
	}
	c := <-accepted
	defer c.Close()
	connected := time.Now()
	waitFor(t, time.Second, "PeerLost", func() bool { return ha.lostCount(addrB) == 1 })
	if d := time.Since(connected); d < 150*time.Millisecond {
		t.Fatalf("silent peer declared dead after %v, before DeadAfter", d)
	}
}

// TestHeartbeatsKeepIdleConnection: an idle connection survives many
// DeadAfter periods because both sides send heartbeats.
func TestHeartbeatsKeepIdleConnection(t *testing.T) {
	res := newResolver()
	ha, hb := newRecorder(), newRecorder()
	// Heartbeats every 50ms against a DeadAfter of 1s: twenty heartbeats
	// per period, so that a starved test machine (CI runs many packages
	// at once) does not lose a live connection; fastConfig's 200ms did.
	patient := func(self actor.Addr, h *recorder) Config {
		cfg := fastConfig(self, res, h)
		cfg.DeadAfter = time.Second
		return cfg
	}
	a := start(t, patient(addrA, ha), res)
	start(t, patient(addrB, hb), res)
	if err := a.Send(addrB, seqEnv(addrA, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "first envelope", func() bool { return hb.count(addrA) == 1 })
	time.Sleep(4 * time.Second) // four DeadAfter periods
	if ha.lostCount(addrB) != 0 || hb.lostCount(addrA) != 0 {
		t.Fatalf("idle connection was lost despite heartbeats")
	}
	if a.liveConns() != 1 {
		t.Fatalf("live connections %d, want 1", a.liveConns())
	}
}

// TestCorruptFrame: a raw client completes the handshake, then writes a
// frame that does not decode. That connection is closed with a logged
// reason; another peer keeps being served.
func TestCorruptFrame(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"malformed envelope", []byte{0, 0, 0, 2, 0xff, 0xff}},
		{"frame too large", []byte{0xff, 0xff, 0xff, 0xff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := newResolver()
			logs := &syncBuffer{}
			ha, hc := newRecorder(), newRecorder()
			cfg := fastConfig(addrA, res, ha)
			cfg.Logger = testLogger(logs)
			a := start(t, cfg, res)
			c := start(t, fastConfig(addrC, res, hc), res)

			raw, err := net.Dial("tcp", a.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.Write(appendHello(nil, addrB, 0)); err != nil {
				t.Fatal(err)
			}
			h, err := readHello(raw)
			if err != nil || h.addr != addrA || h.flags != 0 {
				t.Fatalf("hello from the transport: %+v, %v", h, err)
			}
			if _, err := raw.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			_ = raw.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 64)
			for {
				// Heartbeats may arrive first; then the close.
				if _, err := raw.Read(buf); err != nil {
					if isTimeout(err) {
						t.Fatalf("connection not closed by the transport: %v", err)
					}
					break
				}
			}
			waitFor(t, time.Second, "logged reason", func() bool {
				return logs.contains("corrupt frame") && logs.contains("peer="+addrB.String())
			})
			waitFor(t, time.Second, "PeerLost for the bad peer", func() bool { return ha.lostCount(addrB) == 1 })

			// Another peer is unaffected.
			for i := range 10 {
				if err := c.Send(addrA, seqEnv(addrC, uint64(i))); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 2*time.Second, "the other peer's envelopes", func() bool { return ha.count(addrC) == 10 })
			checkOrder(t, ha.received(addrC), 10)
		})
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestBadHelloRejected(t *testing.T) {
	res := newResolver()
	logs := &syncBuffer{}
	cfg := fastConfig(addrA, res, newRecorder())
	cfg.Logger = testLogger(logs)
	a := start(t, cfg, res)
	for _, msg := range [][]byte{
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{0, 0, 0, 12, 'G', 'U', 'I', 'L', 'D', '1', 9, 0, 0, 0, 0, 1}, // version 9
		appendHello(nil, addrA, 0),                                    // claims to be the node itself
	} {
		raw, err := net.Dial("tcp", a.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = raw.Write(msg)
		_ = raw.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := raw.Read(make([]byte, 64)); err == nil {
			t.Fatalf("bad hello %q answered with %d bytes", msg, n)
		} else if isTimeout(err) {
			t.Fatalf("bad hello %q: connection left open", msg)
		}
		_ = raw.Close()
	}
	if !logs.contains("bad hello") {
		t.Fatalf("no log for a bad hello:\n%s", logs)
	}
	if a.liveConns() != 0 {
		t.Fatalf("live connections %d after bad hellos", a.liveConns())
	}
}

func TestCloseTwiceAndSendAfterClose(t *testing.T) {
	res := newResolver()
	a, err := New(fastConfig(addrA, res, newRecorder()))
	if err != nil {
		t.Fatal(err)
	}
	b := start(t, fastConfig(addrB, res, newRecorder()), res)
	res.set(addrA, a.Addr().String())
	if err := b.Send(addrA, seqEnv(addrB, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "connection", func() bool { return a.liveConns() == 1 })
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := a.Send(addrB, seqEnv(addrA, 0)); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}
}

func TestSendRefusesBadInput(t *testing.T) {
	res := newResolver()
	cfg := fastConfig(addrA, res, newRecorder())
	cfg.MaxFrame = 64
	a := start(t, cfg, res)
	if err := a.Send(addrB, nil); err == nil {
		t.Fatal("Send(nil) succeeded")
	}
	if err := a.Send(addrA, seqEnv(addrA, 0)); err == nil {
		t.Fatal("Send to self succeeded")
	}
	big := seqEnv(addrA, 0)
	big.Payload = make([]byte, 100)
	if err := a.Send(addrB, big); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("Send of an envelope above MaxFrame: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	res := newResolver()
	good := fastConfig(addrA, res, newRecorder())
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"no listen":        func(c *Config) { c.Listen = "" },
		"no resolve":       func(c *Config) { c.Resolve = nil },
		"no handler":       func(c *Config) { c.Handler = nil },
		"negative queue":   func(c *Config) { c.PendingQueue = -1 },
		"negative frame":   func(c *Config) { c.MaxFrame = -1 },
		"dead before beat": func(c *Config) { c.DeadAfter = c.HeartbeatInterval },
		"backoff min>max":  func(c *Config) { c.ReconnectBackoffMin = time.Hour },
		"negative timeout": func(c *Config) { c.DialTimeout = -time.Second },
	} {
		c := good
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: Validate = %v, want ErrBadConfig", name, err)
		}
		if _, err := New(c); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: New = %v, want ErrBadConfig", name, err)
		}
	}
}

// TestPeerUpAndForget: PeerUp follows every connection that is
// established; Forget drops what was queued, reports the peer lost and
// stops the dialling, and a later Send starts afresh.
func TestPeerUpAndForget(t *testing.T) {
	res := newResolver()
	ha, hb := newRecorder(), newRecorder()
	a := start(t, fastConfig(addrA, res, ha), res)
	b := start(t, fastConfig(addrB, res, hb), res)
	if err := a.Send(addrB, seqEnv(addrA, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "PeerUp on both sides", func() bool { return ha.upCount(addrB) == 1 && hb.upCount(addrA) == 1 })

	// B goes away for good: A keeps redialling it until it is forgotten.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "PeerLost", func() bool { return ha.lostCount(addrB) >= 1 })
	for i := range 5 {
		if err := a.Send(addrB, seqEnv(addrA, uint64(i))); err != nil {
			t.Fatal(err)
		}
	}
	lost := ha.lostCount(addrB)
	a.Forget(addrB)
	if got := ha.lostCount(addrB); got != lost+1 {
		t.Fatalf("Forget: PeerLost count %d, want %d", got, lost+1)
	}
	p := (*a.peers.Load())[addrB]
	if p.out.pending() {
		t.Fatal("Forget left envelopes queued")
	}
	waitFor(t, 2*time.Second, "the dialling to stop", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return p.state == dialIdle
	})

	// B comes back on a new port; a Send dials it and delivers only what
	// was sent after Forget.
	hb2 := newRecorder()
	start(t, fastConfig(addrB, res, hb2), res)
	if err := a.Send(addrB, seqEnv(addrA, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the envelope after Forget", func() bool { return hb2.count(addrA) == 1 })
	waitFor(t, 2*time.Second, "PeerUp again", func() bool { return ha.upCount(addrB) == 2 })
	time.Sleep(50 * time.Millisecond)
	if got := hb2.count(addrA); got != 1 {
		t.Fatalf("B received %d envelopes, want only the one sent after Forget", got)
	}
}

// TestDirectWritesKeepOrder mixes every way a frame can leave: written by
// its sender directly (the connection was quiet), left whole or in part
// to the writer when the socket's buffer is full (the receiver stalls
// now and then), and batched by the writer (bursts). Four senders share
// the peer. Everything arrives, in each sender's order, and both the
// direct and the short-write paths were taken.
func TestDirectWritesKeepOrder(t *testing.T) {
	if !canTryWrite {
		t.Skip("no direct writes on this platform")
	}
	const n, senders = 3000, 4
	res := newResolver()
	ha, hb := newRecorder(), newRecorder()
	var mu sync.Mutex
	next := map[uint64]uint64{}
	var got atomic.Int64
	var bad atomic.Value
	hb.onEnv = func(_ actor.Addr, env *wire.Envelope) {
		// One in 500 envelopes stalls the reader, so the socket fills.
		if env.CorrelationID%500 == 499 {
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		if want := next[env.Sender.Serial]; env.CorrelationID != want {
			bad.CompareAndSwap(nil, fmt.Sprintf("sender %d: envelope %d after %d", env.Sender.Serial, env.CorrelationID, want-1))
		}
		next[env.Sender.Serial] = env.CorrelationID + 1
		mu.Unlock()
		got.Add(1)
	}
	// This test is about order, not failure detection: fastConfig's
	// DeadAfter (200ms) is shorter than a starved machine may keep a
	// reader away, and a connection dropped for silence loses what it had
	// taken (reported with PeerLost), which would fail the count below.
	patient := func(c Config) Config {
		c.HeartbeatInterval, c.DeadAfter = time.Second, 10*time.Second
		return c
	}
	cfg := patient(fastConfig(addrA, res, ha))
	cfg.QueuedWrites = false // direct writes: the default, said here
	a := start(t, cfg, res)
	start(t, patient(fastConfig(addrB, res, hb)), res)

	big := bytes.Repeat([]byte("x"), 48<<10) // a few fill the socket's buffer
	var wg sync.WaitGroup
	for sender := range uint64(senders) {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(sender, 1))
			for i := range uint64(n) {
				env := seqEnv(addrA, i)
				env.Sender.Serial = sender
				if rng.IntN(4) == 0 {
					env.Payload = big
				}
				sendRetry(t, a, addrB, env)
				if rng.IntN(8) == 0 { // a quiet moment: the next send writes directly
					time.Sleep(50 * time.Microsecond)
				}
			}
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		if t.Failed() { // a stall, or a lost connection?
			t.Logf("%d of %d envelopes arrived; A lost B %d times", got.Load(), senders*n, ha.lostCount(addrB))
		}
	})
	waitFor(t, 30*time.Second, "every envelope", func() bool { return got.Load() == senders*n })
	if b := bad.Load(); b != nil {
		t.Fatalf("order lost: %v", b)
	}
	out := a.peerOf(addrB).out
	out.mu.Lock()
	direct, short := out.directWrites, out.directShort
	out.mu.Unlock()
	t.Logf("%d direct writes, %d of them short", direct, short)
	if direct == 0 {
		t.Errorf("no direct write: the path was not taken")
	}
	// A short direct write needs the socket's buffer full at that moment,
	// which a busy machine may never give this test (its reader then
	// keeps up); TestOutboxRestStaysOnItsConnection covers what follows
	// one.
}

// TestOutboxRestStaysOnItsConnection: what a direct write left of a frame
// (the socket took its start) is written by that connection's writer,
// before the frames put since; another connection's writer drops it, so a
// new connection never starts inside a frame.
func TestOutboxRestStaysOnItsConnection(t *testing.T) {
	c1, c2 := &conn{}, &conn{}
	for _, tc := range []struct {
		name   string
		writer *conn
		want   string
	}{{"its own writer", c1, "tail-of-frame|next"}, {"another connection's writer", c2, "next"}} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOutbox(addrB, 10)
			o.rest, o.restConn = []byte("tail-of-frame|"), c1
			o.buf = append(o.buf, "next"...)
			o.frames = 2
			if o.idle() {
				t.Fatal("an outbox with a frame's rest waiting says it is idle")
			}
			if got := string(o.take(nil, tc.writer)); got != tc.want {
				t.Fatalf("take = %q, want %q", got, tc.want)
			}
			if o.rest != nil || o.frames != 0 || len(o.buf) != 0 {
				t.Fatalf("after take: rest %q, %d frames, buf %q", o.rest, o.frames, o.buf)
			}
			o.written()
			if !o.idle() {
				t.Fatal("the outbox is not idle once everything was taken and written")
			}
		})
	}
}
