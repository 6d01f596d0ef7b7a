package hotfix

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// Module is one compiled, accepted version of a fix, with a pool of
// instances: an instance runs one call at a time, so each call takes an
// idle instance (or makes one) and gives it back. Module is safe for
// concurrent use; concurrent calls run on different instances, each with
// its own memory (a module keeps nothing across calls that the host
// relies on: the state travels with each call).
type Module struct {
	e       *Engine
	name    string
	version string
	cm      wazero.CompiledModule // by Engine.rt: its calls end with their ctx
	plain   wazero.CompiledModule // by Engine.plain, for the calls whose ctx never ends; nil with a CallTimeout

	mu        sync.Mutex // guards the fields below; never held during a call
	idle      []*instance
	idlePlain []*instance // instances of plain
	busy      int
	closed    bool
}

// Name returns the name the module was compiled under.
func (m *Module) Name() string { return m.name }

// Version returns the module's version: the first 12 hex digits of the
// SHA-256 of its bytes.
func (m *Module) Version() string { return m.version }

// Result is what a module returns for one message (see guest.Result).
type Result struct {
	// State is the new state, nil when the module left it unchanged.
	State []byte
	// Reply is the reply's bytes, nil for none; ReplyType its protobuf
	// full name, if the module gave one.
	Reply     []byte
	ReplyType string
}

// Call runs the module on one message: state is the actor's state,
// msgType the message's type name and msg its bytes. It returns the
// module's result (whose slices are the caller's), or a *CallError: the
// handler's error, or a trap (errors.Is(err, ErrTrap)). It returns
// ErrClosed once the module is closed. The call (and the initialization
// of a new instance) ends at ctx's end, or at the Engine's CallTimeout
// when it has one, whichever comes first, as a trap; a ctx that never
// ends (context.Background) and no CallTimeout leave it unbounded, and
// then cost no watcher (see Config.CallTimeout).
func (m *Module) Call(ctx context.Context, state []byte, msgType string, msg []byte) (Result, error) {
	in, err := m.get(ctx)
	if err != nil {
		return Result{}, err
	}
	res, ok, err := in.call(ctx, state, msgType, msg)
	m.put(in, ok)
	return res, err
}

// Close closes the module: its idle instances now, the ones in use when
// their calls end. It is safe to repeat; a Handler closes the module it
// replaces.
func (m *Module) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	idle := append(m.idle, m.idlePlain...)
	m.idle, m.idlePlain = nil, nil
	last := m.busy == 0
	m.mu.Unlock()
	for _, in := range idle {
		in.close()
	}
	if last {
		m.closeCode()
	}
	m.e.mu.Lock()
	delete(m.e.mods, m)
	m.e.mu.Unlock()
}

// closeCode closes the module's compilations, once its last instance
// is closed.
func (m *Module) closeCode() {
	_ = m.cm.Close(context.Background())
	if m.plain != nil {
		_ = m.plain.Close(context.Background())
	}
}

// get takes an idle instance, or makes one: of plain when the call's
// ctx never ends and the module has one, else of cm.
func (m *Module) get(ctx context.Context) (*instance, error) {
	plain := m.plain != nil && ctx.Done() == nil
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	m.busy++
	pool := &m.idle
	if plain {
		pool = &m.idlePlain
	}
	if n := len(*pool); n > 0 {
		in := (*pool)[n-1]
		*pool = (*pool)[:n-1]
		m.mu.Unlock()
		return in, nil
	}
	m.mu.Unlock()
	in, err := m.instantiate(ctx, plain)
	if err != nil {
		m.put(nil, false)
		return nil, &CallError{Handler: m.name, Version: m.version, Trap: true, Msg: err.Error()}
	}
	return in, nil
}

// put gives an instance back: to the pool when it is healthy (ok) and
// the pool has room, else it closes it.
func (m *Module) put(in *instance, ok bool) {
	m.mu.Lock()
	m.busy--
	pool := &m.idle
	if in != nil && in.plain {
		pool = &m.idlePlain
	}
	keep := ok && in != nil && !m.closed && len(*pool) < m.e.cfg.MaxIdle
	if keep {
		*pool = append(*pool, in)
	}
	last := m.closed && m.busy == 0
	m.mu.Unlock()
	if !keep && in != nil {
		in.close()
	}
	if last {
		m.closeCode()
	}
}

