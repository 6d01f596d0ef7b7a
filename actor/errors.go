package actor

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is: the runtime may wrap them with
// detail.
var (
	// ErrActorNotFound: the target does not exist (it never did, or it has
	// stopped).
	ErrActorNotFound = errors.New("actor: actor not found")
	// ErrActorStopped: the target stopped before it answered. It matches
	// ErrActorNotFound too.
	ErrActorStopped = fmt.Errorf("actor: stopped before replying: %w", ErrActorNotFound)
	// ErrMailboxFull: the target's bounded mailbox is full. Nothing was queued.
	ErrMailboxFull = errors.New("actor: mailbox full")
	// ErrTimeout: no reply came in time. A Call whose ctx ends returns the
	// ctx's own error instead.
	ErrTimeout = errors.New("actor: timeout")
	// ErrNodeClosed: the node is shutting down or closed.
	ErrNodeClosed = errors.New("actor: node closed")
	// ErrNoReply: the target handled a request but neither responded,
	// forwarded it, nor kept a Responder to answer later.
	ErrNoReply = errors.New("actor: request handled without a reply")
	// ErrPanicked: the target panicked while handling the request. The panic
	// value and stack are logged on the target's node.
	ErrPanicked = errors.New("actor: panicked while handling the request")
	// ErrCallToSelf: an actor Called itself, which would deadlock.
	ErrCallToSelf = errors.New("actor: call to self would deadlock")
	// ErrNameTaken: the name is registered to another actor.
	ErrNameTaken = errors.New("actor: name taken")
	// ErrNameNotFound: no actor is registered under the name.
	ErrNameNotFound = errors.New("actor: name not found")
	// ErrBadName: the name is empty or malformed.
	ErrBadName = errors.New("actor: bad name")
	// ErrNoGlobalNames: a global name (one without a leading ".") was used
	// on a node that has no cluster name registry.
	ErrNoGlobalNames = errors.New("actor: global names need a cluster name registry")
	// ErrRemote: the target lives on another node and this node has no route
	// to it.
	ErrRemote = errors.New("actor: target is on another node and no Config.Remote is configured")
)
