package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/cluster/clustertest/faultnet"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/amqp"
	"github.com/guildkit/guild/transport/bus"
	"github.com/guildkit/guild/transport/nats"
	"github.com/guildkit/guild/transport/redis"
)

// counter is an actor that answers each request with its ID and counts
// how often each ID reached it.
type counter struct {
	mu   sync.Mutex
	seen map[string]int
}

func (k *counter) receive(c *actor.Context) {
	m, ok := c.Message().(*wrapperspb.StringValue)
	if !ok || !c.IsRequest() {
		return
	}
	k.mu.Lock()
	k.seen[m.Value]++
	k.mu.Unlock()
	c.Respond(m)
}

// outcome is one request of the history: who asked whom, when, how long
// it took and how it ended.
type outcome struct {
	id       string
	from, to int
	start    time.Time
	took     time.Duration
	err      error
}

// TestBrokerRestart stops and restarts the NATS server while three nodes
// call each other's actors from three loops, and checks the history:
// requests in flight fail fast with transport.ErrPeerLost (none waits out
// its deadline), traffic resumes by itself once the broker is back, and no
// request reaches an actor twice. GUILD_CHAOS_SEED replays the loops'
// choices.
func TestBrokerRestart(t *testing.T) {
	opts := bus.Options{HeartbeatInterval: 200 * time.Millisecond, DeadAfter: time.Second}
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, Transport: nats.Config{Options: opts}})
	nodes := []*actor.Node{c.Node(0), c.Node(1), c.Node(2)}
	brokerOutage(t, nodes, c.BrokerStop, c.BrokerStart)
}

// TestBrokerOutageRabbitMQ and TestBrokerOutageRedis do the same on the
// machine's RabbitMQ and Redis, which the test cannot restart (other
// programs use them): each node reaches the broker through a fault proxy
// of its own, and the outage resets every connection and refuses new ones
// for a second, which is how a broker restart looks to its clients.
func TestBrokerOutageRabbitMQ(t *testing.T) {
	opts := bus.Options{HeartbeatInterval: 200 * time.Millisecond, DeadAfter: time.Second}
	prefix := "guildtest" + strconv.FormatInt(rand.Int64N(1<<40), 36)
	proxiedBrokerOutage(t, "RabbitMQ", "127.0.0.1:5672", func(proxy string) transport.Config {
		return amqp.Config{URL: "amqp://guest:guest@" + proxy + "/", Prefix: prefix, Options: opts, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 500 * time.Millisecond}
	})
}

func TestBrokerOutageRedis(t *testing.T) {
	opts := bus.Options{HeartbeatInterval: 200 * time.Millisecond, DeadAfter: time.Second}
	prefix := "guildtest" + strconv.FormatInt(rand.Int64N(1<<40), 36)
	proxiedBrokerOutage(t, "Redis", "127.0.0.1:6379", func(proxy string) transport.Config {
		return redis.Config{Addr: proxy, Prefix: prefix, Options: opts}
	})
}

// proxiedBrokerOutage starts three nodes on the broker at hostport, each
// through a fault proxy, and runs brokerOutage with the proxies as the
// fault.
func proxiedBrokerOutage(t *testing.T, name, hostport string, cfg func(proxy string) transport.Config) {
	if c, err := net.DialTimeout("tcp", hostport, 2*time.Second); err != nil {
		msg := name + " not reachable on " + hostport + " (" + err.Error() + "); run `bash scripts/services.sh` to run this test"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	} else {
		_ = c.Close()
	}
	members := cluster.NewMemory()
	quiet := slog.New(slog.DiscardHandler)
	if os.Getenv("GUILD_TEST_LOG") == "1" {
		quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var (
		proxies []*faultnet.Proxy
		nodes   []*actor.Node
	)
	for i := range 3 {
		p, err := faultnet.Listen(faultnet.Config{Name: fmt.Sprintf("%s proxy of node %d", name, i), Target: hostport})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close() })
		proxies = append(proxies, p)
		addr := actor.MustAddr(1, 1, i+1)
		m := members.Membership(addr)
		n, err := cluster.Start(context.Background(), cluster.NodeConfig{
			Actor:      actor.Config{Addr: addr, Logger: quiet},
			Membership: m,
			Transport:  cfg(p.Addr()),
			Logger:     quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = n.Close(); _ = m.Close() })
		nodes = append(nodes, n.Actor())
	}
	set := func(mode faultnet.Mode) func() {
		return func() {
			for _, p := range proxies {
				p.SetDefault(mode)
			}
			t.Logf("%s clustertest: fault: every node's link to %s: %v", time.Now().Format("15:04:05.000"), name, mode)
		}
	}
	brokerOutage(t, nodes, set(faultnet.Reset), set(faultnet.Pass))
}

