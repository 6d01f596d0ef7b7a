package gate

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate/internal/nodepb"
	"github.com/guildkit/guild/rpc"
)

// hub is a gateway's own actor. It pushes to several of its sessions at
// once, encoding the push frame once (GatePush), and it is the gateway's
// side of the directory (see directory.go): it knows which of its
// sessions are bound to which users and which are in which groups, tells
// the directory shards, and tells them again when a shard is lost. Its
// fields are its own (actor state).
type hub struct {
	g   *Gateway
	log *slog.Logger

	users  map[string]uint64      // user → the serial of its session here
	groups map[string]*localGroup // group → its members here

	shards    [DirShards]actor.PID     // the shards this hub told something, watched; zero: unknown
	retryIn   [DirShards]time.Duration // the next pause before looking for a shard again
	retrying  [DirShards]bool          // a refresh of the shard is scheduled
	requestTO time.Duration            // bounds each request to a shard
}

// localGroup is one group's members on this gateway.
type localGroup struct {
	members map[uint64]struct{}
	// announced: the group's shard knows this gateway has members;
	// announcing: the hub has asked it and waits for its answer.
	announced, announcing bool
	// waiting are the joins that wait for the shard to know.
	waiting []actor.Responder
}

// Messages from a gateway's sessions to its hub.
type (
	// hubBind: the session serial is bound to user; a Call, answered once
	// the user's shard knows (or could not be reached).
	hubBind struct {
		user   string
		serial uint64
	}
	// hubUnbind: the session serial is no longer bound to user.
	hubUnbind struct {
		user   string
		serial uint64
	}
	// hubJoin: the session serial joins group; a Call, answered once the
	// group's shard knows this gateway has members.
	hubJoin struct {
		group  string
		serial uint64
	}
	// hubLeave: the session serial leaves group.
	hubLeave struct {
		group  string
		serial uint64
	}
	// refreshShard: the timer to look for shard index again.
	refreshShard struct{ index int }
	// reannounce asks a session to tell the hub its user and groups again:
	// the hub restarted after a panic, with nothing.
	reannounce struct{}
)

// The pauses between attempts to reach a lost shard: from the first to
// the last, doubling, with jitter.
const (
	shardRetryFirst = 20 * time.Millisecond
	shardRetryMax   = time.Second
)

// startHub starts the gateway's hub and registers it under hubName.
func startHub(ctx context.Context, g *Gateway) (actor.PID, error) {
	to := min(g.lim.RequestTimeout, 5*time.Second)
	pid, err := g.node.Spawn(func() actor.Actor {
		return &hub{g: g, log: g.log, users: make(map[string]uint64), groups: make(map[string]*localGroup), requestTO: to}
	})
	if err != nil {
		return actor.PID{}, fmt.Errorf("gate: %w", err)
	}
	if err := register(ctx, g.node, hubName(g.node.Addr()), pid); err != nil {
		_ = g.node.Stop(pid)
		return actor.PID{}, fmt.Errorf("gate: register the gateway: %w", err)
	}
	return pid, nil
}

// Receive implements actor.Actor.
func (h *hub) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		// After a restart (a panic in the hub), the sessions tell a fresh
		// hub what they are; at the first start there are none.
		for _, pid := range h.g.sessions() {
			_ = c.Send(pid, reannounce{})
		}
	case *nodepb.GatePush:
		h.push(c, m)
	case *nodepb.GroupMembers:
		n := 0
		if lg := h.groups[m.GetGroup()]; lg != nil {
			n = len(lg.members)
		}
		c.Respond(&nodepb.GroupMembers{Group: m.GetGroup(), Count: uint32(n)})
	case hubBind:
		h.bind(c, m)
	case hubUnbind:
		if h.users[m.user] == m.serial {
			delete(h.users, m.user)
		}
		if shard := h.shards[userShard(m.user)]; !shard.IsZero() {
			_ = c.Send(shard, &nodepb.DirRelease{User: m.user, Gate: uint32(c.Self().Node), Serial: m.serial})
		}
	case hubJoin:
		h.join(c, m)
	case hubLeave:
		h.leave(c, m)
	case refreshShard:
		h.retrying[m.index] = false
		h.refresh(c, m.index)
	case actor.Terminated:
		for i, pid := range h.shards {
			if pid == m.PID {
				h.lost(c, i, pid)
			}
		}
	}
}

