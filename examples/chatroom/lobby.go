package chatroom

import (
	"context"
	"time"

	"github.com/guildkit/guild/actor"
)

// lobby is the players' parent. It spawns them one at a time, each once the
// previous one has a seat, so that they join in a fixed order; then it sends
// an impostor who takes a name already in use. Its supervisor (set by
// WithSupervisor when Run spawns it) restarts a player that panics.
type lobby struct {
	names []string // the players, in order of arrival
	lines int      // rounds in the conversation; the first player crashes in round min(2, lines)
	pace  time.Duration
	sent  int // players spawned so far, the impostor included
}

// Receive handles one message.
func (l *lobby) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		l.sendNext(c)
	case seated:
		l.sendNext(c)
	case turnedAway:
		// The impostor was refused, as expected: let the talk begin.
		c.Logger().Debug("player turned away", "err", m.err)
		room, err := c.Node().Lookup(context.Background(), roomName)
		if err != nil {
			c.Logger().Error("cannot find the room", "err", err)
			return
		}
		_ = c.Send(room, open{})
	}
}

// sendNext spawns the next player, or the impostor after the last one.
func (l *lobby) sendNext(c *actor.Context) {
	s := &seat{index: l.sent, players: len(l.names), pace: l.pace}
	switch {
	case l.sent < len(l.names):
		s.name = l.names[l.sent]
		if l.sent == 0 {
			s.crashOn = min(2, l.lines) // the deliberate bug
		}
		s.quitEarly = l.sent == len(l.names)-1
	case l.sent == len(l.names):
		s.name = l.names[0] // an impostor: this name is taken
	default:
		return
	}
	l.sent++
	if _, err := c.Spawn(newPlayer(s)); err != nil {
		c.Logger().Error("cannot spawn a player", "name", s.name, "err", err)
	}
}
