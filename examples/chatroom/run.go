package chatroom

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/guildkit/guild/actor"
)

// Limits and defaults of Options.
const (
	MaxPlayers     = 8
	MaxLines       = 20
	DefaultPlayers = 3
	DefaultLines   = 3
	DefaultPace    = 5 * time.Millisecond
)

// shutdownTimeout bounds the graceful shutdown at the end of Run.
const shutdownTimeout = 5 * time.Second

// Options configures Run. The zero value runs the default demo.
type Options struct {
	// Players is how many players join, 1 to MaxPlayers. Default 3.
	Players int
	// Lines is how many rounds the conversation lasts: each player is given
	// the floor once per round, 1 to MaxLines. Default 3.
	Lines int
	// Pace is the period of the room's tick and how long a player types
	// before it speaks. It changes how long the demo takes, never what it
	// prints. Default 5ms.
	Pace time.Duration
	// Logger receives the node's reports, among them the deliberate panic
	// with its stack. Default: a logger that discards everything, since the
	// transcript already tells of the panic.
	Logger *slog.Logger
}

// Validate reports the first invalid field. Zero fields are valid: they take
// their defaults.
func (o Options) Validate() error {
	switch {
	case o.Players < 0 || o.Players > MaxPlayers:
		return fmt.Errorf("chatroom: %d players: want 1 to %d", o.Players, MaxPlayers)
	case o.Lines < 0 || o.Lines > MaxLines:
		return fmt.Errorf("chatroom: %d lines: want 1 to %d", o.Lines, MaxLines)
	case o.Pace < 0:
		return fmt.Errorf("chatroom: pace %v is negative", o.Pace)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Players == 0 {
		o.Players = DefaultPlayers
	}
	if o.Lines == 0 {
		o.Lines = DefaultLines
	}
	if o.Pace == 0 {
		o.Pace = DefaultPace
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// playerNames returns the names of the first n players.
func playerNames(n int) []string {
	names := [MaxPlayers]string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
	return names[:n:n]
}

// Run starts a node, plays the chat to its end while it prints the
// transcript to out, prints a summary, and shuts the node down gracefully.
// Run writes to out from the node's goroutines until it returns, so out need
// not be safe for concurrent use. When ctx ends first, Run shuts down early
// and returns ctx's error.
func Run(ctx context.Context, out io.Writer, opts Options) error {
	if err := opts.Validate(); err != nil {
		return err
	}
	opts = opts.withDefaults()

	var count counters
	node, err := actor.NewNode(actor.Config{
		Logger:              opts.Logger,
		ReceiveInterceptors: []actor.ReceiveInterceptor{count.intercept},
	})
	if err != nil {
		return err
	}
	defer node.Close() // in case Run returns before Shutdown; a no-op after it

	if _, err := fmt.Fprintf(out, "A chat room on node %v: %s, %s. Every name below is an actor.\n\n",
		node.Addr(), plural(opts.Players, "player"), plural(opts.Lines, "round")); err != nil {
		return err
	}
	done := make(chan error, 1)
	if err := spawnActors(node, out, opts, done); err != nil {
		return err
	}

	var runErr error
	select {
	case runErr = <-done:
	case <-ctx.Done():
		runErr = ctx.Err()
	}
	// Shut down even when ctx has ended, with a deadline of its own.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := node.Shutdown(sctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("chatroom: shutdown: %w", err)
	}
	if runErr != nil {
		return runErr
	}

	st := node.Stats()
	_, err = fmt.Fprintf(out, "\nSummary\n"+
		"  actors spawned     %3d\n"+
		"  restarts           %3d\n"+
		"  messages handled   %3d  (not counting the room's clock ticks)\n"+
		"  dead letters       %3d\n"+
		"  actors left        %3d  (the node has shut down)\n",
		count.spawned(), count.restarts.Load(), count.messages.Load(), st.DeadLetters, st.Actors)
	return err
}

// spawnActors starts the transcript, the room and the lobby; the lobby
// spawns the players.
func spawnActors(node *actor.Node, out io.Writer, opts Options, done chan<- error) error {
	tr, err := node.Spawn(func() actor.Actor { return &transcript{out: out, done: done} })
	if err != nil {
		return err
	}
	_, err = node.Spawn(func() actor.Actor {
		return &room{transcript: tr, rounds: opts.Lines, pace: opts.Pace}
	}, actor.WithName(roomName))
	if err != nil {
		return err
	}
	log := opts.Logger
	_, err = node.Spawn(func() actor.Actor {
		return &lobby{names: playerNames(opts.Players), lines: opts.Lines, pace: opts.Pace}
	}, actor.WithSupervisor(actor.Supervisor{
		// Decide runs when a player panics. Restart replaces the player
		// with a fresh instance; more than 3 crashes a minute stop it.
		Decide: func(reason any) actor.Directive {
			log.Warn("a player crashed; restarting it", "reason", reason)
			return actor.Restart
		},
		MaxRestarts: 3,
		Window:      time.Minute,
	}))
	return err
}
