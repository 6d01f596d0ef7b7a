package actor

import (
	"fmt"
	"runtime/debug"
	"slices"
	"time"
)

// Reporter receives the failures of user code on a node: every panic the
// node recovers (in Receive, a Request callback, a Producer, a
// Supervisor's Decide, a Watch function, a dead-letter subscriber, a
// Node.Request callback, and the handlers of packages rpc and gate, which
// report theirs through Node.Report) and every supervisor decision to
// escalate, and every actor stopped because its restart budget was
// spent. Set it with Config.Reporter; package report has built-in ones
// (a webhook, e-mail, a fan-out).
//
// Concurrency: Report is called on the goroutine where the failure
// happened (often an actor's turn), possibly from many goroutines at once,
// and never with a lock of the node held. It must return at once: hand the
// Failure over without blocking (to a bounded queue that drops, and
// counts, what does not fit) and do any I/O on a goroutine of its own. A
// Report that panics is recovered and logged; it never takes the node
// down.
type Reporter interface {
	// Report hands a failure over. f, and its Stack, belong to the
	// Reporter from then on.
	Report(f Failure)
}

// FailureKind says what a Failure is.
type FailureKind uint8

// The kinds of Failure.
const (
	// FailurePanic is a panic recovered in user code.
	FailurePanic FailureKind = iota
	// FailureEscalation is a supervisor's decision to escalate: the actor
	// stops and its parent fails with the same reason (see Escalate).
	FailureEscalation
	// FailureBudget is an actor stopped instead of restarted: its
	// restart budget (Supervisor.MaxRestarts within Window) was spent.
	// Reason says so, with the failure's own reason.
	FailureBudget
)

// String names the kind: "panic", "escalation" or "budget".
func (k FailureKind) String() string {
	switch k {
	case FailurePanic:
		return "panic"
	case FailureEscalation:
		return "escalation"
	case FailureBudget:
		return "budget"
	}
	return fmt.Sprintf("FailureKind(%d)", uint8(k))
}

// Where a failure happened (Failure.Where). Packages rpc and gate use
// their own: "rpc" (a service method), "gate" (a gate.Service handler),
// "gate auth", "gate validate" and "gate hook" (the gateway's hooks).
const (
	WhereReceive    = "receive"      // Receive, with lifecycle and timer messages
	WhereCallback   = "callback"     // a Request callback run in the actor's turn
	WhereProducer   = "producer"     // a Producer, at spawn or restart
	WhereDecide     = "decide"       // a Supervisor's Decide (the panic counts as Stop)
	WhereSupervisor = "supervisor"   // an escalation (FailureEscalation), a spent restart budget (FailureBudget)
	WhereWatch      = "watch"        // the function of a Node.Watch
	WhereDeadLetter = "dead letters" // a SubscribeDeadLetters function
	WhereRequest    = "request"      // the callback of a Node.Request
)

// MaxFailureStack bounds Failure.Stack: a longer stack is cut to its first
// MaxFailureStack bytes, which hold the panicking frames.
const MaxFailureStack = 16 << 10

// Failure describes one failure of user code. It carries the message's
// type, never its contents.
type Failure struct {
	// Kind is FailurePanic, FailureEscalation or FailureBudget.
	Kind FailureKind
	// Node is the address of the node where it happened.
	Node Addr
	// PID is the actor whose code failed; the zero PID when the code ran
	// outside any actor (a Node.Request callback, a dead-letter
	// subscriber, a Watch function, a Producer at spawn).
	PID PID
	// Names are the local and global names the actor held, if any.
	Names []string
	// Parent is, for an escalation, the actor escalated to (zero for a
	// top-level actor, whose escalation is a stop).
	Parent PID
	// Where is which user code failed: one of the Where constants, or
	// those of packages rpc and gate (see WhereReceive).
	Where string
	// MessageType is the Go type of the message being handled ("*pb.Move",
	// "actor.Started"); package rpc gives the request's protobuf full name,
	// package gate the client's route ("chat.Say").
	// Empty when there was none.
	MessageType string
	// Reason is the panic value (or escalated reason), formatted with %v.
	Reason string
	// Stack is the stack of the panicking goroutine, at most
	// MaxFailureStack bytes; nil for an escalation.
	Stack []byte
	// Time is when it happened.
	Time time.Time
}

// Report hands f to the node's Reporter (Config.Reporter), if there is
// one, filling in what f leaves zero: Node, Time, and the Names of f.PID
// when it is an actor of this node. It cuts Stack to MaxFailureStack. A
// Reporter that panics is recovered and logged. It is for code that runs
// user handlers of its own and recovers their panics (packages rpc and
// gate do); it returns at once, and costs nothing without a Reporter.
func (n *Node) Report(f Failure) {
	if n.reporter == nil {
		return
	}
	if f.Node == 0 {
		f.Node = n.cfg.Addr
	}
	if f.Time.IsZero() {
		f.Time = time.Now()
	}
	if f.Names == nil && f.PID.Node == n.cfg.Addr && f.PID.Serial != 0 {
		f.Names = n.namesOf(f.PID)
	}
	if len(f.Stack) > MaxFailureStack {
		f.Stack = slices.Clip(f.Stack[:MaxFailureStack])
	}
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("actor: the Reporter panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	n.reporter.Report(f)
}

// reportPanic reports a panic recovered in user code, if there is a
// Reporter.
func (n *Node) reportPanic(pid PID, where string, msg any, reason any, stack []byte) {
	if n.reporter == nil {
		return
	}
	f := Failure{Kind: FailurePanic, PID: pid, Where: where, Reason: reasonText(reason), Stack: stack}
	if msg != nil {
		f.MessageType = fmt.Sprintf("%T", msg)
	}
	n.Report(f)
}

// namesOf returns the local and global names pid holds, or nil.
func (n *Node) namesOf(pid PID) []string {
	names := n.names.namesOf(pid)
	return append(names, n.held.namesOf(pid)...)
}

// reasonText formats a panic value. (fmt survives an Error or String
// method that panics: it prints the panic instead.)
func reasonText(r any) string { return fmt.Sprint(r) }
