package arena

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"math"
	mrand "math/rand/v2"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/examples/arena/arenapb"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/rpc"
)

// maxStep bounds the time one tick moves the players by, so that a
// stalled node does not teleport them when it wakes.
const maxStep = 250 * time.Millisecond

// Where a new player starts when WorldSettings.Spawn is not set: this
// far from the player who arrived last, or this close to the room's
// centre when the room is empty. A view is about 800 x 600 units.
const (
	spawnNear   = 60.0
	spawnFar    = 160.0
	spawnCentre = 100.0
	spawnMargin = 30.0
)

// player is one player's state, owned by the world actor.
type player struct {
	id, name string
	key      string    // nameKey(name): its entry in worldActor.byName
	resume   string    // its resume token: its entry in worldActor.byResume
	session  string    // the gateway session to push to
	pid      actor.PID // the same, parsed
	x, y     float64
	dx, dy   float64 // heading, of length at most 1
	seen     time.Time
	score    uint32 // in the current round
}

// tick is the world actor's timer message.
type tick struct{}

// boardChanged carries a leaderboard from the leaderboard grain (through
// a player grain, or loaded at start) back into the world actor.
type boardChanged struct{ board *arenapb.Leaderboard }

// worldActor owns every player's and every orb's state. It alone touches
// it: the World rpc service and the arena gate service ask it with Call,
// and its timer moves the players, hands out the orbs they touch, ends
// the rounds, and sends each player the players and orbs near it. It
// never waits for a grain: it asks them with Request, and their answers
// come back as messages.
//
// Its messages are the World service's requests (*arenapb.EnterRequest,
// ...), answered with the reply or an *rpc.Status.
type worldActor struct {
	s        WorldSettings
	grains   *grain.System // the records and the leaderboard; nil: none
	players  map[string]*player
	byName   map[string]string    // player ID by name key: names are unique online
	byResume map[string]string    // player ID by resume token
	session  map[actor.PID]string // player ID by the session actors it watches
	grid     *grid[string]
	byCell   map[int][]string // each cell's sessions, rebuilt each tick (empty: no player)
	lastIn   string           // the ID of the player who arrived last, to spawn near
	orbs     map[uint32]*orb
	orbGrid  *grid[uint32]
	nextOrb  uint32
	board    *arenapb.Leaderboard // the newest leaderboard seen
	round    uint32
	roundEnd time.Time
	tick     uint64
	last     time.Time
	now      func() time.Time
	rand     *mrand.Rand
}

func newWorldActor(s WorldSettings, grains *grain.System) *worldActor {
	return &worldActor{
		s:        s,
		grains:   grains,
		players:  make(map[string]*player),
		byName:   make(map[string]string),
		byResume: make(map[string]string),
		session:  make(map[actor.PID]string),
		grid:     newGrid[string](s.Width, s.Height, s.Cell),
		byCell:   make(map[int][]string),
		orbs:     make(map[uint32]*orb),
		orbGrid:  newGrid[uint32](s.Width, s.Height, s.Cell),
		board:    &arenapb.Leaderboard{},
		now:      time.Now,
		rand:     mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64())),
	}
}

func (w *worldActor) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		// Also after a restart (the producer hands back this value): the
		// players, orbs and round stay.
		w.last = w.now()
		if w.round == 0 {
			w.round, w.roundEnd = 1, w.last.Add(time.Duration(w.s.Round))
		}
		w.fillOrbs(w.last)
		c.Every(time.Duration(w.s.Tick), tick{})
		if w.board.GetVersion() == 0 {
			w.loadBoard(c) // the module could not load it, or it is empty
		}
	case tick:
		w.step(c)
	case boardChanged:
		w.setBoard(c, m.board)
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
		c.Respond(p.proto())
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

func (p *player) proto() *arenapb.Player {
	return &arenapb.Player{Id: p.id, Name: p.name, X: float32(p.x), Y: float32(p.y), Score: p.score}
}

// enter puts a player into the world; or updates a player that enters
// again (a page that rejoined on the same session); or, given a resume
// token, moves the player it names to a new session (a page that
// reconnected) with its place and score.
func (w *worldActor) enter(c *actor.Context, m *arenapb.EnterRequest) (*arenapb.JoinReply, error) {
	if m.GetPlayerId() == "" {
		return nil, rpc.Error(rpc.InvalidArgument, "enter: no player ID")
	}
	name, err := checkName(m.GetName())
	if err != nil {
		return nil, err
	}
	pid, err := gate.ParseSessionID(m.GetSessionId())
	if err != nil {
		return nil, err
	}
	p, ok := w.players[m.GetPlayerId()]
	if !ok && m.GetResume() != "" {
		p, ok = w.players[w.byResume[m.GetResume()]]
	}
	key := nameKey(name)
	if holder, taken := w.byName[key]; taken && (!ok || holder != p.id) {
		return nil, errNameTaken(name)
	}
	if !ok {
		p = &player{id: m.GetPlayerId(), resume: newToken()}
		p.x, p.y = w.spawnPoint()
		w.players[p.id] = p
		w.byResume[p.resume] = p.id
		w.grid.move(p.id, p.x, p.y)
		w.lastIn = p.id
	}
	if p.key != key {
		delete(w.byName, p.key)
		w.byName[key], p.key = p.id, key
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
		PlayerId:     p.id,
		Width:        float32(w.s.Width),
		Height:       float32(w.s.Height),
		X:            float32(p.x),
		Y:            float32(p.y),
		Score:        p.score,
		Resume:       p.resume,
		Leaderboard:  w.board,
		Round:        w.round,
		RoundLeftMs:  w.roundLeftMs(w.now()),
		PickupRadius: PickupRadius,
	}, nil
}

