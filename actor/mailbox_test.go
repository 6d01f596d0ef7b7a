package actor

import (
	"testing"
)

// A backlog deeper than one lane chunk keeps its order, and a stop with a
// deep backlog sends every queued message to dead letters exactly once.
func TestDeepBacklogAcrossChunks(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	const depth = laneChunkSize*7 + 13
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var got []int
	done := make(chan struct{})
	pid := mustSpawn(t, n, func(c *Context) {
		switch m := c.Message().(type) {
		case string:
			entered <- struct{}{}
			<-release
		case int:
			got = append(got, m)
			if len(got) == depth {
				close(done)
			}
		}
	})
	_ = n.Send(pid, "block")
	recv(t, entered)
	for i := 0; i < depth; i++ {
		if err := n.Send(pid, i); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	recv(t, done)
	for i, v := range got {
		if v != i {
			t.Fatalf("message %d is %d", i, v)
		}
	}

	hold := make(chan struct{})
	pid2 := mustSpawn(t, n, func(c *Context) {
		if c.Message() == "block" {
			entered <- struct{}{}
			<-hold
		}
	})
	_ = n.Send(pid2, "block")
	recv(t, entered)
	for i := 0; i < depth; i++ {
		_ = n.Send(pid2, i)
	}
	before := n.Stats().DeadLetters
	_ = n.Stop(pid2)
	close(hold)
	eventually(t, "the backlog is dead-lettered", func() bool { return n.Stats().DeadLetters-before == depth })
	if d := n.Stats().DeadLetters - before; d != depth {
		t.Fatalf("%d dead letters, want %d", d, depth)
	}
}
