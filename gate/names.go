package gate

import (
	"context"
	"errors"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/rpc"
)

// ServiceName is the service name under which a gate Service named name
// is hosted (see rpc.LocalServiceName and rpc.NodeServiceName): routes of
// the form "name.Method" reach it.
func ServiceName(name string) string { return "gate/" + name }

func hubName(a actor.Addr) string  { return "gate.hub/" + a.String() }
func localName(name string) string { return "." + name }

// The gateway's names are global on a cluster node (etcd), so that any
// node finds a user's session or a group, and local (".name") on a node
// without global names, the one-process default.

func register(ctx context.Context, n *actor.Node, name string, pid actor.PID) error {
	err := n.Register(ctx, name, pid)
	if errors.Is(err, actor.ErrNoGlobalNames) {
		return n.Register(ctx, localName(name), pid)
	}
	return err
}

func lookup(ctx context.Context, n *actor.Node, name string) (actor.PID, error) {
	pid, err := n.Lookup(ctx, name)
	if errors.Is(err, actor.ErrNoGlobalNames) {
		return n.Lookup(ctx, localName(name))
	}
	return pid, err
}

// ParseSessionID returns the PID of the session actor a session ID names.
// A session ID is its PID's String: "1.1.1/3", or "1.1.1/3.1" for the
// session after it in the same slot (see actor.PID.String).
func ParseSessionID(id string) (actor.PID, error) {
	pid, err := actor.ParsePID(id)
	if err != nil {
		return actor.PID{}, rpc.Errorf(rpc.InvalidArgument, "session ID %q is not of the form node/slot or node/slot.generation: %v", id, err)
	}
	return pid, nil
}
