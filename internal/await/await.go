// Package await is the one way guild's tests wait for something: poll a
// condition until it holds, with a deadline, and fail the test naming what
// it waited for. A test never sleeps for a condition.
//
//	await.True(t, 5*time.Second, "node 1 to see node 2 leave", func() bool {
//		return len(m1.Members()) == 2
//	})
//
// The package uses the standard library only, so every package's tests can
// import it, internal tests of leaf packages such as actor included.
package await

import (
	"testing"
	"time"
)

// Polling backoff: the first re-check comes after minPoll, and the pause
// doubles up to maxPoll, so a condition that holds soon is seen soon and a
// long wait does not spin.
const (
	minPoll = time.Millisecond
	maxPoll = 20 * time.Millisecond
)

// True polls cond until it returns true and returns how long that took. If
// cond is still false after timeout it fails t with t.Fatalf, saying that
// it timed out waiting for what. cond is called from the calling goroutine
// only, once more after the deadline has passed, so a condition that came
// true during the last pause is not missed. A timeout that is not positive
// is a bug in the test: True fails t at once.
//
// Like t.Fatalf, True must be called from the goroutine running the test.
func True(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	if timeout <= 0 {
		t.Fatalf("await: waiting for %s with a timeout of %v: want a positive timeout", what, timeout)
	}
	start := time.Now()
	deadline := start.Add(timeout)
	pause := minPoll
	for !cond() {
		now := time.Now()
		if !now.Before(deadline) {
			if cond() {
				break
			}
			t.Fatalf("await: timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(min(pause, deadline.Sub(now)))
		pause = min(2*pause, maxPoll)
	}
	return time.Since(start)
}

// Always checks that cond keeps returning true for the whole of d, polling
// it as True does, and fails t with t.Fatalf as soon as it returns false,
// saying how long what held. It is for "nothing happens" checks, such as a
// view that must not change during a short outage: it returns after d
// whatever the test does meanwhile, so keep d short. A duration that is not
// positive is a bug in the test: Always fails t at once.
//
// Like t.Fatalf, Always must be called from the goroutine running the test.
func Always(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if d <= 0 {
		t.Fatalf("await: checking %s for %v: want a positive duration", what, d)
	}
	start := time.Now()
	end := start.Add(d)
	pause := minPoll
	for {
		if !cond() {
			t.Fatalf("await: %s stopped holding after %v of %v", what, time.Since(start).Round(time.Millisecond), d)
		}
		now := time.Now()
		if !now.Before(end) {
			return
		}
		time.Sleep(min(pause, end.Sub(now)))
		pause = min(2*pause, maxPoll)
	}
}
