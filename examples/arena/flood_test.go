package arena_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/examples/arena"
	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/rpc"
)

// TestChatFloodKeepsReceivers reproduces issue 19's first problem in
// bounded form: 20 players say chat lines at the gateway's whole request
// rate (50 a second each) for 3 seconds, beside 30 players who only
// listen. Each flooder gets at most ChatBurst lines and ChatRate a second
// through (the rest refused with ResourceExhausted), every listener hears
// at most that, and no listener is disconnected.
func TestChatFloodKeepsReceivers(t *testing.T) {
	const flooders, listeners, rate = 20, 30, 50
	const flood = 3 * time.Second
	httpAddr, _, _ := startDemo(t, fastWorld)
	addr := "ws://" + httpAddr + arena.WebSocketPath

	var closed atomic.Int64
	heard := make([]atomic.Int64, listeners)
	var good []*client.Client
	for i := range listeners {
		c, err := client.Dial(testCtx(t), client.Config{Addr: addr, OnClose: func(error) { closed.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		c.OnPush(arena.PushChat, func([]byte) { heard[i].Add(1) })
		if err := c.Request(testCtx(t), arena.RouteJoin, &arenapb.JoinRequest{Name: fmt.Sprintf("ear-%d", i)}, new(arenapb.JoinReply)); err != nil {
			t.Fatalf("listener %d joins: %v", i, err)
		}
		good = append(good, c)
	}
	bad := make([]*testPlayer, flooders)
	for i := range bad {
		bad[i] = join(t, addr, fmt.Sprintf("loud-%d", i))
	}

	var said, refused, other atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i, p := range bad {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second / rate)
			defer tick.Stop()
			for n := 0; time.Since(start) < flood; n++ {
				<-tick.C
				err := p.c.Request(testCtx(t), arena.RouteSay, &arenapb.SayRequest{Text: fmt.Sprintf("spam %d from %d", n, i)}, new(arenapb.SayReply))
				switch rpc.CodeOf(err) {
				case rpc.OK:
					said.Add(1)
				case rpc.ResourceExhausted:
					refused.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	maxLines := int64(flooders * (arena.ChatBurst + arena.ChatRate*int(took.Seconds()+1)))
	t.Logf("%v: %d lines said, %d refused, %d other errors; bound %d", took.Round(time.Millisecond), said.Load(), refused.Load(), other.Load(), maxLines)
	if n := said.Load(); n > maxLines {
		t.Errorf("%d lines got through, want at most %d", n, maxLines)
	}
	if n := other.Load(); n != 0 {
		t.Errorf("%d chat requests failed otherwise than refused", n)
	}
	for i, c := range good {
		if err := c.Request(testCtx(t), arena.RouteMove, &arenapb.MoveRequest{Dx: 1}, new(arenapb.MoveReply)); err != nil {
			t.Errorf("listener %d after the flood: %v", i, err)
		}
	}
	if n := closed.Load(); n != 0 {
		t.Fatalf("%d of %d listeners were disconnected by the flood", n, listeners)
	}
	waitFor(t, "every listener to hear the lines said", func() bool {
		for i := range heard {
			if heard[i].Load() < said.Load()/2 { // the room's budget may drop some
				return false
			}
		}
		return true
	})
}
