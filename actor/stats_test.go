package actor

import (
	"context"
	"testing"
	"time"
)

// TestStatsByKind: Stats counts the user-lane messages handled, and of
// them the requests, the replies to actors' Requests and the timers'
// messages.
func TestStatsByKind(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	echo, err := n.SpawnFunc(func(c *Context) {
		if c.IsRequest() {
			c.Respond(c.Message())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	asker, err := n.SpawnFunc(func(c *Context) {
		switch c.Message().(type) {
		case string:
			_ = c.Request(echo, 1, time.Second, func(any, error) {})
			c.After(time.Millisecond, 2.5)
		case float64:
			close(done)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	before := n.Stats()
	for range 3 {
		if _, err := n.Call(context.Background(), echo, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Send(asker, "go"); err != nil {
		t.Fatal(err)
	}
	<-done
	eventually(t, "the counters to take the reply and the timer", func() bool {
		s := n.Stats()
		return s.Requests-before.Requests == 4 && s.Replies-before.Replies == 1 && s.TimerMessages-before.TimerMessages == 1 &&
			s.Sends-before.Sends == 1 &&
			s.Messages-before.Messages >= 7 // 3 calls, the send, the request, the reply, the timer
	})
}