// instance is one instantiation of a module: its memory and exports. It
// is used by one call at a time (the one that took it from the pool).
type instance struct {
	m                  *Module
	mod                api.Module
	mem                api.Memory
	abi, alloc, handle api.Function
	check              api.Function
	stderr             *head
	stack              [4]uint64
	plain              bool // of Module.plain: its calls cannot be stopped
}

// instantiate makes an instance, of plain or cm, and initializes it
// (_initialize: the Go runtime and the fix's package init).
func (m *Module) instantiate(ctx context.Context, plain bool) (*instance, error) {
	stderr := &head{}
	var w io.Writer = stderr
	if m.e.cfg.Output != io.Discard {
		w = io.MultiWriter(stderr, m.e.cfg.Output)
	}
	rt, cm := m.e.rt, m.cm
	if plain {
		rt, cm = m.e.plain, m.plain
	}
	mod, err := rt.InstantiateModule(ctx, cm, m.e.moduleConfig(w))
	if err != nil {
		return nil, fmt.Errorf("instantiate: %v", err)
	}
	in := &instance{
		m: m, mod: mod, mem: mod.Memory(), stderr: stderr, plain: plain,
		abi: mod.ExportedFunction("guild_abi"), alloc: mod.ExportedFunction("guild_alloc"),
		handle: mod.ExportedFunction("guild_handle"), check: mod.ExportedFunction("guild_check"),
	}
	cctx, cancel := m.e.callCtxCancel(ctx)
	defer cancel()
	if _, err := mod.ExportedFunction("_initialize").Call(cctx); err != nil {
		in.close()
		return nil, fmt.Errorf("initialize: %s", in.trap(err))
	}
	if !sound(cctx) {
		in.close()
		return nil, fmt.Errorf("initialize: %w", cctx.Err())
	}
	return in, nil
}

// selfCheck checks the instance's ABI version and runs its self-check.
func (in *instance) selfCheck(ctx context.Context) error {
	ctx, cancel := in.m.e.callCtxCancel(ctx)
	defer cancel()
	in.stderr.reset()
	r, err := in.abi.Call(ctx)
	if err != nil {
		return fmt.Errorf("guild_abi: %s", in.trap(err))
	}
	if uint32(r[0]) != ABIVersion {
		return fmt.Errorf("the module speaks the guest ABI version %d, this host %d: rebuild it against this guild", uint32(r[0]), ABIVersion)
	}
	r, err = in.check.Call(ctx)
	if err != nil {
		return fmt.Errorf("self-check: %s", in.trap(err))
	}
	if _, err := in.result(r[0]); err != nil {
		return fmt.Errorf("self-check: %v", err)
	}
	if !sound(ctx) {
		return fmt.Errorf("self-check: %w", ctx.Err())
	}
	return nil
}

// sound reports whether an instance whose calls all returned under ctx
// can be used again. wazero watches a call's ctx with a goroutine that
// closes the instance when ctx ends; the call stops that goroutine when
// it returns, but a ctx that ends just then can still close the instance
// a little later, after a call that returned well. ctx.Err() is nil only
// when ctx had not ended when the call's watcher was stopped, so the
// instance is safe to keep; otherwise it is dropped, and the call's
// result (already read) stands.
func sound(ctx context.Context) bool { return ctx.Err() == nil }

// Result flags: see package guest.
const (
	flagError = 1 << iota
	flagState
	flagReply
)

// errGuest is a handler's own error, as result returns it.
type errGuest string

func (e errGuest) Error() string { return string(e) }

