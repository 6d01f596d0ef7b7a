package propsync_test

import (
	"testing"

	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/internal/testpb"
)

// TestReviewReplicaOtherEntity: every synced grain pushes on the same
// route ("propsync") by default, so a Go client with two subscriptions
// (its own player, and another through a gate.SyncGrain route) gets both
// grains' deltas in one push handler. The README's example feeds every
// push of the route to one Replica, and Replica.Apply never looks at the
// delta's entity (the TypeScript replica ignores other entities): a
// delta of player/b whose base matches applies to player/a's replica.
func TestReviewReplicaOtherEntity(t *testing.T) {
	a := &testpb.Player{Name: "a", Gold: 1}
	b := &testpb.Player{Name: "b", Gold: 1}
	ta := propsync.NewTracker("player/a", nil, a)
	tb := propsync.NewTracker("player/b", nil, b)
	r := propsync.NewReplica(&testpb.Player{})
	snap, err := ta.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(snap); err != nil {
		t.Fatal(err)
	}
	b.Gold = 999
	d, err := tb.Next(b)
	if err != nil || d == nil {
		t.Fatalf("%v %v", d, err)
	}
	err = r.Apply(d) // player/b's delta, base 1, on player/a's replica at version 1
	if got := r.State().(*testpb.Player).GetGold(); err == nil && got != 1 {
		t.Fatalf("player/a's replica took player/b's delta: gold %d, Synced %v, no error", got, r.Synced())
	}
}
