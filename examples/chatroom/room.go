package chatroom

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/guildkit/guild/actor"
)

// roomName is the local name the room registers under. Names that start with
// "." are seen by this node only; players find the room by it.
const roomName = ".room"

// errNameTaken is the error the room answers a join with when a member
// already uses the name. The joiner's Call returns it.
var errNameTaken = errors.New("chatroom: name taken")

// member is one player in the room.
type member struct {
	pid  actor.PID
	name string
}

// room is the chat room actor. It keeps the members in the order they
// joined, passes the floor to one of them at a time, and broadcasts what
// each says to all of them. It is the only writer of the transcript, so the
// transcript follows the room's own order.
type room struct {
	transcript actor.PID
	rounds     int           // lines each member says
	pace       time.Duration // period of the tick that passes the floor on

	members []member
	ticker  actor.TimerID
	round   int       // the round being played, from 1
	next    int       // index in members of the next speaker
	floor   actor.PID // the member whose line the room waits for; zero when none
	closing bool      // the rounds are over: members are asked to go, one at a time
}

// Receive handles one message.
func (r *room) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case join:
		r.join(c, m)
	case who:
		c.Respond(r.names())
	case open:
		r.print(c, "[room] everyone is seated; the conversation starts")
		r.round = 1
		r.ticker = c.Every(r.pace, tick{})
	case tick:
		r.passFloor(c)
	case say:
		r.say(c, m)
	case back:
		if i := r.find(c.Sender()); i >= 0 {
			r.print(c, "[room] %s crashed mid-sentence and was restarted by the lobby's supervisor; that line is lost", r.members[i].name)
			r.releaseFloor(c.Sender())
		}
	case leave:
		if i := r.find(c.Sender()); i >= 0 {
			c.Unwatch(c.Sender())
			name := r.remove(i)
			r.print(c, "[room] %s left after hearing %s (%d present)", name, plural(m.heard, "line"), len(r.members))
			r.goodbyeNext(c)
		}
	case actor.Terminated:
		if i := r.find(m.PID); i >= 0 {
			name := r.remove(i)
			r.print(c, "[room] %s's actor stopped without leaving; the room was watching it and removed %s (%d present)",
				name, name, len(r.members))
			r.releaseFloor(m.PID)
			r.goodbyeNext(c)
		}
	}
}

// join seats the sender, or answers with an error when its name is taken.
func (r *room) join(c *actor.Context, m join) {
	if slices.ContainsFunc(r.members, func(x member) bool { return x.name == m.name }) {
		err := fmt.Errorf("%w: %q", errNameTaken, m.name)
		r.print(c, "[room] a second %s tried to join and was turned away: %v", m.name, err)
		c.Respond(err) // the joiner's Call returns err
		return
	}
	r.members = append(r.members, member{pid: c.Sender(), name: m.name})
	c.Watch(c.Sender()) // a Terminated comes if the player's actor stops
	r.print(c, "[room] %s joined (%d present)", m.name, len(r.members))
	c.Respond(len(r.members))
}

// passFloor runs on every tick: when nobody holds the floor, it goes to the
// next member, round after round, until every round is over.
func (r *room) passFloor(c *actor.Context) {
	if !r.floor.IsZero() {
		return // still typing
	}
	if r.next >= len(r.members) {
		r.next = 0
		r.round++
	}
	if r.round > r.rounds || len(r.members) == 0 {
		c.CancelTimer(r.ticker)
		r.closing = true
		r.print(c, "[room] that was the last round; time to go")
		r.goodbyeNext(c)
		return
	}
	r.floor = r.members[r.next].pid
	r.next++
	_ = c.Send(r.floor, yourTurn{round: r.round})
}

// say broadcasts the line of the member holding the floor.
func (r *room) say(c *actor.Context, m say) {
	i := r.find(c.Sender())
	if i < 0 || c.Sender() != r.floor {
		return // only the member holding the floor speaks
	}
	name := r.members[i].name
	r.print(c, "<%s> %s", name, m.text)
	for _, to := range r.members {
		_ = c.Send(to.pid, heard{from: name, text: m.text})
	}
	r.releaseFloor(c.Sender())
}

// releaseFloor frees the floor if pid holds it; the next tick passes it on.
func (r *room) releaseFloor(pid actor.PID) {
	if r.floor == pid {
		r.floor = actor.PID{}
	}
}

// goodbyeNext asks the first member to go, once the rounds are over; when
// the room is empty, it ends the transcript.
func (r *room) goodbyeNext(c *actor.Context) {
	if !r.closing {
		return
	}
	if len(r.members) == 0 {
		r.print(c, "[room] the room is empty")
		_ = c.Send(r.transcript, endOfTranscript{})
		return
	}
	_ = c.Send(r.members[0].pid, goodbye{})
}

// print sends one line to the transcript.
func (r *room) print(c *actor.Context, format string, args ...any) {
	_ = c.Send(r.transcript, fmt.Sprintf(format, args...))
}

func (r *room) find(pid actor.PID) int {
	return slices.IndexFunc(r.members, func(m member) bool { return m.pid == pid })
}

// remove drops members[i], keeping the others in order, and returns its name.
func (r *room) remove(i int) string {
	name := r.members[i].name
	r.members = slices.Delete(r.members, i, i+1)
	if i < r.next {
		r.next--
	}
	return name
}

func (r *room) names() []string {
	names := make([]string, len(r.members))
	for i, m := range r.members {
		names[i] = m.name
	}
	return names
}

// listNames joins names as "a", "a and b" or "a, b and c".
func listNames(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// plural formats n and noun, adding an "s" unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
