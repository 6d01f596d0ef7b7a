package hotfix_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/hotfix"
	"github.com/guildkit/guild/internal/await"
)

// ctxBound is how long a load or a call may take to end once its
// context has ended: generous, for -race beside a CPU hog; without the
// fix they never end.
const ctxBound = 10 * time.Second

// compileBound is how long a test waits for a stuck module to be
// compiled and reach its loop: a first compilation under -race takes a
// while.
const compileBound = 2 * time.Minute

// output collects what modules write (Config.Output), so that a test can
// tell when a module reached a point of its code.
type output struct {
	mu sync.Mutex
	b  strings.Builder
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// count returns how many times s was written.
func (o *output) count(s string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Count(o.b.String(), s)
}

// started runs f on a goroutine of its own and returns a channel closed
// when f has returned.
func started(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	return done
}

// ended waits up to d for done to be closed, failing the test with what
// otherwise, and returns how long it waited.
func ended(t *testing.T, d time.Duration, what string, done <-chan struct{}) time.Duration {
	t.Helper()
	return await.True(t, d, what, func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
}

// TestReloadEndsWithCtx loads, on an Engine without a CallTimeout (the
// default), a fix whose self-check never returns (testdata/spincheck):
// each reload returns soon after its context ends, with an error for the
// stuck handler that matches ErrRejected and the context's error; a
// reload that waits for the stuck one returns at its own context's end;
// the old version serves throughout; a later reload works; and
// Loader.Close ends a watcher stuck in such a reload. (Review s10,
// finding 1: the reload ran on context.Background, wazero did not watch
// contexts, and the wait for the reload in progress had no context, so
// one stuck reload blocked every later one and Close.)
func TestReloadEndsWithCtx(t *testing.T) {
	out := &output{}
	e := newEngine(t, hotfix.Config{Output: out}) // no CallTimeout
	dir := t.TempDir()
	write := func(name string) { t.Helper(); writeFix(t, dir, fix(t, name)) }
	l := hotfix.NewLoader(e, dir)
	h := l.Handler("counter")
	inc := func(want string) {
		t.Helper()
		res, _, err := h.Call(context.Background(), nil, "inc", nil)
		if err != nil || !strings.Contains(string(res.Reply), want) { // v2 answers a protobuf StringValue
			t.Fatalf("a turn: %q, %v; want a reply with %s", res.Reply, err, want)
		}
	}

	write("counter1")
	if _, err := l.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	v1 := h.Version()
	inc("v1:")

	// A reload with a context that ends only when cancelled gets stuck
	// in spincheck's self-check.
	write("spincheck")
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	var errsA map[string]error
	var errA error
	doneA := started(func() { errsA, errA = l.ReloadItems(ctxA) })
	await.True(t, compileBound, "the first reload to run spincheck's self-check", func() bool {
		return out.count("spincheck: checking") == 1
	})

	// A second reload waits for it, and ends with its own context.
	ctxB, cancelB := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelB()
	var errsB map[string]error
	var errB error
	d := ended(t, ctxBound, "a reload waiting behind a stuck one to end with its ctx (300 ms)",
		started(func() { errsB, errB = l.ReloadItems(ctxB) }))
	t.Logf("the waiting reload returned after %v", d)
	if !errors.Is(errB, context.DeadlineExceeded) || !strings.Contains(errB.Error(), "waiting for the reload in progress") || len(errsB) != 0 {
		t.Fatalf("the waiting reload: %v, items %v; want the wait's end", errB, errsB)
	}

	// The old version serves while the reload is stuck.
	if h.Version() != v1 {
		t.Fatalf("in service %s during the stuck reload, want %s", h.Version(), v1)
	}
	inc("v1:")

	cancelA()
	ended(t, ctxBound, "the stuck reload to end once its ctx was cancelled", doneA)
	if errA != nil || !errors.Is(errsA["counter"], hotfix.ErrRejected) || !errors.Is(errsA["counter"], context.Canceled) ||
		!strings.Contains(errsA["counter"].Error(), "self-check") {
		t.Fatalf("the cancelled reload: %v, items %v", errA, errsA)
	}

	// The review's case: a reload with a deadline (the admin's
	// ReloadTimeout) returns soon after it.
	ctxC, cancelC := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelC()
	var errsC map[string]error
	var errC error
	d = ended(t, ctxBound, "a reload of spincheck to end with its ctx (500 ms)",
		started(func() { errsC, errC = l.ReloadItems(ctxC) }))
	t.Logf("the reload with a deadline returned after %v", d)
	if errC != nil || !errors.Is(errsC["counter"], hotfix.ErrRejected) || !errors.Is(errsC["counter"], context.DeadlineExceeded) {
		t.Fatalf("the reload with a deadline: %v, items %v", errC, errsC)
	}
	if h.Version() != v1 {
		t.Fatalf("in service %s after the stuck reloads, want %s", h.Version(), v1)
	}
	inc("v1:")

	// A later reload works.
	write("counter2")
	sts, err := l.Reload(context.Background())
	if err != nil || len(sts) != 1 || !sts[0].Changed || sts[0].Previous != v1 || sts[0].Version != h.Version() {
		t.Fatalf("the reload after: %+v, %v", sts, err)
	}
	v2 := h.Version()
	inc("v2:")

	// Close ends a watcher stuck in a reload.
	checks := out.count("spincheck: checking")
	if err := l.Watch(20*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	write("spincheck")
	await.True(t, ctxBound, "the watcher to run spincheck's self-check", func() bool {
		return out.count("spincheck: checking") > checks
	})
	ended(t, ctxBound, "Loader.Close to end a watcher stuck in a reload", started(l.Close))
	if h.Version() != v2 {
		t.Fatalf("in service %s after Close, want %s", h.Version(), v2)
	}
	inc("v2:")
}

// TestCompileEndsWithCtx compiles, on an Engine without a CallTimeout, a
// fix whose initialization never returns (testdata/spininit): Compile
// returns soon after its context ends, and rejects the module with an
// error that matches the context's.
func TestCompileEndsWithCtx(t *testing.T) {
	out := &output{}
	e := newEngine(t, hotfix.Config{Output: out})
	wasm := fix(t, "spininit")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var m *hotfix.Module
	var err error
	done := started(func() { m, err = e.Compile(ctx, "spininit", wasm) })
	await.True(t, compileBound, "Compile to run spininit's initialization", func() bool {
		return out.count("spininit: initializing") == 1
	})
	cancel()
	ended(t, ctxBound, "Compile to end once its ctx was cancelled", done)
	if m != nil || !errors.Is(err, hotfix.ErrRejected) || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "initialize") {
		t.Fatalf("Compile of spininit: %v, %v", m, err)
	}
	// A ctx that has ended already compiles nothing.
	if _, err := e.Compile(ctx, "spininit", wasm); !errors.Is(err, hotfix.ErrRejected) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Compile with an ended ctx: %v", err)
	}
}

// TestCallEndsWithCtx gives a turn that never returns (faulty's "spin"),
// on an Engine without a CallTimeout, a ctx with a deadline: the turn
// traps soon after the deadline, and the handler answers the next turn,
// as it does a turn whose ctx has ended before it starts.
func TestCallEndsWithCtx(t *testing.T) {
	e := newEngine(t, hotfix.Config{})
	h := hotfix.NewHandler("faulty")
	load(t, e, h, "faulty")
	next := func() {
		t.Helper()
		res, _, err := h.Call(context.Background(), nil, "inc", nil)
		if err != nil || string(res.Reply) != "faulty:1" {
			t.Fatalf("the turn after: %q, %v", res.Reply, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var err error
	d := ended(t, ctxBound, "a spinning turn to end with its ctx (300 ms)",
		started(func() { _, _, err = h.Call(ctx, nil, "spin", nil) }))
	t.Logf("the spinning turn returned after %v", d)
	if !errors.Is(err, hotfix.ErrTrap) || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("spin: %v, want a trap at the deadline", err)
	}
	next()

	if _, _, err := h.Call(ctx, nil, "inc", nil); !errors.Is(err, hotfix.ErrTrap) {
		t.Fatalf("a turn with an ended ctx: %v, want a trap", err)
	}
	next()
}

// TestWatcherReloadEnds: on an Engine without a CallTimeout (the default)
// and a Loader that watches its directory, a fix whose self-check never
// returns holds the watcher's reload only for the watcher's
// ReloadTimeout: the operator's good file written over the bad one then
// loads (by the watcher's next look or an admin reload), and the old
// version served meanwhile. (The bad fix once held the reload slot until
// Close: every admin reload failed, waiting for it.)
func TestWatcherReloadEnds(t *testing.T) {
	out := &output{}
	e := newEngine(t, hotfix.Config{Output: out})
	dir := t.TempDir()
	write := func(name string) { t.Helper(); writeFix(t, dir, fix(t, name)) }
	l := hotfix.NewLoader(e, dir)
	defer l.Close()
	hotfix.SetReloadTimeout(l, time.Second)
	h := l.Handler("counter")
	write("counter1")
	if _, err := l.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	v1 := h.Version()
	if err := l.Watch(20*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	write("spincheck") // a bad fix lands in the watched directory
	await.True(t, compileBound, "the watcher to run spincheck's self-check", func() bool { return out.count("spincheck: checking") > 0 })
	if v := h.Version(); v != v1 {
		t.Fatalf("serving %s while the bad fix loads, want v1 %s", v, v1)
	}
	write("counter2") // the operator's fix for the bad fix
	await.True(t, compileBound, "the good file to load", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second) // an admin reload, its time shortened
		defer cancel()
		items, err := l.ReloadItems(ctx)
		return err == nil && len(items) == 0 && h.Version() != v1
	})
}

// TestStuckFileDoesNotStarveOthers: a fix whose self-check never returns
// (a.wasm) takes one reload's whole time, and the files after it (b.wasm,
// a good one) are rejected as not compiled by that reload; the next
// reload skips a.wasm (it ran out of time, and has not changed since) and
// loads b.wasm. (Every reload once spent its time on a.wasm, so b.wasm
// never loaded.)
func TestStuckFileDoesNotStarveOthers(t *testing.T) {
	e := newEngine(t, hotfix.Config{})
	dir := t.TempDir()
	for name, src := range map[string]string{"a": "spincheck", "b": "counter1"} {
		if err := os.WriteFile(filepath.Join(dir, name+".wasm"), fix(t, src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l := hotfix.NewLoader(e, dir)
	defer l.Close()
	reload := func() map[string]error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second) // ReloadTimeout, shortened
		defer cancel()
		items, err := l.ReloadItems(ctx)
		if err != nil {
			t.Fatalf("ReloadItems: %v", err)
		}
		return items
	}
	first := reload()
	if first["a"] == nil || first["b"] == nil || !strings.Contains(first["b"].Error(), "not compiled") {
		t.Fatalf("the first reload: %v, want a out of time and b not compiled", first)
	}
	second := reload()
	if second["b"] != nil || l.Handler("b").Module() == nil {
		t.Fatalf("the second reload: %v; b loaded: %v", second, l.Handler("b").Module() != nil)
	}
	if second["a"] == nil || !strings.Contains(second["a"].Error(), "not tried again until the file changes") {
		t.Fatalf("the second reload's error for a.wasm: %v", second["a"])
	}
}

// TestCheckedInstanceNotKeptIdle: without a CallTimeout, the turns of an
// Actor (context.Background) run on the module's second compilation, so
// the instance that passed the self-check is not kept idle for the
// module's life; MaxIdle bounds each compilation's pool.
func TestCheckedInstanceNotKeptIdle(t *testing.T) {
	e := newEngine(t, hotfix.Config{MaxIdle: 1})
	h := hotfix.NewHandler("counter")
	m := load(t, e, h, "counter1")
	for range 3 {
		if _, _, err := h.Call(context.Background(), nil, "inc", nil); err != nil {
			t.Fatal(err)
		}
	}
	if watched, plain := hotfix.IdleCounts(m); watched != 0 || plain != 1 {
		t.Fatalf("idle instances after 3 turns on Background, MaxIdle 1: %d watched, %d plain; want 0 and 1", watched, plain)
	}
}
