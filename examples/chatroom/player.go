package chatroom

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/guildkit/guild/actor"
)

// callTimeout bounds the player's Call and Request to the room.
const callTimeout = 2 * time.Second

// seat is what a player keeps across restarts. A restart replaces the
// player instance with a fresh one from its Producer; the Producer closes
// over the seat, so the fresh instance finds it again. (A real game would
// keep such state in a store.)
type seat struct {
	name      string
	index     int           // order of arrival, from 0
	players   int           // how many players there are; with index, picks what this one says
	pace      time.Duration // how long the player types before it speaks
	crashOn   int           // the round in which the player's bug strikes; 0 for never
	quitEarly bool          // at goodbye, stop the actor instead of leaving

	// Owned by the player's turns once it is spawned.
	room   actor.PID
	joined bool
	lives  int // instances made so far: 2 and more means restarted
	heard  int
}

// newPlayer returns the Producer of a player sitting at s. Spawn calls it
// once, and the lobby's supervisor calls it again at each restart.
func newPlayer(s *seat) actor.Producer {
	return func() actor.Actor {
		s.lives++
		return &player{seat: s}
	}
}

// player is one chat participant: a bot that joins the room, says one line
// each time it is given the floor, and goes when asked.
type player struct {
	seat *seat
}

// Receive handles one message.
func (p *player) Receive(c *actor.Context) {
	s := p.seat
	switch m := c.Message().(type) {
	case actor.Started:
		if s.joined { // a fresh instance after a crash: tell the room
			_ = c.Send(s.room, back{})
			return
		}
		p.join(c)
	case yourTurn:
		c.After(s.pace, typed(m)) // type for a moment, then speak
	case typed:
		p.speak(c, m.round)
	case heard:
		s.heard++
	case goodbye:
		if s.quitEarly {
			c.Stop(c.Self()) // gone without a word: the room's Watch notices
			return
		}
		_ = c.Send(s.room, leave{heard: s.heard})
	}
}

// join finds the room by name and asks for a seat. It uses Call, which
// blocks this actor until the answer comes: until it is seated a player has
// nothing else to do.
func (p *player) join(c *actor.Context) {
	s := p.seat
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	room, err := c.Node().Lookup(ctx, roomName)
	if err == nil {
		_, err = c.Call(ctx, room, join{name: s.name})
	}
	if err != nil {
		_ = c.Send(c.Parent(), turnedAway{err: err})
		_ = c.Stop(c.Self())
		return
	}
	s.room, s.joined = room, true
	_ = c.Send(c.Parent(), seated{})
}

// speak says the player's line for round.
func (p *player) speak(c *actor.Context, round int) {
	s := p.seat
	if round == s.crashOn && s.lives == 1 {
		panic(fmt.Sprintf("a bug in a player: %s tripped over the keyboard", s.name))
	}
	if round > 1 {
		_ = c.Send(s.room, say{text: chatter((round-2)*s.players + s.index)})
		return
	}
	// The first line greets whoever is present. Request returns at once;
	// the callback runs later, inside this actor's own turn, so it may use
	// the seat just as Receive does. A ReplyFunc is given no Context: it
	// uses c, which the runtime keeps valid for callbacks.
	err := c.Request(s.room, who{}, callTimeout, func(reply any, err error) {
		text := "hello! I can't tell who is here"
		if names, ok := reply.([]string); ok && err == nil {
			text = greeting(s.name, names)
		}
		_ = c.Send(s.room, say{text: text})
	})
	if err != nil {
		_ = c.Send(s.room, say{text: "hello!"})
	}
}

// greeting greets everyone present but self.
func greeting(self string, present []string) string {
	others := slices.DeleteFunc(slices.Clone(present), func(n string) bool { return n == self })
	if len(others) == 0 {
		return "hello? nobody else is here"
	}
	return "hello! I can see " + listNames(others) + " here"
}

// chatter is the i-th canned line the bots say after their greetings.
func chatter(i int) string {
	lines := [...]string{
		"anyone up for a raid tonight?",
		"brb, the cat is on the keyboard",
		"who took the last health potion?",
		"the boss drops a legendary sword, I swear",
		"lag spike, sorry",
		"gg everyone",
		"is the server always this fast?",
		"see you at the inn",
	}
	return lines[i%len(lines)]
}
