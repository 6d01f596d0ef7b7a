package main

import "github.com/guildkit/guild/app"

// guildModules returns the registry of the modules that guild run can put
// on a node: the modules of the games that ship with guild (the arena's,
// for guild demo -nodes 3), none in a build with -tags guild_nodemo.
func guildModules() *app.Registry {
	r := app.NewRegistry()
	registerDemo(r)
	return r
}
