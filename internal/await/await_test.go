package await_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guildkit/guild/internal/await"
)

// fakeT records a Fatalf and ends the goroutine, as testing.T does.
type fakeT struct {
	testing.TB
	msg string
}

func (f *fakeT) Helper() {}

func (f *fakeT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls fn with a fakeT on its own goroutine, and returns the message
// of its Fatalf ("" if none) and how long fn ran.
func run(fn func(t testing.TB)) (string, time.Duration) {
	f := &fakeT{TB: nil}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.msg, time.Since(start)
}

func TestTrueReturnsWhenTheConditionHolds(t *testing.T) {
	var calls atomic.Int32
	took := await.True(t, 5*time.Second, "three calls", func() bool { return calls.Add(1) >= 3 })
	if calls.Load() != 3 {
		t.Fatalf("cond called %d times, want 3", calls.Load())
	}
	if took > time.Second {
		t.Fatalf("True took %v for a condition that held at the third poll", took)
	}
}

func TestTrueFailsAfterTheTimeoutNamingWhat(t *testing.T) {
	msg, took := run(func(tb testing.TB) {
		await.True(tb, 50*time.Millisecond, "the moon to turn blue", func() bool { return false })
		t.Error("True returned for a condition that never held")
	})
	if !strings.Contains(msg, "the moon to turn blue") || !strings.Contains(msg, "timed out after 50ms") {
		t.Fatalf("failure message %q", msg)
	}
	if took < 50*time.Millisecond || took > 2*time.Second {
		t.Fatalf("True failed after %v, want just after 50ms", took)
	}
}

func TestTrueChecksOnceMoreAtTheDeadline(t *testing.T) {
	deadline := time.Now().Add(30 * time.Millisecond)
	msg, _ := run(func(tb testing.TB) {
		// True only once the deadline has passed: the last check sees it.
		await.True(tb, 30*time.Millisecond, "the deadline", func() bool { return !time.Now().Before(deadline) })
	})
	if msg != "" {
		t.Fatalf("True failed: %s", msg)
	}
}

func TestAlways(t *testing.T) {
	var calls atomic.Int32
	start := time.Now()
	await.Always(t, 50*time.Millisecond, "a constant", func() bool { calls.Add(1); return true })
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("Always returned after %v, want at least 50ms", d)
	}
	if calls.Load() < 2 {
		t.Fatalf("cond called %d times, want it polled", calls.Load())
	}

	flip := time.Now().Add(20 * time.Millisecond)
	msg, took := run(func(tb testing.TB) {
		await.Always(tb, 5*time.Second, "the calm", func() bool { return time.Now().Before(flip) })
		t.Error("Always returned although the condition stopped holding")
	})
	if !strings.Contains(msg, "the calm stopped holding after") {
		t.Fatalf("failure message %q", msg)
	}
	if took > 2*time.Second {
		t.Fatalf("Always failed after %v, want soon after the condition flipped", took)
	}
}

func TestNonPositiveDurationsFail(t *testing.T) {
	for _, fn := range []func(testing.TB){
		func(tb testing.TB) { await.True(tb, 0, "x", func() bool { return true }) },
		func(tb testing.TB) { await.Always(tb, -time.Second, "x", func() bool { return true }) },
	} {
		if msg, _ := run(fn); !strings.Contains(msg, "want a positive") {
			t.Errorf("failure message %q", msg)
		}
	}
}
