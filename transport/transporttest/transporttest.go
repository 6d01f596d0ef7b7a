// Package transporttest checks that a transport.Transport keeps the
// promises package transport states, the way storetest checks a store:
// a transport's own tests call Run with a way to configure it, and every
// transport guild ships (transport/tcp, transport/memory, transport/nats,
// transport/amqp, transport/redis) runs the same suite in CI.
//
//	func TestConformance(t *testing.T) {
//		transporttest.Run(t, transporttest.Options{
//			New: func(t *testing.T) transport.Config { return memory.Config{Network: memory.NewNetwork(), Options: fast} },
//			PendingQueue: 64, MaxFrame: 1 << 20,
//		})
//	}
//
// Every subtest starts its nodes from one call of Options.New, so a
// transport on a shared broker can isolate its subtests (a fresh prefix
// each time). The nodes resolve each other through the suite's own
// registry of endpoints, as a cluster's membership would.
//
// The suite checks: an envelope arrives whole and from the right peer,
// both ways; order per pair under load, both ways at once; the per-peer
// bound and ErrPendingQueueFull while a peer is being reached; fail fast
// (PeerLost) for a peer that closes, one that never answers and one that
// is not a member; recovery when a peer comes back with a new
// incarnation, on the next Send and with nothing sent; Forget; Flush;
// Close; the frame-size limit; garbage on the
// wire dropped without harm (with Options.Inject); and, with
// Options.Outage, a broker outage failing every peer fast and traffic
// resuming by itself when it ends.
package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/wire"
)

// Options tells Run how to start the transport under test.
type Options struct {
	// New returns the configuration every node of one subtest starts
	// from. It should make the transport detect a dead peer within a
	// second or two (short heartbeats and timeouts), since the suite
	// waits at most Detect for it. Required.
	New func(t *testing.T) transport.Config
	// Listen is Setup.Listen: default "127.0.0.1:0".
	Listen string
	// PendingQueue is the per-peer bound New's configurations set.
	// Required (a small number, such as 64).
	PendingQueue int
	// MaxFrame is the largest envelope New's configurations accept.
	// Required.
	MaxFrame int
	// Silent, optional, returns an endpoint where something reads but
	// never answers, as a node that hangs would: a TCP listener that
	// never replies, a broker inbox nobody answers from. Without it the
	// bound and reach-timeout checks are skipped.
	Silent func(t *testing.T, cfg transport.Config) (endpoint string)
	// Inject, optional, writes raw bytes to a node's endpoint the way any
	// client of the network or broker could. Without it the garbage
	// check is skipped.
	Inject func(t *testing.T, cfg transport.Config, endpoint string, raw []byte)
	// Outage, optional, makes the broker (or network) unreachable for
	// every node of the subtest until restore is called. Without it the
	// outage check is skipped.
	Outage func(t *testing.T, cfg transport.Config) (restore func())
	// Detect bounds how long the suite waits for a lost peer to be
	// reported and for a returning one to be reached: default 15s.
	Detect time.Duration
}

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, o Options) {
	if o.New == nil || o.PendingQueue <= 0 || o.MaxFrame <= 0 {
		t.Fatal("transporttest: Options.New, PendingQueue and MaxFrame are required")
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Detect == 0 {
		o.Detect = 15 * time.Second
	}
	t.Run("Exchange", func(t *testing.T) { testExchange(t, o) })
	t.Run("OrderBothWays", func(t *testing.T) { testOrderBothWays(t, o) })
	t.Run("PeerCloses", func(t *testing.T) { testPeerCloses(t, o) })
	t.Run("NotAMember", func(t *testing.T) { testNotAMember(t, o) })
	t.Run("PeerComesBack", func(t *testing.T) { testPeerComesBack(t, o) })
	t.Run("ReachedAgainUnasked", func(t *testing.T) { testReachedAgainUnasked(t, o) })
	t.Run("Forget", func(t *testing.T) { testForget(t, o) })
	t.Run("FlushAndClose", func(t *testing.T) { testFlushAndClose(t, o) })
	t.Run("FrameLimit", func(t *testing.T) { testFrameLimit(t, o) })
	t.Run("Silent", func(t *testing.T) {
		if o.Silent == nil {
			t.Skip("transporttest: no Options.Silent for this transport")
		}
		testSilent(t, o)
	})
	t.Run("Garbage", func(t *testing.T) {
		if o.Inject == nil {
			t.Skip("transporttest: no Options.Inject for this transport")
		}
		testGarbage(t, o)
	})
	t.Run("Outage", func(t *testing.T) {
		if o.Outage == nil {
			t.Skip("transporttest: no Options.Outage for this transport")
		}
		testOutage(t, o)
	})
}

// mesh is the nodes of one subtest and the registry they resolve through.
type mesh struct {
	t   *testing.T
	o   Options
	cfg transport.Config

	mu        sync.Mutex
	endpoints map[actor.Addr]string
}

func newMesh(t *testing.T, o Options) *mesh {
	return &mesh{t: t, o: o, cfg: o.New(t), endpoints: map[actor.Addr]string{}}
}

// resolve is every node's Setup.Resolve.
func (m *mesh) resolve(a actor.Addr) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.endpoints[a]; ok {
		return e, nil
	}
	return "", fmt.Errorf("transporttest: %v is not a member", a)
}

