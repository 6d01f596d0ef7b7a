package grain_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/propsyncpb"
)

// TestReviewPushFailureLeavesClientStale: one push to a live session
// fails (as a full transport queue, ErrPendingQueueFull, or a full
// mailbox make it fail), and pushAll drops the subscriber. The session
// lives on, its client is told nothing (no end notice, and no later
// delta whose base would show the gap), so its replica stays Synced()
// with a state that never changes again. PROTOCOL.md says a subscriber is
// dropped with no word to the client only when its session is gone.
func TestReviewPushFailureLeavesClientStale(t *testing.T) {
	ps, node, ctx := syncSetup(t)
	sys, err := grain.Start(ctx, grain.Config{Node: node, Push: ps.push, Kinds: []grain.Kind{syncKind("p", &grain.SyncOptions{})}})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(ctx)
	pid, err := node.SpawnFunc(func(*actor.Context) {}) // the session: alive all along
	if err != nil {
		t.Fatal(err)
	}
	s1 := pid.String()
	id := grain.Identity{Kind: "p", Key: "u1"}
	set := func(kv string) {
		if _, err := sys.Call(ctx, id, wrapperspb.String(kv)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := sys.Call(ctx, id, actor.WithMetadata(&propsyncpb.Subscribe{}, actor.NewMetadata("guild-session-id", s1, "guild-user-id", "u1")))
	if err != nil {
		t.Fatal(err)
	}
	replica := propsync.NewReplica(&structpb.Struct{})
	if err := replica.Apply(r.(*propsyncpb.Delta)); err != nil {
		t.Fatal(err)
	}
	// One push fails: a moment of back-pressure.
	ps.mu.Lock()
	ps.fail[s1] = true
	ps.mu.Unlock()
	set("a=1")
	set("a=1") // no change: the turn of a=1 (and its push) is over
	ps.mu.Lock()
	ps.fail[s1] = false
	ps.mu.Unlock()
	for _, kv := range []string{"b=2", "c=3", "c=3"} {
		set(kv)
	}
	var gap error
	for _, d := range ps.take(s1) {
		if err := replica.Apply(d); err != nil {
			gap = err
		}
	}
	want := &structpb.Struct{Fields: map[string]*structpb.Value{"a": structpb.NewStringValue("1"), "b": structpb.NewStringValue("2"), "c": structpb.NewStringValue("3")}}
	if gap == nil && replica.Synced() && !proto.Equal(replica.State(), want) {
		t.Fatalf("the session is alive, one push failed: its replica says Synced at version %d with %v, the grain holds %v, and the client was never told (no gap, no end notice)", replica.Version(), replica.State(), want)
	}
}
