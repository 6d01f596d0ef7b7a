package hotfix_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
