package grain_test

// Tests of a store that fails while a deactivating
// grain makes its last flush.

import (
	"context"
	"errors"
	"slices"
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
	"github.com/guildkit/guild/store"
	"github.com/guildkit/guild/store/memstore"
)

// flakyStore fails every Save once ok saves have succeeded, while down
// is set.
type flakyStore struct {
	store.Store
	ok     atomic.Int64 // saves allowed before failing
	down   atomic.Bool
	failed atomic.Int64
}

var errStoreDown = errors.New("attack: store down")

func (f *flakyStore) Save(ctx context.Context, kind, key string, data []byte, expected uint64) (uint64, error) {
	if f.down.Load() && f.ok.Add(-1) < 0 {
		f.failed.Add(1)
		return 0, errStoreDown
	}
	return f.Store.Save(ctx, kind, key, data, expected)
}

// TestLastFlushRetriedUntilStored: a grain deactivates with calls queued
// behind the deactivation; its draining turns answer them (the writes are
// acknowledged), then the store fails the last flush for a while (a
// failover). The activation keeps its claim and tries the flush until the
// store takes it, however long that is: no acknowledged write is lost.
// It once gave up after 5 tries (about 1.5s) and released the claim, and
// the next activation loaded the older state.
func TestLastFlushRetriedUntilStored(t *testing.T) {
	log := &turnLog{}
	var slow atomic.Int64
	entered := make(chan struct{}, 1)
	fs := &flakyStore{Store: memstore.New()}
	claims := grain.NewLocalClaimer()
	s := localSystem(t, cluster.NewMemory(), 1, grain.Config{
		Kinds:  []grain.Kind{ctrKind("c", log, &slow, entered, 200*time.Millisecond)},
		Store:  fs,
		Claims: claims,
	})
	id := grain.Identity{Kind: "c", Key: "x"}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := s.Call(ctx, id, wrapperspb.Int64(0)); err != nil {
		t.Fatal(err)
	}
	// The deactivation's own flush succeeds; every later save fails.
	fs.ok.Store(1)
	fs.down.Store(true)
	var (
		mu    sync.Mutex
		acked []int64
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = s.Call(ctx, id, wrapperspb.String("deact"))
	}()
	<-entered
	for v := int64(1); v <= 4; v++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Call(ctx, id, wrapperspb.Int64(v)); err == nil {
				mu.Lock()
				acked = append(acked, v)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no value was acknowledged by the draining activation")
	}
	await.True(t, 30*time.Second, "the last flush to fail more often than the 5 tries it once gave up after", func() bool { return fs.failed.Load() > 6 })
	if n := s.Stats().Deactivations; n != 0 {
		t.Fatalf("the activation stopped (%d deactivations) with its last flush failing", n)
	}
	if claims.Len() != 1 {
		t.Fatalf("the claim was released (%d held) with the last flush failing", claims.Len())
	}
	fs.down.Store(false) // the store is back
	await.True(t, 20*time.Second, "the activation to store its state and stop", func() bool { return s.Stats().Deactivations >= 1 })
	t.Logf("acked %v; %d saves failed meanwhile", acked, fs.failed.Load())
	final := ctrGet(t, s, id)
	var lost []int64
	for _, v := range acked {
		if !slices.Contains(final.Applied, v) {
			lost = append(lost, v)
		}
	}
	if len(lost) > 0 {
		t.Fatalf("acknowledged values %v lost (final state %v)", lost, final.Applied)
	}
	if o := overlaps(log.snapshot()); len(o) > 0 {
		t.Fatalf("activations overlapped:\n%s", strings.Join(o, "\n"))
	}
}

// hangStore makes Save hang until its ctx ends (a store that times out)
// once ok saves have succeeded, while down is set.
type hangStore struct {
	store.Store
	ok       atomic.Int64
	down     atomic.Bool
	timedOut atomic.Int64
}

func (h *hangStore) Save(ctx context.Context, kind, key string, data []byte, expected uint64) (uint64, error) {
	if h.down.Load() && h.ok.Add(-1) < 0 {
		<-ctx.Done()
		h.timedOut.Add(1)
		return 0, ctx.Err()
	}
	return h.Store.Save(ctx, kind, key, data, expected)
}

