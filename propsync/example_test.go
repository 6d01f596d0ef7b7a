package propsync_test

import (
	"fmt"

	"github.com/guildkit/guild/propsync"
	"github.com/guildkit/guild/propsync/internal/testpb"
)

// Example syncs a state to a replica: a snapshot, then the delta of a
// turn. The private field secret never reaches the replica.
func Example() {
	state := &testpb.Player{Name: "Ann", Gold: 10, Secret: "s3cr3t", Stats: &testpb.Stats{Hp: 100}}
	tr := propsync.NewTracker("player/ann", nil, state) // server side

	replica := propsync.NewReplica(&testpb.Player{}) // client side
	replica.OnChange("stats", func(path string) { fmt.Println("changed:", path) })
	snap, _ := tr.Snapshot()
	_ = replica.Apply(snap)

	state.Gold += 5
	state.Stats.Hp -= 30
	state.Secret = "other"
	delta, _ := tr.Next(state)
	fmt.Println("ops:", len(delta.GetOps()), "version:", delta.GetVersion())
	_ = replica.Apply(delta)

	r := replica.State().(*testpb.Player)
	fmt.Printf("gold %d, hp %d, secret %q\n", r.GetGold(), r.GetStats().GetHp(), r.GetSecret())
	// Output:
	// changed: stats
	// ops: 2 version: 2
	// changed: stats.hp
	// gold 15, hp 70, secret ""
}
