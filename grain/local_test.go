package grain_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/store/memstore"
)

func TestSingleNodeStateSurvivesDeactivation(t *testing.T) {
	var cs counts
	st := memstore.New()
	s := localSystem(t, cluster.NewMemory(), 1, grain.Config{
		Kinds:  []grain.Kind{seqKind("p", &cs, 60*time.Millisecond, time.Hour)},
		Store:  st,
		Claims: grain.NewLocalClaimer(),
	})
	id := grain.Identity{Kind: "p", Key: "1"}
	for i := int64(1); i <= 5; i++ {
		if n := call(t, s, id, i); n != i {
			t.Fatalf("N = %d, want %d", n, i)
		}
	}
	// Idle deactivation flushes the state, found dirty by its hash (the
	// handler never calls MarkDirty).
	waitFor(t, "idle deactivation", func() bool { return s.Stats().Deactivations == 1 && s.Stats().Active == 0 })
	if _, v, err := st.Load(context.Background(), id.Kind, id.Key); err != nil || v != 1 || s.Stats().Flushes != 1 {
		t.Fatalf("stored version %d (%v), %d flushes; want 1 and 1", v, err, s.Stats().Flushes)
	}
	if ss := s.Stats(); ss.Saves != 1 || ss.SaveTime <= 0 {
		t.Fatalf("%d saves taking %v, want 1 taking some time", ss.Saves, ss.SaveTime)
	}
	got := getState(t, s, id)
	if got.N != 5 || len(got.Seqs) != 5 {
		t.Fatalf("after reactivation: %+v", got)
	}
	if n := cs.get(id); n != 2 {
		t.Fatalf("%d activations, want 2", n)
	}
	// A grain that handled messages but changed nothing writes nothing.
	waitFor(t, "second deactivation", func() bool { return s.Stats().Deactivations == 2 })
	if s.Stats().Flushes != 1 {
		t.Fatalf("%d flushes, want 1: a read-only activation wrote", s.Stats().Flushes)
	}
}

func TestPeriodicFlush(t *testing.T) {
	st := memstore.New()
	s := localSystem(t, nil, 1, grain.Config{
		Kinds: []grain.Kind{seqKind("p", nil, time.Hour, 30*time.Millisecond)},
		Store: st,
	})
	id := grain.Identity{Kind: "p", Key: "1"}
	call(t, s, id, 1)
	waitFor(t, "a periodic flush", func() bool { return s.Stats().Flushes == 1 })
	data, ver, err := st.Load(context.Background(), "p", "1")
	if err != nil || ver != 1 {
		t.Fatalf("load: %v, version %d", err, ver)
	}
	var got seqState
	if err := json.Unmarshal(data, &got); err != nil || got.N != 1 {
		t.Fatalf("stored %s (%v)", data, err)
	}
	time.Sleep(100 * time.Millisecond)
	if f := s.Stats().Flushes; f != 1 {
		t.Fatalf("%d flushes of a clean grain", f)
	}
}

func TestStaleActivationDeactivatesOnConflict(t *testing.T) {
	var cs counts
	st := memstore.New()
	s := localSystem(t, nil, 1, grain.Config{
		Kinds: []grain.Kind{seqKind("p", &cs, time.Hour, time.Hour)},
		Store: st,
	})
	id := grain.Identity{Kind: "p", Key: "1"}
	call(t, s, id, 1)
	ctx := context.Background()
	if r, err := s.Call(ctx, id, wrapperspb.String("flush")); err != nil || r.(*wrapperspb.StringValue).Value != "ok" {
		t.Fatalf("flush: %v %v", r, err)
	}
	// Another owner writes a newer version behind this activation's back.
	newer, _ := json.Marshal(seqState{N: 100, Seqs: []int64{100}})
	if _, err := st.Save(ctx, "p", "1", newer, 1); err != nil {
		t.Fatal(err)
	}
	call(t, s, id, 2)
	_, err := s.Call(ctx, id, wrapperspb.String("flush"))
	if !errors.Is(err, grain.ErrStale) && err == nil {
		t.Fatalf("flush of a stale activation: %v", err)
	}
	waitFor(t, "the stale activation to stop", func() bool { return s.Stats().Deactivations == 1 })
	if c := s.Stats().Conflicts; c != 1 {
		t.Fatalf("Conflicts = %d, want 1", c)
	}
	// The next message activates the grain from the newer state; the
	// stale change (2) was dropped, never written.
	got := getState(t, s, id)
	if got.N != 100 || cs.get(id) != 2 {
		t.Fatalf("state %+v after %d activations", got, cs.get(id))
	}
	_, ver, _ := st.Load(ctx, "p", "1")
	if ver != 2 {
		t.Fatalf("version %d, want 2", ver)
	}
}

