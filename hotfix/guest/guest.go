// Package guest is the side of a hot-fix module that runs inside
// WebAssembly: a fix imports it, registers its handler with Handle in
// main (or in init), and is built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o counter.wasm ./fixes/counter
//
// The package hides the ABI between the module and package hotfix (the
// host): the exports it defines, the buffers it hands the host and the
// layout of a result. A fix sees one function per message, which it
// registers in an init function (a reactor's main never runs; it must
// still exist, empty, since the package is a main package):
//
//	func init() {
//		guest.Handle(func(state []byte, msgType string, msg []byte) (guest.Result, error) {
//			...
//		})
//	}
//
//	func main() {}
//
// (Package guestpb, beside this one, routes protobuf messages to typed
// handlers with a protobuf state instead.)
//
// state is the actor's state as the host keeps it (the bytes the last
// turn returned), msgType the message's type name (a protobuf full name,
// or the Type of a hotfix.Message) and msg its bytes. The slices are only
// valid during the call: copy what must outlive it.
//
// # ABI (version 1)
//
// The module exports, besides _initialize (which the host calls once per
// instance, before anything else):
//
//	guild_abi() uint32                     // 1
//	guild_alloc(size uint32) uint32        // a buffer of size bytes, valid until the next guild_alloc
//	guild_handle(in, stateLen, typeLen, msgLen uint32) uint64
//	guild_check() uint64                   // the self-check, run before a module is accepted
//
// The host writes state, type and message back to back into the buffer
// guild_alloc returned and calls guild_handle with its address and the
// three lengths. guild_handle and guild_check return the address (high 32
// bits) and length (low 32 bits) of a result, valid until the next call:
//
//	flags     u8   1: error, 2: state set, 4: reply set
//	typeLen   u32  little endian, then stateLen u32, then dataLen u32
//	type, state, data
//
// With the error flag, data is the error's text and nothing else counts.
// Without the state flag the state is unchanged. The module imports
// nothing but WASI (which the Go runtime needs for its clock, random
// numbers and its exit on a fatal error).
//
// A panic in the handler is recovered and returned as an error, so the
// instance lives on. What cannot be recovered (a fatal error of the Go
// runtime, such as running out of memory or a stack overflow) ends the
// instance: the host discards it and the turn fails; the actor's state is
// the one before the turn.
//
// This package imports only the standard library, and the host is not
// needed to build it: it compiles for any GOOS (the exports exist only
// under GOOS=wasip1), so a fix's handler can be unit tested natively with
// Call.
package guest

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ABIVersion is the version of the ABI this package implements, which
// guild_abi returns. The host refuses a module of another version.
const ABIVersion = 1

// Result is what a handler returns for one message.
type Result struct {
	// State is the actor's new state. Nil leaves the state as it was; an
	// empty, non-nil slice empties it.
	State []byte
	// Reply is the answer to a request, nil for none. ReplyType names its
	// protobuf message type (a full name the node's binary knows, such as
	// "google.protobuf.Int64Value"), so that the host decodes it into
	// that type; empty, the requester gets a *hotfix.Message with the raw
	// bytes.
	Reply     []byte
	ReplyType string
}

// HandlerFunc handles one message: see the package doc.
type HandlerFunc func(state []byte, msgType string, msg []byte) (Result, error)

var (
	handler HandlerFunc
	checks  []func() error
	in      []byte // the host's input buffer (guild_alloc)
	out     []byte // the last result
)

// Handle sets the module's handler. Call it once, in an init function
// (main never runs in a reactor); the last call wins.
func Handle(h HandlerFunc) { handler = h }

// Check adds a self-check, which the host runs once per module before
// it accepts it (and a new instance never runs). A check that returns an
// error or panics makes the host reject the module and keep the old
// one: a fix can check its own constants and tables here.
func Check(f func() error) { checks = append(checks, f) }

// ErrNoHandler is the error of a message to a module whose main did not
// call Handle.
var ErrNoHandler = errors.New("guest: the module has no handler (call guest.Handle in an init function: a reactor's main never runs)")

// Call runs the registered handler on one message, the way the host
// would, with panics recovered: for tests of a fix, natively.
func Call(state []byte, msgType string, msg []byte) (res Result, err error) {
	if handler == nil {
		return Result{}, ErrNoHandler
	}
	defer func() {
		if r := recover(); r != nil {
			res, err = Result{}, fmt.Errorf("panic: %v", r)
		}
	}()
	return handler(state, msgType, msg)
}

// RunChecks runs the registered self-checks, with panics recovered, and
// returns the first failure.
func RunChecks() (err error) {
	if handler == nil {
		return ErrNoHandler
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	for _, f := range checks {
		if err := f(); err != nil {
			return err
		}
	}
	return nil
}

// Result flags.
const (
	flagError = 1 << iota
	flagState
	flagReply
)

// alloc returns a buffer of size bytes, kept (and reused) until the next
// alloc.
func alloc(size uint32) []byte {
	if uint32(cap(in)) < size {
		in = make([]byte, size)
	}
	in = in[:size]
	return in
}

// handle runs one message from the input buffer and encodes the result.
func handle(stateLen, typeLen, msgLen uint32) []byte {
	if uint64(stateLen)+uint64(typeLen)+uint64(msgLen) > uint64(len(in)) {
		return encodeErr(fmt.Errorf("guest: lengths %d+%d+%d exceed the input buffer (%d)", stateLen, typeLen, msgLen, len(in)))
	}
	state := in[:stateLen:stateLen]
	typ := string(in[stateLen : stateLen+typeLen])
	msg := in[stateLen+typeLen : stateLen+typeLen+msgLen : stateLen+typeLen+msgLen]
	res, err := Call(state, typ, msg)
	if err != nil {
		return encodeErr(err)
	}
	return encode(res)
}

// check runs the self-checks and encodes the result.
func check() []byte {
	if err := RunChecks(); err != nil {
		return encodeErr(err)
	}
	return encode(Result{})
}

func encodeErr(err error) []byte {
	msg := err.Error()
	out = append(out[:0], flagError, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(out[9:], uint32(len(msg)))
	return append(out, msg...)
}

func encode(r Result) []byte {
	var flags byte
	if r.State != nil {
		flags |= flagState
	}
	if r.Reply != nil {
		flags |= flagReply
	}
	out = append(out[:0], flags, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(out[1:], uint32(len(r.ReplyType)))
	binary.LittleEndian.PutUint32(out[5:], uint32(len(r.State)))
	binary.LittleEndian.PutUint32(out[9:], uint32(len(r.Reply)))
	out = append(out, r.ReplyType...)
	out = append(out, r.State...)
	return append(out, r.Reply...)
}