// register makes a resolve to addr's endpoint.
func (m *mesh) register(a actor.Addr, endpoint string) {
	m.mu.Lock()
	m.endpoints[a] = endpoint
	m.mu.Unlock()
}

// node is one started transport and what it received.
type node struct {
	addr actor.Addr
	tr   transport.Transport
	rec  *recorder
}

// start starts a node with address index i (cluster 1, type 1).
func (m *mesh) start(i int) *node {
	m.t.Helper()
	a := actor.MustAddr(1, 1, i)
	rec := newRecorder()
	tr, err := m.cfg.Start(transport.Setup{Self: a, Listen: m.o.Listen, Resolve: m.resolve, Handler: rec})
	if err != nil {
		m.t.Fatalf("start node %v: %v", a, err)
	}
	m.t.Cleanup(func() { _ = tr.Close() })
	m.register(a, tr.Endpoint())
	return &node{addr: a, tr: tr, rec: rec}
}

// recorder is a transport.Handler that keeps copies of what it gets.
type recorder struct {
	mu    sync.Mutex
	envs  map[actor.Addr][]wire.Envelope
	lost  map[actor.Addr]int
	up    map[actor.Addr]int
	errs  []error
	onEnv func(actor.Addr, *wire.Envelope)
}

func newRecorder() *recorder {
	return &recorder{envs: map[actor.Addr][]wire.Envelope{}, lost: map[actor.Addr]int{}, up: map[actor.Addr]int{}}
}

func (r *recorder) HandleEnvelope(peer actor.Addr, env *wire.Envelope) {
	cp := *env
	cp.Payload = bytes.Clone(env.Payload)
	cp.Metadata = bytes.Clone(env.Metadata)
	r.mu.Lock()
	r.envs[peer] = append(r.envs[peer], cp)
	f := r.onEnv
	r.mu.Unlock()
	if f != nil {
		f(peer, env)
	}
}

func (r *recorder) PeerLost(peer actor.Addr, err error) {
	r.mu.Lock()
	r.lost[peer]++
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

func (r *recorder) PeerUp(peer actor.Addr) {
	r.mu.Lock()
	r.up[peer]++
	r.mu.Unlock()
}

func (r *recorder) count(peer actor.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.envs[peer])
}

func (r *recorder) got(peer actor.Addr) []wire.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wire.Envelope(nil), r.envs[peer]...)
}

func (r *recorder) lostCount(peer actor.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lost[peer]
}

func (r *recorder) upCount(peer actor.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.up[peer]
}

