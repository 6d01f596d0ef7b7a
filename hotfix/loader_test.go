package hotfix_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/hotfix"
)

// TestLoaderReload drives a Loader through a fix's life: a first load,
// a reload without changes, a new version, a broken file (rejected, the
// old version kept), a removed file (kept), and the versions it reports
// at each step.
func TestLoaderReload(t *testing.T) {
	e := newEngine(t, hotfix.Config{})
	dir := t.TempDir()
	l := hotfix.NewLoader(e, dir)
	h := l.Handler("counter")
	if h != l.Handler("counter") {
		t.Fatal("Handler made two handlers of one name")
	}
	ctx := context.Background()
	write := func(name string, b []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reload := func() (hotfix.Status, error) {
		t.Helper()
		sts, err := l.Reload(ctx)
		if len(sts) != 1 || sts[0].Name != "counter" {
			t.Fatalf("statuses %+v", sts)
		}
		if got := l.Status(); len(got) != 1 || got[0].Version != h.Version() {
			t.Fatalf("Status %+v, in service %s", got, h.Version())
		}
		return sts[0], err
	}

	write("counter.wasm", fix(t, "counter1"))
	write("README.txt", []byte("not a module"))
	st, err := reload()
	if err != nil || !st.Changed || st.Previous != "" || st.Version == "" || st.Version != h.Version() {
		t.Fatalf("first load: %+v, %v", st, err)
	}
	v1 := st.Version

	st, err = reload()
	if err != nil || st.Changed || st.Version != v1 {
		t.Fatalf("unchanged: %+v, %v", st, err)
	}

	write("counter.wasm", fix(t, "counter2"))
	st, err = reload()
	if err != nil || !st.Changed || st.Previous != v1 || st.Version == v1 {
		t.Fatalf("v2: %+v, %v", st, err)
	}
	v2 := st.Version

	write("counter.wasm", []byte("garbage"))
	st, err = reload()
	if !errors.Is(err, hotfix.ErrRejected) || st.Changed || st.Version != v2 || !strings.Contains(st.Error, "compile") {
		t.Fatalf("garbage: %+v, %v", st, err)
	}
	if res, _, err := h.Call(ctx, nil, "inc", nil); err != nil || res.ReplyType != "google.protobuf.StringValue" {
		t.Fatalf("v2 after the garbage: %+v, %v", res, err)
	}

	if err := os.Remove(filepath.Join(dir, "counter.wasm")); err != nil {
		t.Fatal(err)
	}
	st, err = reload()
	if !errors.Is(err, fs.ErrNotExist) || st.Version != v2 || !strings.Contains(st.Error, "kept") {
		t.Fatalf("removed: %+v, %v", st, err)
	}

	if _, err := hotfix.NewLoader(e, filepath.Join(dir, "nope")).Reload(ctx); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing directory: %v", err)
	}
}

// TestOpenWatch serves a directory from Settings with a watcher: the
// first load at Open, a new version picked up once its file holds
// still, a bad file reported and not loaded, and Close ending the
// watcher (goleak checks it).
func TestOpenWatch(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	write := func(b []byte) { // as a deployment should: a whole file, renamed into place
		t.Helper()
		tmp := filepath.Join(dir, ".counter.tmp")
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "counter.wasm")); err != nil {
			t.Fatal(err)
		}
	}
	write(fix(t, "counter1"))
	reports := make(chan error, 10)
	s := hotfix.Settings{Dir: dir, Watch: 50 * time.Millisecond, CacheDir: cacheDir}
	l, sts, err := hotfix.Open(ctx, s, func(_ []hotfix.Status, err error) { reports <- err })
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := l.CloseAll(ctx); err != nil {
			t.Error(err)
		}
	}()
	h := l.Handler("counter")
	if len(sts) != 1 || !sts[0].Changed || h.Version() != sts[0].Version {
		t.Fatalf("Open: %+v", sts)
	}
	v1 := h.Version()

	write(fix(t, "counter2"))
	select {
	case err := <-reports:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the watcher did not reload")
	}
	if h.Version() == v1 {
		t.Fatal("still v1 after the watcher's reload")
	}
	v2 := h.Version()

	write([]byte("garbage"))
	select {
	case err := <-reports:
		if !errors.Is(err, hotfix.ErrRejected) {
			t.Fatalf("garbage: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the watcher did not report the garbage")
	}
	if h.Version() != v2 {
		t.Fatal("the garbage replaced v2")
	}
	if err := l.Watch(time.Second, nil); err == nil {
		t.Fatal("a second Watch")
	}
	l.Close()
	l.Close()
	if err := l.Watch(time.Second, nil); !errors.Is(err, hotfix.ErrClosed) {
		t.Fatalf("Watch after Close: %v", err)
	}

	if l, _, err := hotfix.Open(ctx, hotfix.Settings{Dir: dir, CacheDir: cacheDir}, nil); !errors.Is(err, hotfix.ErrRejected) || l != nil {
		t.Fatalf("Open of a directory with garbage: %v, %v", l, err)
	}
	for _, bad := range []hotfix.Settings{{}, {Dir: dir, Watch: -1}, {Dir: dir, MemoryLimit: -1}, {Dir: filepath.Join(dir, "nope")}} {
		if _, _, err := hotfix.Open(ctx, bad, nil); err == nil {
			t.Errorf("Open(%+v) accepted it", bad)
		}
	}
}

// TestWatchAfterChange changes a file after the Loader's last Reload but
// before its watcher starts, as a watcher's goroutine that starts late on
// a busy machine sees it: the watcher must still reload it, because it
// compares the directory with what the last Reload read, not with what
// it found when it started.
func TestWatchAfterChange(t *testing.T) {
	e := newEngine(t, hotfix.Config{})
	dir := t.TempDir()
	ctx := context.Background()
	if err := os.WriteFile(filepath.Join(dir, "counter.wasm"), fix(t, "counter1"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := hotfix.NewLoader(e, dir)
	defer l.Close()
	h := l.Handler("counter")
	if _, err := l.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	v1 := h.Version()
	tmp := filepath.Join(dir, ".counter.tmp")
	if err := os.WriteFile(tmp, fix(t, "counter2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "counter.wasm")); err != nil {
		t.Fatal(err)
	}
	reports := make(chan error, 10)
	if err := l.Watch(20*time.Millisecond, func(_ []hotfix.Status, err error) { reports <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reports:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the watcher did not reload a change made before it started")
	}
	if h.Version() == v1 {
		t.Fatal("still v1 after the watcher's reload")
	}
}
