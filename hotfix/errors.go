package hotfix

import (
	"errors"
	"fmt"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrRejected matches every error of a module that was refused: it
	// does not compile, lacks an export of the ABI, speaks another ABI
	// version, traps while it initializes, fails its self-check or
	// exceeds the memory limit. The handler keeps its old module.
	ErrRejected = errors.New("hotfix: module rejected")
	// ErrTrap matches a CallError of a turn that the module did not
	// finish: a WebAssembly trap, a fatal error of the guest's runtime
	// (out of memory, stack overflow), or CallTimeout. The instance is
	// discarded; the actor's state is the one before the turn.
	ErrTrap = errors.New("hotfix: the module trapped")
	// ErrNoModule is the error of a call to a Handler that has no module
	// yet.
	ErrNoModule = errors.New("hotfix: no module loaded")
	// ErrClosed is the error of a call to, or a Compile on, a closed
	// Engine, and of a call to a closed Module.
	ErrClosed = errors.New("hotfix: closed")
)

// CallError is the error of one call into a module: the handler's own
// error (Trap false; the instance lives on) or a trap (Trap true). The
// hotfix Actor answers a request with it.
type CallError struct {
	Handler string // the module's name
	Version string // the module's version (Module.Version)
	Trap    bool   // the module did not finish the call
	Msg     string // the handler's error, or the trap with the first lines of the guest's stderr
}

// Error implements error.
func (e *CallError) Error() string {
	kind := "error"
	if e.Trap {
		kind = "trap"
	}
	return fmt.Sprintf("hotfix: %s@%s: %s: %s", e.Handler, e.Version, kind, e.Msg)
}

// Is makes errors.Is(err, ErrTrap) true for a trap.
func (e *CallError) Is(target error) bool { return target == ErrTrap && e.Trap }

// rejected wraps a module's refusal.
func rejected(name string, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrRejected, name, fmt.Sprintf(format, a...))
}
