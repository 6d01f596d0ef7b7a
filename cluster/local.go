package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster/internal/fanout"
)

// Memory is a membership store held in memory, shared by the nodes of one
// process: each node gets its own Membership from it with Join, and global
// names from Names. It is the store behind NewLocal, and it lets several
// nodes run in one process with no etcd (tests, benchmarks, tools).
// Nothing leaves the process, and there are no leases: a member stays
// until it leaves or its Membership is closed, and then its global names
// go with it.
type Memory struct {
	mu      sync.Mutex // guards view, members and names; held while publishing, which orders events
	view    map[actor.Addr]Member
	members map[*memMember]struct{} // the open Memberships
	names   map[string]actor.PID
}

// NewMemory returns an empty in-memory membership store.
func NewMemory() *Memory {
	return &Memory{
		view:    make(map[actor.Addr]Member),
		members: make(map[*memMember]struct{}),
		names:   make(map[string]actor.PID),
	}
}

// Names returns the store's registry of global names, for
// NodeConfig.Names: the first registration of a name wins, and a node's
// names are released when it leaves.
func (s *Memory) Names() actor.NameRegistry { return memNames{s} }

// memNames is a Memory's actor.NameRegistry.
type memNames struct{ s *Memory }

func (n memNames) Register(ctx context.Context, name string, pid actor.PID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.s.mu.Lock()
	defer n.s.mu.Unlock()
	if cur, ok := n.s.names[name]; ok && cur != pid {
		return fmt.Errorf("%w: %q is held by %v", actor.ErrNameTaken, name, cur)
	}
	n.s.names[name] = pid
	return nil
}

func (n memNames) Unregister(ctx context.Context, name string, pid actor.PID) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.s.mu.Lock()
	defer n.s.mu.Unlock()
	if n.s.names[name] == pid {
		delete(n.s.names, name)
	}
	return nil
}

func (n memNames) Lookup(ctx context.Context, name string) (actor.PID, error) {
	if err := ctx.Err(); err != nil {
		return actor.PID{}, err
	}
	n.s.mu.Lock()
	defer n.s.mu.Unlock()
	pid, ok := n.s.names[name]
	if !ok {
		return actor.PID{}, fmt.Errorf("%w: %q", actor.ErrNameNotFound, name)
	}
	return pid, nil
}

// Membership returns the Membership of the node at self on this store. It
// sees every member of the store. It owns one goroutine, the delivery of
// its events, which its Close stops.
func (s *Memory) Membership(self actor.Addr) Membership {
	m := &memMember{store: s, self: self, fan: fanout.New[Event](slog.Default())}
	s.mu.Lock()
	s.members[m] = struct{}{}
	s.mu.Unlock()
	return m
}

// NewLocal returns the single-process Membership for the node at self, the
// default when no cluster is configured: a Memory store of its own.
func NewLocal(self actor.Addr) Membership { return NewMemory().Membership(self) }

// publishLocked tells every open Membership of the store about ev.
func (s *Memory) publishLocked(ev Event) {
	for m := range s.members {
		m.fan.Publish(Event{Kind: ev.Kind, Member: ev.Member.Clone()})
	}
}

// memMember is one node's Membership on a Memory store.
type memMember struct {
	store  *Memory
	self   actor.Addr
	fan    *fanout.Queue[Event]
	joined bool // guarded by store.mu
	closed bool // guarded by store.mu
}

func (l *memMember) check(m Member) error {
	if m.Addr != l.self {
		return fmt.Errorf("%w: address %v is not this node's %v", ErrBadMember, m.Addr, l.self)
	}
	return nil
}

func (l *memMember) Join(ctx context.Context, m Member) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := l.check(m); err != nil {
		return err
	}
	if m.Started.IsZero() {
		m.Started = time.Now()
	}
	m = m.Clone()
	s := l.store
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case l.closed:
		return ErrClosed
	case l.joined:
		return ErrAlreadyJoined
	}
	if _, ok := s.view[m.Addr]; ok {
		return fmt.Errorf("%w: address %v is held by another node", ErrBadMember, m.Addr)
	}
	s.view[m.Addr] = m
	l.joined = true
	s.publishLocked(Event{Kind: Join, Member: m})
	return nil
}

func (l *memMember) Update(ctx context.Context, m Member) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := l.check(m); err != nil {
		return err
	}
	m = m.Clone()
	s := l.store
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if !l.joined {
		return ErrNotJoined
	}
	old := s.view[m.Addr]
	if m.Started.IsZero() {
		m.Started = old.Started
	}
	if old.Equal(m) {
		return nil
	}
	s.view[m.Addr] = m
	s.publishLocked(Event{Kind: Update, Member: m})
	return nil
}

func (l *memMember) Leave(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.store.mu.Lock()
	defer l.store.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.leaveLocked()
	return nil
}

func (l *memMember) leaveLocked() {
	if !l.joined {
		return
	}
	s := l.store
	old := s.view[l.self]
	delete(s.view, l.self)
	l.joined = false
	for name, pid := range s.names {
		if pid.Node == l.self {
			delete(s.names, name)
		}
	}
	s.publishLocked(Event{Kind: Leave, Member: old})
}

func (l *memMember) Members() []Member {
	l.store.mu.Lock()
	defer l.store.mu.Unlock()
	return SortedView(l.store.view)
}

func (l *memMember) Subscribe(fn func(Event)) func() {
	l.store.mu.Lock()
	defer l.store.mu.Unlock()
	var initial []Event
	for _, m := range SortedView(l.store.view) {
		initial = append(initial, Event{Kind: Join, Member: m})
	}
	return l.fan.Subscribe(fn, initial)
}

func (l *memMember) Close() error {
	s := l.store
	s.mu.Lock()
	if l.closed {
		s.mu.Unlock()
		return nil
	}
	l.leaveLocked()
	l.closed = true
	delete(s.members, l)
	s.mu.Unlock()
	l.fan.Close()
	return nil
}
