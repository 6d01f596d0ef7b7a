package grain_test

// A test of single activation under faults: many callers on 3 nodes hammer a few grain
// keys while nodes are killed and restarted or leave gracefully and come
// back; every turn is timed from inside the grain, and no two activations
// of one key may have overlapping turns. Run it beside CPU hogs:
//
//	/work/shared/tools/cpuhog -r 1 -- go test ./grain -run TestChaosSingleActivation -count=1 -timeout 300s -v
//
// GUILD_GRAIN_CHAOS_SEED replays a schedule; GUILD_GRAIN_CHAOS lengthens it;
// GUILD_GRAIN_CHAOS_PAUSE=1 adds Pause/Resume (a node cut from etcd and peers past
// its TTL while it keeps running) to the faults.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/store"
	"github.com/guildkit/guild/store/memstore"
	"github.com/guildkit/guild/transport/tcp"
)

func TestChaosSingleActivation(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GUILD_GRAIN_CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = n
	}
	dur := 10 * time.Second
	if s := os.Getenv("GUILD_GRAIN_CHAOS"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		dur = d
	}
	faultKinds := 2
	if os.Getenv("GUILD_GRAIN_CHAOS_PAUSE") != "" {
		faultKinds = 3 // Pause/Resume too
	}
	t.Logf("seed %d (replay with GUILD_GRAIN_CHAOS_SEED=%d), schedule %v, %d fault kinds", seed, seed, dur, faultKinds)
	rng := rand.New(rand.NewPCG(seed, 7))

	const nodes = 3
	c := clustertest.Start(t, clustertest.Options{
		Nodes: nodes,
		TTL:   time.Second,
		Transport: tcp.Config{
			HeartbeatInterval: 200 * time.Millisecond,
			DeadAfter:         time.Second,
			DialTimeout:       500 * time.Millisecond,
		},
	})
	log := &turnLog{}
	var slow atomic.Int64
	slow.Store(int64(2 * time.Millisecond))
	kind := ctrKind("c", log, &slow, nil, 0)
	kind.FlushEvery = 50 * time.Millisecond
	kind.IdleTimeout = 300 * time.Millisecond // idle deactivations too
	st := memstore.New()

	var systems [nodes]atomic.Pointer[grain.System]
	start := func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := grain.Start(ctx, grain.Config{
			Node:         c.Nodes[i].Actor(),
			Membership:   c.Members[i],
			Kinds:        []grain.Kind{kind},
			Store:        st,
			Claims:       grain.NewEtcdClaimer(c.Members[i], ""),
			ClaimTimeout: 3 * time.Second,
		})
		if err != nil {
			t.Fatalf("start a System on node %d: %v", i, err)
		}
		systems[i].Store(s)
	}
	for i := range nodes {
		start(i)
	}
	t.Cleanup(func() {
		for i := range nodes {
			if s := systems[i].Load(); s != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = s.Close(ctx)
				cancel()
			}
		}
	})

	keys := []string{"a", "b", "c", "d"}
	type result struct {
		key string
		v   int64
		ok  bool
		err string
	}
	var (
		mu      sync.Mutex
		results []result
		next    atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)+100))
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := systems[r.IntN(nodes)].Load()
				if s == nil {
					time.Sleep(time.Millisecond)
					continue
				}
				k := keys[r.IntN(len(keys))]
				id := grain.Identity{Kind: "c", Key: k}
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				if r.IntN(50) == 0 {
					_, _ = s.Call(ctx, id, wrapperspb.String("deact"))
					cancel()
					continue
				}
				v := next.Add(1)
				_, err := s.Call(ctx, id, wrapperspb.Int64(v))
				cancel()
				res := result{key: k, v: v, ok: err == nil}
				if err != nil {
					res.err = err.Error()
				}
				mu.Lock()
				results = append(results, res)
				mu.Unlock()
			}
		}()
	}

	var faults []string
	kills, pauses := 0, 0
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		i := rng.IntN(nodes)
		s := systems[i].Load()
		switch rng.IntN(faultKinds) {
		case 2: // freeze the node's network past its TTL; it keeps running
			pauses++
			faults = append(faults, fmt.Sprintf("%s pause %d", time.Now().Format("15:04:05.000"), i))
			c.Pause(i)
			time.Sleep(time.Duration(1500+rng.IntN(1500)) * time.Millisecond)
			c.Resume(i)
		case 0: // crash
			kills++
			faults = append(faults, fmt.Sprintf("%s kill %d", time.Now().Format("15:04:05.000"), i))
			systems[i].Store(nil)
			s.Abort()
			c.Kill(i)
			c.Restart(t, i)
			start(i)
		case 1: // graceful leave and come back
			faults = append(faults, fmt.Sprintf("%s leave %d", time.Now().Format("15:04:05.000"), i))
			systems[i].Store(nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.Close(ctx); err != nil {
				t.Logf("close the System of node %d: %v", i, err)
			}
			cancel()
			c.Restart(t, i)
			start(i)
		}
	}
	close(stop)
	wg.Wait()
	for i := range nodes {
		s := systems[i].Swap(nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.Close(ctx); err != nil {
			t.Logf("final close of node %d: %v", i, err)
		}
		cancel()
	}

	var problems []string
	problems = append(problems, overlaps(log.snapshot())...)
	final := map[string][]int64{}
	for _, k := range keys {
		data, _, err := st.Load(context.Background(), "c", k)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var cs ctrState
		if err := json.Unmarshal(data, &cs); err != nil {
			t.Fatal(err)
		}
		final[k] = cs.Applied
		seen := map[int64]int{}
		for _, v := range cs.Applied {
			if seen[v]++; seen[v] == 2 {
				problems = append(problems, fmt.Sprintf("key %s: value %d applied twice", k, v))
			}
		}
	}
	okN, lost := 0, 0
	for _, r := range results {
		if r.ok {
			okN++
			if !slices.Contains(final[r.key], r.v) {
				lost++
			}
		}
	}
	errKinds := map[string]int{}
	for _, r := range results {
		if !r.ok {
			e := r.err
			if i := strings.Index(e, "grain c/"); i >= 0 {
				e = e[:i]
			}
			errKinds[e]++
		}
	}
	for e, n := range errKinds {
		t.Logf("error x%d: %s", n, e)
	}
	t.Logf("faults: %s", strings.Join(faults, "; "))
	t.Logf("%d calls, %d acknowledged, %d acknowledged but not stored (%d kills: a crash loses what was not flushed); %d activations",
		len(results), okN, lost, kills, log.acts.Load())
	if kills == 0 && pauses == 0 && lost > 0 {
		problems = append(problems, fmt.Sprintf("%d acknowledged writes lost with no crash", lost))
	}
	if len(problems) > 0 {
		if len(problems) > 30 {
			problems = append(problems[:30], fmt.Sprintf("... %d more", len(problems)-30))
		}
		t.Fatalf("seed %d: %d violations:\n%s", seed, len(problems), strings.Join(problems, "\n"))
	}
}
