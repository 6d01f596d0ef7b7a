package report

import (
	"time"

	"github.com/guildkit/guild/actor"
)

// Batch is what one delivery carries: the JSON a webhook receives (see
// the package doc) and the contents of one e-mail.
type Batch struct {
	// Source names the sender: the reporter's Source (app sets the node's
	// name in the cluster file). Omitted when empty.
	Source string `json:"source,omitempty"`
	// Sent is when the batch was first tried.
	Sent time.Time `json:"sent"`
	// Dropped counts the failures lost since the previous batch was
	// delivered: dropped because the queue was full, or in a batch whose
	// delivery failed.
	Dropped uint64 `json:"dropped"`
	// Failures are the failures, oldest first.
	Failures []Entry `json:"failures"`
}

// Entry is one failure in a Batch: an actor.Failure in JSON's terms.
type Entry struct {
	// Kind is "panic", "escalation" or "budget" (an actor stopped: its
	// restart budget was spent).
	Kind string `json:"kind"`
	// Node is the address of the node where it happened, "1.2.1".
	Node string `json:"node"`
	// PID is the actor, "1.2.1/42"; empty outside any actor.
	PID string `json:"pid,omitempty"`
	// Names are the actor's local and global names.
	Names []string `json:"names,omitempty"`
	// Parent is, for an escalation, the actor escalated to.
	Parent string `json:"parent,omitempty"`
	// Where is which user code failed (actor.Failure.Where).
	Where string `json:"where"`
	// MessageType is the type of the message being handled.
	MessageType string `json:"message_type,omitempty"`
	// Reason is the panic value, as text.
	Reason string `json:"reason"`
	// Stack is the panicking goroutine's stack; empty for an escalation.
	Stack string `json:"stack,omitempty"`
	// Time is when it happened.
	Time time.Time `json:"time"`
}

// EntryOf turns an actor.Failure into its Entry.
func EntryOf(f actor.Failure) Entry {
	e := Entry{
		Kind:        f.Kind.String(),
		Node:        f.Node.String(),
		Names:       f.Names,
		Where:       f.Where,
		MessageType: f.MessageType,
		Reason:      f.Reason,
		Stack:       string(f.Stack),
		Time:        f.Time,
	}
	if !f.PID.IsZero() {
		e.PID = f.PID.String()
	}
	if !f.Parent.IsZero() {
		e.Parent = f.Parent.String()
	}
	return e
}
