package grain_test

// Tests of a deactivating activation that is still
// draining its queued messages, and the next activation of the same grain
// on the same node.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/store/memstore"
)

// turn is one message handled by one activation, timed from inside the
// grain.
type turn struct {
	act        int64 // activation number (Kind.New calls, counted from 1)
	node       string
	key        string
	start, end time.Time
	what       string
}

// turnLog records turns of every activation.
type turnLog struct {
	mu    sync.Mutex
	turns []turn
	acts  atomic.Int64
}

func (l *turnLog) add(tr turn) {
	l.mu.Lock()
	l.turns = append(l.turns, tr)
	l.mu.Unlock()
}

func (l *turnLog) snapshot() []turn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.turns)
}

// overlaps returns a description of every pair of turns of two different
// activations of one key that overlap in time.
func overlaps(turns []turn) []string {
	byKey := map[string][]turn{}
	for _, tr := range turns {
		byKey[tr.key] = append(byKey[tr.key], tr)
	}
	var out []string
	for k, ts := range byKey {
		sort.Slice(ts, func(i, j int) bool { return ts[i].start.Before(ts[j].start) })
		for i := range ts {
			for j := i + 1; j < len(ts) && ts[j].start.Before(ts[i].end); j++ {
				if ts[j].act != ts[i].act {
					out = append(out, fmt.Sprintf("key %s: activation %d on %s (%s %s..%s) overlaps activation %d on %s (%s %s..%s)",
						k, ts[i].act, ts[i].node, ts[i].what, ts[i].start.Format("15:04:05.000"), ts[i].end.Format("15:04:05.000"),
						ts[j].act, ts[j].node, ts[j].what, ts[j].start.Format("15:04:05.000"), ts[j].end.Format("15:04:05.000")))
				}
			}
		}
	}
	return out
}

// ctrState is a counter grain's state: every value applied.
type ctrState struct {
	Applied []int64
}

// ctrGrain handles
//
//	Int64Value v     sleep slow, append v; reply len(Applied)
//	"deact"          Deactivate, tell entered, sleep hold
//	"get"            reply the state as JSON
type ctrGrain struct {
	act     int64
	log     *turnLog
	slow    *atomic.Int64 // nanoseconds per Int64Value
	entered chan struct{}
	hold    time.Duration
}

func ctrKind(name string, log *turnLog, slow *atomic.Int64, entered chan struct{}, hold time.Duration) grain.Kind {
	return grain.Kind{
		Name:        name,
		IdleTimeout: time.Hour,
		FlushEvery:  time.Hour,
		State:       func() any { return new(ctrState) },
		New: func(id grain.Identity) grain.Actor {
			return &ctrGrain{act: log.acts.Add(1), log: log, slow: slow, entered: entered, hold: hold}
		},
	}
}

func (g *ctrGrain) Receive(c *grain.Context) {
	st := c.State().(*ctrState)
	start := time.Now()
	what := ""
	switch m := c.Message().(type) {
	case *wrapperspb.Int64Value:
		what = fmt.Sprintf("apply %d", m.Value)
		if d := g.slow.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		st.Applied = append(st.Applied, m.Value)
		c.Respond(wrapperspb.Int64(int64(len(st.Applied))))
	case *wrapperspb.StringValue:
		what = m.Value
		switch m.Value {
		case "deact":
			c.Deactivate()
			if g.entered != nil {
				select {
				case g.entered <- struct{}{}:
				default:
				}
			}
			time.Sleep(g.hold)
			c.Respond(wrapperspb.String("ok"))
		case "get":
			b, _ := json.Marshal(st)
			c.Respond(wrapperspb.String(string(b)))
		}
	default:
		return
	}
	g.log.add(turn{act: g.act, node: c.Actor().Self().Node.String(), key: c.Identity().Key, start: start, end: time.Now(), what: what})
}

