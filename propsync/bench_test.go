package propsync_test

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/internal/testpb"
	"github.com/guildkit/guild/propsync/propsyncpb"
)

// turn changes three fields of a player, as a turn of game logic might.
func turn(p *testpb.Player, i int) {
	p.Gold++
	p.Stats.Hp = int32(i % 1000)
	p.Items[i%len(p.Items)].Count++
}

// BenchmarkPropertyDiff measures what property sync costs a turn that
// changed three fields of a 2 KB player state: Diff alone ("diff"), the
// Tracker's whole step ("next": Diff plus keeping the copy last synced),
// both by the state's generated code (guild gen), and the same step by
// reflection ("next-reflect", a state without generated code); in the
// same run, the turn's own grain call on a local grain system
// ("grain-call": a Call to an active grain whose handler makes those
// changes), the same call to a synced grain with one subscriber
// ("grain-call-synced": the turn, its Tracker.Next and the push), and
// the plain call from another node ("grain-call-remote"). Two anchors
// bound what any implementation could do: "anchor-read", a hand-written
// typed comparison of two versions of the state (the least a diff that
// looks at the state costs), and "anchor-emit", the Delta of the turn's
// three ops built from values known in advance (the least a sync that
// sends a delta costs). For scale, "marshal" is one deterministic
// encoding of the state. It reports the bytes of the encoded Delta
// against those of the state.
func BenchmarkPropertyDiff(b *testing.B) {
	d := propsync.NewDiffer()
	b.Run("diff", func(b *testing.B) {
		old, next := bigPlayer(), bigPlayer()
		turn(next, 1)
		ops, err := d.Diff(old, next)
		if err != nil {
			b.Fatal(err)
		}
		delta, _ := proto.Marshal(&propsyncpb.Delta{Entity: "player/p1", Version: 2, Base: 1, Ops: ops})
		state := proto.Size(propsync.Redact(next))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := d.Diff(old, next); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(delta)), "delta-bytes")
		b.ReportMetric(float64(state), "state-bytes")
		b.ReportMetric(float64(len(delta))/float64(state), "delta/state")
	})
	b.Run("marshal", func(b *testing.B) { // for scale: one deterministic encoding of the state
		p := bigPlayer()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := (proto.MarshalOptions{Deterministic: true}).Marshal(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	next := func(d *propsync.Differ) func(b *testing.B) {
		return func(b *testing.B) {
			p := bigPlayer()
			tr := propsync.NewTracker("player/p1", d, p)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				turn(p, i)
				if delta, err := tr.Next(p); err != nil || delta == nil {
					b.Fatal(delta, err)
				}
			}
		}
	}
	b.Run("next", next(d))
	// The step by reflection, as for a state without generated code.
	b.Run("next-reflect", next(propsync.NewDiffer().ReflectOnly()))
	b.Run("anchor-read", func(b *testing.B) {
		old, next := bigPlayer(), bigPlayer()
		turn(next, 1)
		b.ReportAllocs()
		for b.Loop() {
			if playerChanges(old, next) != 3 {
				b.Fatal("the turn did not change three fields")
			}
		}
	})
	b.Run("anchor-emit", func(b *testing.B) {
		values := [3][]byte{{0x10, 1}, {0x08, 2}, {0x10, 3}}
		b.ReportAllocs()
		for b.Loop() {
			d := &propsyncpb.Delta{Entity: "player/p1", Version: 2, Base: 1, Ops: []*propsyncpb.Op{
				{Kind: propsyncpb.Op_SET, Path: []*propsyncpb.Step{{Field: 2}}, Value: append([]byte(nil), values[0]...)},
				{Kind: propsyncpb.Op_SET, Path: []*propsyncpb.Step{{Field: 10}, {Field: 1}}, Value: append([]byte(nil), values[1]...)},
				{Kind: propsyncpb.Op_SET, Path: []*propsyncpb.Step{{Field: 13, At: &propsyncpb.Step_Index{Index: 1}}, {Field: 2}}, Value: append([]byte(nil), values[2]...)},
			}}
			if len(d.Ops) != 3 {
				b.Fatal(d)
			}
		}
	})
	b.Run("grain-call", func(b *testing.B) { benchGrainCall(b, nil) })
	b.Run("grain-call-synced", func(b *testing.B) { benchGrainCall(b, &grain.SyncOptions{}) })
	b.Run("grain-call-remote", benchRemoteGrainCall)
}

// playerBenchKind is the kind of the grain-call benchmarks: a player
// grain whose every request changes three fields.
func playerBenchKind(sync *grain.SyncOptions) grain.Kind {
	return grain.Kind{
		Name:        "player",
		IdleTimeout: time.Hour,
		State:       func() any { return bigPlayer() },
		Sync:        sync,
		New: func(grain.Identity) grain.Actor {
			i := 0
			return grain.ActorFunc(func(c *grain.Context) {
				if c.IsRequest() {
					i++
					turn(c.State().(*testpb.Player), i)
					c.Respond(c.Message())
				}
			})
		},
	}
}

// benchRemoteGrainCall measures the same call from another node of a
// cluster (loopback TCP): the turn of a player whose request crossed the
// network, as a client's request through a gateway does.
func benchRemoteGrainCall(b *testing.B) {
	ms := cluster.NewMemory()
	start := func(index int, kinds []grain.Kind) *grain.System {
		addr := actor.MustAddr(1, 1, index)
		m := ms.Membership(addr)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n, err := cluster.Start(ctx, cluster.NodeConfig{
			Actor: actor.Config{Addr: addr}, Listen: "127.0.0.1:0", Membership: m,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			b.Fatal(err)
		}
		sys, err := grain.Start(ctx, grain.Config{Node: n.Actor(), Membership: m, Kinds: kinds})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = sys.Close(ctx)
			_ = n.Close()
			_ = m.Close()
		})
		return sys
	}
	front := start(1, nil)
	start(2, []grain.Kind{playerBenchKind(nil)})
	ctx := context.Background()
	id := grain.Identity{Kind: "player", Key: "p1"}
	msg := &testpb.Stats{Hp: 1}
	await.True(b, 10*time.Second, "the nodes' views converge", func() bool {
		_, err := front.Call(ctx, id, msg)
		return err == nil
	})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := front.Call(ctx, id, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// benchGrainCall measures a Call to an active player grain whose handler
// changes three fields; with sync, the grain is synced and has one
// subscriber, whose pushes go nowhere (the cost of the gateway's push is
// not counted).
func benchGrainCall(b *testing.B, sync *grain.SyncOptions) {
	node, err := actor.NewNode(actor.Config{Addr: actor.MustAddr(1, 1, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	ctx := context.Background()
	var pushed atomic.Int64
	sys, err := grain.Start(ctx, grain.Config{
		Node:  node,
		Push:  func(string, string, proto.Message) error { pushed.Add(1); return nil },
		Kinds: []grain.Kind{playerBenchKind(sync)},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sys.Close(ctx)
	id := grain.Identity{Kind: "player", Key: "p1"}
	if sync != nil {
		session, err := node.SpawnFunc(func(*actor.Context) {})
		if err != nil {
			b.Fatal(err)
		}
		md := actor.NewMetadata("guild-session-id", session.String(), "guild-user-id", "p1")
		if _, err := sys.Call(ctx, id, actor.WithMetadata(&propsyncpb.Subscribe{}, md)); err != nil {
			b.Fatal(err)
		}
	}
	msg := &testpb.Stats{Hp: 1}
	if _, err := sys.Call(ctx, id, msg); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sys.Call(ctx, id, msg); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if sync != nil && pushed.Load() == 0 {
		b.Fatal("no delta was pushed")
	}
}

// playerChanges counts the fields (at any depth, an element or entry
// counting once) in which two players differ, by hand-written typed
// comparisons: the anchor of BenchmarkPropertyDiff.
func playerChanges(a, b *testpb.Player) int {
	n := 0
	count := func(differ bool) {
		if differ {
			n++
		}
	}
	count(a.Name != b.Name)
	count(a.Gold != b.Gold)
	count(a.Class != b.Class)
	count(!bytes.Equal(a.Avatar, b.Avatar))
	count(a.GetLevel() != b.GetLevel())
	count(a.Online != b.Online)
	count(a.X != b.X)
	count(a.Exp != b.Exp)
	n += statsChanges(a.Stats, b.Stats)
	count(!slices.Equal(a.Scores, b.Scores))
	count(!slices.Equal(a.Tags, b.Tags))
	count(len(a.Items) != len(b.Items))
	for i := range min(len(a.Items), len(b.Items)) {
		n += itemChanges(a.Items[i], b.Items[i])
	}
	count(!maps.Equal(a.Counters, b.Counters))
	count(len(a.Bag) != len(b.Bag))
	for k, v := range a.Bag {
		if w, ok := b.Bag[k]; ok {
			n += itemChanges(v, w)
		}
	}
	count(!maps.Equal(a.Names, b.Names))
	count(!maps.Equal(a.Flags, b.Flags))
	count(a.GetHorse() != b.GetHorse())
	n += statsChanges(a.GetDragon(), b.GetDragon())
	return n
}

func statsChanges(a, b *testpb.Stats) int {
	if a == nil || b == nil {
		if a != b {
			return 1
		}
		return 0
	}
	n := 0
	for _, differ := range []bool{a.Hp != b.Hp, a.Mp != b.Mp, a.Speed != b.Speed, !slices.Equal(a.Buffs, b.Buffs)} {
		if differ {
			n++
		}
	}
	return n
}

func itemChanges(a, b *testpb.Item) int {
	n := statsChanges(a.Bonus, b.Bonus)
	for _, differ := range []bool{a.Id != b.Id, a.Count != b.Count, !maps.Equal(a.Attrs, b.Attrs)} {
		if differ {
			n++
		}
	}
	return n
}