// call runs one message. ok reports whether the instance is still sound
// (it did not trap).
func (in *instance) call(ctx context.Context, state []byte, msgType string, msg []byte) (res Result, ok bool, err error) {
	m := in.m
	in.stderr.reset()
	ctx, cancel := m.e.callCtxCancel(ctx)
	defer cancel()
	total := uint64(len(state)) + uint64(len(msgType)) + uint64(len(msg))
	if total > 1<<31 {
		return Result{}, true, &CallError{Handler: m.name, Version: m.version, Msg: fmt.Sprintf("the state and the message are %d bytes: too large", total)}
	}
	in.stack[0] = total
	if err := in.alloc.CallWithStack(ctx, in.stack[:]); err != nil {
		return Result{}, false, &CallError{Handler: m.name, Version: m.version, Trap: true, Msg: "guild_alloc: " + in.trap(err)}
	}
	ptr := uint32(in.stack[0])
	if total > 0 && (!in.mem.Write(ptr, state) ||
		!in.mem.WriteString(ptr+uint32(len(state)), msgType) ||
		!in.mem.Write(ptr+uint32(len(state))+uint32(len(msgType)), msg)) {
		return Result{}, false, &CallError{Handler: m.name, Version: m.version, Trap: true, Msg: fmt.Sprintf("guild_alloc returned %#x, out of its memory for %d bytes", ptr, total)}
	}
	in.stack[0], in.stack[1], in.stack[2], in.stack[3] = uint64(ptr), uint64(len(state)), uint64(len(msgType)), uint64(len(msg))
	if err := in.handle.CallWithStack(ctx, in.stack[:]); err != nil {
		return Result{}, false, &CallError{Handler: m.name, Version: m.version, Trap: true, Msg: in.trap(err)}
	}
	res, err = in.result(in.stack[0])
	if err != nil {
		var g errGuest
		if errors.As(err, &g) {
			return Result{}, sound(ctx), &CallError{Handler: m.name, Version: m.version, Msg: string(g)}
		}
		return Result{}, false, &CallError{Handler: m.name, Version: m.version, Trap: true, Msg: err.Error()}
	}
	return res, sound(ctx), nil
}

// result decodes a result at packed (address<<32 | length), copying its
// parts out of the instance's memory. A handler's error is an errGuest.
func (in *instance) result(packed uint64) (Result, error) {
	ptr, n := uint32(packed>>32), uint32(packed)
	b, ok := in.mem.Read(ptr, n)
	if !ok || n < 13 {
		return Result{}, fmt.Errorf("the result (%#x, %d bytes) is out of the module's memory or too short", ptr, n)
	}
	flags := b[0]
	tl, sl, dl := binary.LittleEndian.Uint32(b[1:]), binary.LittleEndian.Uint32(b[5:]), binary.LittleEndian.Uint32(b[9:])
	if uint64(tl)+uint64(sl)+uint64(dl) != uint64(n-13) {
		return Result{}, fmt.Errorf("the result's lengths %d+%d+%d do not add up to its %d bytes", tl, sl, dl, n-13)
	}
	b = b[13:]
	if flags&flagError != 0 {
		return Result{}, errGuest(b[tl+sl:])
	}
	var res Result
	if tl > 0 {
		res.ReplyType = string(b[:tl])
	}
	if flags&flagState != 0 {
		res.State = append(make([]byte, 0, sl), b[tl:tl+sl]...)
	}
	if flags&flagReply != 0 {
		res.Reply = append(make([]byte, 0, dl), b[tl+sl:]...)
	}
	return res, nil
}

// trap describes a call's failure with the start of what the instance
// wrote to its stderr during the call, where the Go runtime writes its
// fatal errors.
func (in *instance) trap(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n") // without wazero's stack trace
	if s := in.stderr.String(); s != "" {
		msg += "; stderr: " + s
	}
	return msg
}

func (in *instance) close() { _ = in.mod.Close(context.Background()) }

// callCtxCancel returns the context of a call into an instance, a
// turn's or a load's (_initialize, the self-check): ctx, bounded by the
// CallTimeout when calls have one. The Engine's rt watches it (it
// closes an instance whose call's context ends), so a call ends with its
// caller's ctx whether or not the Engine has a CallTimeout; a call on
// plain has a ctx that never ends (see Module.get).
func (e *Engine) callCtxCancel(ctx context.Context) (context.Context, context.CancelFunc) {
	if e.cfg.CallTimeout > 0 {
		return context.WithTimeout(ctx, e.cfg.CallTimeout)
	}
	return ctx, func() {}
}

// head keeps the first lines written to it since its last reset: the
// Go runtime's fatal error ("fatal error: out of memory") and its first
// lines, without the goroutine dump that follows.
type head struct{ b []byte }

const headSize = 512

func (h *head) Write(p []byte) (int, error) {
	if room := headSize - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (h *head) reset() { h.b = h.b[:0] }

// String returns the first paragraph kept.
func (h *head) String() string {
	s := string(h.b)
	if i := strings.Index(s, "\n\n"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}
