package propsync_test

import (
	"errors"
	"testing"

	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/internal/testpb"
)

// TestReplicaIgnoresOtherEntity: a client with two subscriptions (its own
// player, and another through a gate.SyncGrain route) gets both grains'
// deltas on one push route; each Replica applies only those of its
// snapshot's entity, and ignores the others (their deltas, their end
// notices), synced or waiting for a snapshot, as the TypeScript SDK's
// subscribeReplica does. It applied player/b's delta to player/a's
// replica when the bases matched (review s10, finding 7).
func TestReplicaIgnoresOtherEntity(t *testing.T) {
	a := &testpb.Player{Name: "a", Gold: 1}
	b := &testpb.Player{Name: "b", Gold: 1}
	ta := propsync.NewTracker("player/a", nil, a)
	tb := propsync.NewTracker("player/b", nil, b)
	r := propsync.NewReplica(&testpb.Player{})
	gold := func() int64 { return r.State().(*testpb.Player).GetGold() }
	delta := func(tr *propsync.Tracker, p *testpb.Player, g int64) error {
		p.Gold = g
		d, err := tr.Next(p)
		if err != nil || d == nil {
			t.Fatalf("%v %v", d, err)
		}
		return r.Apply(d)
	}
	// Before the first snapshot: b's delta is held, then dropped with a's
	// snapshot.
	if err := delta(tb, b, 50); err != nil {
		t.Fatal(err)
	}
	snap, err := ta.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(snap); err != nil {
		t.Fatalf("a's snapshot after b's delta: %v", err)
	}
	if r.Entity() != "player/a" || gold() != 1 || !r.Synced() {
		t.Fatalf("entity %q, gold %d, Synced %v; want player/a, 1, true", r.Entity(), gold(), r.Synced())
	}
	// Synced: b's delta (base 2, when a is at version 2) is ignored,
	// and so is b's end notice.
	if err := delta(ta, a, 2); err != nil {
		t.Fatal(err)
	}
	if err := delta(tb, b, 999); err != nil {
		t.Fatalf("b's delta on a's replica: %v, want it ignored", err)
	}
	if err := r.Apply(tb.Ended()); err != nil {
		t.Fatalf("b's end notice on a's replica: %v, want it ignored", err)
	}
	if gold() != 2 || !r.Synced() || r.Version() != ta.Version() {
		t.Fatalf("gold %d, Synced %v, version %d; want a's: 2, true, %d", gold(), r.Synced(), r.Version(), ta.Version())
	}
	// Waiting for a snapshot: b's deltas are not held.
	r.Desync()
	for i := range 300 { // more than a replica holds
		if err := delta(tb, b, int64(1000+i)); err != nil {
			t.Fatalf("b's delta %d on a's desynced replica: %v", i, err)
		}
	}
	if err := delta(ta, a, 3); err != nil {
		t.Fatal(err)
	}
	if snap, err = ta.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(snap); err != nil {
		t.Fatal(err)
	}
	if gold() != 3 || !r.Synced() {
		t.Fatalf("gold %d, Synced %v; want 3, true", gold(), r.Synced())
	}
	// Its own end notice is still a gap.
	if err := r.Apply(ta.Ended()); !errors.Is(err, propsync.ErrGap) {
		t.Fatalf("a's end notice: %v, want ErrGap", err)
	}
}
