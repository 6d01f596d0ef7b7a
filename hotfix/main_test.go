package hotfix_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/guildkit/guild/hotfix"
	"go.uber.org/goleak"
)

// The test binary's shared directories: the fixes it built, and the
// compilation cache its Engines share (so that each module is compiled
// by wazero once, not once per test).
var (
	buildDir string
	cacheDir string
)

// TestMain builds nothing up front (fix builds it on demand) and fails
// the package when a test leaves a goroutine behind.
func TestMain(m *testing.M) {
	var err error
	if buildDir, err = os.MkdirTemp("", "hotfix-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// wazero's compilation cache outlives the run when it can: compiling a
	// fix costs seconds (minutes under -race), and the cache is keyed by
	// the module's bytes and wazero's version.
	cacheDir = filepath.Join(buildDir, "cache")
	if dir, err := os.UserCacheDir(); err == nil {
		cacheDir = filepath.Join(dir, "guild", "hotfix-test")
	}
	code := 0
	func() {
		defer os.RemoveAll(buildDir)
		code = m.Run()
		if code == 0 {
			// kcp-go's timer scheduler (linked by the app node of
			// reload_test.go) starts at its package initialisation and
			// lives as long as the process: no leak of ours.
			if err := goleak.Find(
				goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).sched"),
				goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).prepend"),
			); err != nil {
				fmt.Fprintln(os.Stderr, "goleak:", err)
				code = 1
			}
		}
	}()
	os.Exit(code)
}

// builds caches the fixes built with go: one build per fix and test
// binary.
var builds sync.Map // name -> *build

type build struct {
	once sync.Once
	wasm []byte
	err  error
	skip string
}

// fix returns the module built from testdata/name with GOOS=wasip1
// GOARCH=wasm -buildmode=c-shared, or, with command, as a WASI command
// (no -buildmode, so no _initialize). It skips the test when the go tool
// is missing or cannot build for wasip1, and fails it when the build
// fails otherwise.
func fix(t testing.TB, name string) []byte {
	t.Helper()
	return buildFix(t, name, true)
}

func buildFix(t testing.TB, name string, reactor bool) []byte {
	t.Helper()
	wasm, skip, err := buildWasm(name, reactor)
	switch {
	case skip != "":
		t.Skip(skip)
	case err != nil:
		t.Fatal(err)
	}
	return wasm
}

// buildWasm builds testdata/name once per test binary: the module, or
// why the go tool cannot build one (skip), or the build's error.
func buildWasm(name string, reactor bool) (wasm []byte, skip string, err error) {
	key := name
	if !reactor {
		key += ".command"
	}
	v, _ := builds.LoadOrStore(key, &build{})
	b := v.(*build)
	b.once.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			b.skip = "no go tool in PATH to build the test modules"
			return
		}
		if out, err := exec.Command(goTool, "tool", "dist", "list").Output(); err != nil || !bytes.Contains(out, []byte("wasip1/wasm")) {
			b.skip = "this go cannot build for wasip1/wasm"
			return
		}
		out := filepath.Join(buildDir, key+".wasm")
		args := []string{"build", "-o", out}
		if reactor {
			args = append(args, "-buildmode=c-shared")
		}
		cmd := exec.Command(goTool, append(args, "./testdata/"+name)...)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build ./testdata/%s: %v\n%s", name, err, msg)
			return
		}
		b.wasm, b.err = os.ReadFile(out)
	})
	return b.wasm, b.skip, b.err
}

// newEngine starts an Engine with the shared compilation cache, closed
// at the test's end.
func newEngine(t testing.TB, cfg hotfix.Config) *hotfix.Engine {
	t.Helper()
	cfg.CacheDir = cacheDir
	e, err := hotfix.NewEngine(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return e
}

// load compiles and swaps in a fix, failing the test on an error.
func load(t testing.TB, e *hotfix.Engine, h *hotfix.Handler, name string) *hotfix.Module {
	t.Helper()
	m, err := h.Load(context.Background(), e, fix(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// contains fails the test unless err's text has every part.
func contains(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one with %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q lacks %q", err, p)
		}
	}
}