func ctrGet(t *testing.T, s *grain.System, id grain.Identity) ctrState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := s.Call(ctx, id, wrapperspb.String("get"))
	if err != nil {
		t.Fatalf("get %v: %v", id, err)
	}
	var st ctrState
	if err := json.Unmarshal([]byte(r.(*wrapperspb.StringValue).Value), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestDrainOutlastsClaimTimeout: a grain deactivates (Deactivate) with
// messages still queued behind the deactivation; the old activation
// handles them (it is draining) one slow message at a time, for longer
// than ClaimTimeout. Messages that arrive after it left the table make a
// new activation on the same node, which must not run beside the old one:
// no two activations' turns overlap, and every acknowledged write is in
// the final state. Before the fix, the new activation waited ClaimTimeout,
// failed, and took the old one's place as the one to wait for; the one
// after it then claimed at once (the claimer answers "you hold it
// already" to the node) and ran beside the old one, which lost its
// writes to a version conflict.
func TestDrainOutlastsClaimTimeout(t *testing.T) {
	log := &turnLog{}
	var slow atomic.Int64
	entered := make(chan struct{}, 1)
	st := memstore.New()
	s := localSystem(t, cluster.NewMemory(), 1, grain.Config{
		Kinds:        []grain.Kind{ctrKind("c", log, &slow, entered, 200*time.Millisecond)},
		Store:        st,
		Claims:       grain.NewLocalClaimer(),
		ClaimTimeout: 500 * time.Millisecond,
	})
	runDrainAttack(t, s, s, log, &slow, entered)
}

// runDrainAttack drives the drain scenario against the grain "c"/"x":
// caller is the System calls go through, owner the one it is active on.
func runDrainAttack(t *testing.T, caller, owner *grain.System, log *turnLog, slow *atomic.Int64, entered chan struct{}) {
	t.Helper()
	id := grain.Identity{Kind: "c", Key: "x"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := caller.Call(ctx, id, wrapperspb.Int64(0)); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked []int64
		errs  []string
		wg    sync.WaitGroup
	)
	callOne := func(v int64) {
		defer wg.Done()
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		_, err := caller.Call(cctx, id, wrapperspb.Int64(v))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%d: %v", v, err))
			return
		}
		acked = append(acked, v)
	}
	slow.Store(int64(400 * time.Millisecond))
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := caller.Call(ctx, id, wrapperspb.String("deact")); err != nil {
			mu.Lock()
			errs = append(errs, "deact: "+err.Error())
			mu.Unlock()
		}
	}()
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the deact turn never ran")
	}
	// Queued behind the deactivation order: the draining activation
	// handles these, 400ms each (8 of them: 3.2s > ClaimTimeout).
	for v := int64(1); v <= 8; v++ {
		wg.Add(1)
		go callOne(v)
	}
	await.True(t, 10*time.Second, "the activation to leave the table", func() bool { return !owner.IsActive(id) })
	// These find no activation: a new one is made, behind the old one. It
	// waits for the old one at most ClaimTimeout.
	var wg2 sync.WaitGroup
	for v := int64(101); v <= 103; v++ {
		wg.Add(1)
		wg2.Add(1)
		go func() { defer wg2.Done(); callOne(v) }()
	}
	wg2.Wait()
	// The old activation still drains (8 x 400ms); these make a third.
	for v := int64(201); v <= 203; v++ {
		wg.Add(1)
		go callOne(v)
	}
	wg.Wait()
	slow.Store(0)
	mu.Lock()
	t.Logf("acked %v; errors %v", acked, errs)
	ackedCopy := slices.Clone(acked)
	mu.Unlock()

	var problems []string
	problems = append(problems, overlaps(log.snapshot())...)
	// Deactivate once more, and read back what was stored.
	if _, err := caller.Call(ctx, id, wrapperspb.String("deact")); err != nil {
		t.Logf("final deact: %v", err)
	}
	await.True(t, 20*time.Second, "the grain to deactivate", func() bool { return !owner.IsActive(id) })
	final := ctrGet(t, caller, id)
	for _, v := range ackedCopy {
		if !slices.Contains(final.Applied, v) {
			problems = append(problems, fmt.Sprintf("acknowledged value %d lost: final state %v", v, final.Applied))
		}
	}
	t.Logf("activations: %d; final state %v", log.acts.Load(), final.Applied)
	if len(problems) > 0 {
		t.Fatalf("%d violations:\n%s", len(problems), strings.Join(problems, "\n"))
	}
}

// TestDrainOutlastsClaimTimeoutEtcd is TestDrainOutlastsClaimTimeout
// on a 3-node cluster with an EtcdClaimer, the calls coming from a node
// that does not host the grain (through the owner's router).
func TestDrainOutlastsClaimTimeoutEtcd(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	log := &turnLog{}
	var slow atomic.Int64
	entered := make(chan struct{}, 1)
	st := memstore.New()
	kind := ctrKind("c", log, &slow, entered, 200*time.Millisecond)
	systems := etcdSystemsWith(t, c, st, grain.Config{ClaimTimeout: 500 * time.Millisecond}, kind)
	id := grain.Identity{Kind: "c", Key: "x"}
	if _, err := systems[0].Call(context.Background(), id, wrapperspb.Int64(-1)); err != nil {
		t.Fatal(err)
	}
	owner, caller := -1, -1
	for i, s := range systems {
		if s.IsActive(id) {
			owner = i
		} else if caller < 0 {
			caller = i
		}
	}
	if owner < 0 {
		t.Fatal("the grain is active nowhere")
	}
	t.Logf("owner node %d, calls from node %d", owner, caller)
	runDrainAttack(t, systems[caller], systems[owner], log, &slow, entered)
}
