package actor

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestTopBacklogs blocks three actors in their first message and queues 5,
// 20 and 10 more behind it: TopBacklogs lists the deepest first, with their
// names, leaves out the empty mailboxes and stops at its limit.
func TestTopBacklogs(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	release := make(chan struct{})
	blocked := make(chan struct{}, 3)
	spawn := func(name string) PID {
		var opts []SpawnOption
		if name != "" {
			opts = append(opts, WithName(name))
		}
		pid, err := n.SpawnFunc(func(c *Context) {
			if _, ok := c.Message().(string); ok {
				select {
				case blocked <- struct{}{}:
				default:
				}
				<-release
			}
		}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	a, b, c := spawn(".a"), spawn(""), spawn(".c")
	idle := spawn("") // idle: never listed, once its Started is handled
	if _, err := n.Call(context.Background(), idle, 0); !errors.Is(err, ErrNoReply) {
		t.Fatalf("a call to the idle actor: %v, want ErrNoReply", err)
	}
	for pid, depth := range map[PID]int{a: 5, b: 20, c: 10} {
		if err := n.Send(pid, "block"); err != nil {
			t.Fatal(err)
		}
		<-blocked
		for range depth {
			if err := n.Send(pid, 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := n.TopBacklogs(0); got != nil {
		t.Errorf("TopBacklogs(0) = %v, want nil", got)
	}
	got := n.TopBacklogs(2)
	want := []Backlog{{PID: b, Messages: 20}, {PID: c, Messages: 10, Names: []string{".c"}}}
	if len(got) != 2 || got[0].PID != want[0].PID || got[0].Messages != 20 || len(got[0].Names) != 0 ||
		got[1].PID != want[1].PID || got[1].Messages != 10 || !slices.Equal(got[1].Names, want[1].Names) {
		t.Errorf("TopBacklogs(2) = %+v, want %+v", got, want)
	}
	if all := n.TopBacklogs(10); len(all) != 3 || all[2].PID != a || all[2].Messages != 5 {
		t.Errorf("TopBacklogs(10) = %+v, want b, c, then a with 5", all)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkTopBacklogs(b *testing.B) {
	n, _ := newTestNode(b, Config{})
	for range 10_000 {
		if _, err := n.SpawnFunc(func(*Context) {}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		n.TopBacklogs(10)
	}
}
