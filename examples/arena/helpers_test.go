package arena_test

import (
	"context"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/examples/arena"
	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/internal/await"
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
	await.True(t, waitTimeout, what, cond)
}

// testPlayer is a Go client playing the arena: it keeps the last world
// update, the last leaderboard, and the chat lines and round ends it was
// pushed.
type testPlayer struct {
	name   string
	c      *client.Client
	id     string
	joined *arenapb.JoinReply

	mu     sync.Mutex
	update *arenapb.WorldUpdate
	board  *arenapb.Leaderboard
	rounds []*arenapb.RoundOver
	lines  []*arenapb.ChatLine
}

// join dials the gateway at addr and joins the arena as name.
func join(t *testing.T, addr, name string) *testPlayer {
	t.Helper()
	p, err := tryJoin(t, addr, &arenapb.JoinRequest{Name: name})
	if err != nil {
		t.Fatalf("%s: join: %v", name, err)
	}
	return p
}

// tryJoin dials the gateway at addr and sends req, and returns the
// player, or the join's error (the connection then stays open, to try
// again).
func tryJoin(t *testing.T, addr string, req *arenapb.JoinRequest) (*testPlayer, error) {
	t.Helper()
	p := dial(t, addr, req.GetName())
	return p, p.join(t, req)
}

// dial connects a player to the gateway at addr, without joining.
func dial(t *testing.T, addr, name string) *testPlayer {
	t.Helper()
	c, err := client.Dial(testCtx(t), client.Config{Addr: addr})
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
	c.OnPush(arena.PushBoard, func(body []byte) {
		b := new(arenapb.Leaderboard)
		if err := proto.Unmarshal(body, b); err != nil {
			t.Errorf("%s: a leaderboard does not decode: %v", name, err)
			return
		}
		p.mu.Lock()
		p.board = b
		p.mu.Unlock()
	})
	c.OnPush(arena.PushRound, func(body []byte) {
		r := new(arenapb.RoundOver)
		if err := proto.Unmarshal(body, r); err != nil {
			t.Errorf("%s: a round's end does not decode: %v", name, err)
			return
		}
		p.mu.Lock()
		p.rounds = append(p.rounds, r)
		p.mu.Unlock()
	})
	return p
}

// join sends arena.Join with req on p's connection.
func (p *testPlayer) join(t *testing.T, req *arenapb.JoinRequest) error {
	t.Helper()
	reply := new(arenapb.JoinReply)
	if err := p.c.Request(testCtx(t), arena.RouteJoin, req, reply); err != nil {
		return err
	}
	if reply.GetPlayerId() == "" || reply.GetWidth() != arena.DefaultWidth || reply.GetResume() == "" {
		t.Fatalf("%s: join reply %v", p.name, reply)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.id, p.joined = reply.GetPlayerId(), reply
	if reply.GetLeaderboard().GetVersion() >= p.board.GetVersion() {
		p.board = reply.GetLeaderboard()
	}
	return nil
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

// me returns p as its last update shows it, with that update; nil before
// p's first update.
func (p *testPlayer) me() (*arenapb.Player, *arenapb.WorldUpdate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, q := range p.update.GetPlayers() {
		if q.GetId() == p.id {
			return q, p.update
		}
	}
	return nil, p.update
}

// score returns p's score in its last update.
func (p *testPlayer) score() uint32 {
	me, _ := p.me()
	return me.GetScore()
}

// onBoard returns name's score on p's last leaderboard, if it is there.
func (p *testPlayer) onBoard(name string) (uint32, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.board.GetEntries() {
		if e.GetName() == name {
			return e.GetScore(), true
		}
	}
	return 0, false
}

// roundsOver returns the round ends p was pushed.
func (p *testPlayer) roundsOver() []*arenapb.RoundOver {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.rounds)
}

// collect steers p onto the nearest orb in its view until its score
// grows, then stops it, and returns the new score. (It may pick up
// another orb than the one it went for, on its way.)
func (p *testPlayer) collect(t *testing.T) uint32 {
	t.Helper()
	before := p.score()
	var (
		goal *arenapb.Orb
		sent time.Time
	)
	await.True(t, waitTimeout, p.name+" to pick up an orb", func() bool {
		me, u := p.me()
		if me == nil {
			return false
		}
		if me.GetScore() > before {
			return true
		}
		var near *arenapb.Orb
		for _, o := range u.GetOrbs() {
			if near == nil || orbDist(me, o) < orbDist(me, near) {
				near = o
			}
		}
		if near != nil && (goal.GetId() != near.GetId() || time.Since(sent) > 200*time.Millisecond) {
			goal, sent = near, time.Now()
			d := float32(orbDist(me, near))
			p.move(t, (near.GetX()-me.GetX())/d, (near.GetY()-me.GetY())/d)
		}
		return false
	})
	p.move(t, 0, 0)
	p.waitNextTicks(t, 2) // an update from after the stop: the score stays
	return p.score()
}

// goTo steers p to within 40 units of (x, y), then stops it.
func (p *testPlayer) goTo(t *testing.T, x, y float32) {
	t.Helper()
	var sent time.Time
	await.True(t, waitTimeout, p.name+" to get back", func() bool {
		me, _ := p.me()
		if me == nil {
			return false
		}
		dx, dy := x-me.GetX(), y-me.GetY()
		d := float32(math.Hypot(float64(dx), float64(dy)))
		if d < 40 {
			return true
		}
		if time.Since(sent) > 100*time.Millisecond {
			p.move(t, dx/d, dy/d)
			sent = time.Now()
		}
		return false
	})
	p.move(t, 0, 0)
}

func orbDist(p *arenapb.Player, o *arenapb.Orb) float64 {
	return math.Hypot(float64(o.GetX()-p.GetX()), float64(o.GetY()-p.GetY()))
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