// push sends a push frame, encoded once, to the sessions it names: by
// serial, or this gateway's members of its group.
func (h *hub) push(c *actor.Context, m *nodepb.GatePush) {
	frame, err := pushFrameOf(m.GetRoute(), m.GetBody())
	if err != nil {
		h.log.Error("gate: cannot encode a push", "route", m.GetRoute(), "err", err)
		return
	}
	self := c.Self().Node
	pf := pushFrame{frame: frame, coalesce: m.GetCoalesce(), droppable: m.GetDroppable()}
	if name := m.GetGroup(); name != "" {
		if lg := h.groups[name]; lg != nil {
			for serial := range lg.members {
				_ = c.Send(actor.PID{Node: self, Serial: serial}, pf)
			}
		}
		return
	}
	for _, serial := range m.GetSerials() {
		_ = c.Send(actor.PID{Node: self, Serial: serial}, pf)
	}
}

// bind records that a session here is bound to a user and claims the
// user in its shard, kicking the session the user had before.
func (h *hub) bind(c *actor.Context, m hubBind) {
	h.users[m.user] = m.serial
	r := c.Responder()
	h.claim(c, m.user, m.serial, false, func() { r.Respond(&nodepb.Ack{}) })
}

// claim tells the user's shard that the session serial here is bound to
// user, and calls done once it answered or could not be reached (then
// the shard's refresh claims again). A session the user had elsewhere
// is kicked; with reassert, a binding the shard has already wins, and it
// is the session here that is kicked.
func (h *hub) claim(c *actor.Context, user string, serial uint64, reassert bool, done func()) {
	i := userShard(user)
	shard, ok := h.shard(c, i)
	if !ok {
		done()
		return
	}
	self := c.Self()
	msg := &nodepb.DirClaim{User: user, Gate: uint32(self.Node), Serial: serial, Hub: self.Serial, Reassert: reassert}
	err := c.Request(shard, msg, h.requestTO, func(reply any, err error) {
		defer done()
		e, ok := reply.(*nodepb.DirEntry)
		if err != nil || !ok {
			h.lost(c, i, shard)
			return
		}
		h.retryIn[i] = 0
		if e.GetSerial() == 0 {
			return
		}
		kick := &nodepb.Kick{Code: uint32(rpc.AlreadyExists), Reason: "logged in elsewhere"}
		if e.GetConflict() { // the user logged in elsewhere while the shard was being rebuilt
			if h.users[user] == serial {
				delete(h.users, user)
			}
			_ = c.Send(actor.PID{Node: self.Node, Serial: serial}, kick)
			return
		}
		_ = c.Send(sessionPID(e), kick)
	})
	if err != nil {
		h.lost(c, i, shard)
		done()
	}
}

// join adds a session here to a group, and answers once the group's
// shard knows this gateway has members.
func (h *hub) join(c *actor.Context, m hubJoin) {
	lg := h.groups[m.group]
	if lg == nil {
		lg = &localGroup{members: make(map[uint64]struct{})}
		h.groups[m.group] = lg
	}
	lg.members[m.serial] = struct{}{}
	if lg.announced {
		c.Respond(&nodepb.Ack{})
		return
	}
	lg.waiting = append(lg.waiting, c.Responder())
	h.announce(c, m.group, lg)
}

