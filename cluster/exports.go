package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/wire"
)

// Exported members across clusters (clustergo's Export rule through the
// harbors):
//
//   - each harbor publishes the exported, available members of its own
//     cluster in its record of the harbors' membership, under the Meta key
//     ExportsMeta (addresses separated by commas): the harbors' etcd holds
//     them, no cluster's etcd does;
//   - each harbor sends the nodes of its cluster, as a SystemExports
//     envelope, the exported members the other clusters' harbors publish,
//     when they change and every exportsRefresh;
//   - a node keeps the last list of each harbor of its cluster while that
//     harbor is in its harbor map, and Node.View merges them into the
//     members it returns, as available and exported records of their
//     address only (no endpoint: they are reached through the harbors).

// ExportsMeta is the Meta key of a harbor's record, in the harbors'
// membership, that lists the exported members of its cluster.
const ExportsMeta = "guild.exports"

// MaxExports bounds the addresses of one exports list.
const MaxExports = 4096

// ErrBadExports: an exports list does not parse.
var ErrBadExports = errors.New("cluster: bad exports list")

// formatExports writes addrs as an exports list.
func formatExports(addrs []actor.Addr) string {
	var b strings.Builder
	for i, a := range addrs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a.String())
	}
	return b.String()
}

// ParseExports parses an exports list (addresses "cluster.type.index"
// separated by commas; empty for none), as it arrives from a harbor. It
// refuses more than MaxExports addresses, a harbor's address and
// duplicates, with an error matching ErrBadExports; the result is sorted.
func ParseExports(b []byte) ([]actor.Addr, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if n := bytes.Count(b, []byte{','}) + 1; n > MaxExports {
		return nil, fmt.Errorf("%w: %d addresses, more than %d", ErrBadExports, n, MaxExports)
	}
	var out []actor.Addr
	for part := range bytes.SplitSeq(b, []byte{','}) {
		a, err := actor.ParseAddr(string(part))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadExports, err)
		}
		if a == 0 || a.IsHarbor() {
			return nil, fmt.Errorf("%w: %v is not a node that can be exported", ErrBadExports, a)
		}
		out = append(out, a)
	}
	slices.Sort(out)
	if len(slices.Compact(slices.Clone(out))) != len(out) {
		return nil, fmt.Errorf("%w: an address is listed twice", ErrBadExports)
	}
	return out, nil
}

// exportTable holds the last exports list of each harbor of this node's
// cluster.
type exportTable struct {
	mu       sync.Mutex
	byHarbor map[actor.Addr][]actor.Addr
}

// set records harbor's list.
func (t *exportTable) set(harbor actor.Addr, addrs []actor.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byHarbor == nil {
		t.byHarbor = make(map[actor.Addr][]actor.Addr)
	}
	t.byHarbor[harbor] = addrs
}

// of returns the union of the lists of harbors, sorted, without the
// addresses of cluster self (a harbor never lists them; a stale list
// might).
func (t *exportTable) of(harbors []actor.Addr, self int) []actor.Addr {
	t.mu.Lock()
	var out []actor.Addr
	for _, h := range harbors {
		out = append(out, t.byHarbor[h]...)
	}
	t.mu.Unlock()
	out = slices.DeleteFunc(out, func(a actor.Addr) bool { return a.Cluster() == self })
	slices.Sort(out)
	return slices.Compact(out)
}

// handleExports takes a SystemExports envelope from peer: a harbor of
// this node's cluster, or it is dropped.
func (r *remote) handleExports(peer actor.Addr, env *wire.Envelope) {
	if !peer.IsHarbor() || peer.Cluster() != r.self.Cluster() {
		r.log.Debug("cluster: dropping an exports list not from a harbor of this cluster", "peer", peer)
		return
	}
	addrs, err := ParseExports(env.Payload)
	if err != nil {
		r.log.Warn("cluster: dropping an exports list", "peer", peer, "err", err)
		return
	}
	r.exports.set(peer, addrs)
}

// exported returns the exported members of other clusters that this
// node's harbors reach.
func (r *remote) exported() []actor.Addr {
	p := r.harbors.Load()
	if p == nil {
		return nil
	}
	return r.exports.of(p.byCluster[r.self.Cluster()], r.self.Cluster())
}

