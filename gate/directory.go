package gate

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate/internal/nodepb"
)

// The directory: which session each user is bound to, and which gateways
// have members of each group. It is split into DirShards shards by a
// hash of the user ID or group name. Each shard is an actor on one
// gateway node, under the name "gate.dir/<index>" (global on a cluster
// node: one etcd key per shard, however many players there are; local on
// a node without global names). The first gateway that needs a shard
// starts it, as a child of its hub.
//
// A shard holds nothing that cannot be rebuilt: the truth is in the
// gateways, each of which knows its own sessions' users and groups (its
// hub keeps them). Every hub watches the shards it told something; when
// one ends (its gateway shut down, died or left), the hubs start a new
// one and tell it again what they know. A shard watches the hubs that
// told it something; when a gateway ends, its sessions' entries are
// dropped. So logins, lookups, group joins and broadcasts write nothing
// to etcd, and no single process holds what a group or a user's binding
// needs to survive it.

// DirShards is the number of shards of the gateways' directory. Every
// node of a cluster must use the same number: it is a constant.
const DirShards = 64

// dirName is the name of directory shard i.
func dirName(i int) string { return "gate.dir/" + strconv.Itoa(i) }

// shardOf returns the shard of a key: "u/" and a user ID, or "g/" and a
// group name.
func shardOf(key string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % DirShards)
}

func userShard(uid string) int   { return shardOf("u/" + uid) }
func groupShard(name string) int { return shardOf("g/" + name) }
func sessionPID(e *nodepb.DirEntry) actor.PID {
	return actor.PID{Node: actor.Addr(e.GetGate()), Serial: e.GetSerial()}
}

// lookupShard returns the PID of directory shard i, or an error matching
// actor.ErrNameNotFound when no gateway has started it: then it knows
// nothing.
func lookupShard(ctx context.Context, n *actor.Node, i int) (actor.PID, error) {
	return lookup(ctx, n, dirName(i))
}

// ensureShard returns the PID of directory shard i, starting it as a
// child of the hub c when no gateway has. When two gateways start one at
// once, the first to register the name wins and the other stops its own.
func ensureShard(ctx context.Context, c *actor.Context, g *Gateway, i int) (actor.PID, error) {
	n := c.Node()
	for range 3 {
		if pid, err := lookupShard(ctx, n, i); err == nil {
			return pid, nil
		} else if !errors.Is(err, actor.ErrNameNotFound) {
			return actor.PID{}, err
		}
		pid, err := c.Spawn(func() actor.Actor { return &dirShard{g: g, index: i} })
		if err != nil {
			return actor.PID{}, err
		}
		err = register(ctx, n, dirName(i), pid)
		if err == nil {
			return pid, nil
		}
		_ = c.Stop(pid)
		if !errors.Is(err, actor.ErrNameTaken) {
			return actor.PID{}, err
		}
	}
	return actor.PID{}, fmt.Errorf("gate: directory shard %d: the name keeps changing hands", i)
}

// dirShard is the actor of one directory shard. Its fields are its own.
type dirShard struct {
	g     *Gateway // the gateway it runs on: its PushStats count throttled broadcasts
	index int
	users map[string]actor.PID     // user → session
	group map[string]*shardGroup   // group → the gateways with members
	hubs  map[actor.Addr]actor.PID // the hubs that told it something, watched
}

// shardGroup is one group in its directory shard: the hubs of the
// gateways that have members, and the group's broadcast budget.
type shardGroup struct {
	hubs   map[actor.Addr]actor.PID
	rate   float64
	burst  int
	tokens float64   // broadcasts it may send now
	at     time.Time // when tokens was last refilled
}

// allow reports whether a broadcast at now is within the group's budget
// (rate a second, bursts of burst), and takes its token.
func (gr *shardGroup) allow(now time.Time) bool {
	if !gr.at.IsZero() {
		gr.tokens = min(float64(gr.burst), gr.tokens+now.Sub(gr.at).Seconds()*gr.rate)
	}
	gr.at = now
	if gr.tokens < 1 {
		return false
	}
	gr.tokens--
	return true
}