// spawnPoint is where a new player starts: the settings' Spawn point, or
// near the player who arrived last, so that the two see each other (two
// browser tabs, a player and the bot that follows), or near the centre
// of an empty room.
func (w *worldActor) spawnPoint() (x, y float64) {
	if len(w.s.Spawn) == 2 {
		return w.s.Spawn[0], w.s.Spawn[1]
	}
	cx, cy, r0, r1 := w.s.Width/2, w.s.Height/2, 0.0, spawnCentre
	if q, ok := w.players[w.lastIn]; ok {
		cx, cy, r0, r1 = q.x, q.y, spawnNear, spawnFar
	}
	a := w.rand.Float64() * 2 * math.Pi
	r := r0 + w.rand.Float64()*(r1-r0)
	return w.clamp(cx+r*math.Cos(a), cy+r*math.Sin(a), spawnMargin)
}

// clamp returns (x, y) moved inside the room, margin from its walls (or
// in its middle, for a room narrower than two margins).
func (w *worldActor) clamp(x, y, margin float64) (float64, float64) {
	mx, my := min(margin, w.s.Width/2), min(margin, w.s.Height/2)
	return min(max(x, mx), w.s.Width-mx), min(max(y, my), w.s.Height-my)
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
	delete(w.byName, p.key)
	delete(w.byResume, p.resume)
	w.grid.remove(id)
}

func (w *worldActor) unwatch(c *actor.Context, p *player) {
	if _, ok := w.session[p.pid]; ok {
		delete(w.session, p.pid)
		c.Unwatch(p.pid)
	}
}

// step is one tick: drop the idle players, move the others, hand out the
// orbs they touch, replace the orbs picked up or expired, end the round when its time is up, and send each
// player the players and orbs in the 3x3 cells around it. The players of
// one cell see the same neighbourhood, so each occupied cell's update is
// built once.
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
	for _, pk := range w.pickups() {
		w.report(c, w.players[pk.player], pk.value)
	}
	w.expireOrbs(now)
	w.fillOrbs(now)
	if !now.Before(w.roundEnd) {
		w.endRound(c, now)
	}

	roundLeft := w.roundLeftMs(now)
	for cell, sessions := range w.byCell {
		w.byCell[cell] = sessions[:0] // keep the slices: at most one per cell
	}
	for id, p := range w.players {
		if p.session == "" { // not behind a gateway: nothing to push to
			continue
		}
		cell := w.grid.where[id]
		w.byCell[cell] = append(w.byCell[cell], p.session)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	for cell, sessions := range w.byCell {
		if len(sessions) == 0 {
			continue
		}
		u := w.update(cell)
		u.Round, u.RoundLeftMs = w.round, roundLeft
		// One update per cell, encoded once for all its players. A
		// session that has gone is skipped: its watch removes its player.
		// The update is latest-wins: a player slow to read gets the newest
		// in place of one still waiting, not a backlog.
		if err := gate.PushMany(ctx, c.Node(), sessions, PushWorld, u, worldPush); err != nil {
			c.Logger().Warn("arena: a world update was not pushed to every gateway", "cell", cell, "err", err)
		}
	}
}

// worldPush: a world update replaces the one still waiting for a slow
// client (see gate.PushOptions).
var worldPush = gate.PushOptions{Coalesce: PushWorld}

