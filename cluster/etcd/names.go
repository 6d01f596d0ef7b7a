package etcd

import (
	"context"
	"fmt"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
)

// Names returns the global-name registry of this Membership, for
// actor.Config.Names. A name is registered under this node's lease: it needs
// Join first (cluster.ErrNotJoined otherwise), and it is released when the
// node leaves or its lease expires.
func (m *Membership) Names() actor.NameRegistry { return names{m} }

type names struct{ m *Membership }

// checkGlobalName applies actor's name rules to a global name.
func checkGlobalName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", actor.ErrBadName)
	}
	if actor.IsLocalName(name) {
		return fmt.Errorf("%w: %q is a local name (it starts with \".\")", actor.ErrBadName, name)
	}
	if len(name) > 255 {
		return fmt.Errorf("%w: longer than 255 bytes", actor.ErrBadName)
	}
	if strings.IndexFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return fmt.Errorf("%w: %q contains a space or control character", actor.ErrBadName, name)
	}
	return nil
}

func (m *Membership) nameKey(name string) string { return m.namesPfx + name }

// putName creates name → pid under lease unless the name exists. ok is
// false when another PID holds it; holder is then its value.
func (m *Membership) putName(ctx context.Context, name string, pid actor.PID, lease clientv3.LeaseID) (ok bool, holder string, err error) {
	key, val := m.nameKey(name), encodePID(pid)
	tr, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, val, clientv3.WithLease(lease))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return false, "", fmt.Errorf("cluster/etcd: register %q: %w", name, err)
	}
	if tr.Succeeded {
		return true, "", nil
	}
	if kvs := tr.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		holder = string(kvs[0].Value)
	}
	return holder == val, holder, nil
}

// Register binds name to pid for the whole cluster, under this node's
// lease. The first registration wins: a name held by another PID returns an
// error matching actor.ErrNameTaken. Registering the same pair again
// succeeds.
func (n names) Register(ctx context.Context, name string, pid actor.PID) error {
	m := n.m
	if err := checkGlobalName(name); err != nil {
		return err
	}
	if pid.IsZero() {
		return fmt.Errorf("%w: cannot register %q to the zero PID", actor.ErrActorNotFound, name)
	}
	if err := m.acquire(ctx); err != nil {
		return err
	}
	defer m.release()
	s := m.session()
	if s == nil {
		return fmt.Errorf("%w: global names live under the node's lease", cluster.ErrNotJoined)
	}
	ok, holder, err := m.putName(ctx, name, pid, s.lease)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %q is held by %s", actor.ErrNameTaken, name, holder)
	}
	m.ownedMu.Lock()
	s.owned[name] = ownedName{pid: pid, epoch: m.epochs}
	m.ownedMu.Unlock()
	return nil
}

// Unregister releases name if pid holds it; otherwise it returns an error
// matching actor.ErrNameNotFound.
func (n names) Unregister(ctx context.Context, name string, pid actor.PID) error {
	m := n.m
	if err := checkGlobalName(name); err != nil {
		return err
	}
	// No longer owned, whether or not etcd can be told now: a lease lost
	// meanwhile must not register the name again (regrant), for an actor
	// that is gone. (The caller tries again until etcd is told.)
	m.disown(name, pid)
	if err := m.acquire(ctx); err != nil {
		return err
	}
	defer m.release()
	key := m.nameKey(name)
	tr, err := m.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", encodePID(pid))).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return fmt.Errorf("cluster/etcd: unregister %q: %w", name, err)
	}
	m.disown(name, pid) // again: a regrant that ran meanwhile registered it again
	if !tr.Succeeded {
		return fmt.Errorf("%w: %q is not held by %v", actor.ErrNameNotFound, name, pid)
	}
	return nil
}

// disown drops name from the names the session owns (and registers again
// after a lost lease), if pid holds it.
func (m *Membership) disown(name string, pid actor.PID) {
	s := m.session()
	if s == nil {
		return
	}
	m.ownedMu.Lock()
	if o, ok := s.owned[name]; ok && o.pid == pid {
		delete(s.owned, name)
	}
	m.ownedMu.Unlock()
}

// Lookup resolves name from the local cache that the names watcher keeps,
// and asks etcd when the name is not cached (it may have been registered a
// moment ago). A name nobody holds returns an error matching
// actor.ErrNameNotFound.
func (n names) Lookup(ctx context.Context, name string) (actor.PID, error) {
	m := n.m
	if err := checkGlobalName(name); err != nil {
		return actor.PID{}, err
	}
	m.namesMu.RLock()
	pid, ok := m.names[name]
	m.namesMu.RUnlock()
	if ok {
		return pid, nil
	}
	m.lookupGets.Add(1)
	resp, err := m.cli.Get(ctx, m.nameKey(name))
	if err != nil {
		return actor.PID{}, fmt.Errorf("cluster/etcd: lookup %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return actor.PID{}, fmt.Errorf("%w: %q", actor.ErrNameNotFound, name)
	}
	return decodePID(string(resp.Kvs[0].Value))
}

// applyName applies one watch event to the name cache.
func (m *Membership) applyName(ev *clientv3.Event) {
	name := strings.TrimPrefix(string(ev.Kv.Key), m.namesPfx)
	var pid actor.PID
	var bad error
	if ev.Type == clientv3.EventTypePut {
		pid, bad = decodePID(string(ev.Kv.Value))
		if bad != nil {
			m.log.Warn("cluster/etcd: ignoring a bad name record", "name", name, "err", bad) // before locking
		}
	}
	m.namesMu.Lock()
	defer m.namesMu.Unlock()
	switch ev.Type {
	case clientv3.EventTypePut:
		if bad != nil {
			delete(m.names, name)
			return
		}
		m.names[name] = pid
	case clientv3.EventTypeDelete:
		delete(m.names, name)
	}
}

// resetNames replaces the name cache with kvs.
func (m *Membership) resetNames(kvs []*mvccpb.KeyValue) {
	next := make(map[string]actor.PID, len(kvs))
	for _, kv := range kvs {
		if pid, err := decodePID(string(kv.Value)); err == nil {
			next[strings.TrimPrefix(string(kv.Key), m.namesPfx)] = pid
		}
	}
	m.namesMu.Lock()
	m.names = next
	m.namesMu.Unlock()
}

// Held implements actor.LeasedNames: the actor this node registered name
// for, if it still holds the name under its current lease and that lease
// is surely valid. After a lost lease, a name counts again only once the
// keeper has registered it under the new lease (another node may have
// taken it meanwhile).
func (n names) Held(name string) (actor.PID, bool) {
	m := n.m
	h := m.held.Load()
	if h == nil {
		return actor.PID{}, false
	}
	m.ownedMu.RLock()
	o, ok := h.sess.owned[name]
	m.ownedMu.RUnlock()
	if !ok || o.epoch != h.epoch || !h.keeper.Valid() {
		return actor.PID{}, false
	}
	return o.pid, true
}

var _ actor.LeasedNames = names{}
