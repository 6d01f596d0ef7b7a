package demo

import (
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/examples/arena"
)

// Register offers the arena's modules (arena.ModuleWorld and
// arena.ModuleChat) to guild run, so that a cluster file can place them on
// nodes: guild demo -nodes 3 writes one, and its world and chat nodes run
// them.
func Register(r *app.Registry) {
	r.Register(arena.ModuleWorld, arena.NewWorld)
	r.Register(arena.ModuleChat, arena.NewChat)
}
