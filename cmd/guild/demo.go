package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/guildkit/guild/examples/chatroom"
)

// runDemo runs the chat room demo until it ends or the process is
// interrupted.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", "demo [-players N] [-lines N] [-v]",
		"Demo runs a small chat of actors on one node and prints what happened:\n"+
			"players join a room and talk, one of them crashes and is restarted by its\n"+
			"supervisor, and everyone leaves. Its source is examples/chatroom.", stderr)
	players := fs.Int("players", chatroom.DefaultPlayers, fmt.Sprintf("number of players, 1 to %d", chatroom.MaxPlayers))
	lines := fs.Int("lines", chatroom.DefaultLines, fmt.Sprintf("lines each player says, 1 to %d", chatroom.MaxLines))
	verbose := fs.Bool("v", false, "log the node's reports to stderr, such as the deliberate panic with its stack")
	if ok, code := parse(fs, args); !ok {
		return code
	}
	opts := chatroom.Options{Players: *players, Lines: *lines}
	if err := opts.Validate(); err != nil || *players < 1 || *lines < 1 {
		fmt.Fprintf(stderr, "guild demo: -players must be 1 to %d and -lines 1 to %d\n", chatroom.MaxPlayers, chatroom.MaxLines)
		return exitUsage
	}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}

	// The binary owns the process's signals; the library never touches them.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := chatroom.Run(ctx, stdout, opts); err != nil {
		if errors.Is(err, context.Canceled) {
			err = errors.New("interrupted")
		}
		fmt.Fprintf(stderr, "guild demo: %v\n", err)
		return exitError
	}
	fmt.Fprint(stdout, nextSteps)
	return exitOK
}

// nextSteps follows the transcript: what happened, and where to look next.
const nextSteps = `
What happened: every name above is an actor, a value with a Receive method
that handles one message at a time, so its state needs no locks. The players
found the room by its local name ".room", joined it with Call, asked who was
there with Request, and spoke with Send; the room answered with Respond. The
lobby's supervisor restarted the player that panicked, and the room's Watch
noticed the one that stopped without leaving. Next: the README's Concepts
section explains each of these; examples/chatroom is this demo's source, one
file per actor; "go doc github.com/guildkit/guild/actor" lists the API, with
runnable examples.
`
