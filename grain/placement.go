package grain

import (
	"slices"
	"strconv"
	"strings"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
)

// host is a node that hosts a kind, and its grain router.
type host struct {
	addr   actor.Addr
	router actor.PID
}

// hostView is the placement view: for each kind, the available members
// that host it. It is rebuilt from the membership on every change and read
// without locks.
type hostView struct {
	kinds map[string][]host
}

// buildView reads the hosts of every kind from members.
func buildView(members []cluster.Member) *hostView {
	v := &hostView{kinds: make(map[string][]host)}
	for _, m := range members {
		if !m.Available {
			continue
		}
		router, err := parsePID(m.Meta[routerMeta])
		if err != nil {
			continue
		}
		for _, s := range m.Services {
			if kind, ok := strings.CutPrefix(s, servicePrefix); ok {
				v.kinds[kind] = append(v.kinds[kind], host{addr: m.Addr, router: router})
			}
		}
	}
	return v
}

// equal reports whether v and o place every grain alike.
func (v *hostView) equal(o *hostView) bool {
	if v == nil || o == nil || len(v.kinds) != len(o.kinds) {
		return false
	}
	for k, hs := range v.kinds {
		if !slices.Equal(hs, o.kinds[k]) {
			return false
		}
	}
	return true
}

// owner picks the host of id by rendezvous (highest random weight)
// hashing over the hosts of its kind, skipping skip (a node that is
// closing). When one host joins or leaves, only the grains that it wins or
// held move: about 1/N of them.
func (v *hostView) owner(id Identity, skip actor.Addr) (host, bool) {
	hs := v.kinds[id.Kind]
	h := hashID(id)
	best, bestW := -1, uint64(0)
	for i := range hs {
		if hs[i].addr == skip {
			continue
		}
		w := cluster.RendezvousWeight(h, hs[i].addr)
		if best < 0 || w > bestW || (w == bestW && hs[i].addr < hs[best].addr) {
			best, bestW = i, w
		}
	}
	if best < 0 {
		return host{}, false
	}
	return hs[best], true
}

// hashID hashes "kind/key" as cluster.HashKey would, without building the
// string: the same placement function as cluster.Selector's
// ConsistentHash.
func hashID(id Identity) uint64 {
	return cluster.HashMore(cluster.HashMore(cluster.HashKey(id.Kind), "/"), id.Key)
}

// parsePID parses what routerText writes (actor.ParsePID, which takes
// actor.PID.String's form too).
func parsePID(s string) (actor.PID, error) { return actor.ParsePID(s) }

// routerText is the text of a router's PID in its member's Meta: the
// serial as one number, which every version of guild parses (a PID's
// String writes a reused slot as slot.generation).
func routerText(p actor.PID) string {
	return p.Node.String() + "/" + strconv.FormatUint(p.Serial, 10)
}