// pushAll pushes msg on route to every player, encoded once.
func (w *worldActor) pushAll(c *actor.Context, route string, msg proto.Message, opts gate.PushOptions) {
	sessions := make([]string, 0, len(w.players))
	for _, p := range w.players {
		if p.session != "" { // not behind a gateway: nothing to push to
			sessions = append(sessions, p.session)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := gate.PushMany(ctx, c.Node(), sessions, route, msg, opts); err != nil {
		c.Logger().Warn("arena: a push was not sent to every gateway", "route", route, "err", err)
	}
}

// update returns the WorldUpdate of the players and orbs around cell,
// each sorted by ID.
func (w *worldActor) update(cell int) *arenapb.WorldUpdate {
	u := &arenapb.WorldUpdate{Tick: w.tick}
	w.grid.near(cell, func(id string) {
		u.Players = append(u.Players, w.players[id].proto())
	})
	slices.SortFunc(u.Players, func(a, b *arenapb.Player) int { return cmp.Compare(a.Id, b.Id) })
	w.orbGrid.near(cell, func(id uint32) {
		o := w.orbs[id]
		u.Orbs = append(u.Orbs, &arenapb.Orb{Id: o.id, X: float32(o.x), Y: float32(o.y), Value: o.value})
	})
	slices.SortFunc(u.Orbs, func(a, b *arenapb.Orb) int { return cmp.Compare(a.Id, b.Id) })
	return u
}

// roundLeftMs returns the milliseconds left in the round at now.
func (w *worldActor) roundLeftMs(now time.Time) uint32 {
	return uint32(max(w.roundEnd.Sub(now), 0).Milliseconds())
}

// endRound announces the round's best players to everyone, starts the
// next round and sets every score back to zero. The scores are already
// on the leaderboard: each one was reported as it grew.
func (w *worldActor) endRound(c *actor.Context, now time.Time) {
	over := &arenapb.RoundOver{Round: w.round, Top: w.top(3), Next: w.round + 1, NextMs: uint32(time.Duration(w.s.Round).Milliseconds())}
	w.pushAll(c, PushRound, over, gate.PushOptions{})
	for _, p := range w.players {
		if p.score > 0 {
			w.countRound(c, p)
		}
		p.score = 0
	}
	w.round++
	w.roundEnd = now.Add(time.Duration(w.s.Round))
}

// top returns the n best players that scored, best first; of equal
// scores, by name.
func (w *worldActor) top(n int) []*arenapb.Player {
	var ps []*arenapb.Player
	for _, p := range w.players {
		if p.score > 0 {
			ps = append(ps, p.proto())
		}
	}
	slices.SortFunc(ps, func(a, b *arenapb.Player) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Id, b.Id))
	})
	return ps[:min(n, len(ps))]
}

// report tells p's record (a grain) the score p just reached, without
// waiting: a new best goes on to the leaderboard, whose new state comes
// back as a boardChanged message.
func (w *worldActor) report(c *actor.Context, p *player, gained uint32) {
	if w.grains == nil {
		return
	}
	self, node, log := c.Self(), c.Node(), c.Logger()
	req := &arenapb.ScoreRequest{Name: p.name, Score: p.score, Gained: gained}
	err := w.grains.Request(playerID(p.name), req, callTimeout, func(reply any, err error) {
		if err != nil {
			log.Warn("arena: a player's record did not take a score", "name", req.Name, "score", req.Score, "err", err)
			return
		}
		if r, ok := reply.(*arenapb.ScoreReply); ok && r.GetLeaderboard() != nil {
			_ = node.Send(self, boardChanged{r.GetLeaderboard()})
		}
	})
	if err != nil {
		log.Warn("arena: a player's record did not take a score", "name", req.Name, "score", req.Score, "err", err)
	}
}

// countRound tells p's record (a grain) that p ended a round with its
// score, without waiting (its activation may have to load it).
func (w *worldActor) countRound(c *actor.Context, p *player) {
	if w.grains == nil {
		return
	}
	log := c.Logger()
	req := &arenapb.RoundRequest{Name: p.name, Score: p.score}
	err := w.grains.Request(playerID(p.name), req, callTimeout, func(_ any, err error) {
		if err != nil {
			log.Warn("arena: a player's record did not take a round", "name", req.Name, "score", req.Score, "err", err)
		}
	})
	if err != nil {
		log.Warn("arena: a player's record did not take a round", "name", req.Name, "score", req.Score, "err", err)
	}
}

// loadBoard asks the leaderboard grain for the leaderboard, which comes
// back as a boardChanged message.
func (w *worldActor) loadBoard(c *actor.Context) {
	if w.grains == nil {
		return
	}
	self, node, log := c.Self(), c.Node(), c.Logger()
	err := w.grains.Request(leaderboardID, &arenapb.BoardRequest{}, callTimeout, func(reply any, err error) {
		if err != nil {
			log.Warn("arena: could not load the leaderboard", "err", err)
			return
		}
		if b, ok := reply.(*arenapb.Leaderboard); ok {
			_ = node.Send(self, boardChanged{b})
		}
	})
	if err != nil {
		log.Warn("arena: could not load the leaderboard", "err", err)
	}
}

// setBoard keeps board if it is newer than the world's, and pushes it to
// every player. Boards may come back out of order; the newest wins.
func (w *worldActor) setBoard(c *actor.Context, board *arenapb.Leaderboard) {
	if board.GetVersion() <= w.board.GetVersion() {
		return
	}
	w.board = board
	w.pushAll(c, PushBoard, board, gate.PushOptions{Coalesce: PushBoard})
}

// newToken returns a fresh random resume token: 32 hex digits, which no
// other player sees.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
