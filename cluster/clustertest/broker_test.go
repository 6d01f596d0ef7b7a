package clustertest_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/transport/bus"
	"github.com/guildkit/guild/transport/nats"
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
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GUILD_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("GUILD_CHAOS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (replay with GUILD_CHAOS_SEED=%d)", seed, seed)
	opts := bus.Options{HeartbeatInterval: 200 * time.Millisecond, DeadAfter: time.Second}
	c := clustertest.Start(t, clustertest.Options{Nodes: 3, Transport: nats.Config{Options: opts}})
	const deadline = 5 * time.Second
	counters := make([]*counter, 3)
	pids := make([]actor.PID, 3)
	for i := range 3 {
		counters[i] = &counter{seen: map[string]int{}}
		pid, err := c.Node(i).SpawnFunc(counters[i].receive)
		if err != nil {
			t.Fatal(err)
		}
		pids[i] = pid
	}

	var (
		mu      sync.Mutex
		history []outcome
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for from := range 3 {
		rng := rand.New(rand.NewPCG(seed, uint64(from)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				to := (from + 1 + rng.IntN(2)) % 3
				id := fmt.Sprintf("%d-%d", from, n)
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				start := time.Now()
				_, err := c.Node(from).Call(ctx, pids[to], wrapperspb.String(id))
				cancel()
				mu.Lock()
				history = append(history, outcome{id: id, from: from, to: to, start: start, took: time.Since(start), err: err})
				mu.Unlock()
				if err != nil {
					time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond) // pace a failing loop
				}
			}
		}()
	}
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
	await.True(t, 10*time.Second, "calls between every pair of nodes before the restart", every(time.Time{}))

	c.BrokerStop()
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
	c.BrokerStart()
	restarted := time.Now()
	took := await.True(t, 15*time.Second, "calls between every pair of nodes after the broker's return", every(restarted))
	t.Logf("traffic resumed %v after the broker's return", took.Round(time.Millisecond))
	close(stop)
	wg.Wait()

	// The history.
	var okN, lost, slow int
	for _, o := range history {
		switch {
		case o.err == nil:
			okN++
		case errors.Is(o.err, transport.ErrPeerLost):
			lost++
			if o.took > deadline/2 {
				slow++
				t.Errorf("call %s from node %d to node %d failed after %v (%v): not fast", o.id, o.from, o.to, o.took, o.err)
			}
		default:
			t.Errorf("call %s from node %d to node %d: %v after %v, want success or a fast transport.ErrPeerLost", o.id, o.from, o.to, o.err, o.took)
		}
	}
	t.Logf("history: %d calls, %d answered, %d failed fast with the broker down", len(history), okN, lost)
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
