package actor

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// NameRegistry resolves global names: names that do not start with ".", seen
// by every node of a cluster. The cluster package provides one backed by etcd;
// a node without one accepts only local names.
type NameRegistry interface {
	// Register binds name to pid. The first registration wins; a taken name
	// returns an error matching ErrNameTaken.
	Register(ctx context.Context, name string, pid PID) error
	// Unregister releases name if pid holds it.
	Unregister(ctx context.Context, name string, pid PID) error
	// Lookup resolves name, returning an error matching ErrNameNotFound when
	// nobody holds it.
	Lookup(ctx context.Context, name string) (PID, error)
}

// IsLocalName reports whether name is a local name: one that starts with "."
// and is seen by this node only.
func IsLocalName(name string) bool { return strings.HasPrefix(name, ".") }

// checkName validates a local or global name.
func checkName(name string) error {
	if name == "" || name == "." {
		return fmt.Errorf("%w: %q is empty", ErrBadName, name)
	}
	if len(name) > 255 {
		return fmt.Errorf("%w: longer than 255 bytes", ErrBadName)
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%w: %q contains a space or control character", ErrBadName, name)
		}
	}
	return nil
}

// localNames holds the node's ".names". owned lets a stopping actor release
// every name it holds in one step.
type localNames struct {
	mu    sync.RWMutex
	byKey map[string]PID
	owned map[PID][]string
}

func (l *localNames) lookup(name string) (PID, bool) {
	l.mu.RLock()
	pid, ok := l.byKey[name]
	l.mu.RUnlock()
	return pid, ok
}

// register binds name to pid while alive reports the actor alive. alive runs
// under the lock, which orders it against release.
func (l *localNames) register(name string, pid PID, alive func() bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.byKey[name]; ok {
		if cur == pid {
			return nil
		}
		return fmt.Errorf("%w: %q is held by %v", ErrNameTaken, name, cur)
	}
	if !alive() {
		return fmt.Errorf("%w: %v", ErrActorNotFound, pid)
	}
	if l.byKey == nil {
		l.byKey = make(map[string]PID)
		l.owned = make(map[PID][]string)
	}
	l.byKey[name] = pid
	l.owned[pid] = append(l.owned[pid], name)
	return nil
}

func (l *localNames) unregister(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	pid, ok := l.byKey[name]
	if !ok {
		return false
	}
	delete(l.byKey, name)
	names := l.owned[pid]
	for i, n := range names {
		if n == name {
			names = append(names[:i], names[i+1:]...)
			break
		}
	}
	if len(names) == 0 {
		delete(l.owned, pid)
	} else {
		l.owned[pid] = names
	}
	return true
}

// release drops every name pid holds.
func (l *localNames) release(pid PID) {
	l.mu.Lock()
	for _, n := range l.owned[pid] {
		delete(l.byKey, n)
	}
	delete(l.owned, pid)
	l.mu.Unlock()
}

// Register binds a name to pid. Local names start with "." and are seen by
// this node only; they are released when the actor stops. Other names are
// global and need Config.Names (a cluster); without it they fail with
// ErrNoGlobalNames.
func (n *Node) Register(ctx context.Context, name string, pid PID) error {
	if err := checkName(name); err != nil {
		return err
	}
	if !IsLocalName(name) {
		if n.cfg.Names == nil {
			return ErrNoGlobalNames
		}
		return n.cfg.Names.Register(ctx, name, pid)
	}
	if pid.Node != n.cfg.Addr {
		return fmt.Errorf("%w: local name %q for %v, which is on another node", ErrBadName, name, pid)
	}
	return n.names.register(name, pid, func() bool {
		p := n.procs.get(pid.Serial)
		return p != nil && p.alive()
	})
}

// Unregister releases a name. Unregistering a name that is not held returns
// ErrNameNotFound.
func (n *Node) Unregister(ctx context.Context, name string) error {
	if !IsLocalName(name) {
		if n.cfg.Names == nil {
			return ErrNoGlobalNames
		}
		pid, err := n.cfg.Names.Lookup(ctx, name)
		if err != nil {
			return err
		}
		return n.cfg.Names.Unregister(ctx, name, pid)
	}
	if !n.names.unregister(name) {
		return fmt.Errorf("%w: %q", ErrNameNotFound, name)
	}
	return nil
}

// Lookup resolves a name to a PID, returning ErrNameNotFound when nobody
// holds it. A local lookup is one map read under a read lock.
func (n *Node) Lookup(ctx context.Context, name string) (PID, error) {
	if !IsLocalName(name) {
		if n.cfg.Names == nil {
			return PID{}, ErrNoGlobalNames
		}
		return n.cfg.Names.Lookup(ctx, name)
	}
	if pid, ok := n.names.lookup(name); ok {
		return pid, nil
	}
	return PID{}, fmt.Errorf("%w: %q", ErrNameNotFound, name)
}
