package actor

import "fmt"

// SpawnOption configures one actor at spawn time.
type SpawnOption interface {
	apply(*spawnOptions)
}

type spawnOptions struct {
	name         string
	bound        int
	supervisor   *Supervisor
	interceptors []ReceiveInterceptor
}

type optionFunc func(*spawnOptions)

func (f optionFunc) apply(o *spawnOptions) { f(o) }

// WithName registers the actor under a local name (one that starts with ".")
// as part of the spawn. The spawn fails with ErrNameTaken, and no actor is
// created, when the name is held. The name is released when the actor stops.
func WithName(name string) SpawnOption {
	return optionFunc(func(o *spawnOptions) { o.name = name })
}

// WithMailboxBound bounds the actor's user mailbox to n messages. When it is
// full, Send, Request and Call return ErrMailboxFull. Replies, timer messages
// and lifecycle messages are never refused. The default, 0, is unbounded.
func WithMailboxBound(n int) SpawnOption {
	return optionFunc(func(o *spawnOptions) { o.bound = n })
}

// WithSupervisor sets the strategy this actor applies to its own children
// when they fail. Children of an actor without one use the node's
// Config.Supervisor.
func WithSupervisor(s Supervisor) SpawnOption {
	return optionFunc(func(o *spawnOptions) { o.supervisor = &s })
}

// WithReceiveInterceptors wraps this actor's Receive, inside any node-wide
// Config.ReceiveInterceptors.
func WithReceiveInterceptors(ics ...ReceiveInterceptor) SpawnOption {
	return optionFunc(func(o *spawnOptions) { o.interceptors = append(o.interceptors, ics...) })
}

func (o *spawnOptions) validate() error {
	if o.bound < 0 || o.bound > 1<<30 {
		return fmt.Errorf("actor: mailbox bound %d is outside 0..%d", o.bound, 1<<30)
	}
	if o.name != "" {
		if !IsLocalName(o.name) {
			return fmt.Errorf("%w: WithName takes a local name starting with \".\", got %q", ErrBadName, o.name)
		}
		if err := checkName(o.name); err != nil {
			return err
		}
	}
	if o.supervisor != nil {
		if err := o.supervisor.validate(); err != nil {
			return err
		}
	}
	return nil
}