// lostErrors returns the errors PeerLost was given.
func (r *recorder) lostErrors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// message returns envelope number i of a stream, with every field set.
func message(from actor.Addr, i int) *wire.Envelope {
	return &wire.Envelope{
		Kind:          wire.KindRequest,
		Target:        wire.PID{Node: 7, Serial: uint64(1000 + i)},
		Sender:        wire.PID{Node: uint32(from), Serial: 42},
		CorrelationID: uint64(i),
		Deadline:      time.Unix(1_900_000_000, int64(i)).UnixNano(),
		Metadata:      []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
		PayloadType:   "guild.test.Message",
		Payload:       fmt.Appendf(nil, "payload %d from %v", i, from),
	}
}

// same reports whether got is the envelope want, field by field.
func same(got, want *wire.Envelope) bool {
	return got.Kind == want.Kind && got.Target == want.Target && got.TargetName == want.TargetName &&
		got.Sender == want.Sender && got.CorrelationID == want.CorrelationID && got.Deadline == want.Deadline &&
		bytes.Equal(got.Metadata, want.Metadata) && got.PayloadType == want.PayloadType &&
		bytes.Equal(got.Payload, want.Payload) && got.ErrorCode == want.ErrorCode && got.ErrorMessage == want.ErrorMessage
}

