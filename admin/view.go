package admin

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
)

// View is what the page shows: every member (and the nodes that left
// lately), each with its latest snapshot and the rates since the one
// before. GET /api/view returns it and /api/events streams it.
type View struct {
	// Time is when the serving node gathered it.
	Time time.Time `json:"time"`
	// Serving is the address of the node that serves the page.
	Serving string `json:"serving"`
	// Actions says whether actions are enabled (a token is set).
	Actions bool `json:"actions"`
	// Nodes are sorted by address.
	Nodes []NodeView `json:"nodes"`
}

// NodeView is one node on the page.
type NodeView struct {
	Addr     string            `json:"addr"`
	Name     string            `json:"name"`
	Endpoint string            `json:"endpoint"`
	Services []string          `json:"services"`
	Meta     map[string]string `json:"meta,omitempty"`
	// Member is false for a node that left the membership lately: it is
	// listed, unreachable, for a minute.
	Member    bool      `json:"member"`
	Available bool      `json:"available"`
	Started   time.Time `json:"started"`
	Uptime    float64   `json:"uptime_seconds"`
	// Reachable is false when the node's agent did not answer within the
	// deadline (Config.NodeTimeout); Error says why.
	Reachable bool      `json:"reachable"`
	Error     string    `json:"error,omitempty"`
	Snapshot  *Snapshot `json:"snapshot,omitempty"`
	Rates     Rates     `json:"rates"`
	RPC       []RPCView `json:"rpc,omitempty"`
}

// Rates are per second, between a node's last two snapshots (zero after
// the first).
type Rates struct {
	Messages         float64 `json:"messages"`
	SystemMessages   float64 `json:"system_messages"`
	DeadLetters      float64 `json:"dead_letters"`
	Panics           float64 `json:"panics"`
	Restarts         float64 `json:"restarts"`
	GatewayResponses float64 `json:"gateway_responses"`
	GatewayErrors    float64 `json:"gateway_errors"`
	Pushes           float64 `json:"pushes"`
}

// RPCView is one method's calls between two snapshots: the rate and,
// when there were calls, the median and 99th percentile in seconds
// (interpolated within the histogram's buckets).
type RPCView struct {
	Side   string   `json:"side"`
	Method string   `json:"method"`
	Rate   float64  `json:"rate"`
	P50    *float64 `json:"p50,omitempty"`
	P99    *float64 `json:"p99,omitempty"`
	Calls  uint64   `json:"calls"`
	Errors uint64   `json:"errors"`
}

// goneFor is how long a node that left the membership stays on the page.
const goneFor = time.Minute

// seenNode is what the Server remembers of a node between views.
type seenNode struct {
	member   cluster.Member
	last     *Snapshot // latest snapshot, nil if none yet
	lastSeen time.Time // when it was last in the membership
}

// gathered is one member's answer.
type gathered struct {
	member cluster.Member
	snap   *Snapshot
	err    error
}

// buildView turns the gathered answers into a View, updating seen (the
// caller holds the Server's lock; nothing here calls out).
func buildView(now time.Time, serving actor.Addr, actions bool, answers []gathered, seen map[actor.Addr]*seenNode) View {
	v := View{Time: now, Serving: serving.String(), Actions: actions}
	present := make(map[actor.Addr]bool, len(answers))
	for _, g := range answers {
		m := g.member
		present[m.Addr] = true
		sn := seen[m.Addr]
		if sn == nil {
			sn = &seenNode{}
			seen[m.Addr] = sn
		}
		sn.member, sn.lastSeen = m, now
		nv := nodeView(m, now)
		nv.Member = true
		if g.err != nil {
			nv.Error = g.err.Error()
		} else {
			nv.Reachable = true
			nv.Snapshot = g.snap
			if prev := sn.last; prev != nil {
				nv.Rates, nv.RPC = rates(prev, g.snap)
			} else {
				_, nv.RPC = rates(g.snap, g.snap)
			}
			sn.last = g.snap
		}
		if nv.Name == "" && g.snap != nil {
			nv.Name = g.snap.Node
		}
		v.Nodes = append(v.Nodes, nv)
	}
	for addr, sn := range seen {
		if present[addr] {
			continue
		}
		if now.Sub(sn.lastSeen) > goneFor {
			delete(seen, addr)
			continue
		}
		nv := nodeView(sn.member, now)
		nv.Available, nv.Uptime = false, 0
		nv.Error = "left the membership (stopped, drained or its lease expired)"
		if nv.Name == "" && sn.last != nil {
			nv.Name = sn.last.Node
		}
		v.Nodes = append(v.Nodes, nv)
	}
	slices.SortFunc(v.Nodes, func(a, b NodeView) int {
		pa, _ := actor.ParseAddr(a.Addr)
		pb, _ := actor.ParseAddr(b.Addr)
		return int(pa) - int(pb)
	})
	return v
}

