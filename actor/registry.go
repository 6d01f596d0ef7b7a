package actor

import "sync"

// registry maps serials of live local actors to their processes. It is split
// into shards so that spawns and sends on different actors rarely share a
// lock; lookups take only a read lock.
type registry struct {
	shards [registryShards]registryShard
}

const registryShards = 64

type registryShard struct {
	mu sync.RWMutex
	m  map[uint64]*process
	_  [32]byte // keep neighbouring shard locks off one cache line
}

func (r *registry) shard(serial uint64) *registryShard {
	return &r.shards[serial%registryShards]
}

func (r *registry) get(serial uint64) *process {
	s := r.shard(serial)
	s.mu.RLock()
	p := s.m[serial]
	s.mu.RUnlock()
	return p
}

func (r *registry) put(p *process) {
	s := r.shard(p.pid.Serial)
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[uint64]*process)
	}
	s.m[p.pid.Serial] = p
	s.mu.Unlock()
}

func (r *registry) remove(serial uint64) {
	s := r.shard(serial)
	s.mu.Lock()
	delete(s.m, serial)
	s.mu.Unlock()
}

// each calls fn for every registered process. fn must not touch the registry.
func (r *registry) each(fn func(*process)) {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.RLock()
		list := make([]*process, 0, len(s.m))
		for _, p := range s.m {
			list = append(list, p)
		}
		s.mu.RUnlock()
		for _, p := range list {
			fn(p)
		}
	}
}
