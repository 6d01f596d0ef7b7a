package arena_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/examples/arena"
	"github.com/guildkit/guild/examples/arena/arenapb"
)

// waitTimeout bounds every wait of these tests.
const waitTimeout = 15 * time.Second

// testCtx returns a context that ends with the test or after waitTimeout.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds, and fails t after waitTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testPlayer is a Go client playing the arena: it keeps the last world
// update and the chat lines it was pushed.
type testPlayer struct {
	name string
	c    *client.Client
	id   string

	mu     sync.Mutex
	update *arenapb.WorldUpdate
	lines  []*arenapb.ChatLine
}

// join dials the gateway at addr and joins the arena as name.
func join(t *testing.T, addr, name string) *testPlayer {
	t.Helper()
	ctx := testCtx(t)
	c, err := client.Dial(ctx, client.Config{Addr: addr})
	if err != nil {
		t.Fatalf("%s: dial %s: %v", name, addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	p := &testPlayer{name: name, c: c}
	c.OnPush(arena.PushWorld, func(body []byte) {
		u := new(arenapb.WorldUpdate)
		if err := proto.Unmarshal(body, u); err != nil {
			t.Errorf("%s: a world update does not decode: %v", name, err)
			return
		}
		p.mu.Lock()
		p.update = u
		p.mu.Unlock()
	})
	c.OnPush(arena.PushChat, func(body []byte) {
		l := new(arenapb.ChatLine)
		if err := proto.Unmarshal(body, l); err != nil {
			t.Errorf("%s: a chat line does not decode: %v", name, err)
			return
		}
		p.mu.Lock()
		p.lines = append(p.lines, l)
		p.mu.Unlock()
	})
	var reply arenapb.JoinReply
	if err := c.Request(ctx, arena.RouteJoin, &arenapb.JoinRequest{Name: name}, &reply); err != nil {
		t.Fatalf("%s: join: %v", name, err)
	}
	if reply.GetPlayerId() == "" || reply.GetWidth() != arena.DefaultWidth {
		t.Fatalf("%s: join reply %v", name, &reply)
	}
	p.id = reply.GetPlayerId()
	return p
}

// move sets the player's heading.
func (p *testPlayer) move(t *testing.T, dx, dy float32) {
	t.Helper()
	if err := p.c.Request(testCtx(t), arena.RouteMove, &arenapb.MoveRequest{Dx: dx, Dy: dy}, new(arenapb.MoveReply)); err != nil {
		t.Fatalf("%s: move: %v", p.name, err)
	}
}

// sees returns the player id as p's last update shows it, if it does.
func (p *testPlayer) sees(id string) (*arenapb.Player, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, q := range p.update.GetPlayers() {
		if q.GetId() == id {
			return q, true
		}
	}
	return nil, false
}

// tick returns the tick of p's last update.
func (p *testPlayer) tick() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.update.GetTick()
}

// heard reports whether p was pushed a chat line of text from from.
func (p *testPlayer) heard(from, text string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.ContainsFunc(p.lines, func(l *arenapb.ChatLine) bool {
		return l.GetFrom() == from && l.GetText() == text
	})
}

// waitNextTicks waits until p has had n more updates.
func (p *testPlayer) waitNextTicks(t *testing.T, n uint64) {
	t.Helper()
	from := p.tick()
	waitFor(t, p.name+"'s next updates", func() bool { return p.tick() >= from+n })
}
