package hotfix_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/guildkit/guild/hotfix"
)

// TestReviewReloadEndsWithCtx: admin.Reloader's contract (ReloadItems
// "must return soon after ctx ends", the admin reload "within
// ReloadTimeout") does not hold for a *hotfix.Loader whose Engine has no
// CallTimeout (the default): Compile runs the module's _initialize and
// self-check on context.Background() (callCtxCancel drops ctx), and
// wazero is not even told to watch contexts (WithCloseOnContextDone
// false). A fix whose Check loops forever holds the reload, the Loader's
// reload mutex and the admin agent's one reload slot forever.
func TestReviewReloadEndsWithCtx(t *testing.T) {
	wasm := fix(t, "spincheck")
	e, err := hotfix.NewEngine(context.Background(), hotfix.Config{CacheDir: cacheDir}) // no CallTimeout: the default
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "spin.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	l := hotfix.NewLoader(e, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = l.ReloadItems(ctx)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("ReloadItems has not returned 10 s after its context (500 ms) ended")
	}
}
