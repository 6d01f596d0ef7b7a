package hotfix

import (
	"context"
	"errors"
	"sync/atomic"
)

// Handler is a named slot for the module that serves a kind of message,
// which a fix replaces atomically while actors run: each call loads the
// current module once and runs on it to its end, so a message is handled
// wholly by the old version or wholly by the new one. Handler is safe for
// concurrent use.
type Handler struct {
	name string
	cur  atomic.Pointer[Module]
}

// NewHandler returns a Handler without a module: calls fail with
// ErrNoModule until the first Swap.
func NewHandler(name string) *Handler { return &Handler{name: name} }

// Name returns the handler's name.
func (h *Handler) Name() string { return h.name }

// Module returns the module in service, or nil.
func (h *Handler) Module() *Module { return h.cur.Load() }

// Version returns the version of the module in service, or "" when there
// is none.
func (h *Handler) Version() string {
	if m := h.cur.Load(); m != nil {
		return m.version
	}
	return ""
}

// Swap puts m in service and closes the module it replaces, once the
// calls that still run on it have ended. The calls that start after
// Swap returns run on m. m must come from Engine.Compile (which has
// checked it); nil takes the handler out of service.
func (h *Handler) Swap(m *Module) {
	old := h.cur.Swap(m)
	if old != nil && old != m {
		old.Close()
	}
}

// Load compiles wasm with e and, when it passes every check, swaps it
// in. A module that is rejected leaves the old one in service; the error
// matches ErrRejected.
func (h *Handler) Load(ctx context.Context, e *Engine, wasm []byte) (*Module, error) {
	m, err := e.Compile(ctx, h.name, wasm)
	if err != nil {
		return nil, err
	}
	h.Swap(m)
	return m, nil
}

// Call runs the module in service on one message (see Module.Call). It
// also returns the module that ran it, so that a caller can tell which
// version answered.
func (h *Handler) Call(ctx context.Context, state []byte, msgType string, msg []byte) (Result, *Module, error) {
	for {
		m := h.cur.Load()
		if m == nil {
			return Result{}, nil, ErrNoModule
		}
		res, err := m.Call(ctx, state, msgType, msg)
		if errors.Is(err, ErrClosed) && h.cur.Load() != m {
			continue // swapped out between the load and the call: run on the new one
		}
		return res, m, err
	}
}
