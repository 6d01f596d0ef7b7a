package grain

import (
	"fmt"
	"slices"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
)

// viewHasSelf reports whether the view lists this node as a host of every
// kind it hosts, with its router.
func (s *System) viewHasSelf() bool {
	if len(s.kinds) == 0 {
		return true
	}
	v := s.view.Load()
	for name := range s.kinds {
		if !slices.Contains(v.kinds[name], host{addr: s.self, router: s.router}) {
			return false
		}
	}
	return true
}

// recordHasSelf reports whether rec, this node's record, lists every kind
// this node hosts, with its router.
func (s *System) recordHasSelf(rec cluster.Member) bool {
	if rec.Meta[routerMeta] != routerText(s.router) {
		return false
	}
	for name := range s.kinds {
		if !slices.Contains(rec.Services, serviceName(name)) {
			return false
		}
	}
	return true
}

// refreshView rebuilds the placement view from the membership and, when it
// changed, hands over the grains this node no longer owns.
func (s *System) refreshView() {
	s.viewMu.Lock()
	v := buildView(s.members.Members())
	changed := !v.equal(s.view.Load())
	var conflict string
	if changed {
		s.view.Store(v)
		conflict = s.checkSole(v)
	}
	s.viewMu.Unlock()
	if conflict != "" {
		s.log.Error(conflict)
	}
	if changed {
		s.rebalance(v)
	}
}

// rebalance asks every activation whose owner is now another node to
// hand over: flush, release the claim, stop. The new owner activates the
// grain on its next message. The activations are collected under the
// shard locks and told after, with no lock held (each checks the view
// again when it handles the order, so a stale order is harmless).
func (s *System) rebalance(v *hostView) {
	skip := s.skip()
	var moving []actor.PID
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		sh.each(func(a *activation) {
			if h, ok := v.owner(a.id(), skip); ok && h.addr != s.self {
				moving = append(moving, a.pid())
			}
		})
		sh.mu.RUnlock()
	}
	for _, pid := range moving {
		_ = s.node.Send(pid, ctlHandover)
	}
}

// skip is the address placement must skip: this node while it closes.
func (s *System) skip() actor.Addr {
	if s.closing.Load() {
		return s.self
	}
	return 0
}

// checkSole sets or clears soleConflict for view v: with Claims defaulted
// to SoleClaimer, no other node may host a kind this node hosts. It
// returns the conflict when it is new, for the caller to log.
func (s *System) checkSole(v *hostView) (newConflict string) {
	if !s.cfg.implicitSole {
		return ""
	}
	for name := range s.kinds {
		for _, h := range v.kinds[name] {
			if h.addr != s.self {
				why := fmt.Sprintf("grain: node %v also hosts kind %q, and Config.Claims is not set, so a grain could be active on both: set Config.Claims to an EtcdClaimer (a cluster on etcd), or to one LocalClaimer shared by the Systems of one process", h.addr, name)
				if old := s.soleConflict.Swap(&why); old == nil {
					return why
				}
				return ""
			}
		}
	}
	s.soleConflict.Store(nil)
	return ""
}
