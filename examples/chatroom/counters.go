package chatroom

import (
	"sync/atomic"

	"github.com/guildkit/guild/actor"
)

// counters counts what the node's actors handle. Its intercept method is a
// ReceiveInterceptor: it runs inside every actor's turn, on many goroutines
// at once, hence the atomics.
type counters struct {
	started  atomic.Int64 // Started messages: one per spawn and one per restart
	restarts atomic.Int64 // Restarting messages
	messages atomic.Int64 // every other message, except lifecycle ones and the room's clock ticks
}

func (k *counters) intercept(next actor.ReceiveFunc) actor.ReceiveFunc {
	return func(c *actor.Context) {
		switch c.Message().(type) {
		case actor.Started:
			k.started.Add(1)
		case actor.Restarting:
			k.restarts.Add(1)
		case actor.Stopping, actor.Stopped:
		case tick:
			// How many ticks pass depends on the machine's speed; leaving
			// them out keeps the summary the same on every run.
		default:
			k.messages.Add(1)
		}
		next(c)
	}
}

// spawned is how many actors were spawned.
func (k *counters) spawned() int64 { return k.started.Load() - k.restarts.Load() }
