package propsync_test

import (
	"testing"

	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/internal/testpb"
)

// TestTrackerAfterSkipsOldDeltas: a Tracker made with NewTrackerAfter
// starts after the versions of the Tracker it replaces, so a replica that
// waits for the new snapshot (Desync) and gets a delta of the old Tracker
// first skips it, instead of applying it over a snapshot that holds its
// change already.
func TestTrackerAfterSkipsOldDeltas(t *testing.T) {
	p := &testpb.Player{Name: "a", Gold: 1}
	old := propsync.NewTracker("player/a", nil, p)
	r := propsync.NewReplica(&testpb.Player{})
	snap, err := old.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(snap); err != nil {
		t.Fatal(err)
	}
	p.Gold = 2
	stale, err := old.Next(p)
	if err != nil || stale == nil {
		t.Fatalf("%v %v", stale, err)
	}
	// The owner drops old, and makes a new Tracker for a new subscriber.
	p.Gold = 5
	next := propsync.NewTrackerAfter("player/a", nil, p, old.Version())
	if next.Version() != old.Version()+1 {
		t.Fatalf("NewTrackerAfter(%d) is at version %d, want %d", old.Version(), next.Version(), old.Version()+1)
	}
	r.Desync()
	if err := r.Apply(stale); err != nil {
		t.Fatal(err)
	}
	if snap, err = next.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(snap); err != nil {
		t.Fatal(err)
	}
	if g := r.State().(*testpb.Player).GetGold(); !r.Synced() || g != 5 || r.Version() != next.Version() {
		t.Fatalf("Synced %v at version %d, gold %d; want the new snapshot's, version %d, gold 5", r.Synced(), r.Version(), g, next.Version())
	}
	p.Gold = 6
	d, err := next.Next(p)
	if err != nil || d == nil {
		t.Fatalf("%v %v", d, err)
	}
	if err := r.Apply(d); err != nil {
		t.Fatal(err)
	}
	if g := r.State().(*testpb.Player).GetGold(); g != 6 {
		t.Fatalf("gold %d, want 6", g)
	}
}