// TestSlowLastFlushHoldsTheClaim: the cluster version of
// TestLastFlushRetriedUntilStored, with a store whose saves time out (a
// store that hangs): while the deactivating activation's last flush keeps
// timing out, its claim stays in etcd and no activation serves the grain,
// on its node (the next one there waits for it, then fails with a retry)
// or on another; once the store answers, every acknowledged write is in
// the state. Before, the next activation on the node waited ClaimTimeout,
// failed, and the one after it was let in at once (the node held the
// claim) and served the older state beside the old one, which then
// released the claim from under it.
func TestSlowLastFlushHoldsTheClaim(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	log := &turnLog{}
	var slow atomic.Int64
	entered := make(chan struct{}, 1)
	hs := &hangStore{Store: memstore.New()}
	kind := ctrKind("c", log, &slow, entered, 200*time.Millisecond)
	systems := etcdSystemsWith(t, c, hs, grain.Config{ClaimTimeout: time.Second, StoreTimeout: 200 * time.Millisecond}, kind)
	id := grain.Identity{Kind: "c", Key: "x"}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if _, err := systems[0].Call(ctx, id, wrapperspb.Int64(0)); err != nil {
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
	t.Logf("owner node %d, caller node %d", owner, caller)
	hs.ok.Store(1) // the deactivation's own flush succeeds
	hs.down.Store(true)
	var (
		mu    sync.Mutex
		acked []int64
		wg    sync.WaitGroup
	)
	callV := func(ctx context.Context, v int64) error {
		_, err := systems[caller].Call(ctx, id, wrapperspb.Int64(v))
		if err == nil {
			mu.Lock()
			acked = append(acked, v)
			mu.Unlock()
		}
		return err
	}
	wg.Add(1)
	go func() { defer wg.Done(); _, _ = systems[caller].Call(ctx, id, wrapperspb.String("deact")) }()
	<-entered
	for v := int64(1); v <= 2; v++ {
		wg.Add(1)
		go func() { defer wg.Done(); _ = callV(ctx, v) }()
	}
	wg.Wait()
	await.True(t, 10*time.Second, "the activation to leave the table", func() bool { return !systems[owner].IsActive(id) })
	// Calls meanwhile are not served: each would make an activation that
	// loads the state without the draining one's last writes.
	for v := int64(101); v <= 102; v++ {
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		err := callV(cctx, v)
		ccancel()
		if err == nil {
			t.Errorf("call %d was served while the old activation's last flush was still failing", v)
		}
	}
	await.True(t, 30*time.Second, "the last flush to time out more often than the 5 tries it once gave up after", func() bool { return hs.timedOut.Load() > 6 })
	r, err := c.Members[owner].Client().Get(ctx, "/guild/grains/c/x")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) == 0 || string(r.Kvs[0].Value) != c.Nodes[owner].Actor().Addr().String() {
		t.Fatalf("the claim during the last flush: %v, want it held by node %d", r.Kvs, owner)
	}
	hs.down.Store(false)
	final := ctrGet(t, systems[caller], id)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("acked %v, state %v; %d saves timed out", acked, final.Applied, hs.timedOut.Load())
	for _, v := range acked {
		if !slices.Contains(final.Applied, v) {
			t.Errorf("acknowledged value %d lost (state %v)", v, final.Applied)
		}
	}
	if o := overlaps(log.snapshot()); len(o) > 0 {
		t.Fatalf("activations overlapped:\n%s", strings.Join(o, "\n"))
	}
}

// etcdSystemsWith starts a System with an EtcdClaimer and cfg's timeouts on
// every node of c.
func etcdSystemsWith(t *testing.T, c *clustertest.Cluster, st store.Store, cfg grain.Config, kinds ...grain.Kind) []*grain.System {
	t.Helper()
	var out []*grain.System
	for i, n := range c.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := grain.Start(ctx, grain.Config{Node: n.Actor(), Membership: c.Members[i], Kinds: kinds, Store: st, Claims: grain.NewEtcdClaimer(c.Members[i], ""),
			ClaimTimeout: cfg.ClaimTimeout, StoreTimeout: cfg.StoreTimeout, Logger: cfg.Logger})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = s.Close(ctx)
		})
		out = append(out, s)
	}
	for _, s := range out {
		for _, k := range kinds {
			await.True(t, 15*time.Second, "every view to hold every host", func() bool { return s.Hosts(k.Name) == len(out) })
		}
	}
	return out
}
