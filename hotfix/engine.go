package hotfix

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Config configures an Engine. The zero Config is valid: every field has
// a default.
type Config struct {
	// MemoryLimit bounds the linear memory of each instance, in bytes
	// (rounded up to 64 KiB pages). A module that declares more, or
	// grows past it (in its initialization, its self-check or a turn),
	// fails: at load time it is rejected, in a turn the turn traps.
	// Default 128 MiB; at most 4 GiB.
	MemoryLimit int64
	// CallTimeout bounds one call into a module (a turn, and at load
	// time the initialization and the self-check, each), so that a fix
	// with an endless loop cannot hold an actor forever: the call traps
	// and the instance is discarded. Zero means no bound but the
	// caller's: a call always ends at the end of the ctx it is given
	// (Module.Call, Engine.Compile, Loader.Reload).
	//
	// What it costs: wazero watches a call's ctx with a goroutine of its
	// own for the call's length, which makes a short turn several times
	// dearer (BenchmarkHotfixCallTimeout against BenchmarkHotfixCall).
	// With a CallTimeout every call pays it. Without one, only the calls
	// whose ctx can end do (loads, and turns given such a ctx); a turn
	// on a ctx that never ends (context.Background, as Actor's turns)
	// runs on a second compilation of the module, without the checks
	// that let a call be stopped, and costs nothing more. That second
	// compilation is made at load time, once the module passed its
	// checks: a load then compiles twice and the module's code takes
	// twice the memory.
	CallTimeout time.Duration
	// MaxIdle is how many idle instances each module keeps for the next
	// turns, per compilation: without a CallTimeout a module has two (see
	// CallTimeout), so up to twice MaxIdle when both kinds of turn run.
	// Default GOMAXPROCS.
	MaxIdle int
	// CacheDir, optional, is a directory where compiled modules are
	// cached across Engines and processes, so that loading a module
	// already seen (a roll back, a restart) costs no compilation.
	// Without it, wazero's cache in memory keeps a compilation only while
	// a module of the same bytes is open.
	CacheDir string
	// Output, optional, receives what modules write to their stdout and
	// stderr (the Go runtime's panic messages included). It must be safe
	// for concurrent use. The first lines a call writes to stderr (where
	// the Go runtime reports a fatal error) go into the error of its trap
	// either way.
	Output io.Writer
}

// DefaultMemoryLimit is Config.MemoryLimit's default.
const DefaultMemoryLimit = 128 << 20

// Validate reports a Config that cannot be used.
func (c Config) Validate() error {
	switch {
	case c.MemoryLimit < 0 || c.MemoryLimit > 4<<30:
		return fmt.Errorf("hotfix: Config.MemoryLimit %d: between 0 (the default) and 4 GiB", c.MemoryLimit)
	case c.CallTimeout < 0:
		return fmt.Errorf("hotfix: Config.CallTimeout %v is negative", c.CallTimeout)
	case c.MaxIdle < 0:
		return fmt.Errorf("hotfix: Config.MaxIdle %d is negative", c.MaxIdle)
	}
	return nil
}

// Engine compiles and runs modules: a wazero runtime, with WASI (which
// modules built from Go need) and the compilation cache, and without a
// CallTimeout a second one for the calls that cannot be stopped (see
// Config.CallTimeout). One Engine serves a node's every Handler; it is
// safe for concurrent use.
type Engine struct {
	cfg Config
	// rt watches each call's ctx (WithCloseOnContextDone): it runs the
	// loads, and the turns whose ctx can end.
	rt wazero.Runtime
	// plain does not (its code has no checks to stop a call, and its
	// calls start no goroutine): it runs the turns whose ctx never ends.
	// nil with a CallTimeout, when every call's ctx can end.
	plain wazero.Runtime
	cache wazero.CompilationCache

	mu     sync.Mutex
	closed bool
	mods   map[*Module]struct{} // open modules, closed with the Engine
}

// NewEngine starts an Engine.
func NewEngine(ctx context.Context, cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = DefaultMemoryLimit
	}
	if cfg.MaxIdle == 0 {
		cfg.MaxIdle = runtime.GOMAXPROCS(0)
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		var err error
		if cache, err = wazero.NewCompilationCacheWithDir(cfg.CacheDir); err != nil {
			return nil, fmt.Errorf("hotfix: Config.CacheDir: %w", err)
		}
	} else {
		cache = wazero.NewCompilationCache()
	}
	e := &Engine{cfg: cfg, cache: cache, mods: make(map[*Module]struct{})}
	var err error
	if e.rt, err = newRuntime(ctx, cfg, cache, true); err == nil && cfg.CallTimeout == 0 {
		if e.plain, err = newRuntime(ctx, cfg, cache, false); err != nil {
			_ = e.rt.Close(ctx)
		}
	}
	if err != nil {
		_ = cache.Close(ctx)
		return nil, err
	}
	return e, nil
}

// newRuntime starts a wazero runtime with WASI, whose calls end at their
// context's end when watch is set.
func newRuntime(ctx context.Context, cfg Config, cache wazero.CompilationCache, watch bool) (wazero.Runtime, error) {
	pages := uint32((cfg.MemoryLimit + 65535) / 65536)
	rc := wazero.NewRuntimeConfig().
		WithMemoryLimitPages(pages).
		WithCompilationCache(cache).
		WithCloseOnContextDone(watch)
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("hotfix: WASI: %w", err)
	}
	return rt, nil
}

