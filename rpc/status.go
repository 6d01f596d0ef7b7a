package rpc

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/wire"
)

// Code says what kind of error a Status is. Codes 0 to 16 mean what
// gRPC's codes mean; codes from FirstApplicationCode up are the game's own
// (say 1001 for "not enough gold"). Codes 17 to 999 are reserved.
type Code uint32

// The codes.
const (
	OK                 Code = 0  // not an error
	Canceled           Code = 1  // the caller cancelled the call
	Unknown            Code = 2  // an error with no more specific code (a handler returned a plain error)
	InvalidArgument    Code = 3  // the request is wrong, whatever the state (or did not decode)
	DeadlineExceeded   Code = 4  // the deadline passed before the answer came
	NotFound           Code = 5  // the target, or something the request names, does not exist
	AlreadyExists      Code = 6  // what the request creates exists already
	PermissionDenied   Code = 7  // the caller may not do this
	ResourceExhausted  Code = 8  // a queue or quota is full: retry later
	FailedPrecondition Code = 9  // the state does not allow it now
	Aborted            Code = 10 // a conflict, such as a version mismatch
	OutOfRange         Code = 11 // a value past a valid range
	Unimplemented      Code = 12 // the service has no such method
	Internal           Code = 13 // a bug: a handler panicked, a reply could not be encoded
	Unavailable        Code = 14 // the target cannot be reached now (peer lost, node closing)
	DataLoss           Code = 15 // unrecoverable loss or corruption
	Unauthenticated    Code = 16 // the caller is not authenticated

	// FirstApplicationCode is the first code free for games.
	FirstApplicationCode Code = 1000
)

var codeNames = [...]string{
	"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
	"Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
	"Unauthenticated",
}

// String returns the code's name, or its number for an application code.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "Code(" + strconv.FormatUint(uint64(c), 10) + ")"
}

// Status is the error of a failed call: a code and a message for people.
// It crosses nodes intact. Match it with errors.Is against a Status of the
// same code (the message does not matter), or get it with errors.As or
// CodeOf:
//
//	var ErrNoGold = rpc.Error(1001, "not enough gold")
//	...
//	if errors.Is(err, ErrNoGold) { ... }
//
// A Status made on the caller's side from a runtime error (a lost peer, a
// timeout) also wraps that error, so errors.Is(err, transport.ErrPeerLost)
// works too.
type Status struct {
	Code    Code
	Message string
	cause   error // the local error this status stands for; not sent
}

// Error returns a status with code and msg.
func Error(code Code, msg string) *Status { return &Status{Code: code, Message: msg} }

// Errorf returns a status with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Status {
	return &Status{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error implements error.
func (s *Status) Error() string {
	if s.Message == "" {
		return "rpc: " + s.Code.String()
	}
	return "rpc: " + s.Code.String() + ": " + s.Message
}

// Is reports whether target is a *Status with the same code.
func (s *Status) Is(target error) bool {
	t, ok := target.(*Status)
	return ok && s != nil && t != nil && t.Code == s.Code
}

// Unwrap returns the runtime error the status was made from, if any.
func (s *Status) Unwrap() error { return s.cause }

// CodeOf returns the code of err: OK for nil, the Status's code for an
// error that wraps a *Status, the code a runtime error stands for (see
// StatusOf), and Unknown otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	return StatusOf(err).Code
}

// StatusOf returns err as a *Status: the *Status it wraps, or a new one
// whose code stands for the runtime error it is (DeadlineExceeded for a
// timeout, Unavailable for a lost peer, NotFound for a missing actor, and
// so on), wrapping err. It returns nil for nil.
func StatusOf(err error) *Status {
	if err == nil {
		return nil
	}
	var s *Status
	if errors.As(err, &s) {
		return s
	}
	return &Status{Code: runtimeCode(err), Message: err.Error(), cause: err}
}

// runtimeCode maps the errors of the actor runtime, the cluster and the
// transport to codes, most specific first.
func runtimeCode(err error) Code {
	switch {
	case errors.Is(err, context.Canceled):
		return Canceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, actor.ErrTimeout):
		return DeadlineExceeded
	case errors.Is(err, transport.ErrPendingQueueFull), errors.Is(err, actor.ErrMailboxFull):
		return ResourceExhausted
	case errors.Is(err, actor.ErrActorStopped), errors.Is(err, transport.ErrPeerLost),
		errors.Is(err, actor.ErrNodeClosed), errors.Is(err, cluster.ErrNoMember),
		errors.Is(err, transport.ErrClosed):
		return Unavailable
	case errors.Is(err, actor.ErrActorNotFound), errors.Is(err, actor.ErrNameNotFound):
		return NotFound
	case errors.Is(err, actor.ErrPanicked), errors.Is(err, actor.ErrNoReply), errors.Is(err, wire.ErrNotEncodable):
		return Internal
	case errors.Is(err, wire.ErrUnknownType):
		return Unimplemented
	case errors.Is(err, wire.ErrMalformed):
		return InvalidArgument
	}
	return Unknown
}
