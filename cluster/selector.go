package cluster

import (
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/guildkit/guild/actor"
)

// Pick says how a Selector chooses among the members that qualify.
type Pick int

// The ways to pick a member.
const (
	// Random picks uniformly at random.
	Random Pick = iota
	// RoundRobin picks the members of a node type in turn, in Addr order.
	// It stays fair when members join or leave: the next pick is the first
	// member after the last one picked.
	RoundRobin
	// ConsistentHash picks by key with rendezvous (highest random weight)
	// hashing: the same key maps to the same member while the members stay
	// the same, and when one joins or leaves only about 1/N of the keys
	// move. Every node computes the same answer from the same view.
	ConsistentHash
)

// String returns the mode's name.
func (p Pick) String() string {
	switch p {
	case Random:
		return "random"
	case RoundRobin:
		return "round-robin"
	case ConsistentHash:
		return "consistent-hash"
	}
	return fmt.Sprintf("Pick(%d)", int(p))
}

// Selector picks a member of a node type from a view. The zero Selector is
// ready to use, and it is safe for concurrent use. It keeps only the round
// robin position of each (cluster, node type).
type Selector struct {
	mu   sync.Mutex
	last map[rrKey]actor.Addr // the last member picked round robin
}

type rrKey struct{ cluster, typ int }

// Pick chooses a member of view for a node at self. It considers only the
// members that are Available, of node type nodeType, and either in self's
// cluster or in another cluster with Export set (clustergo's rule). It
// returns an error matching ErrNoMember when none qualifies, and one
// matching ErrBadPick for an unknown mode. key is used by ConsistentHash
// only.
//
// Pick does not allocate and does not sort: view may be in any order.
func (s *Selector) Pick(view []Member, self actor.Addr, nodeType int, how Pick, key string) (Member, error) {
	if nodeType < 0 || nodeType > actor.MaxType {
		return Member{}, fmt.Errorf("%w: node type %d is outside 0..%d", ErrNoMember, nodeType, actor.MaxType)
	}
	ok := func(m *Member) bool {
		return m.Available && m.Addr.Type() == nodeType &&
			(m.Addr.Cluster() == self.Cluster() || m.Export)
	}
	best := -1
	switch how {
	case Random:
		n := 0
		for i := range view {
			if ok(&view[i]) {
				n++
			}
		}
		if n == 0 {
			break
		}
		k := rand.IntN(n)
		for i := range view {
			if ok(&view[i]) {
				if k == 0 {
					best = i
					break
				}
				k--
			}
		}
	case RoundRobin:
		rk := rrKey{self.Cluster(), nodeType}
		s.mu.Lock()
		last, started := s.last[rk]
		// The next member is the smallest Addr above last; failing that,
		// wrap around to the smallest Addr.
		next, lowest := -1, -1
		for i := range view {
			m := &view[i]
			if !ok(m) {
				continue
			}
			if lowest < 0 || m.Addr < view[lowest].Addr {
				lowest = i
			}
			if started && m.Addr > last && (next < 0 || m.Addr < view[next].Addr) {
				next = i
			}
		}
		if next < 0 {
			next = lowest
		}
		if next >= 0 {
			if s.last == nil {
				s.last = make(map[rrKey]actor.Addr)
			}
			s.last[rk] = view[next].Addr
		}
		s.mu.Unlock()
		best = next
	case ConsistentHash:
		h := HashKey(key)
		var bestW uint64
		for i := range view {
			m := &view[i]
			if !ok(m) {
				continue
			}
			w := RendezvousWeight(h, m.Addr)
			if best < 0 || w > bestW || (w == bestW && m.Addr < view[best].Addr) {
				best, bestW = i, w
			}
		}
	default:
		return Member{}, fmt.Errorf("%w: %v", ErrBadPick, how)
	}
	if best < 0 {
		return Member{}, fmt.Errorf("%w: no available member of type %d for %v", ErrNoMember, nodeType, self)
	}
	return view[best], nil
}

// FNV-1a, 64 bit. Fixed constants, so every node and every run agrees.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// HashKey returns the hash of key that rendezvous placement starts from
// (FNV-1a, 64 bit: every node and every run agrees on it). Other
// placements over members, such as grains', use it and RendezvousWeight so
// that they spread keys as ConsistentHash does.
func HashKey(key string) uint64 { return HashMore(fnvOffset, key) }

// HashMore continues a HashKey hash over s: HashMore(HashKey(a), b) is
// HashKey(a+b), without building the string.
func HashMore(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// RendezvousWeight is the rendezvous (highest random weight) weight of
// addr for a key hashed to h: the hash continued over the address bytes,
// then the splitmix64 finalizer, which spreads FNV's weak low bits over
// the whole word. The member of highest weight wins the key.
func RendezvousWeight(h uint64, addr actor.Addr) uint64 {
	a := uint32(addr)
	for i := 0; i < 4; i++ {
		h ^= uint64(byte(a >> (8 * i)))
		h *= fnvPrime
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
