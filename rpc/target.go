package rpc

import (
	"context"
	"fmt"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
)

// targetKind says how a Target is resolved.
type targetKind uint8

const (
	targetNone targetKind = iota
	targetPID
	targetName
	targetType
	targetGrain
)

// Target says where a call goes: a PID, a name, or a node type with a way
// to pick one of its members. It is a small value; build it with To, Named,
// AnyOf or ByKey. (Grain identities, from a later release, will be Targets
// too.)
type Target struct {
	kind     targetKind
	pid      actor.PID
	name     string
	nodeType int
	pick     cluster.Pick
	key      string
}

// To targets the service actor with this PID.
func To(pid actor.PID) Target { return Target{kind: targetPID, pid: pid} }

// Named targets the service registered under name: a global name (in the
// cluster's registry), or a local ".name" on the caller's node.
func Named(name string) Target { return Target{kind: targetName, name: name} }

// AnyOf targets the service on one member of a node type (the type byte of
// the members' addresses), picked with pick: cluster.Random or
// cluster.RoundRobin. The client needs a membership (WithMembership), and
// every member of the type is expected to host the service.
func AnyOf(nodeType int, pick cluster.Pick) Target {
	return Target{kind: targetType, nodeType: nodeType, pick: pick}
}

// ByKey targets the service on the member of a node type that key hashes
// to (rendezvous hashing: the same key goes to the same member while the
// members stay the same, and about 1/N of the keys move when one joins or
// leaves). Use it to keep a player's or a room's calls on one node.
func ByKey(nodeType int, key string) Target {
	return Target{kind: targetType, nodeType: nodeType, pick: cluster.ConsistentHash, key: key}
}

// Grain targets the virtual actor (grain) of kind and key, wherever it is
// active, activating it if needed. The client needs a GrainResolver
// (WithGrains; package grain's System is one).
func Grain(kind, key string) Target { return Target{kind: targetGrain, name: kind, key: key} }

// GrainResolver finds, activating it if needed, the actor of a grain.
// Package grain's System implements it.
type GrainResolver interface {
	ResolveGrain(ctx context.Context, kind, key string) (actor.PID, error)
}

// String describes the target.
func (t Target) String() string {
	switch t.kind {
	case targetPID:
		return t.pid.String()
	case targetName:
		return fmt.Sprintf("name %q", t.name)
	case targetGrain:
		return fmt.Sprintf("grain %s/%s", t.name, t.key)
	case targetType:
		if t.pick == cluster.ConsistentHash {
			return fmt.Sprintf("node type %d by key %q", t.nodeType, t.key)
		}
		return fmt.Sprintf("node type %d (%v)", t.nodeType, t.pick)
	}
	return "no target"
}

// LocalServiceName is the local name under which Serve registers a service
// on its node, for example ".rpc/game.v1.Chat".
func LocalServiceName(service string) string { return ".rpc/" + service }

// NodeServiceName is the global name under which Serve registers a service
// on a cluster node, for example "rpc/game.v1.Chat@1.2.1". Type targets
// reach a member's service through it.
func NodeServiceName(service string, node actor.Addr) string {
	return "rpc/" + service + "@" + node.String()
}

// lookerAt is implemented by a membership that resolves a name held by
// a given node, as cluster.View does for nodes of other clusters.
type lookerAt interface {
	LookupAt(ctx context.Context, addr actor.Addr, name string) (actor.PID, error)
}

// Resolve turns t into the PID of the actor that hosts service, as a call
// would: a PID as it is, a name through the node's names, a node type by
// picking a member and looking up its NodeServiceName (LocalServiceName
// when the pick is the caller's own node). Other layers that address
// services hosted like rpc's (the gateway's routes) use it.
func (c *Client) Resolve(ctx context.Context, t Target, service string) (actor.PID, error) {
	return c.resolve(ctx, t, service)
}

// resolve turns t into the PID of service's actor.
func (c *Client) resolve(ctx context.Context, t Target, service string) (actor.PID, error) {
	switch t.kind {
	case targetPID:
		return t.pid, nil
	case targetName:
		return c.node.Lookup(ctx, t.name)
	case targetGrain:
		if c.grains == nil {
			return actor.PID{}, Errorf(FailedPrecondition, "target %v needs grains: create the client with rpc.WithGrains", t)
		}
		return c.grains.ResolveGrain(ctx, t.name, t.key)
	case targetType:
		if c.members == nil {
			return actor.PID{}, Errorf(FailedPrecondition, "target %v needs a membership: create the client with rpc.WithMembership", t)
		}
		m, err := c.sel.Pick(c.members.Members(), c.node.Addr(), t.nodeType, t.pick, t.key)
		if err != nil {
			return actor.PID{}, err
		}
		if m.Addr == c.node.Addr() {
			return c.node.Lookup(ctx, LocalServiceName(service))
		}
		if la, ok := c.members.(lookerAt); ok && m.Addr.Cluster() != c.node.Addr().Cluster() {
			// Another cluster's names are not in this one's registry: ask
			// the member itself (through the harbors).
			return la.LookupAt(ctx, m.Addr, NodeServiceName(service, m.Addr))
		}
		return c.node.Lookup(ctx, NodeServiceName(service, m.Addr))
	}
	return actor.PID{}, Error(InvalidArgument, "the zero Target: use rpc.To, Named, AnyOf, ByKey or Grain")
}
