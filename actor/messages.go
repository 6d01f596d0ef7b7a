package actor

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

// Terminated tells a watcher that the watched actor has stopped. A parent
// that wants it for a child watches the child like any other actor.
type Terminated struct {
	PID PID
}

// DeadLetter describes a message that could not be delivered.
type DeadLetter struct {
	Target  PID
	Sender  PID
	Message any
	Reason  error
}
