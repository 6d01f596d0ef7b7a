package redis_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest/faultnet"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/bus"
	"github.com/guildkit/guild/transport/redis"
	"github.com/guildkit/guild/transport/transporttest"
	"github.com/guildkit/guild/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// redisAddr is where the tests find Redis.
const redisAddr = "127.0.0.1:6379"

var probe struct {
	once sync.Once
	err  error
}

// reachable skips the test, or fails it on CI (CI=true), when the Redis
// server on redisAddr does not answer. It asks the server once per run.
func reachable(tb testing.TB) {
	tb.Helper()
	probe.once.Do(func() {
		client := goredis.NewClient(&goredis.Options{Addr: redisAddr, MaxRetries: -1})
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		probe.err = client.Ping(ctx).Err()
	})
	if probe.err != nil {
		msg := "Redis not reachable on " + redisAddr + " (" + probe.err.Error() + "); run `bash scripts/services.sh` (or install and start it) to run this test"
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
}

// plain returns a client of Redis for the test's own commands, closed at
// cleanup.
func plain(tb testing.TB) *goredis.Client {
	tb.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// freshPrefix returns a random key prefix whose keys are deleted at
// cleanup (after the nodes that use it closed: cleanups run last in
// first).
func freshPrefix(tb testing.TB) string {
	tb.Helper()
	reachable(tb)
	prefix := "guildtest-" + rand.Text()
	client := goredis.NewClient(&goredis.Options{Addr: redisAddr})
	tb.Cleanup(func() {
		defer client.Close()
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			if err := client.Del(ctx, iter.Val()).Err(); err != nil {
				tb.Errorf("cleanup: %v", err)
			}
		}
		if err := iter.Err(); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	})
	return prefix
}

// newProxy returns a faultnet proxy in front of Redis, closed at cleanup.
func newProxy(tb testing.TB) *faultnet.Proxy {
	tb.Helper()
	p, err := faultnet.Listen(faultnet.Config{Target: redisAddr})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

// fast detects a lost peer within a few seconds: soon enough for the
// suite, and not so soon that a starved test machine loses a live one.
var fast = bus.Options{PendingQueue: 64, MaxFrame: 1 << 20, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 2 * time.Second, ReachTimeout: 2 * time.Second}

func TestConformance(t *testing.T) {
	reachable(t)
	var proxies sync.Map // prefix -> *faultnet.Proxy
	transporttest.Run(t, transporttest.Options{
		New: func(t *testing.T) transport.Config {
			prefix := freshPrefix(t)
			p := newProxy(t)
			proxies.Store(prefix, p)
			t.Cleanup(func() { proxies.Delete(prefix) })
			return redis.Config{Addr: p.Addr(), Prefix: prefix, Options: fast}
		},
		PendingQueue: fast.PendingQueue,
		MaxFrame:     fast.MaxFrame,
		Silent: func(t *testing.T, cfg transport.Config) string {
			// An inbox whose liveness key exists, which nobody pops.
			prefix := cfg.(redis.Config).Prefix
			if err := plain(t).Set(context.Background(), prefix+":alive:silent", "1", 0).Err(); err != nil {
				t.Fatalf("silent: %v", err)
			}
			return prefix + ":inbox:silent"
		},
		Inject: func(t *testing.T, cfg transport.Config, endpoint string, raw []byte) {
			if err := plain(t).RPush(context.Background(), endpoint, raw).Err(); err != nil {
				t.Fatalf("inject: %v", err)
			}
		},
		Outage: func(t *testing.T, cfg transport.Config) func() {
			v, _ := proxies.Load(cfg.(redis.Config).Prefix)
			p := v.(*faultnet.Proxy)
			p.SetDefault(faultnet.Reset)
			return func() { p.SetDefault(faultnet.Pass) }
		},
	})
}

// recorder is a transport.Handler that keeps the correlation ids of what
// it gets, and counts peer notices.
type recorder struct {
	mu   sync.Mutex
	ids  map[actor.Addr][]uint64
	lost map[actor.Addr][]error
	up   map[actor.Addr]int
}

func newRecorder() *recorder {
	return &recorder{ids: map[actor.Addr][]uint64{}, lost: map[actor.Addr][]error{}, up: map[actor.Addr]int{}}
}

func (r *recorder) HandleEnvelope(peer actor.Addr, env *wire.Envelope) {
	r.mu.Lock()
	r.ids[peer] = append(r.ids[peer], env.CorrelationID)
	r.mu.Unlock()
}

func (r *recorder) PeerLost(peer actor.Addr, err error) {
	r.mu.Lock()
	r.lost[peer] = append(r.lost[peer], err)
	r.mu.Unlock()
}

func (r *recorder) PeerUp(peer actor.Addr) {
	r.mu.Lock()
	r.up[peer]++
	r.mu.Unlock()
}

func (r *recorder) got(peer actor.Addr) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.ids[peer]...)
}