// Close closes the Engine and every module it compiled. Close it after
// the actors that call its modules have stopped: a call that starts
// after Close fails with ErrClosed. It is safe to repeat.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	mods := e.mods
	e.mods = nil
	e.mu.Unlock()
	for m := range mods {
		m.Close()
	}
	err := e.rt.Close(ctx)
	if e.plain != nil {
		if perr := e.plain.Close(ctx); err == nil {
			err = perr
		}
	}
	if cerr := e.cache.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

// The exports of the ABI, with their signatures.
var abiExports = []struct {
	name            string
	params, results []api.ValueType
}{
	{"_initialize", nil, nil},
	{"guild_abi", nil, []api.ValueType{api.ValueTypeI32}},
	{"guild_alloc", []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}},
	{"guild_handle", []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI64}},
	{"guild_check", nil, []api.ValueType{api.ValueTypeI64}},
}

// ABIVersion is the version of the guest ABI this host speaks (see
// package guest). A module that reports another is rejected.
const ABIVersion = 1

// Compile compiles wasm, a module built with package guest, under name
// (the handler it is for, in errors and logs), and accepts it only when
// it passes every check: it compiles, it has the ABI's exports with
// their signatures and memory, its guild_abi is ABIVersion, it
// initializes, and its self-check (guest.Check) passes, all within the
// memory limit. An error matches ErrRejected and says why. The module
// returned keeps the instance that passed, for a turn. Without a
// CallTimeout, a module that passed is compiled a second time, for the
// turns whose ctx never ends (see Config.CallTimeout), and the checked
// instance is closed (those turns would never use it).
//
// The initialization and the self-check end at ctx's end (and each at
// the CallTimeout, when the Engine has one), so a module whose init or
// check never returns is rejected when ctx ends: the error then also
// matches ctx's error. The compilation itself is not interrupted; ctx is
// checked before and after it.
func (e *Engine) Compile(ctx context.Context, name string, wasm []byte) (*Module, error) {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, loadFailed(ctx, name, errors.New("not compiled"))
	}
	sum := sha256.Sum256(wasm)
	version := hex.EncodeToString(sum[:6])
	cm, err := e.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, loadFailed(ctx, name, fmt.Errorf("compile: %v", err))
	}
	if err := checkExports(cm); err != nil {
		_ = cm.Close(context.Background())
		return nil, rejected(name, "%v", err)
	}
	m := &Module{e: e, name: name, version: version, cm: cm}
	in, err := m.instantiate(ctx, false) // on rt: the checks end with ctx
	if err != nil {
		_ = cm.Close(context.Background())
		return nil, loadFailed(ctx, name, err)
	}
	if err := in.selfCheck(ctx); err != nil {
		in.close()
		_ = cm.Close(context.Background())
		return nil, loadFailed(ctx, name, err)
	}
	if e.plain != nil {
		if m.plain, err = e.plain.CompileModule(ctx, wasm); err == nil && ctx.Err() != nil {
			_ = m.plain.Close(context.Background())
			err = errors.New("not accepted: its ctx ended during the second compilation")
		}
		if err != nil {
			in.close()
			_ = cm.Close(context.Background())
			return nil, loadFailed(ctx, name, fmt.Errorf("compile: %v", err))
		}
		// Turns on a ctx that never ends (every Actor's) run on the
		// second compilation: the checked instance would idle unused,
		// holding its memory for the module's life.
		in.close()
	} else {
		m.idle = append(m.idle, in)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		m.Close()
		return nil, ErrClosed
	}
	e.mods[m] = struct{}{}
	e.mu.Unlock()
	return m, nil
}

// loadFailed is Compile's error for a module that failed to load (err):
// it matches ErrRejected, and also ctx's error when ctx has ended, since
// the module may then have been stopped rather than failed.
func loadFailed(ctx context.Context, name string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w: %s: %v; the load's context ended: %w", ErrRejected, name, err, cerr)
	}
	return rejected(name, "%v", err)
}

// checkExports checks that cm has the ABI's exports.
func checkExports(cm wazero.CompiledModule) error {
	funcs := cm.ExportedFunctions()
	for _, x := range abiExports {
		f, ok := funcs[x.name]
		if !ok {
			return fmt.Errorf("no export %s: build it with -buildmode=c-shared and import github.com/guildkit/guild/hotfix/guest", x.name)
		}
		if !sameTypes(f.ParamTypes(), x.params) || !sameTypes(f.ResultTypes(), x.results) {
			return fmt.Errorf("export %s has the signature %v -> %v, not %v -> %v", x.name,
				typeNames(f.ParamTypes()), typeNames(f.ResultTypes()), typeNames(x.params), typeNames(x.results))
		}
	}
	if _, ok := cm.ExportedMemories()["memory"]; !ok {
		return fmt.Errorf("no exported memory")
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func typeNames(ts []api.ValueType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = api.ValueTypeName(t)
	}
	return out
}

// moduleConfig is the configuration of every instance: real clocks and
// randomness (the Go runtime wants them), no start function (a reactor:
// the host calls _initialize), no files, no arguments.
func (e *Engine) moduleConfig(stderr io.Writer) wazero.ModuleConfig {
	return wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader).
		WithStdout(e.cfg.Output).
		WithStderr(stderr)
}
