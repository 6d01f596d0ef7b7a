package grain

import (
	"time"

	"github.com/guildkit/guild/actor"
)

// IsActive reports whether id has an activation taking messages here.
func (s *System) IsActive(id Identity) bool {
	return s.lookup(id) != nil
}

// Hosts returns how many nodes this System's view has for kind.
func (s *System) Hosts(kind string) int { return len(s.view.Load().kinds[kind]) }

// Abort stops the System as a crash would: no flush, no release, and the
// actors stop with the node.
func (s *System) Abort() {
	s.aborted.Store(true)
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.shutdown()
	})
}

// Tick returns the sweep period.
func (s *System) Tick() time.Duration { return s.tick }

// NodeOf returns the System's actor node.
func NodeOf(s *System) *actor.Node { return s.node }