func TestTwoNodesLocalClaimer(t *testing.T) {
	ms := cluster.NewMemory()
	cl := grain.NewLocalClaimer()
	st := memstore.New()
	var cs counts
	cfg := grain.Config{Kinds: []grain.Kind{seqKind("p", &cs, time.Hour, time.Hour)}, Store: st, Claims: cl}
	a := localSystem(t, ms, 1, cfg)
	b := localSystem(t, ms, 2, cfg)
	waitFor(t, "both views", func() bool { return a.Hosts("p") == 2 && b.Hosts("p") == 2 })
	onA, onB := 0, 0
	for i := range 50 {
		id := grain.Identity{Kind: "p", Key: string(rune('a'+i%26)) + string(rune('0'+i/26))}
		call(t, a, id, 1)
		if n := call(t, b, id, 2); n != 2 {
			t.Fatalf("%v: N = %d", id, n)
		}
		if a.IsActive(id) {
			onA++
		}
		if b.IsActive(id) {
			onB++
		}
		if cs.get(id) != 1 {
			t.Fatalf("%v activated %d times", id, cs.get(id))
		}
	}
	if onA+onB != 50 || onA == 0 || onB == 0 {
		t.Fatalf("placement: %d on a, %d on b", onA, onB)
	}
	// A message for another node must be protobuf.
	for i := range 50 {
		id := grain.Identity{Kind: "p", Key: string(rune('a'+i%26)) + string(rune('0'+i/26))}
		if b.IsActive(id) {
			if err := a.Send(id, 42); !errors.Is(err, grain.ErrNotProto) {
				t.Fatalf("Send of an int to another node: %v", err)
			}
			break
		}
	}
	if _, err := a.Call(context.Background(), grain.Identity{Kind: "nope", Key: "1"}, wrapperspb.Int64(1)); !errors.Is(err, grain.ErrUnavailable) {
		t.Fatalf("unknown kind: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []grain.Config{
		{},
		{Kinds: []grain.Kind{{Name: "a"}}},
	} {
		if _, err := grain.Start(context.Background(), cfg); !errors.Is(err, grain.ErrBadConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

func TestResolveGrain(t *testing.T) {
	ms := cluster.NewMemory()
	cfg := grain.Config{Kinds: []grain.Kind{seqKind("p", nil, time.Hour, time.Hour)}, Claims: grain.NewLocalClaimer()}
	a := localSystem(t, ms, 1, cfg)
	b := localSystem(t, ms, 2, cfg)
	waitFor(t, "both views", func() bool { return a.Hosts("p") == 2 && b.Hosts("p") == 2 })
	ctx := context.Background()
	for i := range 20 {
		id := grain.Identity{Kind: "p", Key: key(i)}
		pid, err := a.ResolveGrain(ctx, id.Kind, id.Key)
		if err != nil {
			t.Fatal(err)
		}
		owner := a
		if b.IsActive(id) {
			owner = b
		}
		if pid.Node != grain.NodeOf(owner).Addr() {
			t.Fatalf("%v resolved to %v, active on %v", id, pid, grain.NodeOf(owner).Addr())
		}
		r, err := grain.NodeOf(a).Call(ctx, pid, wrapperspb.Int64(7))
		if err != nil || r.(*wrapperspb.Int64Value).Value != 1 {
			t.Fatalf("call the resolved PID: %v %v", r, err)
		}
	}
}

// TestActiveByKind: the count of activations by kind, every hosted kind
// listed.
func TestActiveByKind(t *testing.T) {
	cs := &counts{}
	s := localSystem(t, nil, 1, grain.Config{Kinds: []grain.Kind{seqKind("p", cs, time.Hour, 0), seqKind("q", cs, time.Hour, 0)}})
	for _, key := range []string{"1", "2", "3"} {
		call(t, s, grain.Identity{Kind: "p", Key: key}, 1)
	}
	got := s.ActiveByKind()
	if len(got) != 2 || got["p"] != 3 || got["q"] != 0 {
		t.Fatalf("ActiveByKind = %v, want p:3 q:0", got)
	}
}
