package arena

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/rpc"
)

// MaxNameLen bounds a player's name, in bytes.
const MaxNameLen = 24

// maxStep bounds the time one tick moves the players by, so that a
// stalled node does not teleport them when it wakes.
const maxStep = 250 * time.Millisecond

// player is one player's state, owned by the world actor.
type player struct {
	id, name string
	session  string    // the gateway session to push to
	pid      actor.PID // the same, parsed
	x, y     float64
	dx, dy   float64 // heading, of length at most 1
	seen     time.Time
}

// tick is the world actor's timer message.
type tick struct{}

// worldActor owns every player's state. It alone touches it: the World
// rpc service and the arena gate service ask it with Call, and its timer
// moves the players and sends each one the players near it.
//
// Its messages are the World service's requests (*arenapb.EnterRequest,
// ...), answered with the reply or an *rpc.Status.
type worldActor struct {
	s       WorldSettings
	players map[string]*player
	session map[actor.PID]string // player ID by the session actors it watches
	grid    *grid
	tick    uint64
	last    time.Time
	now     func() time.Time
}

func newWorldActor(s WorldSettings) *worldActor {
	return &worldActor{
		s:       s,
		players: make(map[string]*player),
		session: make(map[actor.PID]string),
		grid:    newGrid(s.Width, s.Height, s.Cell),
		now:     time.Now,
	}
}

func (w *worldActor) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		w.last = w.now()
		c.Every(time.Duration(w.s.Tick), tick{})
	case tick:
		w.step(c)
	case *arenapb.EnterRequest:
		reply, err := w.enter(c, m)
		respond(c, reply, err)
	case *arenapb.SteerRequest:
		reply, err := w.steer(m)
		respond(c, reply, err)
	case *arenapb.LeaveRequest:
		w.remove(c, m.GetPlayerId())
		c.Respond(&emptypb.Empty{})
	case *arenapb.WhoRequest:
		p, ok := w.players[m.GetPlayerId()]
		if !ok {
			c.Respond(rpc.Errorf(rpc.NotFound, "no player %q", m.GetPlayerId()))
			return
		}
		c.Respond(&arenapb.Player{Id: p.id, Name: p.name, X: float32(p.x), Y: float32(p.y)})
	case actor.Terminated:
		// A session closed, or its gateway node went: its player leaves
		// at once.
		if id, ok := w.session[m.PID]; ok {
			w.remove(c, id)
		}
	}
}

// respond answers a request with reply, or with err when it is not nil.
func respond[T any](c *actor.Context, reply *T, err error) {
	if err != nil {
		c.Respond(err)
		return
	}
	c.Respond(reply)
}

// enter puts a player into the world, or updates a player that enters
// again (a page that rejoined).
func (w *worldActor) enter(c *actor.Context, m *arenapb.EnterRequest) (*arenapb.JoinReply, error) {
	name := strings.TrimSpace(m.GetName())
	switch {
	case m.GetPlayerId() == "":
		return nil, rpc.Error(rpc.InvalidArgument, "enter: no player ID")
	case name == "":
		return nil, rpc.Error(rpc.InvalidArgument, "enter: a name is required")
	case len(name) > MaxNameLen:
		return nil, rpc.Errorf(rpc.InvalidArgument, "enter: the name is longer than %d bytes", MaxNameLen)
	}
	pid, err := gate.ParseSessionID(m.GetSessionId())
	if err != nil {
		return nil, err
	}
	p, ok := w.players[m.GetPlayerId()]
	if !ok {
		p = &player{id: m.GetPlayerId()}
		p.x, p.y = w.spawnPoint()
		w.players[p.id] = p
		w.grid.move(p.id, p.x, p.y)
	}
	if p.pid != pid {
		w.unwatch(c, p)
		p.session, p.pid = m.GetSessionId(), pid
		// The session is watched, on whichever gateway node it lives:
		// its player leaves the moment it closes, or its node goes.
		w.session[pid] = p.id
		c.Watch(pid)
	}
	p.name, p.seen = name, w.now()
	return &arenapb.JoinReply{
		PlayerId: p.id,
		Width:    float32(w.s.Width),
		Height:   float32(w.s.Height),
		X:        float32(p.x),
		Y:        float32(p.y),
	}, nil
}

