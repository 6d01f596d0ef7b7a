package actor

import (
	"cmp"
	"slices"
)

// Backlog is one actor's mailbox depth, from Node.TopBacklogs.
type Backlog struct {
	// PID is the actor's.
	PID PID
	// Messages is the number of messages waiting in its mailbox, both
	// lanes, not counting the batch its current turn is handling.
	Messages int
	// Names are the local and global names it holds on this node, if any.
	Names []string
}

// TopBacklogs returns at most n of the node's actors with the deepest
// mailboxes, deepest first, leaving out those with an empty mailbox.
//
// It is meant for dashboards and debugging, not for the hot path, and costs
// nothing until it is called. A call scans the node's whole registry:
// for every live actor it takes that actor's mailbox lock for a few
// instructions (the same lock a sender takes), so it costs O(actors) —
// about 1 ms per 100,000 actors on a 2-core machine, BenchmarkTopBacklogs — plus O(n) name lookups for the
// result. The depths are read one actor at a time, not as one atomic
// snapshot. n <= 0 returns nil.
func (n *Node) TopBacklogs(limit int) []Backlog {
	if limit <= 0 {
		return nil
	}
	type entry struct {
		p     *process
		depth int
	}
	// top is kept sorted, deepest first, and never longer than limit.
	top := make([]entry, 0, min(limit, 64))
	n.procs.each(func(p *process) {
		d := p.mb.depth()
		if d == 0 || (len(top) == limit && d <= top[len(top)-1].depth) {
			return
		}
		i, _ := slices.BinarySearchFunc(top, d, func(e entry, d int) int { return cmp.Compare(d, e.depth) })
		if len(top) == limit {
			top = top[:limit-1]
		}
		top = slices.Insert(top, i, entry{p, d})
	})
	out := make([]Backlog, len(top))
	for i, e := range top {
		out[i] = Backlog{PID: e.p.pid, Messages: e.depth, Names: n.namesOf(e.p.pid)}
	}
	return out
}

// depth returns the number of messages waiting in both lanes.
func (m *mailbox) depth() int {
	m.mu.Lock()
	d := len(m.sys) + len(m.user) + m.fullLen()*laneChunkSize
	m.mu.Unlock()
	return d
}

// EachBacklog calls fn with the mailbox depth of every live actor of the
// node, empty ones included: what a backlog histogram is made of (package
// telemetry/prom's guild_mailbox_backlog). It costs what TopBacklogs's
// scan costs, and nothing until it is called. fn runs on the caller's
// goroutine, with no lock held (the registry is walked lock-free), once
// per actor: it should return at once.
func (n *Node) EachBacklog(fn func(depth int)) {
	n.procs.each(func(p *process) { fn(p.mb.depth()) })
}
