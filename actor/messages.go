package actor

import "strconv"

// Lifecycle messages. The runtime delivers them to an actor's Receive like any
// other message, always ahead of user messages that are still queued.
type (
	// Started is the first message an actor receives, and the first message
	// after each restart.
	Started struct{}
	// Stopping is delivered when the actor begins to stop, before its
	// children are stopped.
	Stopping struct{}
	// Stopped is the last message an actor receives, after all its children
	// have stopped. Once Receive returns from it, sends to the actor fail
	// with ErrActorNotFound; messages that arrive while it stops (from
	// Stopping on) go to dead letters.
	Stopped struct{}
	// Restarting is delivered to the failed instance before the supervisor
	// replaces it with a fresh one.
	Restarting struct{ Reason any }
)

// Terminated tells a watcher that the watched actor has stopped, or that
// it can no longer be reached: Reason says which. A watcher gets at most one
// Terminated per watch. A parent that wants it for a child watches the
// child like any other actor.
type Terminated struct {
	PID    PID
	Reason TerminationReason
}

// TerminationReason says why a Terminated was sent.
type TerminationReason uint8

// The reasons of a Terminated.
const (
	// ReasonStopped: the actor stopped (it was stopped, poisoned, failed
	// for good, or its node shut down gracefully and stopped it).
	ReasonStopped TerminationReason = iota
	// ReasonNotFound: there was no such actor when the watch reached its
	// node: it had stopped already, or never existed.
	ReasonNotFound
	// ReasonNodeDown: the actor's node left the cluster or died (its
	// membership record is gone), or is not a member at all.
	ReasonNodeDown
	// ReasonLinkLost: the actor's node could not be reached for longer
	// than the cluster's watch link timeout while it stayed a member (a
	// partition). The actor may still be running.
	ReasonLinkLost
)

// String names the reason.
func (r TerminationReason) String() string {
	switch r {
	case ReasonStopped:
		return "stopped"
	case ReasonNotFound:
		return "not found"
	case ReasonNodeDown:
		return "node down"
	case ReasonLinkLost:
		return "link lost"
	}
	return "TerminationReason(" + strconv.Itoa(int(r)) + ")"
}

// DeadLetter describes a message that could not be delivered.
type DeadLetter struct {
	Target  PID
	Sender  PID
	Message any
	Reason  error
}
