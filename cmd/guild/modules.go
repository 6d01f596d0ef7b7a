package main

import "github.com/guildkit/guild/app"

// guildModules returns the registry of the modules that guild run can put
// on a node: the modules of the games that ship with guild.
func guildModules() *app.Registry {
	r := app.NewRegistry()
	registerArena(r)
	return r
}
