package amqp_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest/faultnet"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/amqp"
	"github.com/guildkit/guild/transport/bus"
	"github.com/guildkit/guild/transport/transporttest"
	"github.com/guildkit/guild/wire"
)

// amqp091-go leaves no goroutine behind once a connection is closed, so
// no goleak.IgnoreTopFunction is needed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	brokerAddr = "127.0.0.1:5672"
	brokerURL  = "amqp://guest:guest@" + brokerAddr + "/"
)

// fast detects a lost peer within a few seconds: soon enough for the
// suite, and not so soon that a starved test machine loses a live one.
var fast = bus.Options{PendingQueue: 64, MaxFrame: 1 << 20, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 2 * time.Second, ReachTimeout: 2 * time.Second}

var probe struct {
	once sync.Once
	err  error
}

// reachable skips the test, or fails it on CI (CI=true), when RabbitMQ
// does not accept a connection on brokerAddr. It asks once per run.
func reachable(tb testing.TB) {
	tb.Helper()
	probe.once.Do(func() {
		nc, err := net.DialTimeout("tcp", brokerAddr, 2*time.Second)
		if err != nil {
			probe.err = err
			return
		}
		_ = nc.Close()
		conn, err := amqp091.DialConfig(brokerURL, amqp091.Config{Dial: amqp091.DefaultDial(5 * time.Second)})
		if err != nil {
			probe.err = err
			return
		}
		_ = conn.Close()
	})
	if probe.err != nil {
		msg := "RabbitMQ not reachable on " + brokerAddr + " (" + probe.err.Error() + "); run `bash scripts/services.sh` (or install and start it) to run this test"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
}

// proxies maps the URL of each Config that newConfig made to the faultnet
// proxy it points at.
var proxies sync.Map // string → *faultnet.Proxy

// proxyOf returns the proxy that cfg's nodes reach the broker through.
func proxyOf(tb testing.TB, cfg transport.Config) *faultnet.Proxy {
	tb.Helper()
	v, ok := proxies.Load(cfg.(amqp.Config).URL)
	if !ok {
		tb.Fatal("no proxy for this Config")
	}
	return v.(*faultnet.Proxy)
}

// newConfig returns a Config under a fresh prefix whose nodes reach the
// broker through a faultnet proxy of their own, closed at cleanup.
func newConfig(tb testing.TB, o bus.Options) amqp.Config {
	tb.Helper()
	reachable(tb)
	p, err := faultnet.Listen(faultnet.Config{Name: "rabbitmq", Target: brokerAddr, Logf: tb.Logf})
	if err != nil {
		tb.Fatalf("proxy: %v", err)
	}
	url := "amqp://guest:guest@" + p.Addr() + "/"
	proxies.Store(url, p)
	tb.Cleanup(func() {
		proxies.Delete(url)
		_ = p.Close()
	})
	return amqp.Config{
		URL:          url,
		Prefix:       "guildtest-" + rand.Text(),
		Options:      o,
		ReconnectMin: 20 * time.Millisecond,
		ReconnectMax: 500 * time.Millisecond,
	}
}

// rawConn returns a connection of the test's own, straight to the broker,
// closed at cleanup.
func rawConn(tb testing.TB) *amqp091.Connection {
	tb.Helper()
	conn, err := amqp091.Dial(brokerURL)
	if err != nil {
		tb.Fatalf("dial the broker: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestConformance(t *testing.T) {
	reachable(t)
	transporttest.Run(t, transporttest.Options{
		New: func(t *testing.T) transport.Config {
			return newConfig(t, fast)
		},
		PendingQueue: fast.PendingQueue,
		MaxFrame:     fast.MaxFrame,
		Silent: func(t *testing.T, cfg transport.Config) string {
			// A queue that a consumer of the test's own reads (so that
			// probes find a reader) and nobody answers from.
			name := cfg.(amqp.Config).Prefix + ".silent"
			conn, err := amqp091.Dial(brokerURL)
			if err != nil {
				t.Fatalf("dial the broker: %v", err)
			}
			var done chan struct{} // set once the consumer runs
			t.Cleanup(func() {
				_ = conn.Close()
				if done != nil {
					<-done
				}
			})
			ch, err := conn.Channel()
			if err != nil {
				t.Fatalf("channel: %v", err)
			}
			if _, err := ch.QueueDeclare(name, false, true, false, false, nil); err != nil {
				t.Fatalf("declare %q: %v", name, err)
			}
			deliveries, err := ch.Consume(name, "", true, false, false, false, nil)
			if err != nil {
				t.Fatalf("consume %q: %v", name, err)
			}
			done = make(chan struct{})
			go func() {
				defer close(done)
				for range deliveries { // ignored; ends when the connection closes
				}
			}()
			return name
		},
		Inject: func(t *testing.T, cfg transport.Config, endpoint string, raw []byte) {
			ch, err := rawConn(t).Channel()
			if err != nil {
				t.Fatalf("channel: %v", err)
			}
			if err := ch.PublishWithContext(context.Background(), "", endpoint, false, false, amqp091.Publishing{Body: raw}); err != nil {
				t.Fatalf("inject: %v", err)
			}
		},
		Outage: func(t *testing.T, cfg transport.Config) func() {
			p := proxyOf(t, cfg)
			p.SetDefault(faultnet.Reset)
			return func() { p.SetDefault(faultnet.Pass) }
		},
	})
}

func TestValidate(t *testing.T) {
	var nilCfg *amqp.Config
	if err := nilCfg.Validate(); err != nil {
		t.Fatalf("nil Config: %v", err)
	}
	for _, c := range []amqp.Config{{}, {URL: "amqps://u:p@broker:5671/vhost", Prefix: "game-1", Unacked: 1}} {
		if err := c.Validate(); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	for name, c := range map[string]amqp.Config{
		"URL":              {URL: "http://127.0.0.1/"},
		"reserved prefix":  {Prefix: "amq"},
		"reserved prefix.": {Prefix: "amq.guild"},
		"long prefix":      {Prefix: string(make([]byte, 300))},
		"Unacked":          {Unacked: -1},
		"ReconnectMin":     {ReconnectMin: -time.Second},
		"Min above Max":    {ReconnectMin: 3 * time.Second, ReconnectMax: time.Second},
	} {
		if err := c.Validate(); !errors.Is(err, amqp.ErrBadConfig) {
			t.Errorf("%s: Validate = %v, want ErrBadConfig", name, err)
		}
	}
	bad := amqp.Config{Options: bus.Options{DeadAfter: time.Second, HeartbeatInterval: 2 * time.Second}}
	if err := bad.Validate(); !errors.Is(err, bus.ErrBadOptions) {
		t.Errorf("bad Options: Validate = %v, want bus.ErrBadOptions", err)
	}
}

// nopHandler drops what it is given.
type nopHandler struct{}

func (nopHandler) HandleEnvelope(actor.Addr, *wire.Envelope) {}
func (nopHandler) PeerLost(actor.Addr, error)                {}
func (nopHandler) PeerUp(actor.Addr)                         {}

func setup(a actor.Addr) transport.Setup {
	return transport.Setup{
		Self:    a,
		Resolve: func(actor.Addr) (string, error) { return "", errors.New("no members") },
		Handler: nopHandler{},
	}
}

func TestTLSNeedsAMQPS(t *testing.T) {
	s := setup(actor.MustAddr(1, 1, 1))
	s.TLS = &tls.Config{MinVersion: tls.VersionTLS13}
	if _, err := (amqp.Config{URL: brokerURL}).Start(s); !errors.Is(err, amqp.ErrBadConfig) {
		t.Fatalf("Start with TLS and an amqp:// URL: %v, want ErrBadConfig", err)
	}
}

func TestStartWithoutBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nobody listens there now
	start := time.Now()
	tr, err := (amqp.Config{URL: "amqp://guest:guest@" + addr + "/"}).Start(setup(actor.MustAddr(1, 1, 1)))
	if err == nil {
		_ = tr.Close()
		t.Fatal("Start without a broker succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Start without a broker took %v to fail", d)
	}
}

// TestSameAddressTwice checks that a second node with the address of a
// running one cannot read its queue.
func TestSameAddressTwice(t *testing.T) {
	cfg := newConfig(t, fast)
	a := actor.MustAddr(1, 1, 1)
	tr, err := cfg.Start(setup(a))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer tr.Close()
	if tr.Endpoint() != amqp.QueueName(cfg.Prefix, a.String()) {
		t.Fatalf("Endpoint %q, want %q", tr.Endpoint(), amqp.QueueName(cfg.Prefix, a.String()))
	}
	tr2, err := cfg.Start(setup(a))
	if err == nil {
		_ = tr2.Close()
		t.Fatal("a second node with the same address started")
	}
	t.Logf("second node: %v", err)
}

// TestBrokerBlackhole checks a partition between the nodes and the broker,
// which the conformance suite's outage (connections reset) does not
// cover: the peers are lost by heartbeats, Send and Flush do not block,
// the connection is given up after its AMQP heartbeat, and the nodes
// reconnect once the partition ends.
func TestBrokerBlackhole(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the AMQP heartbeat")
	}
	cfg := newConfig(t, fast)
	p := proxyOf(t, cfg)
	rec := newLossRecorder()
	endpoints := map[actor.Addr]string{}
	var mu sync.Mutex
	resolve := func(a actor.Addr) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if e, ok := endpoints[a]; ok {
			return e, nil
		}
		return "", errors.New("not a member")
	}
	a1, a2 := actor.MustAddr(1, 1, 1), actor.MustAddr(1, 1, 2)
	var trs []transport.Transport
	for _, a := range []actor.Addr{a1, a2} {
		tr, err := cfg.Start(transport.Setup{Self: a, Resolve: resolve, Handler: rec})
		if err != nil {
			t.Fatalf("start %v: %v", a, err)
		}
		defer tr.Close()
		mu.Lock()
		endpoints[a] = tr.Endpoint()
		mu.Unlock()
		trs = append(trs, tr)
	}
	env := &wire.Envelope{Kind: wire.KindRequest, CorrelationID: 1}
	if err := trs[0].Send(a2, env); err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "node 1 to see node 2 up", func() bool { return rec.ups(a2) >= 1 })
	// A partition: nothing crosses, nothing closes. The peers are lost
	// by the transport's own heartbeats; publishing must not block.
	p.SetDefault(faultnet.Blackhole)
	await.True(t, 10*time.Second, "node 1 to report node 2 lost", func() bool { return rec.losses(a2) >= 1 })
	for i := range 200 {
		start := time.Now()
		_ = trs[0].Send(a2, env)
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("Send %d during a partition took %v", i, d)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := trs[0].Flush(ctx); err != nil {
		t.Fatalf("Flush during a partition: %v", err)
	}
	p.SetDefault(faultnet.Pass)
	ups := rec.ups(a2)
	await.True(t, 20*time.Second, "node 1 to reach node 2 again", func() bool {
		_ = trs[0].Send(a2, env)
		return rec.ups(a2) > ups
	})
}

// lossRecorder counts PeerLost and PeerUp calls.
type lossRecorder struct {
	mu   sync.Mutex
	lost map[actor.Addr]int
	errs map[actor.Addr][]error
	up   map[actor.Addr]int
}

func newLossRecorder() *lossRecorder {
	return &lossRecorder{lost: map[actor.Addr]int{}, errs: map[actor.Addr][]error{}, up: map[actor.Addr]int{}}
}

func (r *lossRecorder) HandleEnvelope(actor.Addr, *wire.Envelope) {}
func (r *lossRecorder) PeerLost(a actor.Addr, err error) {
	r.mu.Lock()
	r.lost[a]++
	r.errs[a] = append(r.errs[a], err)
	r.mu.Unlock()
}
func (r *lossRecorder) lostErrors(a actor.Addr) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs[a]...)
}
func (r *lossRecorder) PeerUp(a actor.Addr) {
	r.mu.Lock()
	r.up[a]++
	r.mu.Unlock()
}
func (r *lossRecorder) losses(a actor.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lost[a]
}
func (r *lossRecorder) ups(a actor.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.up[a]
}

