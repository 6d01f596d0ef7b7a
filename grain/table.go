package grain

import (
	"fmt"
	"sync"

	"github.com/guildkit/guild/actor"
)

// numShards splits the activation table so that activations on different
// keys rarely contend.
const numShards = 64

// shard is one part of the activation table.
//
// The activations that take messages are keyed by the hash of their
// identity (hashID), which is smaller than the identity: a million idle
// grains are a million entries. An activation whose hash another holds
// already goes to more, keyed by its identity; that map stays nil unless
// two identities collide.
type shard struct {
	mu      sync.RWMutex
	active  map[uint64]*activation   // the activations that take messages, by hashID
	more    map[Identity]*activation // like active, for the ids whose hash another holds
	closing map[Identity]*activation // deactivating: a new activation of the id waits for it
}

// get returns the activation of id (hash h) that takes messages, or nil.
// The caller holds sh.mu.
func (sh *shard) get(h uint64, id Identity) *activation {
	if a := sh.active[h]; a != nil && a.key == id.Key && a.k.Name == id.Kind {
		return a
	}
	if sh.more != nil {
		return sh.more[id]
	}
	return nil
}

// add puts a, of id (hash h), in the table; it has no activation yet. The
// caller holds sh.mu for writing.
func (sh *shard) add(h uint64, id Identity, a *activation) {
	if _, taken := sh.active[h]; !taken {
		sh.active[h] = a
		return
	}
	if sh.more == nil {
		sh.more = make(map[Identity]*activation)
	}
	sh.more[id] = a
}

// remove takes a, of id (hash h), out of the table if it is there. The
// caller holds sh.mu for writing.
func (sh *shard) remove(h uint64, id Identity, a *activation) {
	if sh.active[h] == a {
		delete(sh.active, h)
		return
	}
	if sh.more[id] == a {
		delete(sh.more, id)
		if len(sh.more) == 0 {
			sh.more = nil
		}
	}
}

// each calls f for every activation in the table. The caller holds sh.mu.
func (sh *shard) each(f func(a *activation)) {
	for _, a := range sh.active {
		f(a)
	}
	for _, a := range sh.more {
		f(a)
	}
}

// shardOf returns the hash of id and its shard.
func (s *System) shardOf(id Identity) (uint64, *shard) {
	h := hashID(id)
	return h, &s.shards[h%numShards]
}

// lookup returns the activation of id that takes messages here, or nil.
func (s *System) lookup(id Identity) *activation {
	h, sh := s.shardOf(id)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.get(h, id)
}

// activate returns the activation of id on this node, spawning it when
// there is none (md is the metadata of the message that asks for it, for
// Config.Observe). It returns nil when the System is closing.
func (s *System) activate(id Identity, md actor.Metadata) (*activation, error) {
	k := s.kinds[id.Kind]
	if k == nil {
		return nil, unavailable(fmt.Sprintf("kind %q is not hosted on %v", id.Kind, s.self), ErrUnknownKind)
	}
	if why := s.soleConflict.Load(); why != nil {
		return nil, unavailable(*why, nil)
	}
	h, sh := s.shardOf(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if a := sh.get(h, id); a != nil {
		return a, nil
	}
	if s.closing.Load() {
		return nil, nil
	}
	a := &activation{k: k, key: id.Key}
	if p := sh.closing[id]; p != nil {
		a.x = &activationExtra{prev: p}
	}
	if s.cfg.Observe != nil && md.Len() > 0 {
		if a.x == nil {
			a.x = &activationExtra{}
		}
		a.x.trigger = md
	}
	a.last.Store(s.now.Load())
	a.flushedAt.Store(s.now.Load())
	pid, err := s.node.Spawn(a.producer, k.SpawnOptions...)
	if err != nil {
		return nil, fmt.Errorf("grain: activate %v: %w", id, err)
	}
	a.serial = pid.Serial
	s.live.Add(1)
	sh.add(h, id, a)
	return a, nil
}

// activePIDs returns the PIDs of the activations in the table, collected
// under the shard locks, for the caller to message with no lock held.
func (s *System) activePIDs() []actor.PID {
	var out []actor.PID
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		sh.each(func(a *activation) { out = append(out, a.pid()) })
		sh.mu.RUnlock()
	}
	return out
}

// ActiveByKind returns how many activations of each hosted kind take
// messages now, by kind name (every hosted kind, 0 included). It scans the
// System's table, one shard lock at a time: for dashboards, not the hot
// path.
func (s *System) ActiveByKind() map[string]int {
	out := make(map[string]int, len(s.kinds))
	for name := range s.kinds {
		out[name] = 0
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		sh.each(func(a *activation) { out[a.k.Name]++ })
		sh.mu.RUnlock()
	}
	return out
}