func (r *recorder) lostErrs(peer actor.Addr) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.lost[peer]...)
}

func (r *recorder) upCount(peer actor.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.up[peer]
}

// pair is two started nodes, A and B, and what they got.
type pair struct {
	a, b       transport.Transport
	aAddr      actor.Addr
	bAddr      actor.Addr
	aRec, bRec *recorder
}

// startPair starts nodes 1.1.1 (A) and 1.1.2 (B) from ca and cb, which
// resolve each other through a map, and closes them at cleanup.
func startPair(t *testing.T, ca, cb redis.Config) *pair {
	t.Helper()
	p := &pair{aAddr: actor.MustAddr(1, 1, 1), bAddr: actor.MustAddr(1, 1, 2), aRec: newRecorder(), bRec: newRecorder()}
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
	start := func(c redis.Config, self actor.Addr, h transport.Handler) transport.Transport {
		tr, err := c.Start(transport.Setup{Self: self, Resolve: resolve, Handler: h})
		if err != nil {
			t.Fatalf("start %v: %v", self, err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		mu.Lock()
		endpoints[self] = tr.Endpoint()
		mu.Unlock()
		return tr
	}
	p.a = start(ca, p.aAddr, p.aRec)
	p.b = start(cb, p.bAddr, p.bRec)
	return p
}

// envelope returns envelope number i from A.
func envelope(i int) *wire.Envelope {
	return &wire.Envelope{Kind: wire.KindSend, Target: wire.PID{Node: 2, Serial: 9}, CorrelationID: uint64(i), PayloadType: wire.RawBytesType, Payload: []byte("hello")}
}

// sendRetry sends env, retrying while the peer's queue is full.
func sendRetry(t *testing.T, tr transport.Transport, to actor.Addr, env *wire.Envelope) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
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

// checkSequence fails t unless ids is 1, 2, ..., n.
func checkSequence(t *testing.T, ids []uint64, n int) {
	t.Helper()
	if len(ids) != n {
		t.Fatalf("got %d envelopes, want %d: %v", len(ids), n, ids)
	}
	for i, id := range ids {
		if id != uint64(i+1) {
			t.Fatalf("envelope %d carries number %d: out of order, repeated or missing: %v", i+1, id, ids)
		}
	}
}

// TestReconnectMissesNothing: B's connection to Redis is cut while A keeps
// sending to it; when the connection is back, B gets every envelope that A
// published before it reported B lost, in order, none twice, and traffic
// resumes.
func TestReconnectMissesNothing(t *testing.T) {
	prefix := freshPrefix(t)
	// A long DeadAfter: A loses B through the prober, once B's liveness
	// key has expired (AliveTTL), not through heartbeat silence.
	o := bus.Options{PendingQueue: 256, MaxFrame: 1 << 20, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 20 * time.Second, ReachTimeout: time.Second}
	proxy := newProxy(t)
	ca := redis.Config{Addr: redisAddr, Prefix: prefix, Options: o, AliveTTL: 2 * time.Second}
	cb := ca
	cb.Addr = proxy.Addr()
	p := startPair(t, ca, cb)

	sendRetry(t, p.a, p.bAddr, envelope(1))
	await.True(t, 5*time.Second, "B to get the first envelope", func() bool { return len(p.bRec.got(p.aAddr)) == 1 })
	await.True(t, 5*time.Second, "A to see B up", func() bool { return p.aRec.upCount(p.bAddr) >= 1 })

	proxy.SetDefault(faultnet.Reset)
	await.True(t, 5*time.Second, "B to lose its connection (and so A)", func() bool { return len(p.bRec.lostErrs(p.aAddr)) >= 1 })
	if err := p.bRec.lostErrs(p.aAddr)[0]; !errors.Is(err, redis.ErrDown) {
		t.Fatalf("B lost A with %v, want an error matching redis.ErrDown", err)
	}

	// A still believes in B (its liveness key has not expired yet): what A
	// sends now is queued in B's list.
	const n = 200
	for i := 2; i <= n; i++ {
		sendRetry(t, p.a, p.bAddr, envelope(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.a.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if errs := p.aRec.lostErrs(p.bAddr); len(errs) != 0 {
		t.Fatalf("A lost B before everything was published (the test needs a longer AliveTTL on this machine): %v", errs)
	}
	// A reports B lost when B's liveness key expires, long before its
	// DeadAfter.
	took := await.True(t, 10*time.Second, "A to report B lost (its liveness key expired)", func() bool { return len(p.aRec.lostErrs(p.bAddr)) >= 1 })
	t.Logf("A reported B lost %v after the envelopes were published: %v", took, p.aRec.lostErrs(p.bAddr))
	if l, err := plain(t).LLen(context.Background(), p.b.Endpoint()).Result(); err != nil || l < n-1 {
		t.Fatalf("B's inbox holds %d messages (%v), want at least %d", l, err, n-1)
	}

	proxy.SetDefault(faultnet.Pass)
	await.True(t, 10*time.Second, "B to get what was queued for it", func() bool { return len(p.bRec.got(p.aAddr)) >= n })
	checkSequence(t, p.bRec.got(p.aAddr), n)

	// Traffic resumes by itself, after the last envelope of before.
	i := n + 1
	await.True(t, 10*time.Second, "traffic from A to B to resume", func() bool {
		if len(p.bRec.got(p.aAddr)) > n {
			return true
		}
		_ = p.a.Send(p.bAddr, envelope(i))
		i++
		time.Sleep(20 * time.Millisecond) // pace the retries; the wait itself is await's
		return len(p.bRec.got(p.aAddr)) > n
	})
	ids := p.bRec.got(p.aAddr)
	seen := map[uint64]bool{}
	for k, id := range ids {
		if seen[id] || (k > 0 && id <= ids[k-1]) {
			t.Fatalf("envelopes out of order or repeated after the connection came back: %v", ids)
		}
		seen[id] = true
	}
}

// awayOptions are the options of startAway's pair: a small queue, and a
// DeadAfter no test waits out.
func awayOptions() bus.Options {
	return bus.Options{PendingQueue: 64, MaxFrame: 1 << 20, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 20 * time.Second, ReachTimeout: time.Second}
}

// awayMaxQueued is the MaxQueued of startAway's pair: a small inbox.
const awayMaxQueued = 128

// startAway starts A and B (B through a proxy, with awayOptions and
// MaxQueued awayMaxQueued), has A's first envelope reach B, then cuts B
// off from Redis: B's inbox is no longer read, and A does not know it.
func startAway(t *testing.T) (*pair, *faultnet.Proxy) {
	t.Helper()
	proxy := newProxy(t)
	ca := redis.Config{Addr: redisAddr, Prefix: freshPrefix(t), Options: awayOptions(), MaxQueued: awayMaxQueued, AliveTTL: 10 * time.Second}
	cb := ca
	cb.Addr = proxy.Addr()
	p := startPair(t, ca, cb)
	sendRetry(t, p.a, p.bAddr, envelope(1))
	await.True(t, 5*time.Second, "B to get the first envelope", func() bool { return len(p.bRec.got(p.aAddr)) == 1 })
	await.True(t, 5*time.Second, "A to see B up", func() bool { return p.aRec.upCount(p.bAddr) >= 1 })
	proxy.SetDefault(faultnet.Reset)
	await.True(t, 5*time.Second, "B to lose its connection", func() bool { return len(p.bRec.lostErrs(p.aAddr)) >= 1 })
	return p, proxy
}

// TestInboxBound: while B is away, its inbox fills up to MaxQueued; the
// publish that would pass the bound is refused whole, A keeps it and
// slows down (its sends fail with transport.ErrPendingQueueFull once its
// queue for B is full) without reporting B lost, and B, back, gets every
// envelope A's Send accepted, in order, none twice: backpressure, nothing
// lost.
func TestInboxBound(t *testing.T) {
	const maxQueued = awayMaxQueued
	o := awayOptions()
	p, proxy := startAway(t)

	accepted := 1
	await.True(t, 10*time.Second, "A's sends to B to be refused with ErrPendingQueueFull (B's inbox full, A's queue full)", func() bool {
		for {
			err := p.a.Send(p.bAddr, envelope(accepted+1))
			if err == nil {
				accepted++
				continue
			}
			if !errors.Is(err, transport.ErrPendingQueueFull) {
				t.Fatalf("Send %d: %v, want nil or transport.ErrPendingQueueFull", accepted+1, err)
			}
			return true
		}
	})
	if errs := p.aRec.lostErrs(p.bAddr); len(errs) != 0 {
		t.Fatalf("A reported B lost when its inbox filled up: %v", errs)
	}
	if l, err := plain(t).LLen(context.Background(), p.b.Endpoint()).Result(); err != nil || l > maxQueued || l < maxQueued/4 {
		t.Fatalf("B's inbox holds %d messages (%v), want between %d and MaxQueued (%d)", l, err, maxQueued/4, maxQueued)
	}
	t.Logf("A's Send accepted %d envelopes for B before refusing", accepted)

	// The bound holds while B stays away. A's writer keeps trying its
	// batch, refused each time, and what it took counts against
	// PendingQueue while it tries: A's Send never takes more than what B's
	// inbox and A's queue hold together (it once took another
	// PendingQueue at each of the writer's tries, without end).
	bound := 1 + maxQueued + o.PendingQueue
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		err := p.a.Send(p.bAddr, envelope(accepted+1))
		if err == nil {
			if accepted++; accepted > bound {
				t.Fatalf("A's Send accepted %d envelopes for B, which is away: more than its inbox (%d) and A's queue (%d) hold", accepted, maxQueued, o.PendingQueue)
			}
			continue
		}
		if !errors.Is(err, transport.ErrPendingQueueFull) {
			t.Fatalf("Send %d: %v, want nil or transport.ErrPendingQueueFull", accepted+1, err)
		}
		time.Sleep(time.Millisecond)
	}

	proxy.SetDefault(faultnet.Pass)
	await.True(t, 15*time.Second, "B to get every envelope A accepted", func() bool { return len(p.bRec.got(p.aAddr)) >= accepted })
	checkSequence(t, p.bRec.got(p.aAddr), accepted)
	if errs := p.aRec.lostErrs(p.bAddr); len(errs) != 0 {
		t.Fatalf("A reported B lost: %v", errs)
	}
}

// TestHeartbeatsPassAFullInbox: B is away and its inbox nearly full,
// with less room than A's queued data needs: A's pings (a heartbeat every
// HeartbeatInterval) still reach it, published alone, so that B, when it
// reads again, hears A is alive even before A's data fits. (They were
// dropped with each refused batch, and a slow peer could lose a live
// node.)
func TestHeartbeatsPassAFullInbox(t *testing.T) {
	const maxQueued = awayMaxQueued
	o := awayOptions()
	p, _ := startAway(t)

	// Fill B's inbox, then A's queue.
	inbox := p.b.Endpoint()
	ctx := context.Background()
	i := 1
	await.True(t, 10*time.Second, "B's inbox to fill and A's queue for B to be full", func() bool {
		for {
			err := p.a.Send(p.bAddr, envelope(i+1))
			if err == nil {
				i++
				continue
			}
			if !errors.Is(err, transport.ErrPendingQueueFull) {
				t.Fatalf("Send %d: %v", i+1, err)
			}
			return plain(t).LLen(ctx, inbox).Val() == maxQueued && queued(p.a, p.bAddr) >= o.PendingQueue/2
		}
	})
	// Room for a few messages, not for A's batch: as if B had read some.
	if err := plain(t).LTrim(ctx, inbox, 10, -1).Err(); err != nil {
		t.Fatal(err)
	}
	await.True(t, 5*time.Second, "a ping from A, published alone, to follow what B's inbox held", func() bool {
		next, err := plain(t).LIndex(ctx, inbox, maxQueued-10).Bytes()
		return err == nil && len(next) > 1 && next[1] == 2 // frame kind 2: a ping
	})
	if n := plain(t).LLen(ctx, inbox).Val(); n > maxQueued {
		t.Fatalf("B's inbox holds %d messages, above MaxQueued %d", n, maxQueued)
	}
	if errs := p.aRec.lostErrs(p.bAddr); len(errs) != 0 {
		t.Fatalf("A reported B lost: %v", errs)
	}
}

// queued returns what tr's PeerStats say waits for peer.
func queued(tr transport.Transport, peer actor.Addr) int {
	for _, s := range tr.(transport.StatsReporter).PeerStats() {
		if s.Peer == peer {
			return s.Queued
		}
	}
	return 0
}

// TestPartition: a partition between the nodes and Redis (no reset: the
// bytes are held, as on a network that drops packets) is detected by the
// commands' timeouts, long before the heartbeats' DeadAfter: both nodes
// report each other lost with ErrDown, and traffic resumes by itself when
// it heals.
func TestPartition(t *testing.T) {
	prefix := freshPrefix(t)
	proxy := newProxy(t)
	o := bus.Options{PendingQueue: 64, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 30 * time.Second, ReachTimeout: time.Second}
	c := redis.Config{Addr: proxy.Addr(), Prefix: prefix, Options: o}
	p := startPair(t, c, c)
	sendRetry(t, p.a, p.bAddr, envelope(1))
	sendRetry(t, p.b, p.aAddr, envelope(1))
	await.True(t, 5*time.Second, "A and B to exchange an envelope", func() bool {
		return len(p.bRec.got(p.aAddr)) == 1 && len(p.aRec.got(p.bAddr)) == 1
	})
	proxy.SetDefault(faultnet.Blackhole)
	await.True(t, 10*time.Second, "A and B to report each other lost", func() bool {
		return len(p.aRec.lostErrs(p.bAddr)) >= 1 && len(p.bRec.lostErrs(p.aAddr)) >= 1
	})
	for _, err := range append(p.aRec.lostErrs(p.bAddr), p.bRec.lostErrs(p.aAddr)...) {
		if !errors.Is(err, redis.ErrDown) {
			t.Fatalf("a peer lost with %v, want an error matching redis.ErrDown", err)
		}
	}
	proxy.SetDefault(faultnet.Pass)
	for _, dir := range []struct {
		from transport.Transport
		to   actor.Addr
		rec  *recorder
		peer actor.Addr
	}{{p.a, p.bAddr, p.bRec, p.aAddr}, {p.b, p.aAddr, p.aRec, p.bAddr}} {
		i := 100
		await.True(t, 20*time.Second, "traffic to resume after the partition", func() bool {
			if len(dir.rec.got(dir.peer)) > 1 {
				return true
			}
			_ = dir.from.Send(dir.to, envelope(i))
			i++
			time.Sleep(20 * time.Millisecond) // pace the retries; the wait itself is await's
			return len(dir.rec.got(dir.peer)) > 1
		})
		ids := dir.rec.got(dir.peer)
		for k := 1; k < len(ids); k++ {
			if ids[k] <= ids[k-1] {
				t.Fatalf("envelopes from %v out of order or repeated: %v", dir.peer, ids)
			}
		}
	}
}

// TestCloseRemovesKeys: a closed node's liveness key and inbox are gone,
// and a peer that sends to it reports it lost at once (the prober), not
// after ReachTimeout.
func TestCloseRemovesKeys(t *testing.T) {
	prefix := freshPrefix(t)
	o := bus.Options{PendingQueue: 64, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 20 * time.Second, ReachTimeout: 20 * time.Second}
	c := redis.Config{Addr: redisAddr, Prefix: prefix, Options: o}
	p := startPair(t, c, c)
	client := plain(t)
	ctx := context.Background()
	alive := prefix + ":alive:" + p.bAddr.String()
	if n, err := client.Exists(ctx, alive).Result(); err != nil || n != 1 {
		t.Fatalf("B's liveness key %q: %d, %v; want it set", alive, n, err)
	}
	if err := p.b.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Exists(ctx, alive, p.b.Endpoint()).Result(); err != nil || n != 0 {
		t.Fatalf("after Close, %d of B's keys remain (%v)", n, err)
	}
	sendRetry(t, p.a, p.bAddr, envelope(1))
	await.True(t, 5*time.Second, "A to report the closed B lost through the prober", func() bool { return len(p.aRec.lostErrs(p.bAddr)) >= 1 })
}

// TestStartWithoutRedis: Start fails, quickly, when nothing listens at
// Addr, and leaves no goroutine behind (TestMain checks).
func TestStartWithoutRedis(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	c := redis.Config{Addr: addr, Timeout: 500 * time.Millisecond}
	start := time.Now()
	tr, err := c.Start(transport.Setup{Self: actor.MustAddr(1, 1, 1), Resolve: func(actor.Addr) (string, error) { return "", errors.New("none") }, Handler: newRecorder()})
	if err == nil {
		_ = tr.Close()
		t.Fatal("Start succeeded without Redis")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Start took %v to fail", d)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  redis.Config
		ok   bool
	}{
		{"zero", redis.Config{}, true},
		{"small bound", redis.Config{Options: bus.Options{PendingQueue: 64}, MaxQueued: 128}, true},
		{"bound below twice the pending queue", redis.Config{Options: bus.Options{PendingQueue: 64}, MaxQueued: 127}, false},
		{"bound below the default pending queue", redis.Config{MaxQueued: 1000}, false},
		{"negative bound", redis.Config{MaxQueued: -1}, false},
		{"negative DB", redis.Config{DB: -1}, false},
		{"short AliveTTL", redis.Config{AliveTTL: time.Millisecond}, false},
		{"negative InboxTTL", redis.Config{InboxTTL: -time.Second}, false},
		{"negative Timeout", redis.Config{Timeout: -time.Second}, false},
		{"InboxTTL below AliveTTL", redis.Config{InboxTTL: time.Second, AliveTTL: 2 * time.Second}, false},
		{"short TTLs", redis.Config{InboxTTL: 100 * time.Millisecond, AliveTTL: 100 * time.Millisecond}, true},
	} {
		err := c.cfg.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, redis.ErrBadConfig) {
			t.Errorf("%s: %v does not match ErrBadConfig", c.name, err)
		}
	}
	bad := redis.Config{Options: bus.Options{HeartbeatInterval: time.Second, DeadAfter: time.Second}}
	if err := bad.Validate(); !errors.Is(err, bus.ErrBadOptions) {
		t.Errorf("bad Options: Validate() = %v, want bus.ErrBadOptions", err)
	}
	if _, err := bad.Start(transport.Setup{}); !errors.Is(err, bus.ErrBadOptions) {
		t.Errorf("bad Options: Start = %v, want bus.ErrBadOptions", err)
	}
}

// TestFloodThroughFullInbox: one node floods another faster than it reads,
// so the reader's inbox keeps reaching its bound: the sender slows down
// (backpressure) and every envelope its Send accepted arrives, in order,
// with neither side reporting the other lost. (Retrying a refused batch at
// once, without backing off, once kept Redis so busy that both readers
// stalled and each node lost the other.)
//
// The dead-peer detection is slower than the defaults (DeadAfter 10s,
// AliveTTL 5s): on a machine starved by other work (-race, packages run
// in parallel, a CPU hog), a reader that drains 4,096 frames may not
// refresh its liveness key or answer a ping queued behind them within
// the defaults' 1.5 s and 3 s, and the peer would be lost for a reason
// this test is not about; a Redis kept busy by retries stalls the readers
// for far longer, and is still caught.
func TestFloodThroughFullInbox(t *testing.T) {
	prefix := freshPrefix(t)
	// A command may take long on a starved machine: this test is about
	// backpressure, not about noticing a slow Redis.
	c := redis.Config{Addr: redisAddr, Prefix: prefix, Options: bus.Options{PendingQueue: 1024, DeadAfter: 10 * time.Second}, MaxQueued: 4096, AliveTTL: 5 * time.Second, Timeout: 5 * time.Second}
	p := startPair(t, c, c)
	const n = 100000
	for i := 1; i <= n; i++ {
		sendRetry(t, p.a, p.bAddr, envelope(i))
	}
	await.True(t, 60*time.Second, "every envelope to arrive", func() bool {
		if errs := append(p.aRec.lostErrs(p.bAddr), p.bRec.lostErrs(p.aAddr)...); len(errs) != 0 {
			t.Fatalf("a node reported the other lost, with %d of %d envelopes arrived: %v", len(p.bRec.got(p.aAddr)), n, errs)
		}
		return len(p.bRec.got(p.aAddr)) >= n
	})
	checkSequence(t, p.bRec.got(p.aAddr), n)
	if errs := append(p.aRec.lostErrs(p.bAddr), p.bRec.lostErrs(p.aAddr)...); len(errs) != 0 {
		t.Fatalf("a node reported the other lost: %v", errs)
	}
}
