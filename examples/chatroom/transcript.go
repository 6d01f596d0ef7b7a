package chatroom

import (
	"fmt"
	"io"

	"github.com/guildkit/guild/actor"
)

// transcript is the actor that prints. Writing is its only job, so a slow
// writer never holds up the room. It prints lines in the order they arrive;
// the room is its only sender, so that is the room's order.
type transcript struct {
	out  io.Writer
	done chan<- error // gets the first write error, or nil, at the end
	err  error
}

// Receive handles one message.
func (t *transcript) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case string:
		if t.err == nil {
			_, t.err = fmt.Fprintln(t.out, m)
		}
	case endOfTranscript:
		t.done <- t.err
	}
}
