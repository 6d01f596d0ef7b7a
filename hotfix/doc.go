// Package hotfix replaces the code of a handler on a running node: a fix
// is a WebAssembly module, built from Go with package
// github.com/guildkit/guild/hotfix/guest, that a node compiles, checks
// and swaps in between two messages, while the actors it serves keep
// their state and their clients stay connected. A fix that fails to load
// leaves the old code running.
//
// It is a leaf package: it links wazero (github.com/tetratelabs/wazero,
// a WebAssembly runtime in pure Go, without cgo), and nothing else of
// guild imports it, so a game that does not hot-fix does not link it.
//
// # Pieces
//
//   - Engine: the wazero runtime of a node, with WASI (which the Go
//     runtime inside a module needs), a compilation cache and the limits
//     of Config (memory per instance, time per call); without a
//     CallTimeout, a second runtime for the turns that cannot be stopped
//     (see "Time limits" below).
//   - Module: one compiled, accepted version of a fix (Engine.Compile),
//     with a pool of instances. Version is a hash of its bytes.
//   - Handler: the named slot a kind of message is routed to; Swap puts a
//     module in service with one atomic store.
//   - Actor: an actor.Actor whose logic is a Handler's module. Its state
//     lives in Go, as bytes, and goes into every call; the call returns
//     the new state and the reply.
//   - Loader: the Handlers of a directory, one name.wasm per handler;
//     Reload loads the files that changed.
//
// # Reloading a node's fixes
//
// A Loader reloads its directory in three ways, all through the same
// Reload (one at a time): its watcher (Settings.Watch, Loader.Watch),
// which loads the files that changed once they hold still; guild reload
// -c cluster.yaml -node N (or -all); and the admin API's reload action,
// POST /api/nodes/<addr>/reload, which guild reload calls. The last two
// reach the Loader because the module that opened it handed it to the
// node in its Start:
//
//	env.AddReloader("shop", loader) // app.Env: the admin agent reloads it, and reports its versions
//
// A *Loader is an admin.Reloader: its methods Versions and ReloadItems
// use standard types only, so that it matches admin's interface
// structurally and hotfix imports neither admin nor app. That keeps the
// dependency one way (a game's module imports hotfix and app; nothing of
// guild imports hotfix) and app, admin and cmd/guild free of wazero. The
// node's answer lists each handler's version before and after, whether it
// changed, and why a rejected file was kept; GET
// /api/nodes/<addr>/tables and the admin snapshot list the versions each
// node serves.
//
// # Writing and building a fix
//
//	package main // ./fixes/counter
//
//	import "github.com/guildkit/guild/hotfix/guest"
//
//	func init() {
//		guest.Handle(func(state []byte, msgType string, msg []byte) (guest.Result, error) {
//			n := decode(state) + 2 // the fix: 2 per message
//			return guest.Result{State: encode(n), Reply: []byte("ok")}, nil
//		})
//	}
//
//	func main() {}
//
// built as a WASI reactor (Go 1.24 or later):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o fixes/counter.wasm ./fixes/counter
//
// Package guest describes the ABI (the exports, the buffers and the
// layout of a result); package guestpb (hotfix/guest/guestpb) routes
// protobuf messages to typed handlers, with a protobuf state.
//
// # What loading checks
//
// Engine.Compile, and so Handler.Load and Loader.Reload, accept a module
// only when it compiles, has the ABI's exports with their signatures and
// its memory, reports the ABI version of this host, initializes (the Go
// runtime and the fix's init functions, in _initialize) and passes its
// self-check (the functions it registered with guest.Check), all within
// Config.MemoryLimit. Anything else is an error matching ErrRejected that
// says why, and the handler keeps its module.
//
// # Time limits
//
// Every call into a module ends when the ctx it runs under ends, and
// each at Config.CallTimeout when the Engine has one: a turn (Module.Call,
// Handler.Call) as a trap, a load (Engine.Compile, and so Handler.Load
// and Loader.Reload) as a rejection that also matches ctx's error, so a
// fix whose init or self-check never returns cannot hold a reload. A
// Reload waiting for the one in progress gives up at its ctx's end too,
// so a Loader's reloads (the admin API's, bounded by its ReloadTimeout;
// its watcher's and Open's first, bounded by this package's
// ReloadTimeout) return soon after their ctx ends, and the module in
// service keeps serving. Only a compilation already started (seconds)
// runs to its end. A file whose load ran out of its reload's time is
// rejected, and not tried again until it changes, so that the files
// after it get the next reload's time; those a reload had no time left
// for are rejected as not compiled, and the watcher tries them again.
//
// Stopping a call has a price: wazero compiles checks into the module
// and watches the call's ctx with a goroutine, which makes a short turn
// several times dearer. With a CallTimeout every call pays it. Without
// one, a module that passed its checks is compiled a second time,
// without them, and a turn whose ctx never ends (context.Background, as
// an Actor's) runs on that copy at no extra cost, but cannot be stopped:
// an endless loop in a turn then holds its actor. Set a CallTimeout when
// that risk is worth the cost (docs/PERFORMANCE.md).
//
// # Atomic between two messages
//
// A Handler holds its module in an atomic.Pointer. Each call loads it
// once and runs to its end on that module, so every message is handled
// wholly by one version; the calls that start after Swap returns run on
// the new one. The module replaced is closed once its last call ends.
// The state is the actor's, not the module's, so it carries over the
// swap; a fix must read the state the old version wrote (see below).
//
// # Failures in a turn
//
// A handler's error (and a panic, which package guest recovers) answers
// the request with a *CallError; the instance lives on. A trap (an
// unrecoverable fatal error of the guest's Go runtime such as out of
// memory, an exit, CallTimeout or the end of the call's ctx) answers
// with a *CallError that
// matches ErrTrap, with the first lines the guest wrote to its stderr;
// the instance is discarded and the next call makes a new one. Either
// way the state is the one before the turn: it changes only when a call
// returns normally. Nothing a module does takes the node down.
//
// # Goroutines and locks
//
// A call runs on the caller's goroutine (the actor's turn). The only
// goroutine hotfix starts is a Loader's watcher (Loader.Watch, or Open
// with Settings.Watch), which polls the directory and runs its reloads;
// Loader.Close cancels it and waits for it. A reload from the admin API
// runs ReloadItems on the admin agent's reload goroutine, and Versions on
// the agent's actor; both are safe beside the watcher's reloads. A wazero instance runs one call at a
// time, so a Module keeps a pool: a call takes an idle instance (or
// makes one), and gives it back when it ends, up to Config.MaxIdle
// idle ones per compilation (two without a CallTimeout). Module.mu guards the pool only, never a call; a Handler
// takes no lock (its module is an atomic.Pointer); Loader.reload, a
// one-slot semaphore taken with the reload's ctx, serializes Reloads and
// is held while they compile; Loader.mu guards its map of Handlers and
// its watcher's state, briefly, so that Loader.Handler never waits for a
// compile (docs/LOCKS.md has the order). wazero watches the context of
// each call that can be stopped (see "Time limits") with a goroutine of
// its own for the call's length.
//
// # What a fix can and cannot change
//
// It can change the logic of the handlers routed to modules: rules,
// formulas, constants, the bugs of a computation from state and message
// to new state and reply, the reply's content and type (among those the
// node's binary knows), and the errors it returns.
//
// It cannot change Go code outside the module (the node's binary, other
// actors, the routing that sends a message to a hotfix Actor); it cannot
// add message types that the node cannot decode (a message reaches the
// module only as a proto.Message the node's binary has, or a *Message);
// it cannot change the state's schema incompatibly (the new version gets
// the bytes the old one wrote: change the schema in a compatible way,
// for example by adding protobuf fields, or migrate inside the fix);
// and it cannot call the node: the ABI gives a module no host function
// but WASI's clock, random numbers and stdout/stderr (Config.Output),
// and no file or network access. A module cannot send messages, start
// timers or call another actor; the actor around it does that.
package hotfix