// metaNode is the Meta key under which package app puts a member's node
// name (app.MetaNode; admin does not import app).
const metaNode = "guild.node"

func nodeView(m cluster.Member, now time.Time) NodeView {
	nv := NodeView{
		Addr: m.Addr.String(), Name: m.Meta[metaNode], Endpoint: m.Endpoint,
		Services: slices.Clone(m.Services), Meta: maps.Clone(m.Meta),
		Available: m.Available, Started: m.Started,
	}
	if nv.Services == nil {
		nv.Services = []string{}
	}
	if !m.Started.IsZero() {
		nv.Uptime = now.Sub(m.Started).Seconds()
	}
	return nv
}

// rates computes the rates from prev to cur (the same snapshot twice
// gives zero rates and cumulative RPC figures without quantiles).
func rates(prev, cur *Snapshot) (Rates, []RPCView) {
	dt := cur.Time.Sub(prev.Time).Seconds()
	per := func(a, b uint64) float64 {
		if dt <= 0 || b < a {
			return 0
		}
		return float64(b-a) / dt
	}
	r := Rates{
		Messages:       per(prev.Actor.Messages, cur.Actor.Messages),
		SystemMessages: per(prev.Actor.SystemMessages, cur.Actor.SystemMessages),
		DeadLetters:    per(prev.Actor.DeadLetters, cur.Actor.DeadLetters),
		Panics:         per(prev.Actor.Panics, cur.Actor.Panics),
		Restarts:       per(prev.Actor.Restarts, cur.Actor.Restarts),
	}
	if pg, cg := prev.Gateway, cur.Gateway; pg != nil && cg != nil {
		r.GatewayResponses = per(pg.Responses, cg.Responses)
		r.GatewayErrors = per(pg.Errors, cg.Errors)
		r.Pushes = per(pg.Pushes, cg.Pushes)
	}
	before := make(map[[2]string]RPCStats, len(prev.RPC))
	for _, s := range prev.RPC {
		before[[2]string{s.Side, s.Method}] = s
	}
	var out []RPCView
	for _, s := range cur.RPC {
		rv := RPCView{Side: s.Side, Method: s.Method, Calls: s.Calls, Errors: s.Errors}
		p, ok := before[[2]string{s.Side, s.Method}]
		if !ok || p.Calls > s.Calls || len(p.Buckets) != len(s.Buckets) || dt <= 0 {
			out = append(out, rv)
			continue
		}
		rv.Rate = per(p.Calls, s.Calls)
		if n := s.Calls - p.Calls; n > 0 {
			delta := make([]uint64, len(s.Buckets))
			for i := range delta {
				delta[i] = s.Buckets[i] - min(p.Buckets[i], s.Buckets[i])
			}
			q50, q99 := quantile(0.5, n, delta, cur.RPCBounds), quantile(0.99, n, delta, cur.RPCBounds)
			rv.P50, rv.P99 = &q50, &q99
		}
		out = append(out, rv)
	}
	slices.SortFunc(out, func(a, b RPCView) int {
		if a.Side != b.Side {
			return strings.Compare(b.Side, a.Side) // server first
		}
		return strings.Compare(a.Method, b.Method)
	})
	return r, out
}

// quantile estimates the q quantile of total observations from
// cumulative bucket counts and their upper bounds, interpolating
// linearly within the bucket it falls in (as Prometheus's
// histogram_quantile does). Past the last bound it returns the last
// bound.
func quantile(q float64, total uint64, cum []uint64, bounds []float64) float64 {
	if total == 0 || len(bounds) == 0 || len(cum) != len(bounds) {
		return 0
	}
	rank := q * float64(total)
	var lowerCount uint64
	lower := 0.0
	for i, c := range cum {
		if float64(c) >= rank {
			if c == lowerCount {
				return bounds[i]
			}
			return lower + (bounds[i]-lower)*(rank-float64(lowerCount))/float64(c-lowerCount)
		}
		lowerCount, lower = c, bounds[i]
	}
	return bounds[len(bounds)-1]
}