// exportsRefresh is how often a harbor publishes and sends the exports
// lists even when nothing changed, so that a list lost on a connection
// that broke is sent again.
const exportsRefresh = 2 * time.Second

// exportsUpdateTimeout bounds one update of a harbor's record.
const exportsUpdateTimeout = 5 * time.Second

// runExports is a harbor's exports goroutine, which Start starts and
// Close stops (n.exportsQuit, n.exportsWG). It owns n.published. On each
// wake (a change in either view, or SetAvailable) and every
// exportsRefresh, it makes the harbor's record in the harbors' membership
// carry its cluster's exported members and its current availability, and
// sends the other clusters' exported members to the nodes of its
// cluster.
func (n *Node) runExports() {
	defer n.exportsWG.Done()
	t := time.NewTicker(exportsRefresh)
	defer t.Stop()
	for {
		select {
		case <-n.exportsQuit:
			return
		case <-n.exportsWake:
		case <-t.C:
		}
		n.publishExports()
		n.sendExports()
	}
}

// wakeExports asks a harbor's exports goroutine to run now.
func (n *Node) wakeExports() {
	if n.exportsWake == nil {
		return
	}
	select {
	case n.exportsWake <- struct{}{}:
	default:
	}
}

// publishExports makes this harbor's record in the harbors' membership
// list its cluster's exported, available members and carry the
// availability the node last set, when it does not already.
func (n *Node) publishExports() {
	self := n.cfg.Actor.Addr
	var own []actor.Addr
	for _, m := range n.cfg.Membership.Members() {
		if m.Export && m.Available && !m.Addr.IsHarbor() && m.Addr.Cluster() == self.Cluster() {
			own = append(own, m.Addr)
		}
	}
	want := formatExports(own)
	var rec Member
	found := false
	for _, m := range n.cfg.Harbors.Members() {
		if m.Addr == self {
			rec, found = m, true
			break
		}
	}
	avail := n.harborAvailable.Load()
	if !found || (rec.Meta[ExportsMeta] == want && rec.Available == avail) {
		return
	}
	rec.Available = avail
	if rec.Meta == nil {
		rec.Meta = make(map[string]string)
	}
	rec.Meta[ExportsMeta] = want
	if want == "" {
		delete(rec.Meta, ExportsMeta)
	}
	ctx, cancel := context.WithTimeout(context.Background(), exportsUpdateTimeout)
	defer cancel()
	if err := n.cfg.Harbors.Update(ctx, rec); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrNotJoined) {
		n.cfg.Logger.Warn("cluster: harbor could not publish its cluster's exported members", "err", err)
	}
}

// sendExports sends the exported members of the other clusters, as
// their harbors publish them, to every other node of this harbor's
// cluster.
func (n *Node) sendExports() {
	self := n.cfg.Actor.Addr
	var foreign []actor.Addr
	for _, h := range n.cfg.Harbors.Members() {
		if !h.Addr.IsHarbor() || !h.Available || h.Addr.Cluster() == self.Cluster() {
			continue
		}
		addrs, err := ParseExports([]byte(h.Meta[ExportsMeta]))
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if a.Cluster() == h.Addr.Cluster() { // a harbor lists its own cluster's members only
				foreign = append(foreign, a)
			}
		}
	}
	slices.Sort(foreign)
	foreign = slices.Compact(foreign)
	if len(foreign) > MaxExports {
		foreign = foreign[:MaxExports]
	}
	tr := n.remote.transport()
	if tr == nil {
		return
	}
	payload := []byte(formatExports(foreign))
	for _, m := range n.cfg.Membership.Members() {
		if m.Addr == self || m.Addr.IsHarbor() || m.Addr.Cluster() != self.Cluster() {
			continue
		}
		env := &wire.Envelope{Kind: wire.KindSystem, Sender: toWirePID(actor.PID{Node: self}), PayloadType: wire.SystemExports, Payload: payload}
		if err := tr.Send(m.Addr, env); err != nil {
			n.cfg.Logger.Debug("cluster: harbor could not send the exports list", "to", m.Addr, "err", err)
		}
	}
}