func (w *worldActor) spawnPoint() (x, y float64) {
	if len(w.s.Spawn) == 2 {
		return w.s.Spawn[0], w.s.Spawn[1]
	}
	return rand.Float64() * w.s.Width, rand.Float64() * w.s.Height
}

// steer sets a player's heading.
func (w *worldActor) steer(m *arenapb.SteerRequest) (*arenapb.MoveReply, error) {
	p, ok := w.players[m.GetPlayerId()]
	if !ok {
		return nil, rpc.Errorf(rpc.NotFound, "no player %q: join again", m.GetPlayerId())
	}
	dx, dy := float64(m.GetDx()), float64(m.GetDy())
	if math.IsNaN(dx) || math.IsNaN(dy) {
		return nil, rpc.Error(rpc.InvalidArgument, "steer: the heading is not a number")
	}
	dx, dy = min(max(dx, -1), 1), min(max(dy, -1), 1)
	if l := math.Hypot(dx, dy); l > 1 {
		dx, dy = dx/l, dy/l
	}
	p.dx, p.dy, p.seen = dx, dy, w.now()
	return &arenapb.MoveReply{X: float32(p.x), Y: float32(p.y)}, nil
}

// remove takes a player out of the world.
func (w *worldActor) remove(c *actor.Context, id string) {
	p, ok := w.players[id]
	if !ok {
		return
	}
	w.unwatch(c, p)
	delete(w.players, id)
	w.grid.remove(id)
}

func (w *worldActor) unwatch(c *actor.Context, p *player) {
	if _, ok := w.session[p.pid]; ok {
		delete(w.session, p.pid)
		c.Unwatch(p.pid)
	}
}

// step is one tick: drop the idle players, move the others, and send each
// one the players in the 3x3 cells around it. The players of one cell see
// the same neighbourhood, so each occupied cell's update is built once.
func (w *worldActor) step(c *actor.Context) {
	now := w.now()
	dt := min(now.Sub(w.last), maxStep).Seconds()
	w.last = now
	w.tick++
	idle := time.Duration(w.s.Idle)
	for id, p := range w.players {
		if now.Sub(p.seen) > idle {
			c.Logger().Info("arena: dropping an idle player", "player", id, "name", p.name)
			w.remove(c, id)
			continue
		}
		if p.dx == 0 && p.dy == 0 {
			continue
		}
		p.x = min(max(p.x+p.dx*w.s.Speed*dt, 0), w.s.Width)
		p.y = min(max(p.y+p.dy*w.s.Speed*dt, 0), w.s.Height)
		w.grid.move(id, p.x, p.y)
	}

	updates := make(map[int]*arenapb.WorldUpdate)
	var gone []string
	for id, p := range w.players {
		cell := w.grid.where[id]
		u, ok := updates[cell]
		if !ok {
			u = w.update(cell)
			updates[cell] = u
		}
		// A session that no longer exists on its node fails with NotFound
		// (a local one at once; a remote one is caught by its watch).
		if err := gate.Push(c.Node(), p.session, PushWorld, u); err != nil && rpc.CodeOf(err) == rpc.NotFound {
			gone = append(gone, id)
		}
	}
	for _, id := range gone {
		w.remove(c, id)
	}
}

// update returns the WorldUpdate of the players around cell, by ID.
func (w *worldActor) update(cell int) *arenapb.WorldUpdate {
	u := &arenapb.WorldUpdate{Tick: w.tick}
	w.grid.near(cell, func(id string) {
		p := w.players[id]
		u.Players = append(u.Players, &arenapb.Player{Id: p.id, Name: p.name, X: float32(p.x), Y: float32(p.y)})
	})
	slices.SortFunc(u.Players, func(a, b *arenapb.Player) int { return cmp.Compare(a.Id, b.Id) })
	return u
}