// send sends env, retrying while the peer's queue is full, until the
// deadline.
func send(t *testing.T, tr transport.Transport, to actor.Addr, env *wire.Envelope, deadline time.Time) {
	t.Helper()
	for {
		err := tr.Send(to, env)
		if err == nil {
			return
		}
		if !errors.Is(err, transport.ErrPendingQueueFull) || time.Now().After(deadline) {
			t.Fatalf("Send to %v: %v", to, err)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func testExchange(t *testing.T, o Options) {
	m := newMesh(t, o)
	a, b := m.start(1), m.start(2)
	want := message(a.addr, 1)
	want.TargetName = "lobby"
	want.Target = wire.PID{} // a named envelope carries no target PID
	send(t, a.tr, b.addr, want, time.Now().Add(o.Detect))
	await.True(t, o.Detect, "the envelope to reach node 2", func() bool { return b.rec.count(a.addr) == 1 })
	if got := b.rec.got(a.addr)[0]; !same(&got, want) {
		t.Fatalf("node 2 got %+v, want %+v", got, *want)
	}
	reply := &wire.Envelope{Kind: wire.KindError, Target: want.Sender, CorrelationID: 1, ErrorCode: 1234, ErrorMessage: "no such room"}
	send(t, b.tr, a.addr, reply, time.Now().Add(o.Detect))
	await.True(t, o.Detect, "the reply to reach node 1", func() bool { return a.rec.count(b.addr) == 1 })
	if got := a.rec.got(b.addr)[0]; !same(&got, reply) {
		t.Fatalf("node 1 got %+v, want %+v", got, *reply)
	}
	await.True(t, o.Detect, "both nodes to report each other up", func() bool {
		return a.rec.upCount(b.addr) >= 1 && b.rec.upCount(a.addr) >= 1
	})
	if n := a.rec.lostCount(b.addr) + b.rec.lostCount(a.addr); n != 0 {
		t.Fatalf("%d peers reported lost on a healthy link: %v", n, append(a.rec.lostErrors(), b.rec.lostErrors()...))
	}
	// A transport that keeps per-peer counters counts what went each way.
	sa, ok := a.tr.(transport.StatsReporter)
	if !ok {
		return
	}
	sb := b.tr.(transport.StatsReporter)
	await.True(t, o.Detect, "each node's PeerStats to count the envelope it sent and the one it got", func() bool {
		pa, pb := peerStats(sa, b.addr), peerStats(sb, a.addr)
		return pa.Up && pb.Up && pa.FramesOut >= 1 && pa.FramesIn >= 1 && pb.FramesOut >= 1 && pb.FramesIn >= 1 &&
			pa.BytesOut > 0 && pa.BytesIn > 0 && pa.Connects >= 1 && pb.Connects >= 1
	})
}

// peerStats returns the PeerStats of peer, or zero ones.
func peerStats(r transport.StatsReporter, peer actor.Addr) transport.PeerStats {
	for _, s := range r.PeerStats() {
		if s.Peer == peer {
			return s
		}
	}
	return transport.PeerStats{}
}

func testOrderBothWays(t *testing.T, o Options) {
	m := newMesh(t, o)
	a, b := m.start(1), m.start(2)
	const n = 5000
	deadline := time.Now().Add(4 * o.Detect)
	var wg sync.WaitGroup
	for _, pair := range [][2]*node{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= n; i++ {
				env := message(from.addr, i)
				for {
					err := from.tr.Send(to.addr, env)
					if err == nil {
						break
					}
					if !errors.Is(err, transport.ErrPendingQueueFull) || time.Now().After(deadline) {
						t.Errorf("Send %d from %v: %v", i, from.addr, err)
						return
					}
					time.Sleep(100 * time.Microsecond)
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node 1 got %d from node 2, node 2 got %d from node 1; lost: %v", a.rec.count(b.addr), b.rec.count(a.addr), append(a.rec.lostErrors(), b.rec.lostErrors()...))
		}
	})
	await.True(t, 4*o.Detect, fmt.Sprintf("%d envelopes each way", n), func() bool {
		return a.rec.count(b.addr) == n && b.rec.count(a.addr) == n
	})
	for peer, envs := range map[actor.Addr][]wire.Envelope{a.addr: b.rec.got(a.addr), b.addr: a.rec.got(b.addr)} {
		for i, e := range envs {
			if e.CorrelationID != uint64(i+1) {
				t.Fatalf("from %v: envelope %d carries number %d: out of order or repeated", peer, i+1, e.CorrelationID)
			}
			if want := message(peer, i+1); !same(&e, want) {
				t.Fatalf("from %v: envelope %d arrived changed", peer, i+1)
			}
		}
	}
	if n := a.rec.lostCount(b.addr) + b.rec.lostCount(a.addr); n != 0 {
		t.Fatalf("%d peers reported lost under load: %v", n, append(a.rec.lostErrors(), b.rec.lostErrors()...))
	}
}

func testPeerCloses(t *testing.T, o Options) {
	m := newMesh(t, o)
	a, b := m.start(1), m.start(2)
	send(t, a.tr, b.addr, message(a.addr, 1), time.Now().Add(o.Detect))
	await.True(t, o.Detect, "node 2 to get the first envelope", func() bool { return b.rec.count(a.addr) == 1 })
	await.True(t, o.Detect, "node 1 to see node 2 up", func() bool { return a.rec.upCount(b.addr) >= 1 })
	if err := b.tr.Close(); err != nil {
		t.Fatalf("close node 2: %v", err)
	}
	await.True(t, o.Detect, "node 1 to report node 2 lost", func() bool { return a.rec.lostCount(b.addr) >= 1 })
	for _, err := range a.rec.lostErrors() {
		if !errors.Is(err, transport.ErrPeerLost) {
			t.Fatalf("PeerLost got %v, which does not match transport.ErrPeerLost", err)
		}
	}
	// A send to the closed peer fails again, fast: it is reported lost
	// once more (it had something queued), and Send never blocks.
	before := a.rec.lostCount(b.addr)
	_ = a.tr.Send(b.addr, message(a.addr, 2))
	await.True(t, o.Detect, "node 1 to report node 2 lost again after another send", func() bool { return a.rec.lostCount(b.addr) > before })
}

func testNotAMember(t *testing.T, o Options) {
	m := newMesh(t, o)
	a := m.start(1)
	stranger := actor.MustAddr(1, 1, 99)
	if err := a.tr.Send(stranger, message(a.addr, 1)); err != nil && !errors.Is(err, transport.ErrPendingQueueFull) {
		t.Fatalf("Send to a non-member: %v (want nil: it fails through PeerLost)", err)
	}
	await.True(t, o.Detect, "node 1 to report the non-member lost", func() bool { return a.rec.lostCount(stranger) >= 1 })
}

func testPeerComesBack(t *testing.T, o Options) {
	m := newMesh(t, o)
	a, b := m.start(1), m.start(2)
	send(t, a.tr, b.addr, message(a.addr, 1), time.Now().Add(o.Detect))
	await.True(t, o.Detect, "node 2 to get the first envelope", func() bool { return b.rec.count(a.addr) == 1 })
	ups := a.rec.upCount(b.addr)
	if err := b.tr.Close(); err != nil {
		t.Fatalf("close node 2: %v", err)
	}
	await.True(t, o.Detect, "node 1 to report node 2 lost", func() bool { return a.rec.lostCount(b.addr) >= 1 })
	b2 := m.start(2) // the same address, a new incarnation
	// The first envelope sent once the new node runs reaches it: nothing
	// of the old one's makes the transport drop it.
	send(t, a.tr, b.addr, message(a.addr, 2), time.Now().Add(o.Detect))
	await.True(t, 2*o.Detect, "the new node 2 to get the first envelope sent to it", func() bool { return b2.rec.count(a.addr) == 1 })
	await.True(t, o.Detect, "node 1 to report node 2 up again", func() bool { return a.rec.upCount(b.addr) > ups })
	send(t, b2.tr, a.addr, message(b2.addr, 1), time.Now().Add(o.Detect))
	await.True(t, o.Detect, "node 1 to get the new node 2's envelope", func() bool {
		for _, e := range a.rec.got(b.addr) {
			if e.Sender.Node == uint32(b2.addr) && e.CorrelationID == 1 {
				return true
			}
		}
		return false
	})
}

// testReachedAgainUnasked: a lost peer that comes back is reached again,
// and reported up, with nothing sent to it. The cluster layer fails
// requests to a lost peer at once, without a Send, until PeerUp: a
// transport that waited for the next Send would cut a node that only
// makes requests off that peer for good.
func testReachedAgainUnasked(t *testing.T, o Options) {
	m := newMesh(t, o)
	a, b := m.start(1), m.start(2)
	send(t, a.tr, b.addr, message(a.addr, 1), time.Now().Add(o.Detect))
	await.True(t, o.Detect, "node 2 to get the first envelope", func() bool { return b.rec.count(a.addr) == 1 })
	if err := b.tr.Close(); err != nil {
		t.Fatalf("close node 2: %v", err)
	}
	await.True(t, o.Detect, "node 1 to report node 2 lost", func() bool { return a.rec.lostCount(b.addr) >= 1 })
	ups := a.rec.upCount(b.addr)
	m.start(2) // the same address, a new incarnation; neither node sends
	await.True(t, 2*o.Detect, "node 1 to report node 2 up again with nothing sent", func() bool { return a.rec.upCount(b.addr) > ups })
}

func testForget(t *testing.T, o Options) {
	m := newMesh(t, o)
	a, b := m.start(1), m.start(2)
	send(t, a.tr, b.addr, message(a.addr, 1), time.Now().Add(o.Detect))
	await.True(t, o.Detect, "node 2 to get the first envelope", func() bool { return b.rec.count(a.addr) == 1 })
	a.tr.Forget(b.addr)
	// Before Forget returns: the cluster layer takes the peer back as
	// soon as it rejoins, and a loss reported after that would fail the
	// new incarnation's requests.
	if a.rec.lostCount(b.addr) < 1 {
		t.Fatal("Forget returned before node 2 was reported lost")
	}
	i := 2
	await.True(t, 2*o.Detect, "a send after Forget to reach node 2", func() bool {
		if b.rec.count(a.addr) > 1 {
			return true
		}
		_ = a.tr.Send(b.addr, message(a.addr, i))
		i++
		time.Sleep(20 * time.Millisecond)
		return b.rec.count(a.addr) > 1
	})
}

func testFlushAndClose(t *testing.T, o Options) {
	m := newMesh(t, o)
	a, b := m.start(1), m.start(2)
	send(t, a.tr, b.addr, message(a.addr, 1), time.Now().Add(o.Detect))
	await.True(t, o.Detect, "node 1 to see node 2 up", func() bool { return a.rec.upCount(b.addr) >= 1 })
	n := min(o.PendingQueue, 1000)
	for i := 2; i <= n; i++ {
		send(t, a.tr, b.addr, message(a.addr, i), time.Now().Add(o.Detect))
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Detect)
	defer cancel()
	if err := a.tr.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	await.True(t, o.Detect, "node 2 to get everything flushed", func() bool { return b.rec.count(a.addr) == n })
	if err := a.tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := a.tr.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := a.tr.Send(b.addr, message(a.addr, n+1)); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}
	if err := a.tr.Flush(ctx); err != nil {
		t.Fatalf("Flush after Close: %v", err)
	}
}

func testFrameLimit(t *testing.T, o Options) {
	m := newMesh(t, o)
	a, b := m.start(1), m.start(2)
	big := message(a.addr, 1)
	big.Payload = bytes.Repeat([]byte{0xab}, o.MaxFrame/2)
	send(t, a.tr, b.addr, big, time.Now().Add(o.Detect))
	await.True(t, o.Detect, "a large envelope to arrive", func() bool { return b.rec.count(a.addr) == 1 })
	if got := b.rec.got(a.addr)[0]; !same(&got, big) {
		t.Fatal("a large envelope arrived changed")
	}
	tooBig := message(a.addr, 2)
	tooBig.Payload = make([]byte, o.MaxFrame+1)
	if err := a.tr.Send(b.addr, tooBig); !errors.Is(err, wire.ErrFrameTooLarge) {
		t.Fatalf("Send of an envelope above MaxFrame: %v, want wire.ErrFrameTooLarge", err)
	}
	send(t, a.tr, b.addr, message(a.addr, 3), time.Now().Add(o.Detect))
	await.True(t, o.Detect, "the link to work after a refused envelope", func() bool { return b.rec.count(a.addr) == 2 })
}

func testSilent(t *testing.T, o Options) {
	m := newMesh(t, o)
	a := m.start(1)
	hung := actor.MustAddr(1, 1, 50)
	m.register(hung, o.Silent(t, m.cfg))
	// While the hung peer is being reached, at most PendingQueue
	// envelopes wait; the next Send fails at once. A burst takes
	// microseconds, a reach attempt far longer; should the attempt end
	// inside the burst (a very busy machine), the burst is tried again.
	for attempt := 0; ; attempt++ {
		lostBefore := a.rec.lostCount(hung)
		accepted, refused := 0, 0
		for i := 0; i < o.PendingQueue+10; i++ {
			err := a.tr.Send(hung, message(a.addr, i))
			switch {
			case err == nil && refused == 0:
				accepted++
			case errors.Is(err, transport.ErrPendingQueueFull):
				refused++
			case err != nil:
				t.Fatalf("Send %d to a hung peer: %v", i, err)
			}
		}
		if a.rec.lostCount(hung) != lostBefore && attempt < 3 {
			continue
		}
		if accepted > o.PendingQueue || refused == 0 {
			t.Fatalf("a hung peer took %d envelopes and refused %d: want at most PendingQueue (%d) taken, then ErrPendingQueueFull", accepted, refused, o.PendingQueue)
		}
		break
	}
	await.True(t, o.Detect, "the hung peer to be reported lost", func() bool { return a.rec.lostCount(hung) >= 1 })
}

func testGarbage(t *testing.T, o Options) {
	m := newMesh(t, o)
	a, b := m.start(1), m.start(2)
	send(t, a.tr, b.addr, message(a.addr, 1), time.Now().Add(o.Detect))
	await.True(t, o.Detect, "node 2 to get the first envelope", func() bool { return b.rec.count(a.addr) == 1 })
	for _, raw := range [][]byte{
		{},
		[]byte("hello"),
		bytes.Repeat([]byte{0xff}, 64),
		{0x67, 1, 0, 0, 0, 0}, // a cut header
		{0x67, 1, 0x01, 0x01, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 9, 0xff, 0xff, 0xff}, // a data frame whose envelope does not decode
		{0x67, 9, 0x01, 0x01, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 9},                   // an unknown kind
	} {
		o.Inject(t, m.cfg, b.tr.Endpoint(), raw)
	}
	send(t, a.tr, b.addr, message(a.addr, 2), time.Now().Add(o.Detect))
	await.True(t, o.Detect, "node 2 to get envelopes after the garbage", func() bool { return b.rec.count(a.addr) == 2 })
	b.rec.mu.Lock()
	defer b.rec.mu.Unlock()
	for peer, envs := range b.rec.envs {
		if peer != a.addr {
			t.Fatalf("garbage reached the handler as %d envelopes from %v", len(envs), peer)
		}
	}
	if n := b.rec.lost[a.addr]; n != 0 {
		t.Fatalf("garbage from elsewhere made node 2 report node 1 lost %d times", n)
	}
}

func testOutage(t *testing.T, o Options) {
	m := newMesh(t, o)
	a, b, c := m.start(1), m.start(2), m.start(3)
	for _, pair := range [][2]*node{{a, b}, {a, c}, {b, c}} {
		send(t, pair[0].tr, pair[1].addr, message(pair[0].addr, 1), time.Now().Add(o.Detect))
	}
	await.True(t, o.Detect, "the three nodes to reach each other", func() bool {
		return b.rec.count(a.addr) == 1 && c.rec.count(a.addr) == 1 && c.rec.count(b.addr) == 1
	})
	restore := o.Outage(t, m.cfg)
	restored := false
	defer func() {
		if !restored {
			restore()
		}
	}()
	// Every node reports its peers lost: requests in flight fail fast.
	await.True(t, o.Detect, "every node to report its peers lost during the outage", func() bool {
		return a.rec.lostCount(b.addr) >= 1 && a.rec.lostCount(c.addr) >= 1 &&
			b.rec.lostCount(a.addr) >= 1 && c.rec.lostCount(a.addr) >= 1 && c.rec.lostCount(b.addr) >= 1
	})
	// A send during the outage never blocks and fails through PeerLost.
	lost := a.rec.lostCount(b.addr)
	if err := a.tr.Send(b.addr, message(a.addr, 2)); err != nil && !errors.Is(err, transport.ErrPendingQueueFull) {
		t.Fatalf("Send during the outage: %v", err)
	}
	await.True(t, o.Detect, "a send during the outage to be reported lost", func() bool { return a.rec.lostCount(b.addr) > lost })
	pairs := [][2]*node{{a, b}, {a, c}, {b, a}, {b, c}, {c, a}, {c, b}}
	ups := make([]int, len(pairs))
	for i, pair := range pairs {
		ups[i] = pair[0].rec.upCount(pair[1].addr)
	}
	restore()
	restored = true
	// Every node reaches its peers again by itself, with nothing sent
	// (the cluster layer sends no request to a lost peer until PeerUp).
	for i, pair := range pairs {
		await.True(t, 2*o.Detect, fmt.Sprintf("%v to report %v up again after the outage, with nothing sent", pair[0].addr, pair[1].addr), func() bool {
			return pair[0].rec.upCount(pair[1].addr) > ups[i]
		})
	}
	// Traffic resumes by itself: no node is restarted.
	for _, pair := range [][2]*node{{a, b}, {b, a}, {c, a}} {
		from, to := pair[0], pair[1]
		have := to.rec.count(from.addr)
		i := 100
		await.True(t, 2*o.Detect, fmt.Sprintf("traffic from %v to %v to resume after the outage", from.addr, to.addr), func() bool {
			if to.rec.count(from.addr) > have {
				return true
			}
			_ = from.tr.Send(to.addr, message(from.addr, i))
			i++
			time.Sleep(20 * time.Millisecond)
			return to.rec.count(from.addr) > have
		})
	}
	// Nothing arrived twice.
	for _, pair := range [][2]*node{{a, b}, {b, a}, {c, a}, {a, c}, {b, c}} {
		seen := map[uint64]bool{}
		for _, e := range pair[1].rec.got(pair[0].addr) {
			if seen[e.CorrelationID] {
				t.Fatalf("envelope %d from %v reached %v twice", e.CorrelationID, pair[0].addr, pair[1].addr)
			}
			seen[e.CorrelationID] = true
		}
	}
}
