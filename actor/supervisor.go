package actor

import (
	"fmt"
	"runtime/debug"
	"time"
)

// Directive is a supervisor's decision about a failed child.
type Directive uint8

// The directives.
const (
	// Restart replaces the failed instance with a fresh one from its
	// Producer. The mailbox, PID, names and watchers are kept; the failed
	// instance's children and timers are stopped, and its outstanding
	// Request callbacks are dropped.
	Restart Directive = iota
	// Resume keeps the instance and its state and carries on with the next
	// message.
	Resume
	// Stop stops the child.
	Stop
	// Escalate stops the child and fails its parent with the same reason, so
	// that the grandparent's strategy decides for the parent. For a
	// top-level actor it is the same as Stop.
	Escalate
)

// String names the directive.
func (d Directive) String() string {
	switch d {
	case Restart:
		return "restart"
	case Resume:
		return "resume"
	case Stop:
		return "stop"
	case Escalate:
		return "escalate"
	}
	return fmt.Sprintf("Directive(%d)", d)
}

// Supervisor is a one-for-one strategy: a parent applies it to each child
// that panics, independently of its siblings. The failing message is dropped
// (a Call or Request waiting on it gets ErrPanicked at once), the panic and
// its stack are logged, and then Decide picks what happens to the child.
//
// Restarts have a budget: a child restarted MaxRestarts times within Window
// is stopped instead. The zero value restarts on every panic with the
// default budget.
type Supervisor struct {
	// Decide maps a panic value to a directive. Nil means Restart. It runs
	// on the failing child's turn, so it may run concurrently for different
	// children and must be safe for concurrent use; a Decide that panics
	// counts as Stop.
	Decide func(reason any) Directive
	// MaxRestarts is the restart budget per Window. 0 means the default, 10;
	// a negative value means no restart is allowed (Restart acts as Stop).
	MaxRestarts int
	// Window is the sliding window of the budget. 0 means the default, 10s.
	Window time.Duration
}

// Default restart budget.
const (
	DefaultMaxRestarts   = 10
	DefaultRestartWindow = 10 * time.Second
)

func (s *Supervisor) validate() error {
	if s.Window < 0 {
		return fmt.Errorf("actor: supervisor window %v is negative", s.Window)
	}
	return nil
}

// decide runs Decide; a Decide that panics counts as Stop, and its panic
// value and stack are returned (stack is nil otherwise).
func (s *Supervisor) decide(reason any) (d Directive, panicked any, stack []byte) {
	if s.Decide == nil {
		return Restart, nil, nil
	}
	defer func() {
		if r := recover(); r != nil {
			d, panicked, stack = Stop, r, debug.Stack()
		}
	}()
	return s.Decide(reason), nil, nil
}

func (s *Supervisor) budget() (int, time.Duration) {
	n, w := s.MaxRestarts, s.Window
	if n == 0 {
		n = DefaultMaxRestarts
	}
	if w == 0 {
		w = DefaultRestartWindow
	}
	return n, w
}

// allowRestart records a restart at now in history and reports whether it
// fits the budget. history holds unix-nano times of recent restarts.
func (s *Supervisor) allowRestart(history []int64, now int64) ([]int64, bool) {
	max, window := s.budget()
	if max < 0 {
		return history, false
	}
	keep := history[:0]
	for _, t := range history {
		if now-t < int64(window) {
			keep = append(keep, t)
		}
	}
	if len(keep) >= max {
		return keep, false
	}
	return append(keep, now), true
}
