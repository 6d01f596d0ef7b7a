package hotfix

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Loader serves the modules of a directory: one file name.wasm per
// handler name. Reload reads the directory and swaps in each module whose
// file changed and passes Compile's checks; a file that fails keeps its
// handler on its old module. Loader is safe for concurrent use; reloads
// run one at a time.
type Loader struct {
	e   *Engine
	dir string

	// reload lets one Reload run at a time (a one-slot semaphore, taken
	// with the reload's ctx, so that a reload waiting behind another ends
	// with its ctx); held while it compiles; taken before mu.
	reload chan struct{}
	sums   map[string][sha256.Size]byte // of the file each handler's module came from; under reload
	// outOfTime has the files whose last load ran out of its reload's
	// time (their init or self-check did not return): they are not tried
	// again until they change, so that one stuck fix does not take every
	// later reload's time from the files after it. Under reload.
	outOfTime map[string][sha256.Size]byte
	timeout   time.Duration // bounds the watcher's reloads: ReloadTimeout (tests shorten it)

	mu       sync.Mutex // guards handlers, watching, closed and loaded; held briefly, never during a compile
	handlers map[string]*Handler
	closed   bool
	// loaded is the directory's fingerprint as the last Reload began to
	// read it: the watcher reloads when the directory differs from it.
	loaded string
	cancel context.CancelFunc // ends the watcher; nil when there is none
	done   chan struct{}      // closed when the watcher has ended
}

