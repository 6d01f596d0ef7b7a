package actor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
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

// LeasedNames is a NameRegistry whose names live under this node's lease
// in the membership (cluster/etcd's is one). Held returns the actor this
// node registered name for, if the node still holds the name under a lease
// it can prove valid; from the moment it cannot, another node may already
// hold the name, so the node refuses traffic addressed to it
// (ErrNameNotFound) until it can again.
type LeasedNames interface {
	NameRegistry
	Held(name string) (PID, bool)
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

// namesOf returns a copy of the names pid holds, or nil.
func (l *localNames) namesOf(pid PID) []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Clone(l.owned[pid])
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
// this node only. Other names are global and need Config.Names (a
// cluster); without it they fail with ErrNoGlobalNames. A global name is
// registered on the node of its actor (ErrBadName otherwise), under that
// node's lease. Either kind is released when its actor stops; a global
// name also when its node leaves the cluster or dies. The release of a
// global name is tried again, in the background, until the registry takes
// it (or the node closes), and so is the undoing of a Register that failed
// for a reason other than ErrNameTaken (the registry may have taken the
// name after all); a Register of the same name on this node waits for
// either.
func (n *Node) Register(ctx context.Context, name string, pid PID) error {
	if err := checkName(name); err != nil {
		return err
	}
	if !IsLocalName(name) {
		return n.registerGlobal(ctx, name, pid)
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
		n.held.drop(name, pid)
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

// heldNames are the global names this node registered for its own actors:
// the node releases them when their actor stops, and resolves traffic that
// other nodes address to a name against them.
type heldNames struct {
	mu     sync.Mutex
	byName map[string]PID
	byPID  map[PID][]string
	// releasing maps the names whose release (releaseGlobal) is under way
	// to a channel closed when it is done.
	releasing map[string]chan struct{}
}

// startRelease records that names are being released, until the returned
// channel is passed to endRelease.
func (h *heldNames) startRelease(names []string) chan struct{} {
	done := make(chan struct{})
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.releasing == nil {
		h.releasing = make(map[string]chan struct{})
	}
	for _, n := range names {
		h.releasing[n] = done
	}
	return done
}

// endRelease records that the release of names, started with done, is over.
func (h *heldNames) endRelease(names []string, done chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range names {
		if h.releasing[n] == done {
			delete(h.releasing, n)
		}
	}
	close(done)
}

// released returns a channel closed once a release of name under way is
// over, or nil when none is.
func (h *heldNames) released(name string) chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.releasing[name]
}

func (h *heldNames) add(name string, pid PID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byName == nil {
		h.byName = make(map[string]PID)
		h.byPID = make(map[PID][]string)
	}
	if cur, ok := h.byName[name]; ok && cur == pid {
		return
	}
	h.byName[name] = pid
	h.byPID[pid] = append(h.byPID[pid], name)
}

func (h *heldNames) get(name string) (PID, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	pid, ok := h.byName[name]
	return pid, ok
}

// drop forgets name if pid holds it.
func (h *heldNames) drop(name string, pid PID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur, ok := h.byName[name]; !ok || cur != pid {
		return
	}
	delete(h.byName, name)
	names := slices.DeleteFunc(h.byPID[pid], func(n string) bool { return n == name })
	if len(names) == 0 {
		delete(h.byPID, pid)
	} else {
		h.byPID[pid] = names
	}
}

// namesOf returns a copy of the global names pid holds, or nil.
func (h *heldNames) namesOf(pid PID) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.byPID[pid])
}

// take forgets and returns every name pid holds.
func (h *heldNames) take(pid PID) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	names := h.byPID[pid]
	delete(h.byPID, pid)
	for _, n := range names {
		delete(h.byName, n)
	}
	return names
}

