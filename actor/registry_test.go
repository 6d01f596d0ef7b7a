package actor

import (
	"context"
	"errors"
	"testing"
)

func TestSerialsNeverAnswerForAStoppedActor(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	first := mustSpawn(t, n, echo)
	second := mustSpawn(t, n, echo)
	if uint32(first.Serial) != 1 || uint32(second.Serial) != 2 || first.Serial>>32 != second.Serial>>32 {
		t.Fatalf("first serials %v %v: want slots 1 and 2, of the node's first generation", first, second)
	}
	if err := n.Stop(first); err != nil {
		t.Fatal(err)
	}
	eventually(t, "first stops", func() bool { return n.Stats().Actors == 1 })
	reuse := mustSpawn(t, n, echo) // takes the freed slot with the next generation
	if reuse == first || uint32(reuse.Serial) != uint32(first.Serial) {
		t.Fatalf("slot reuse: %v after %v", reuse, first)
	}
	if _, err := n.Call(context.Background(), first, "x"); !errors.Is(err, ErrActorNotFound) {
		t.Fatalf("stale PID reached the actor that reused its slot: %v", err)
	}
	if r, err := n.Call(context.Background(), reuse, "x"); err != nil || r != "echo:x" {
		t.Fatal(r, err)
	}
}

func TestZeroPIDIsNotFound(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	if err := n.Send(PID{}, 1); !errors.Is(err, ErrActorNotFound) {
		t.Fatalf("Send to the zero PID: %v", err)
	}
	if _, err := n.Call(context.Background(), PID{}, 1); !errors.Is(err, ErrActorNotFound) {
		t.Fatalf("Call to the zero PID: %v", err)
	}
	if err := n.Stop(PID{}); !errors.Is(err, ErrActorNotFound) {
		t.Fatalf("Stop of the zero PID: %v", err)
	}
	if err := n.Poison(PID{}); !errors.Is(err, ErrActorNotFound) {
		t.Fatalf("Poison of the zero PID: %v", err)
	}
}

func TestStatsCounters(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	pid, _ := n.Spawn(func() Actor { return &counter{} })
	mustSpawn(t, n, echo)
	_, _ = n.Call(context.Background(), pid, "panic")
	eventually(t, "the restart", func() bool { return n.Stats().Restarts == 1 })
	if s := n.Stats(); s.Spawned != 2 || s.Actors != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// TestRestartedNodeIssuesOtherSerials: a node started again at the same
// address does not issue its previous incarnation's serials, so a PID of
// an actor of that incarnation (held by another node, a grain router, a
// watcher) does not reach an unrelated actor of this one.
func TestRestartedNodeIssuesOtherSerials(t *testing.T) {
	seen := map[uint64]int{}
	for i := range 8 {
		n, _ := newTestNode(t, Config{})
		pid := mustSpawn(t, n, echo)
		if j, ok := seen[pid.Serial]; ok {
			t.Fatalf("incarnations %d and %d of node %v both issued %v first", j, i, pid.Node, pid)
		}
		seen[pid.Serial] = i
	}
}
