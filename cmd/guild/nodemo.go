//go:build guild_nodemo

package main

import "github.com/guildkit/guild/app"

// This build (-tags guild_nodemo) has no demo and links no package under
// examples/: see demo.go, and examples/demo's package doc.

// demoCommands returns no command.
func demoCommands() []command { return nil }

// registerDemo registers nothing.
func registerDemo(*app.Registry) {}

// noDemo is what guild demo answers in this build.
const noDemo = "guild demo: this build has no demo: go run ./cmd/guild demo from the guild repository, or build without -tags guild_nodemo"
