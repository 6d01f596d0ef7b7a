package main

import (
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/examples/arena"
)

// registerArena offers the arena demo's modules to guild run, so that a
// cluster file can place them on nodes (guild demo -nodes 3 writes one).
func registerArena(r *app.Registry) {
	r.Register(arena.ModuleWorld, arena.NewWorld)
	r.Register(arena.ModuleChat, arena.NewChat)
}
