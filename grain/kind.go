package grain

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/propsync"
)

// Identity names one grain: its kind and its key within the kind, for
// example {"player", "10086"}. A grain exists, conceptually, for every
// identity; it is activated (given an actor and its state in memory) on
// its first message.
type Identity struct {
	Kind string
	Key  string
}

// String returns "kind/key".
func (id Identity) String() string { return id.Kind + "/" + id.Key }

// Actor is the behaviour of a grain: like an actor.Actor, but its Receive
// gets a grain Context, which adds the grain's identity and state. Receive
// runs one message at a time, on the node where the grain is active.
//
// Besides the caller's messages, Receive sees actor.Started once the
// state is loaded (before any message) and actor.Stopping before the
// grain deactivates (its last chance to change the state, which is then
// flushed). It never sees actor.Stopped.
type Actor interface {
	Receive(c *Context)
}

// ActorFunc is the function form of an Actor.
type ActorFunc func(c *Context)

// Receive calls f.
func (f ActorFunc) Receive(c *Context) { f(c) }

// Defaults of Kind.
const (
	DefaultIdleTimeout = 5 * time.Minute
	DefaultFlushEvery  = 10 * time.Second
)

// Kind is a kind of grain that a System hosts.
type Kind struct {
	// Name is the kind's name, the Kind of its identities. Required; it
	// may not contain "/".
	Name string
	// New makes the behaviour of one activation. It is called once the
	// activation holds its claim and has loaded its state, so it runs
	// exactly once per activation. Required.
	New func(id Identity) Actor
	// State, optional, returns a fresh state value: a pointer to a
	// proto.Message (stored in protobuf's binary form) or to a Go value
	// that encoding/json can encode. The activation loads the stored
	// state into it (a grain never saved starts from it as is). nil: the
	// kind keeps no state and never touches the Store.
	State func() any
	// IdleTimeout deactivates a grain that has had no message for this
	// long: its state is flushed, its claim released and its actor
	// stopped. Default DefaultIdleTimeout; the sweep is coarse, so a grain
	// may live up to a quarter of it longer.
	IdleTimeout time.Duration
	// FlushEvery is how often the state of a grain that changed is
	// written to the Store. Default DefaultFlushEvery; negative means only
	// on deactivation and System.Close (and Context.Flush).
	FlushEvery time.Duration
	// TrustMarkDirty skips the change detection that runs after every
	// message (encode the state, hash it, compare with the last flushed
	// hash): only Context.MarkDirty makes the state dirty. It saves one
	// encoding per message, at the risk of losing a change whose handler
	// forgot MarkDirty.
	TrustMarkDirty bool
	// SpawnOptions are passed to the spawn of every activation's actor
	// (a mailbox bound, a supervisor).
	SpawnOptions []actor.SpawnOption
	// Sync, optional, makes the state synced to the clients that
	// subscribe (see SyncOptions); the state must be a proto.Message and
	// Config.Push set.
	Sync *SyncOptions
}

// validate checks k.
func (k *Kind) validate() error {
	switch {
	case k.Name == "":
		return fmt.Errorf("%w: a Kind has no Name", ErrBadConfig)
	case strings.Contains(k.Name, "/"):
		return fmt.Errorf("%w: kind %q contains /", ErrBadConfig, k.Name)
	case k.New == nil:
		return fmt.Errorf("%w: kind %q has no New", ErrBadConfig, k.Name)
	case k.IdleTimeout < 0:
		return fmt.Errorf("%w: kind %q has a negative IdleTimeout", ErrBadConfig, k.Name)
	}
	return nil
}

func (k Kind) withDefaults() Kind {
	if k.IdleTimeout == 0 {
		k.IdleTimeout = DefaultIdleTimeout
	}
	if k.FlushEvery == 0 {
		k.FlushEvery = DefaultFlushEvery
	}
	if k.Sync != nil && (k.Sync.Route == "" || k.Sync.MaxSubscribers == 0) {
		o := *k.Sync
		if o.Route == "" {
			o.Route = propsync.DefaultRoute
		}
		if o.MaxSubscribers == 0 {
			o.MaxSubscribers = DefaultMaxSubscribers
		}
		k.Sync = &o
	}
	return k
}

// serviceName is the membership service that says a node hosts kind.
func serviceName(kind string) string { return servicePrefix + kind }

const servicePrefix = "grain:"

// routerMeta is the Member.Meta key holding the PID of a node's grain
// router.
const routerMeta = "guild.grain.router"

// Sentinel errors; match them with errors.Is.
var (
	// ErrBadConfig: the Config or a Kind is invalid.
	ErrBadConfig = errors.New("grain: bad config")
	// ErrUnknownKind: no System in the cluster hosts the kind (or this
	// System does not know it).
	ErrUnknownKind = errors.New("grain: unknown kind")
	// ErrUnavailable: the grain could not be reached: no node hosts its
	// kind, its activation failed (a claim that was not released in time,
	// a store that failed), or the message was forwarded more than
	// Config.MaxHops times while the cluster's views disagreed. The error
	// also wraps an *rpc.Status of code Unavailable.
	ErrUnavailable = errors.New("grain: unavailable")
	// ErrNotProto: a message for a grain on another node is not a
	// proto.Message, so it cannot cross the network.
	ErrNotProto = errors.New("grain: a message to a grain on another node must be a proto.Message")
	// ErrClosed: the System is closed.
	ErrClosed = errors.New("grain: system closed")
	// ErrStale: the grain's stored state was written by another activation
	// since this one loaded it (store.ErrVersionConflict): this activation
	// is stale and deactivates without flushing.
	ErrStale = errors.New("grain: stale activation")
	// ErrFenced: this node cannot prove that its lease in the membership
	// still holds (its keepalives are late: etcd unreachable, or the
	// process was frozen or starved), so another node may own the grain
	// by now. The grain handles nothing and writes nothing until the
	// lease is proven again; if the lease was lost, the activation is
	// dropped without a flush. It matches ErrUnavailable.
	ErrFenced = fmt.Errorf("%w: this node cannot prove its lease still holds the grain", ErrUnavailable)
)
