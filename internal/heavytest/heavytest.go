// Package heavytest serializes the heaviest tests of the suite across test
// processes. The multi-process tests (grain's kill -9 and rolling
// restart, the gateway's resume with 200 bots, the harbors' and rolling
// restarts' guild run processes) each start several processes that load
// both CPUs of a 2-core machine, and `go test ./...` runs two packages at
// once: two such tests side by side starve each other's leases and
// deadlines, and fail for the machine, not for the code. Serialize makes
// them take turns, through a lock file that every test binary on the
// machine shares.
package heavytest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/guildkit/guild/internal/await"
)

// LockFile is the name of the lock file, in os.TempDir().
const LockFile = "guild-heavy-tests.lock"

// MaxWait bounds how long Serialize waits for the tests ahead of it.
const MaxWait = 15 * time.Minute

// Serialize waits until no other heavy test runs on the machine (in this
// test binary or another), then holds the turn until t ends. It fails t
// after MaxWait. Where the platform has no file locks it does nothing.
// Call it from the test's goroutine, first thing.
func Serialize(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), LockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Logf("heavytest: no lock file (%v): running without waiting for other heavy tests", err)
		return
	}
	ok, supported := tryLock(f)
	if !supported {
		_ = f.Close()
		return
	}
	if !ok {
		waited := await.True(t, MaxWait, "the heavy tests ahead of this one to end (the lock "+f.Name()+")", func() bool {
			ok, _ := tryLock(f)
			return ok
		})
		if waited > time.Second {
			t.Logf("heavytest: waited %v for the heavy tests ahead", waited.Round(time.Millisecond))
		}
	}
	t.Cleanup(func() {
		unlock(f)
		_ = f.Close()
	})
}
