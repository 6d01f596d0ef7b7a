package cluster

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/guildkit/guild/actor"
)

// Sentinel errors. Match them with errors.Is: they may be wrapped with
// detail.
var (
	// ErrNoMember: no member matches the request.
	ErrNoMember = errors.New("cluster: no member available")
	// ErrNotJoined: the call needs this node to have joined first.
	ErrNotJoined = errors.New("cluster: not joined")
	// ErrAlreadyJoined: Join was called twice without a Leave in between.
	ErrAlreadyJoined = errors.New("cluster: already joined")
	// ErrBadMember: the member record is invalid for this call (for example
	// Update with an address other than the one that joined).
	ErrBadMember = errors.New("cluster: bad member")
	// ErrBadPick: the Pick mode is unknown.
	ErrBadPick = errors.New("cluster: unknown pick mode")
	// ErrClosed: the Membership is closed.
	ErrClosed = errors.New("cluster: membership closed")
)

// Member is one node of the cluster as the membership store knows it.
type Member struct {
	Addr      actor.Addr        // the node's logical address, cluster.type.index
	Endpoint  string            // where the node's transport listens, e.g. "10.0.0.7:7001"
	Available bool              // the node takes new work; selectors skip it when false
	Export    bool              // the node may be picked by nodes of other clusters
	Services  []string          // names of the services the node offers
	Meta      map[string]string // free-form labels
	Started   time.Time         // when the node joined; Join fills it in when zero
}

// Clone returns a deep copy of m: its Services and Meta are not shared.
func (m Member) Clone() Member {
	m.Services = slices.Clone(m.Services)
	m.Meta = maps.Clone(m.Meta)
	return m
}

// Equal reports whether m and o carry the same record.
func (m Member) Equal(o Member) bool {
	return m.Addr == o.Addr && m.Endpoint == o.Endpoint && m.Available == o.Available &&
		m.Export == o.Export && slices.Equal(m.Services, o.Services) &&
		maps.Equal(m.Meta, o.Meta) && m.Started.Equal(o.Started)
}

// EventKind says what happened to a member.
type EventKind int

// The kinds of membership event.
const (
	Join   EventKind = iota + 1 // the member appeared in the view
	Leave                       // the member left the view (gracefully, or its lease expired)
	Update                      // the member's record changed
)

// String returns "join", "leave" or "update".
func (k EventKind) String() string {
	switch k {
	case Join:
		return "join"
	case Leave:
		return "leave"
	case Update:
		return "update"
	}
	return "unknown"
}

// Event is one change to the membership view. For Leave, Member is the last
// record known before the member left.
type Event struct {
	Kind   EventKind
	Member Member
}

// Membership keeps this node's view of the cluster and publishes this
// node's own record.
//
// All methods are safe for concurrent use. Subscribe callbacks are never
// called concurrently with each other: one goroutine per Membership delivers
// them, in the order the changes were applied to the view.
type Membership interface {
	// Join publishes m as this node's record. A zero m.Started is set to
	// the current time. Joining twice without Leave returns ErrAlreadyJoined.
	Join(ctx context.Context, m Member) error
	// Update replaces this node's record. m.Addr must be the joined address
	// (ErrBadMember otherwise); ErrNotJoined before Join.
	Update(ctx context.Context, m Member) error
	// Leave withdraws this node's record at once. Leaving when not joined
	// does nothing.
	Leave(ctx context.Context) error
	// Members returns a copy of the local view, sorted by Addr.
	Members() []Member
	// Subscribe calls fn for every later change. fn first receives a Join
	// for each member already in the view, so no change falls between a
	// Members call and a Subscribe. The returned func unsubscribes; an event
	// being delivered at that moment may still reach fn.
	Subscribe(fn func(Event)) (unsubscribe func())
	// Close leaves (best effort) and stops every goroutine. It is safe to
	// call twice; later calls to other methods return ErrClosed.
	Close() error
}

// Fence is implemented by a Membership whose record lives under a lease
// that can expire (cluster/etcd's): it tells whether this node can prove
// that its lease is still valid, so that what it holds under the lease
// (grain claims, global names) is still its own. A Membership without
// leases (NewLocal, NewMemory) does not implement it: nothing it holds
// can expire behind its back.
type Fence interface {
	// LeaseValid returns the epoch of the node's lease (counted from 1,
	// one more each time the lease was lost and granted anew; 0 when not
	// joined) and whether the lease is surely still valid now. It must
	// be cheap (no lock, no IO): it is checked for every grain message.
	LeaseValid() (epoch uint64, valid bool)
}

// sortMembers sorts by Addr.
func sortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int { return int(int64(a.Addr) - int64(b.Addr)) })
}

// SortedView returns deep copies of the members of view, sorted by Addr.
// Implementations of Membership use it for Members.
func SortedView(view map[actor.Addr]Member) []Member {
	out := make([]Member, 0, len(view))
	for _, m := range view {
		out = append(out, m.Clone())
	}
	sortMembers(out)
	return out
}