// NewLoader returns a Loader of the .wasm files in dir, compiled by e. It
// loads nothing before the first Reload.
func NewLoader(e *Engine, dir string) *Loader {
	return &Loader{
		e: e, dir: dir, handlers: make(map[string]*Handler), sums: make(map[string][sha256.Size]byte),
		outOfTime: make(map[string][sha256.Size]byte), timeout: ReloadTimeout,
		reload: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// Watch starts a goroutine that polls the directory every interval and
// reloads it when its .wasm files changed and then held still for one
// interval (their names, sizes and times), so that a copy in progress is
// not loaded; the content hash then decides which handlers change.
// report, optional, gets each such Reload's result on the watcher's
// goroutine. Watch once per Loader; Close stops the watcher.
func (l *Loader) Watch(interval time.Duration, report func([]Status, error)) error {
	if interval <= 0 {
		return fmt.Errorf("hotfix: watch interval %v is not positive", interval)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		return ErrClosed
	case l.cancel != nil:
		return errors.New("hotfix: the Loader already watches its directory")
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go l.watch(ctx, interval, report)
	return nil
}

// ReloadTimeout bounds each reload a Loader starts by itself (its
// watcher's, and Open's first), as the admin API bounds its own: a fix
// whose init or self-check never returns is rejected then, and the
// reload slot is free for the next one.
const ReloadTimeout = 30 * time.Second

// watch is the watcher's loop, until ctx ends (Close).
func (l *Loader) watch(ctx context.Context, interval time.Duration, report func([]Status, error)) {
	defer close(l.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fp := l.fingerprint()
		if fp != last { // changed during the last interval: wait until it holds still
			last = fp
			continue
		}
		// Against what the last Reload read, whoever ran it (Open's first
		// one may be older than this goroutine's start: a change between
		// them must not pass for loaded).
		l.mu.Lock()
		loaded := l.loaded
		l.mu.Unlock()
		if fp == loaded {
			continue
		}
		// Bounded like the admin API's: a fix that never finishes
		// loading must not hold the reload slot until Close.
		rctx, cancel := context.WithTimeout(ctx, l.timeout)
		sts, err := l.Reload(rctx)
		cancel()
		if report != nil && ctx.Err() == nil {
			report(sts, err)
		}
	}
}

// fingerprint describes the directory's .wasm files: names, sizes and
// modification times.
func (l *Loader) fingerprint() string {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, ent := range ents {
		if !strings.HasSuffix(ent.Name(), ".wasm") || ent.IsDir() {
			continue
		}
		info, err := ent.Info()
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "%s %d %d\n", ent.Name(), info.Size(), info.ModTime().UnixNano())
	}
	return b.String()
}

// Close stops the watcher, if any, and waits for it (and so for a
// reload it runs, which ends with the watcher's context: a module whose
// initialization or self-check never returns is stopped). It does not
// close the Engine or the modules in service. It is safe to repeat.
func (l *Loader) Close() {
	l.mu.Lock()
	l.closed = true
	cancel := l.cancel
	l.mu.Unlock()
	if cancel != nil {
		cancel()
		<-l.done
	}
}

// Handler returns the handler of name, made on the first ask: an actor
// can be spawned on it before its file is loaded (its calls then fail
// with ErrNoModule).
func (l *Loader) Handler(name string) *Handler {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.handlers[name]
	if !ok {
		h = NewHandler(name)
		l.handlers[name] = h
	}
	return h
}

// Status is one handler's outcome of a Reload, or its state (Status).
type Status struct {
	Name     string `json:"name"`
	Version  string `json:"version"`            // the version in service after the reload; "" for none
	Previous string `json:"previous,omitempty"` // the version before, when it changed
	Changed  bool   `json:"changed,omitempty"`
	Error    string `json:"error,omitempty"` // why the file was rejected (the old version stays)
}

// Reload reads every .wasm file of the directory and loads those whose
// content changed since their last load. It returns a Status per handler
// (by name), and an error that joins every file's failure (each matching
// ErrRejected), or the directory's. A handler whose file disappeared
// keeps its module, with an error in its Status.
//
// Reload returns soon after ctx ends, with or without a CallTimeout: a
// reload waiting for another one fails with ctx's error (and loads
// nothing), and a module still loading then (its initialization or its
// self-check running, or not yet compiled) is rejected, with an error
// that also matches ctx's; its handler keeps the module in service. Only
// a compilation already started runs to its end.
func (l *Loader) Reload(ctx context.Context) ([]Status, error) {
	out, itemErrs, err := l.reloadDir(ctx)
	if err != nil {
		return out, err
	}
	errs := make([]error, 0, len(itemErrs))
	for _, name := range slices.Sorted(maps.Keys(itemErrs)) {
		errs = append(errs, itemErrs[name])
	}
	return out, errors.Join(errs...)
}

// reloadDir is Reload, with each handler's error by name apart from the
// directory's (err). An item's error starts with its file's name.
func (l *Loader) reloadDir(ctx context.Context) (out []Status, itemErrs map[string]error, err error) {
	if err := ctx.Err(); err != nil { // select would pick at random
		return l.Status(), nil, fmt.Errorf("hotfix: reload: %w", err)
	}
	select {
	case l.reload <- struct{}{}:
		defer func() { <-l.reload }()
	case <-ctx.Done():
		return l.Status(), nil, fmt.Errorf("hotfix: waiting for the reload in progress: %w", ctx.Err())
	}
	fp := l.fingerprint() // before the read: a change after it shows at the watcher's next look
	l.mu.Lock()
	l.loaded = fp
	l.mu.Unlock()
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return l.Status(), nil, fmt.Errorf("hotfix: the modules' directory: %w", err)
	}
	seen := make(map[string]bool)
	itemErrs = make(map[string]error)
	for _, ent := range ents {
		name, ok := strings.CutSuffix(ent.Name(), ".wasm")
		if !ok || ent.IsDir() || name == "" {
			continue
		}
		seen[name] = true
		h := l.Handler(name)
		st := Status{Name: name, Version: h.Version()}
		b, err := os.ReadFile(filepath.Join(l.dir, ent.Name()))
		if err == nil {
			sum := sha256.Sum256(b)
			if old, ok := l.sums[name]; ok && bytes.Equal(old[:], sum[:]) && h.Module() != nil {
				out = append(out, st)
				continue
			}
			var m *Module
			if stuck, ok := l.outOfTime[name]; ok && stuck == sum {
				err = fmt.Errorf("%w: its last load ran out of its reload's time (its init or self-check did not return); not tried again until the file changes", ErrRejected)
			} else if ctxErr := ctx.Err(); ctxErr != nil {
				err = fmt.Errorf("%w: not compiled: the reload ran out of time on a file before it: %w", ErrRejected, ctxErr)
			} else if m, err = l.e.Compile(ctx, name, b); err == nil {
				h.Swap(m)
				l.sums[name] = sum
				delete(l.outOfTime, name)
				st.Previous, st.Version, st.Changed = st.Version, m.Version(), true
			} else if errors.Is(ctx.Err(), context.DeadlineExceeded) && errors.Is(err, context.DeadlineExceeded) {
				l.outOfTime[name] = sum // this one took the time (a cancelled reload marks nothing)
			}
		}
		if err != nil {
			st.Error = err.Error()
			itemErrs[name] = fmt.Errorf("%s: %w", ent.Name(), err)
		}
		out = append(out, st)
	}
	l.mu.Lock()
	if ctx.Err() != nil {
		// Files may be left uncompiled: the watcher tries again (the
		// one that ran out of time is skipped then).
		l.loaded = ""
	}
	hs := maps.Clone(l.handlers)
	l.mu.Unlock()
	for name, h := range hs {
		if !seen[name] && h.Module() != nil {
			err := fmt.Errorf("%s.wasm: %w", name, fs.ErrNotExist)
			out = append(out, Status{Name: name, Version: h.Version(), Error: err.Error() + ": kept the module in service"})
			itemErrs[name] = err
		}
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out, itemErrs, nil
}

// Status returns each handler's version in service, by name: what the
// node reports it serves.
func (l *Loader) Status() []Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Status, 0, len(l.handlers))
	for name, h := range l.handlers {
		out = append(out, Status{Name: name, Version: h.Version()})
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Versions returns the version each handler serves, by name ("" for a
// handler without a module yet): Status as a map.
//
// Versions and ReloadItems make a *Loader an admin.Reloader, so that a
// module of the game hands its Loader to the node
// (app.Env.AddReloader(name, loader)): the admin API's reload action and
// guild reload then reload its directory, and the node reports its
// versions. Their signatures use standard types only, on purpose: the
// Loader matches admin's interface structurally, and hotfix imports
// neither admin nor app (no cycle can form, and hotfix stays a leaf that
// the rest of guild never links).
func (l *Loader) Versions() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]string, len(l.handlers))
	for name, h := range l.handlers {
		out[name] = h.Version()
	}
	return out
}

// ReloadItems is Reload for the admin agent (see Versions): it returns
// each handler's error by name (a rejected file, each matching
// ErrRejected, or a file that disappeared: the handler keeps its module),
// and the directory's error apart. It runs on the caller's goroutine,
// one at a time with the Loader's other reloads (its watcher's), and
// returns soon after ctx ends, as Reload does.
func (l *Loader) ReloadItems(ctx context.Context) (map[string]error, error) {
	_, itemErrs, err := l.reloadDir(ctx)
	return itemErrs, err
}
