package grain_test

// Tests of grains move under load when a node joins
// and when one leaves gracefully; turns are timed from inside the grain.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/store/memstore"
)

// TestRebalanceUnderLoad: 3 nodes; 4 callers per grain on 40
// grains, spread over the nodes; a 4th node joins (about a quarter of the
// grains are handed over), then node 2 leaves gracefully. No two
// activations of a grain may run turns at once, every acknowledged value
// must be in the state, and none twice.
func TestRebalanceUnderLoad(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	log := &turnLog{}
	var slow atomic.Int64
	slow.Store(int64(time.Millisecond))
	kind := ctrKind("c", log, &slow, nil, 0)
	st := memstore.New()
	systems := etcdSystems(t, c, st, kind)
	var live atomic.Pointer[[]*grain.System]
	live.Store(&systems)

	const grains = 40
	var (
		mu    sync.Mutex
		acked = map[string][]int64{}
		fails []string
		next  atomic.Int64
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for g := range grains {
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := grain.Identity{Kind: "c", Key: key(g)}
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					ss := *live.Load()
					s := ss[(w+n)%len(ss)]
					v := next.Add(1)
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := s.Call(ctx, id, wrapperspb.Int64(v))
					cancel()
					mu.Lock()
					if err == nil {
						acked[id.Key] = append(acked[id.Key], v)
					} else {
						fails = append(fails, fmt.Sprintf("%v %d: %v", id, v, err))
					}
					mu.Unlock()
					time.Sleep(2 * time.Millisecond)
				}
			}()
		}
	}
	time.Sleep(300 * time.Millisecond) // load runs
	node, m := extraNode(t, c, 4)
	joined := startOn(t, node.Actor(), m, st, kind)
	all := append(slices.Clone(systems), joined)
	for _, s := range all {
		await.True(t, 15*time.Second, "4 hosts", func() bool { return s.Hosts("c") == 4 })
	}
	live.Store(&all)
	time.Sleep(500 * time.Millisecond)
	// Node 2 leaves gracefully; callers stop using it first.
	rest := []*grain.System{all[0], all[1], all[3]}
	live.Store(&rest)
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	if err := all[2].Close(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	for _, s := range rest {
		await.True(t, 15*time.Second, "3 hosts", func() bool { return s.Hosts("c") == 3 })
	}
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()

	var problems []string
	problems = append(problems, overlaps(log.snapshot())...)
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for g := range grains {
		id := grain.Identity{Kind: "c", Key: key(g)}
		final := ctrGet(t, rest[0], id)
		seen := map[int64]int{}
		for _, v := range final.Applied {
			if seen[v]++; seen[v] == 2 {
				problems = append(problems, fmt.Sprintf("%v: %d applied twice", id, v))
			}
		}
		for _, v := range acked[id.Key] {
			total++
			if seen[v] == 0 {
				problems = append(problems, fmt.Sprintf("%v: acknowledged %d lost", id, v))
			}
		}
	}
	t.Logf("%d acknowledged calls, %d failed (first: %v); %d activations", total, len(fails), fails[:min(3, len(fails))], log.acts.Load())
	if len(fails) > 0 {
		problems = append(problems, fmt.Sprintf("%d calls failed during a graceful join and leave", len(fails)))
	}
	if len(problems) > 0 {
		t.Fatalf("%d violations:\n%s", len(problems), strings.Join(problems[:min(30, len(problems))], "\n"))
	}
}
