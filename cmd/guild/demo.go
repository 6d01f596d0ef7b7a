//go:build !guild_nodemo

package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/examples/demo"
)

// This file links the demo (examples/demo) into guild: the demo command,
// and the arena's modules for guild run. A build with -tags guild_nodemo
// leaves it out (nodemo.go): see examples/demo's package doc.

// demoCommands returns the demo command.
func demoCommands() []command {
	return []command{{"demo", demo.Summary, runDemo, demo.Flags, false}}
}

// registerDemo offers the demo's modules to guild run: the nodes of guild
// demo -nodes 3 run this binary.
func registerDemo(r *app.Registry) { demo.Register(r) }

// noDemo is empty: this build has the demo.
const noDemo = ""

// runDemo runs guild demo until it ends or the process is interrupted.
func runDemo(args []string, stdout, stderr io.Writer) int {
	// The binary owns the process's signals; the demo never touches them.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return demo.Run(ctx, args, stdout, stderr)
}
