package heavytest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestSerializeExcludes: while a test holds the turn, the lock cannot be
// taken by anyone else; once it ends, it can.
func TestSerializeExcludes(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no file locks here")
	}
	t.Run("holder", func(t *testing.T) {
		Serialize(t)
		other, err := os.OpenFile(filepath.Join(os.TempDir(), LockFile), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		if ok, _ := tryLock(other); ok {
			unlock(other)
			t.Fatal("the lock was taken while a heavy test held it")
		}
	})
	f, err := os.OpenFile(filepath.Join(os.TempDir(), LockFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ok, _ := tryLock(f)
	if !ok {
		t.Fatal("the lock is still held after the heavy test ended")
	}
	unlock(f)
}
