package bus

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// gatedNet is an in-process broker whose probes can be held: a probe
// learns whether the inbox is read when it is asked, and answers when the
// gate lets it, which is how a probe's answer can arrive after the peer
// came back (a NATS request or an AMQP passive declare in flight).
type gatedNet struct {
	mu      sync.Mutex
	readers map[string]*gatedInbox
	gate    chan struct{} // nil: probes answer at once; else they wait for it to close
	held    atomic.Int32  // probes waiting at the gate
}

// gatedInbox is one node's connection to a gatedNet.
type gatedInbox struct {
	net  *gatedNet
	name string
	r    Receiver
	dmu  sync.Mutex // Deliver is called one at a time
}

func (n *gatedNet) connect(name string, r Receiver) (Broker, error) {
	in := &gatedInbox{net: n, name: name, r: r}
	n.mu.Lock()
	n.readers[name] = in
	n.mu.Unlock()
	return in, nil
}

// hold makes the probes asked from now on wait until release.
func (n *gatedNet) hold() {
	n.mu.Lock()
	n.gate = make(chan struct{})
	n.mu.Unlock()
}

// release lets the held probes answer, and the later ones answer at once.
func (n *gatedNet) release() {
	n.mu.Lock()
	close(n.gate)
	n.gate = nil
	n.mu.Unlock()
}

// Publish delivers msgs on the caller's goroutine, or drops them when
// nobody reads the inbox (as a broker does).
func (in *gatedInbox) Publish(to string, msgs [][]byte) error {
	in.net.mu.Lock()
	dst := in.net.readers[to]
	in.net.mu.Unlock()
	if dst == nil {
		return nil
	}
	dst.dmu.Lock()
	defer dst.dmu.Unlock()
	for _, m := range msgs {
		dst.r.Deliver(m)
	}
	return nil
}

func (in *gatedInbox) Probe(ctx context.Context, to string) error {
	in.net.mu.Lock()
	read := in.net.readers[to] != nil
	gate := in.net.gate
	in.net.mu.Unlock()
	if gate != nil {
		in.net.held.Add(1)
		select {
		case <-gate:
		case <-ctx.Done():
		}
		in.net.held.Add(-1)
	}
	if !read {
		return ErrNoReader
	}
	return nil
}

func (in *gatedInbox) Close() error {
	in.net.mu.Lock()
	delete(in.net.readers, in.name)
	in.net.mu.Unlock()
	return nil
}

// events records what a transport's Handler is told.
type events struct {
	mu   sync.Mutex
	got  []uint64 // correlation IDs of the envelopes received
	lost int
	up   int
}

func (e *events) HandleEnvelope(_ actor.Addr, env *wire.Envelope) {
	e.mu.Lock()
	e.got = append(e.got, env.CorrelationID)
	e.mu.Unlock()
}
func (e *events) PeerLost(actor.Addr, error) { e.mu.Lock(); e.lost++; e.mu.Unlock() }
func (e *events) PeerUp(actor.Addr)          { e.mu.Lock(); e.up++; e.mu.Unlock() }
func (e *events) snapshot() (got []uint64, lost, up int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]uint64(nil), e.got...), e.lost, e.up
}

// TestSendDuringRetryGetsItsOwnReach checks that an envelope sent to a
// lost peer while the ticker's retry is reaching it is not dropped by
// what that retry finds out about the peer's previous absence: the
// retry's probe, asked before the peer came back, answers "nobody reads"
// after it did.
func TestSendDuringRetryGetsItsOwnReach(t *testing.T) {
	n := &gatedNet{readers: map[string]*gatedInbox{}}
	a1, a2 := actor.MustAddr(1, 1, 1), actor.MustAddr(1, 1, 2)
	resolve := func(a actor.Addr) (string, error) { return "inbox-" + a.String(), nil }
	o := Options{PendingQueue: 16, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 10 * time.Second, ReachTimeout: 10 * time.Second}
	ev1 := &events{}
	tr1, err := Start(transport.Setup{Self: a1, Resolve: resolve, Handler: ev1}, "inbox-"+a1.String(), o, n.connect)
	if err != nil {
		t.Fatal(err)
	}
	defer tr1.Close()

	// Node 2 is not running: the reach fails at once, and is reported.
	if err := tr1.Send(a2, &wire.Envelope{Kind: wire.KindSend, CorrelationID: 1}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "node 1 to report node 2 lost", func() bool { _, lost, _ := ev1.snapshot(); return lost == 1 })
	// The ticker reaches it again by itself; its probe is held.
	n.hold()
	await.True(t, 10*time.Second, "a retry's probe to be in flight", func() bool { return n.held.Load() >= 1 })

	// Node 2 comes, and node 1 sends to it before the retry's probe
	// answers (that nobody read the inbox when it was asked).
	ev2 := &events{}
	tr2, err := Start(transport.Setup{Self: a2, Resolve: resolve, Handler: ev2}, "inbox-"+a2.String(), o, n.connect)
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	if err := tr1.Send(a2, &wire.Envelope{Kind: wire.KindSend, CorrelationID: 2}); err != nil {
		t.Fatal(err)
	}
	n.release()
	await.True(t, 10*time.Second, "node 2 to get the envelope sent once it ran", func() bool {
		got, _, _ := ev2.snapshot()
		return len(got) == 1
	})
	got, _, _ := ev2.snapshot()
	if got[0] != 2 {
		t.Fatalf("node 2 got envelope %d, want 2", got[0])
	}
	if _, lost, _ := ev1.snapshot(); lost != 1 {
		t.Fatalf("node 1 reported node 2 lost %d times, want once (before it ran)", lost)
	}
}
