package grain_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/propsyncpb"
)

// TestReviewStaleDeltaOfOldTracker: a grain drops its Tracker when its
// last subscriber leaves and counts versions from 1 again with the next
// one, within the same activation; a Delta names no tracker, so a
// replica that Desyncs before its subscribe (as PROTOCOL.md asks) takes
// a delta of the old tracker still on its way (version 2, base 1) for one
// of the new subscription, and applies it on top of a snapshot (version
// 1) that holds it already. A LIST_APPEND is not idempotent: the replica
// ends with the element twice and says it is Synced.
//
// The client: subscribed (version 1); the grain appends to a list (delta
// 2 on its way); the client unsubscribes and subscribes again at once
// (Desync first), so delta 2 reaches a desynced replica and is held.
func TestReviewStaleDeltaOfOldTracker(t *testing.T) {
	ps, node, ctx := syncSetup(t)
	kind := grain.Kind{
		Name:        "p",
		IdleTimeout: time.Hour,
		State: func() any {
			return &structpb.Struct{Fields: map[string]*structpb.Value{"l": structpb.NewListValue(&structpb.ListValue{})}}
		},
		Sync: &grain.SyncOptions{},
		New: func(grain.Identity) grain.Actor {
			return grain.ActorFunc(func(c *grain.Context) {
				m, ok := c.Message().(*wrapperspb.StringValue)
				if !ok {
					return
				}
				l := c.State().(*structpb.Struct).Fields["l"].GetListValue()
				if m.Value != "" {
					l.Values = append(l.Values, structpb.NewStringValue(m.Value))
				}
				c.Respond(m)
			})
		},
	}
	sys, err := grain.Start(ctx, grain.Config{Node: node, Push: ps.push, Kinds: []grain.Kind{kind}})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(ctx)
	pid, err := node.SpawnFunc(func(*actor.Context) {})
	if err != nil {
		t.Fatal(err)
	}
	s1 := pid.String()
	id := grain.Identity{Kind: "p", Key: "u1"}
	md := actor.NewMetadata("guild-session-id", s1, "guild-user-id", "u1")
	call := func(msg proto.Message) any {
		r, err := sys.Call(ctx, id, actor.WithMetadata(msg, md))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	replica := propsync.NewReplica(&structpb.Struct{})
	if err := replica.Apply(call(&propsyncpb.Subscribe{}).(*propsyncpb.Delta)); err != nil {
		t.Fatal(err)
	}
	call(wrapperspb.String("sword")) // delta 2 (LIST_APPEND), pushed after the turn
	call(wrapperspb.String(""))      // the turn before is over: delta 2 is on its way
	inFlight := ps.take(s1)
	if len(inFlight) != 1 {
		t.Fatalf("%d deltas, want 1", len(inFlight))
	}
	// The client unsubscribes and subscribes again, marking its replica
	// first; delta 2 reaches it after the Desync.
	replica.Desync()
	call(&propsyncpb.Unsubscribe{})
	snap := call(&propsyncpb.Subscribe{}).(*propsyncpb.Delta)
	for _, d := range inFlight {
		if err := replica.Apply(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := replica.Apply(snap); err != nil {
		t.Logf("apply the snapshot: %v (a gap would be fine)", err)
		return
	}
	got := replica.State().(*structpb.Struct).Fields["l"].GetListValue().GetValues()
	if len(got) != 1 {
		t.Fatalf("the replica says Synced=%v at version %d with the list %v: the old tracker's delta %d (base %d) was applied over the new tracker's snapshot (version %d), which held it already",
			replica.Synced(), replica.Version(), got, inFlight[0].GetVersion(), inFlight[0].GetBase(), snap.GetVersion())
	}
}