// brokerOutage runs three loops, one per node, calling the actors of the
// other nodes, takes the broker away with stop for a second and gives it
// back with start, then checks the history (see TestBrokerRestart).
func brokerOutage(t *testing.T, nodes []*actor.Node, stop, start func()) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GUILD_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("GUILD_CHAOS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with GUILD_CHAOS_SEED=%d)", seed, seed)
	const deadline = 5 * time.Second
	counters := make([]*counter, 3)
	pids := make([]actor.PID, 3)
	for i := range 3 {
		counters[i] = &counter{seen: map[string]int{}}
		pid, err := nodes[i].SpawnFunc(counters[i].receive)
		if err != nil {
			t.Fatal(err)
		}
		pids[i] = pid
	}

	var (
		mu      sync.Mutex
		history []outcome
		done    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for from := range 3 {
		rng := rand.New(rand.NewPCG(seed, uint64(from)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				to := (from + 1 + rng.IntN(2)) % 3
				id := fmt.Sprintf("%d-%d", from, n)
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				begin := time.Now()
				_, err := nodes[from].Call(ctx, pids[to], wrapperspb.String(id))
				cancel()
				mu.Lock()
				history = append(history, outcome{id: id, from: from, to: to, start: begin, took: time.Since(begin), err: err})
				mu.Unlock()
				if err != nil {
					time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond) // pace a failing loop
				}
			}
		}()
	}
	stopLoops := func() {
		select {
		case <-done:
		default:
			close(done)
			wg.Wait()
		}
	}
	defer stopLoops()
	okSince := func(since time.Time, from, to int) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, o := range history {
			if o.from == from && o.to == to && o.err == nil && o.start.After(since) {
				return true
			}
		}
		return false
	}
	every := func(since time.Time) func() bool {
		return func() bool {
			for from := range 3 {
				for to := range 3 {
					if from != to && !okSince(since, from, to) {
						return false
					}
				}
			}
			return true
		}
	}
	await.True(t, 10*time.Second, "calls between every pair of nodes before the outage", every(time.Time{}))

	stop()
	stopped := time.Now()
	await.True(t, 10*time.Second, "a failed call from every node during the outage", func() bool {
		mu.Lock()
		defer mu.Unlock()
		failed := map[int]bool{}
		for _, o := range history {
			if o.err != nil && o.start.After(stopped) {
				failed[o.from] = true
			}
		}
		return len(failed) == 3
	})
	time.Sleep(time.Second) // the outage lasts a second more: calls keep failing fast meanwhile
	start()
	restarted := time.Now()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// Say which pairs did not resume, and how their calls ended.
		mu.Lock()
		defer mu.Unlock()
		for from := range 3 {
			for to := range 3 {
				if from == to {
					continue
				}
				var n, ok int
				var last outcome
				for _, o := range history {
					if o.from == from && o.to == to && o.start.After(restarted) {
						n++
						if o.err == nil {
							ok++
						}
						last = o
					}
				}
				t.Logf("after the return, node %d to node %d: %d calls, %d answered; the last at %s took %v: %v", from, to, n, ok, last.start.Format("15:04:05.000"), last.took, last.err)
			}
		}
	})
	took := await.True(t, 15*time.Second, "calls between every pair of nodes after the broker's return", every(restarted))
	t.Logf("traffic resumed %v after the broker's return", took.Round(time.Millisecond))
	stopLoops()

	var okN, lost int
	for _, o := range history {
		switch {
		case o.err == nil:
			okN++
		case errors.Is(o.err, transport.ErrPeerLost):
			lost++
			if o.took > deadline/2 {
				t.Errorf("call %s from node %d to node %d failed after %v (%v): not fast", o.id, o.from, o.to, o.took, o.err)
			}
		default:
			t.Errorf("call %s from node %d to node %d: %v after %v, want success or a fast transport.ErrPeerLost", o.id, o.from, o.to, o.err, o.took)
		}
	}
	t.Logf("history: %d calls, %d answered, %d failed fast with the broker away", len(history), okN, lost)
	for i, k := range counters {
		k.mu.Lock()
		for id, n := range k.seen {
			if n > 1 {
				t.Errorf("call %s reached node %d's actor %d times", id, i, n)
			}
		}
		k.mu.Unlock()
	}
}