// announce tells the group's shard that this gateway has members, unless
// it is being told already; the joins waiting are answered once it knows.
func (h *hub) announce(c *actor.Context, name string, lg *localGroup) {
	if lg.announcing {
		return
	}
	i := groupShard(name)
	shard, ok := h.shard(c, i)
	if !ok {
		return // the shard's refresh announces it
	}
	lg.announcing = true
	self := c.Self()
	msg := &nodepb.DirAnnounce{Group: name, Gate: uint32(self.Node), Hub: self.Serial, Rate: h.g.lim.GroupRate, Burst: uint32(h.g.lim.GroupBurst)}
	err := c.Request(shard, msg, h.requestTO, func(_ any, err error) {
		if h.groups[name] != lg {
			return // emptied meanwhile (and withdrawn after this announce)
		}
		lg.announcing = false
		if err != nil {
			h.lost(c, i, shard)
		}
		if h.shards[i] != shard {
			// The shard was lost and replaced meanwhile (its refresh
			// skipped this group, being announced): tell the new one.
			if !h.shards[i].IsZero() {
				h.announce(c, name, lg)
			}
			return
		}
		if err != nil {
			return
		}
		h.retryIn[i] = 0
		lg.announced = true
		for _, r := range lg.waiting {
			r.Respond(&nodepb.Ack{})
		}
		lg.waiting = nil
	})
	if err != nil {
		lg.announcing = false
		h.lost(c, i, shard)
	}
}

// leave removes a session here from a group; the last member's leave
// withdraws this gateway from the group's shard.
func (h *hub) leave(c *actor.Context, m hubLeave) {
	lg := h.groups[m.group]
	if lg == nil {
		return
	}
	delete(lg.members, m.serial)
	if len(lg.members) > 0 {
		return
	}
	delete(h.groups, m.group)
	for _, r := range lg.waiting { // sessions that ended while they joined
		r.Respond(&nodepb.Ack{})
	}
	shard := h.shards[groupShard(m.group)]
	if (lg.announced || lg.announcing) && !shard.IsZero() {
		// After the announce, from the same sender: the shard sees them in order.
		_ = c.Send(shard, &nodepb.DirWithdraw{Group: m.group, Gate: uint32(c.Self().Node)})
	}
}

// shard returns the PID of directory shard i, looking it up (starting it
// when no gateway has) and watching it the first time. When it cannot, it
// schedules a refresh and reports false.
func (h *hub) shard(c *actor.Context, i int) (actor.PID, bool) {
	if pid := h.shards[i]; !pid.IsZero() {
		return pid, true
	}
	if h.retrying[i] {
		return actor.PID{}, false // its refresh tells it
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.requestTO)
	pid, err := ensureShard(ctx, c, h.g, i)
	cancel()
	if err != nil {
		h.log.Warn("gate: directory shard unreachable; retrying", "shard", i, "err", err)
		h.retryLater(c, i)
		return actor.PID{}, false
	}
	h.shards[i] = pid
	c.Watch(pid)
	return pid, true
}

// lost forgets shard i, whose PID was pid, when it is still the one
// known: it ended, or a request to it failed. What this gateway told it
// is told again to the shard found next.
func (h *hub) lost(c *actor.Context, i int, pid actor.PID) {
	if h.shards[i] != pid {
		return // forgotten already
	}
	c.Unwatch(pid)
	h.shards[i] = actor.PID{}
	for name, lg := range h.groups {
		if groupShard(name) == i {
			lg.announced = false
		}
	}
	h.retryLater(c, i)
}

// retryLater schedules a refresh of shard i after a pause that doubles
// from shardRetryFirst to shardRetryMax, with jitter, unless one is
// scheduled already.
func (h *hub) retryLater(c *actor.Context, i int) {
	if h.retrying[i] {
		return
	}
	h.retrying[i] = true
	d := h.retryIn[i]
	switch {
	case d == 0:
		d = shardRetryFirst
	case d < shardRetryMax:
		d = min(2*d, shardRetryMax)
	}
	h.retryIn[i] = d
	c.After(d/2+rand.N(d/2+1), refreshShard{index: i})
}

// refresh tells shard i (found anew) everything this gateway knows that
// belongs in it: its sessions' users (reasserted: a binding made
// meanwhile wins) and the groups it has members of.
func (h *hub) refresh(c *actor.Context, i int) {
	if _, ok := h.shard(c, i); !ok {
		return
	}
	for user, serial := range h.users {
		if h.shards[i].IsZero() {
			return // lost again: its next refresh goes on
		}
		if userShard(user) == i {
			h.claim(c, user, serial, true, func() {})
		}
	}
	for name, lg := range h.groups {
		if h.shards[i].IsZero() {
			return
		}
		if groupShard(name) == i && !lg.announced {
			h.announce(c, name, lg)
		}
	}
}