// registerGlobal registers a global name for an actor of this node and
// keeps it until the actor stops.
func (n *Node) registerGlobal(ctx context.Context, name string, pid PID) error {
	if n.cfg.Names == nil {
		return ErrNoGlobalNames
	}
	if pid.Node != n.cfg.Addr {
		return fmt.Errorf("%w: global name %q for %v, which is on another node: register it on that node, whose lease holds it", ErrBadName, name, pid)
	}
	p := n.procs.get(pid.Serial)
	if p == nil || !p.alive() {
		return fmt.Errorf("%w: %v", ErrActorNotFound, pid)
	}
	if done := n.held.released(name); done != nil {
		// An actor of this node that held the name has stopped, and its
		// release is on its way: register after it, not against it.
		select {
		case <-done:
		case <-ctx.Done():
			return fmt.Errorf("actor: register %q: waiting for its release by a stopped actor: %w", name, ctx.Err())
		}
	}
	if err := n.cfg.Names.Register(ctx, name, pid); err != nil {
		if !errors.Is(err, ErrNameTaken) {
			// The registry may have taken it after all (its answer was
			// lost, or the request reached it after ctx ended): undo it,
			// so that a name the caller was told is not registered does
			// not stay bound to pid (Unregister removes it only if it
			// names pid).
			n.unregister([]string{name}, pid)
		}
		return err
	}
	n.held.add(name, pid)
	if !p.alive() {
		// The actor stopped meanwhile, and its release may have run before
		// the add: release again (a second release finds nothing).
		n.releaseGlobal(pid)
		return fmt.Errorf("%w: %v stopped while %q was registered", ErrActorNotFound, pid, name)
	}
	return nil
}

// releaseGlobal unregisters, in the background, the global names pid
// holds. Each is removed only if it still names pid. A registration of one
// of them on this node meanwhile waits for its release. An Unregister that
// fails (the registry is unreachable for a while) is tried again, backing
// off up to a second, until it succeeds or the node closes: a name must
// not outlive its actor while the node's lease lives on.
func (n *Node) releaseGlobal(pid PID) {
	n.unregister(n.held.take(pid), pid)
}

// unregister removes names from the registry in the background, each only
// if it names pid, trying again until it succeeds or the node closes (see
// releaseGlobal).
func (n *Node) unregister(names []string, pid PID) {
	if len(names) == 0 || n.cfg.Names == nil || !n.workers.track() {
		return
	}
	done := n.held.startRelease(names)
	go func() {
		defer n.wg.Done()
		defer n.held.endRelease(names, done)
		backoff := 50 * time.Millisecond
		for _, name := range names {
			for attempt := 0; ; attempt++ {
				ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
				err := n.cfg.Names.Unregister(ctx, name, pid)
				cancel()
				if err == nil || errors.Is(err, ErrNameNotFound) {
					break
				}
				if attempt == 0 {
					n.log.Warn("actor: release a global name of a stopped actor; trying again until it succeeds", "name", name, "pid", pid, "err", err)
				}
				t := time.NewTimer(backoff)
				select {
				case <-n.quit:
					t.Stop()
					n.log.Warn("actor: the node closed before a global name of a stopped actor was released; it goes with the node's lease", "name", name, "pid", pid, "err", err)
					return
				case <-t.C:
				}
				backoff = min(2*backoff, time.Second)
			}
		}
	}()
}

// resolveHeld resolves a name that traffic from another node addressed
// to this node: a local name, or a global name this node holds while its
// lease is surely valid.
func (n *Node) resolveHeld(name string) (PID, error) {
	if err := checkName(name); err != nil {
		return PID{}, err
	}
	if IsLocalName(name) {
		if pid, ok := n.names.lookup(name); ok {
			return pid, nil
		}
		return PID{}, fmt.Errorf("%w: %q on node %v", ErrNameNotFound, name, n.cfg.Addr)
	}
	if l, ok := n.cfg.Names.(LeasedNames); ok {
		pid, ok := l.Held(name)
		if !ok {
			return PID{}, fmt.Errorf("%w: %q is not held on node %v under a lease it can prove valid", ErrNameNotFound, name, n.cfg.Addr)
		}
		return pid, nil
	}
	pid, ok := n.held.get(name)
	if !ok {
		return PID{}, fmt.Errorf("%w: %q is not held on node %v", ErrNameNotFound, name, n.cfg.Addr)
	}
	return pid, nil
}

// resolveName resolves the name a sender addressed: a local name on this
// node, or a global name to the PID of its holder (checked against this
// node's lease when the holder is here).
func (n *Node) resolveName(ctx context.Context, name string) (PID, error) {
	if IsLocalName(name) {
		return n.Lookup(ctx, name)
	}
	pid, err := n.Lookup(ctx, name)
	if err != nil {
		return PID{}, err
	}
	if pid.Node == n.cfg.Addr {
		return n.resolveHeld(name)
	}
	return pid, nil
}

// HeldName reports which actor of this node holds the global name, if
// this node holds it under a lease it can prove valid now (see
// LeasedNames). A singleton registered under a global name checks it
// before it acts: from the moment it returns false, another node may
// hold the name.
func (n *Node) HeldName(name string) (PID, bool) {
	if IsLocalName(name) || n.cfg.Names == nil {
		return PID{}, false
	}
	pid, err := n.resolveHeld(name)
	return pid, err == nil
}
