package grain_test

import (
	"context"
	"fmt"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/grain"
)

// wallet is the state of a "wallet" grain, stored as JSON.
type wallet struct{ Gold int }

// Example runs grains on a single node: no cluster, the default
// LocalClaimer and an in-memory store.
func Example() {
	node, _ := actor.NewNode(actor.Config{Addr: actor.MustAddr(1, 1, 1)})
	defer node.Close()
	ctx := context.Background()
	sys, err := grain.Start(ctx, grain.Config{
		Node: node,
		Kinds: []grain.Kind{{
			Name:        "wallet",
			IdleTimeout: time.Minute,
			State:       func() any { return new(wallet) },
			New: func(id grain.Identity) grain.Actor {
				return grain.ActorFunc(func(c *grain.Context) {
					w := c.State().(*wallet)
					if n, ok := c.Message().(int); ok {
						w.Gold += n // found dirty at flush time, no MarkDirty needed
						c.Respond(w.Gold)
					}
				})
			},
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sys.Close(ctx)
	alice := grain.Identity{Kind: "wallet", Key: "alice"}
	_ = sys.Send(alice, 10)
	gold, err := sys.Call(ctx, alice, 5)
	fmt.Println(gold, err)
	// Output: 15 <nil>
}