// Receive implements actor.Actor.
func (d *dirShard) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		d.users = make(map[string]actor.PID)
		d.group = make(map[string]*shardGroup)
		d.hubs = make(map[actor.Addr]actor.PID)
	case *nodepb.DirClaim:
		d.hub(c, actor.Addr(m.GetGate()), m.GetHub())
		pid := actor.PID{Node: actor.Addr(m.GetGate()), Serial: m.GetSerial()}
		old, had := d.users[m.GetUser()]
		if had && old != pid && m.GetReassert() {
			c.Respond(&nodepb.DirEntry{Gate: uint32(old.Node), Serial: old.Serial, Conflict: true})
			return
		}
		d.users[m.GetUser()] = pid
		if had && old != pid {
			c.Respond(&nodepb.DirEntry{Gate: uint32(old.Node), Serial: old.Serial})
			return
		}
		c.Respond(&nodepb.DirEntry{})
	case *nodepb.DirRelease:
		pid := actor.PID{Node: actor.Addr(m.GetGate()), Serial: m.GetSerial()}
		if d.users[m.GetUser()] == pid {
			delete(d.users, m.GetUser())
		}
	case *nodepb.DirLookup:
		pid := d.users[m.GetUser()]
		c.Respond(&nodepb.DirEntry{Gate: uint32(pid.Node), Serial: pid.Serial})
	case *nodepb.DirAnnounce:
		gate := actor.Addr(m.GetGate())
		hub := d.hub(c, gate, m.GetHub())
		gr := d.group[m.GetGroup()]
		if gr == nil {
			gr = &shardGroup{hubs: make(map[actor.Addr]actor.PID), rate: m.GetRate(), burst: int(m.GetBurst()), tokens: float64(m.GetBurst())}
			d.group[m.GetGroup()] = gr
		}
		gr.hubs[gate] = hub
		c.Respond(&nodepb.Ack{})
	case *nodepb.DirWithdraw:
		if gr := d.group[m.GetGroup()]; gr != nil {
			delete(gr.hubs, actor.Addr(m.GetGate()))
			if len(gr.hubs) == 0 {
				delete(d.group, m.GetGroup())
			}
		}
	case *nodepb.DirGates:
		reply := &nodepb.DirGates{Group: m.GetGroup()}
		if gr := d.group[m.GetGroup()]; gr != nil {
			for _, hub := range gr.hubs {
				reply.Hubs = append(reply.Hubs, &nodepb.DirEntry{Gate: uint32(hub.Node), Serial: hub.Serial})
			}
		}
		c.Respond(reply)
	case *nodepb.GroupBroadcast:
		d.broadcast(c, m)
	case actor.Terminated:
		if d.hubs[m.PID.Node] == m.PID {
			d.purge(m.PID.Node)
		}
	}
}

// hub records the hub of gateway gate, watching it, and returns its PID.
// A new hub for a gateway (a new process at the same address) drops what
// the old one had told first.
func (d *dirShard) hub(c *actor.Context, gate actor.Addr, serial uint64) actor.PID {
	pid := actor.PID{Node: gate, Serial: serial}
	cur, ok := d.hubs[gate]
	if ok && cur == pid {
		return pid
	}
	if ok {
		c.Unwatch(cur)
		d.purge(gate)
	}
	d.hubs[gate] = pid
	c.Watch(pid)
	return pid
}

// purge drops everything gateway gate told the shard: its hub ended.
func (d *dirShard) purge(gate actor.Addr) {
	delete(d.hubs, gate)
	for u, pid := range d.users {
		if pid.Node == gate {
			delete(d.users, u)
		}
	}
	for name, gr := range d.group {
		delete(gr.hubs, gate)
		if len(gr.hubs) == 0 {
			delete(d.group, name)
		}
	}
}

// broadcast sends each gateway with members of the group one GatePush
// naming it, within the group's budget.
func (d *dirShard) broadcast(c *actor.Context, m *nodepb.GroupBroadcast) {
	gr := d.group[m.GetGroup()]
	if gr == nil {
		return // no member anywhere
	}
	if !gr.allow(time.Now()) {
		d.g.pushes.throttled.Add(1)
		return
	}
	push := &nodepb.GatePush{Route: m.GetRoute(), Body: m.GetBody(), Group: m.GetGroup(), Coalesce: m.GetCoalesce(), Droppable: m.GetDroppable()}
	for gate, hub := range gr.hubs {
		if err := c.Send(hub, push); err != nil {
			c.Logger().Warn("gate: group broadcast", "group", m.GetGroup(), "gate", gate, "err", err)
		}
	}
}
