package actor

import (
	"testing"
	"time"
)

func TestAfterAndEvery(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	got := make(chan string, 16)
	var tickID TimerID
	pid := mustSpawn(t, n, func(c *Context) {
		switch m := c.Message().(type) {
		case Started:
			c.After(20*time.Millisecond, "once")
			tickID = c.Every(5*time.Millisecond, "tick")
			cancelled := c.After(time.Millisecond, "cancelled")
			if !c.CancelTimer(cancelled) || c.CancelTimer(cancelled) {
				got <- "CancelTimer result wrong"
			}
		case string:
			if c.Sender() != c.Self() {
				got <- "timer message sender is not Self"
			}
			got <- m
		case int:
			if !c.CancelTimer(tickID) {
				got <- "could not cancel the ticker"
			}
			got <- "ticker cancelled"
		}
	})
	start := time.Now()
	ticks, once := 0, false
	for !once || ticks < 3 {
		switch m := recv(t, got); m {
		case "tick":
			ticks++
		case "once":
			if d := time.Since(start); d < 20*time.Millisecond {
				t.Fatalf("After(20ms) fired after %v", d)
			}
			once = true
		default:
			t.Fatal(m)
		}
	}
	_ = n.Send(pid, 1)
	for m := recv(t, got); m != "ticker cancelled"; m = recv(t, got) {
		if m != "tick" {
			t.Fatal(m)
		}
	}
	noValue(t, got, 30*time.Millisecond)
	eventually(t, "no timers left", func() bool { return n.Stats().Timers == 0 })
}

func TestTimersCancelledOnStop(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	started := make(chan struct{})
	pid := mustSpawn(t, n, func(c *Context) {
		if _, ok := c.Message().(Started); ok {
			c.Every(time.Millisecond, "tick")
			c.After(time.Hour, "much later")
			close(started)
		}
	})
	recv(t, started)
	if n.Stats().Timers != 2 {
		t.Fatalf("%d timers pending, want 2", n.Stats().Timers)
	}
	_ = n.Stop(pid)
	eventually(t, "timers cancelled", func() bool { return n.Stats().Timers == 0 && n.Stats().Actors == 0 })
}

func TestEveryTicksDoNotPileUp(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	release := make(chan struct{})
	ticks := make(chan struct{}, 1000)
	pid := mustSpawn(t, n, func(c *Context) {
		switch c.Message() {
		case "start":
			c.Every(time.Millisecond, "tick")
			<-release // stay busy while the ticker runs
		case "tick":
			ticks <- struct{}{}
		}
	})
	_ = n.Send(pid, "start")
	time.Sleep(50 * time.Millisecond)
	close(release)
	time.Sleep(5 * time.Millisecond)
	_ = n.Stop(pid)
	eventually(t, "stopped", func() bool { return n.Stats().Actors == 0 })
	// 50 periods passed while the actor was busy; coalescing keeps at most
	// one tick queued, so only a handful are handled afterwards.
	if len(ticks) > 15 {
		t.Fatalf("%d ticks handled after a 50ms stall, want the backlog coalesced", len(ticks))
	}
}

func TestTimersCancelledOnRestart(t *testing.T) {
	n, _ := newTestNode(t, Config{})
	got := make(chan string, 64)
	pid := mustSpawn(t, n, func(c *Context) {
		switch c.Message() {
		case "arm":
			c.After(30*time.Millisecond, "stale")
		case "panic":
			panic("restart me")
		case "stale":
			got <- "stale"
		}
	})
	_ = n.Send(pid, "arm")
	_ = n.Send(pid, "panic")
	noValue(t, got, 80*time.Millisecond)
}
