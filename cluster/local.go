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

// local is the one-process Membership: the view holds at most this node.
type local struct {
	self actor.Addr
	fan  *fanout.Queue[Event]

	mu     sync.Mutex // guards view and closed; held while publishing, which orders events
	view   map[actor.Addr]Member
	closed bool
}

// NewLocal returns the single-process Membership for the node at self, the
// default when no cluster is configured. Join, Update and Leave change an
// in-memory view and fire events; nothing leaves the process. It owns one
// goroutine, the event delivery, which Close stops.
func NewLocal(self actor.Addr) Membership {
	return &local{
		self: self,
		fan:  fanout.New[Event](slog.Default()),
		view: make(map[actor.Addr]Member),
	}
}

func (l *local) check(m Member) error {
	if m.Addr != l.self {
		return fmt.Errorf("%w: address %v is not this node's %v", ErrBadMember, m.Addr, l.self)
	}
	return nil
}

func (l *local) Join(ctx context.Context, m Member) error {
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
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if _, ok := l.view[m.Addr]; ok {
		return ErrAlreadyJoined
	}
	l.view[m.Addr] = m
	l.fan.Publish(Event{Kind: Join, Member: m.Clone()})
	return nil
}

func (l *local) Update(ctx context.Context, m Member) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := l.check(m); err != nil {
		return err
	}
	m = m.Clone()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	old, ok := l.view[m.Addr]
	if !ok {
		return ErrNotJoined
	}
	if m.Started.IsZero() {
		m.Started = old.Started
	}
	if old.Equal(m) {
		return nil
	}
	l.view[m.Addr] = m
	l.fan.Publish(Event{Kind: Update, Member: m.Clone()})
	return nil
}

func (l *local) Leave(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.leaveLocked()
	return nil
}

func (l *local) leaveLocked() {
	if old, ok := l.view[l.self]; ok {
		delete(l.view, l.self)
		l.fan.Publish(Event{Kind: Leave, Member: old})
	}
}

func (l *local) Members() []Member {
	l.mu.Lock()
	defer l.mu.Unlock()
	return SortedView(l.view)
}

func (l *local) Subscribe(fn func(Event)) func() {
	l.mu.Lock()
	defer l.mu.Unlock()
	var initial []Event
	for _, m := range SortedView(l.view) {
		initial = append(initial, Event{Kind: Join, Member: m})
	}
	return l.fan.Subscribe(fn, initial)
}

func (l *local) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.leaveLocked()
	l.closed = true
	l.mu.Unlock()
	l.fan.Close()
	return nil
}