// TestKilledPeerLostFast checks that a node whose connections die without
// a goodbye is reported lost by its peer within a few heartbeats, well
// before DeadAfter: its queue goes with its connection, and the broker
// returns the pings sent to it.
func TestKilledPeerLostFast(t *testing.T) {
	o := bus.Options{PendingQueue: 64, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 5 * time.Second, ReachTimeout: 5 * time.Second}
	cfg1 := newConfig(t, o)
	cfg2 := newConfig(t, o) // a proxy of its own
	cfg2.Prefix = cfg1.Prefix
	rec := newLossRecorder()
	var mu sync.Mutex
	endpoints := map[actor.Addr]string{}
	resolve := func(a actor.Addr) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if e, ok := endpoints[a]; ok {
			return e, nil
		}
		return "", errors.New("not a member")
	}
	a1, a2 := actor.MustAddr(1, 1, 1), actor.MustAddr(1, 1, 2)
	tr1, err := cfg1.Start(transport.Setup{Self: a1, Resolve: resolve, Handler: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer tr1.Close()
	tr2, err := cfg2.Start(transport.Setup{Self: a2, Resolve: resolve, Handler: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	mu.Lock()
	endpoints[a1], endpoints[a2] = tr1.Endpoint(), tr2.Endpoint()
	mu.Unlock()
	if err := tr1.Send(a2, &wire.Envelope{Kind: wire.KindSend}); err != nil {
		t.Fatal(err)
	}
	await.True(t, 10*time.Second, "node 1 to see node 2 up", func() bool { return rec.ups(a2) >= 1 })
	// Node 2's connections are reset, and stay so: to the broker and to
	// node 1 it is dead.
	p2 := proxyOf(t, cfg2)
	killed := time.Now()
	p2.SetDefault(faultnet.Reset)
	took := await.True(t, 10*time.Second, "node 1 to report node 2 lost", func() bool { return rec.losses(a2) >= 1 })
	t.Logf("node 2 reported lost %v after its connections died: %v", time.Since(killed).Round(time.Millisecond), rec.lostErrors(a2))
	if took >= o.DeadAfter/2 {
		t.Fatalf("node 2 reported lost after %v: want well within DeadAfter (%v)", took, o.DeadAfter)
	}
}

// dropReceiver is a bus.Receiver that drops what it is given.
type dropReceiver struct{}

func (dropReceiver) Deliver([]byte) {}
func (dropReceiver) Down(error)     {}
func (dropReceiver) Up()            {}

// frame builds a frame of package bus by hand (docs/PROTOCOL-NODE.md):
// magic, kind, sender address, incarnation, body.
func frame(kind byte, body []byte) []byte {
	f := []byte{0x67, kind, 1, 1, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1}
	return append(f, body...)
}

// TestReturnedPingDoesNotFailTheNextPeer checks that a control frame the
// broker returned, for a queue that then came to be read, does not make
// the next Publish to it fail: the ping of a retry sent while a peer was
// down must not drop the first envelope for its next incarnation. A
// returned data frame still makes it fail: that envelope was lost, and
// the peer must be reported lost.
func TestReturnedPingDoesNotFailTheNextPeer(t *testing.T) {
	cfg := newConfig(t, fast)
	br, err := amqp.DialBroker(cfg, cfg.Prefix+".self", dropReceiver{})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer br.Close()
	for _, tc := range []struct {
		name     string
		returned []byte
		wantFail bool
	}{
		{"ping", frame(2, []byte(cfg.Prefix+".self")), false},
		{"bye", frame(4, nil), false},
		{"data", frame(1, nil), true},
		{"pack", frame(5, []byte{0, 0, 0, 0}), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := cfg.Prefix + ".peer-" + tc.name
			if err := br.Publish(q, [][]byte{tc.returned}); err != nil {
				t.Fatalf("first publish: %v", err)
			}
			await.True(t, 10*time.Second, "the broker to return the frame", func() bool { return amqp.MarkedFailed(br, q) })
			// The peer comes: its queue is declared and read.
			ch, err := rawConn(t).Channel()
			if err != nil {
				t.Fatalf("channel: %v", err)
			}
			if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
				t.Fatalf("declare: %v", err)
			}
			got, err := ch.Consume(q, "", true, false, false, false, nil)
			if err != nil {
				t.Fatalf("consume: %v", err)
			}
			next := frame(2, []byte(cfg.Prefix+".self"))
			err = br.Publish(q, [][]byte{next})
			if tc.wantFail {
				if !errors.Is(err, bus.ErrNoReader) {
					t.Fatalf("publish after a returned %s frame: %v, want bus.ErrNoReader", tc.name, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("publish to the peer that came after a returned %s frame: %v", tc.name, err)
			}
			select {
			case d := <-got:
				if string(d.Body) != string(next) {
					t.Fatalf("the peer got %x, want %x", d.Body, next)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the peer did not get the frame")
			}
		})
	}
}
