package gate

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/internal/await"
)

// stuckWriter is a frameQueue's connection whose writes wait until
// released, recording what they wrote.
type stuckWriter struct {
	mu      sync.Mutex
	written []string
	calls   chan struct{} // one per write, as it begins
	release chan struct{}
}

func newStuckWriter() *stuckWriter {
	return &stuckWriter{calls: make(chan struct{}, 1024), release: make(chan struct{})}
}

func (w *stuckWriter) write(frames [][]byte) error {
	w.calls <- struct{}{}
	<-w.release
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range frames {
		w.written = append(w.written, string(f))
	}
	return nil
}

func (w *stuckWriter) got() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.written...)
}

func newTestQueue(w *stuckWriter, lim queueLimits) *frameQueue {
	return newFrameQueue(lim, w.write, func() {}, func(ending) {}, func(run func()) { go run() })
}

// TestQueueCoalesceKeepsLatest: a push with a coalescing key takes the
// place of the one of the same key still waiting; the client gets only
// the latest, in the waiting one's place, and the other pushes as they
// came.
func TestQueueCoalesceKeepsLatest(t *testing.T) {
	w := newStuckWriter()
	stats := new(pushStats)
	q := newTestQueue(w, queueLimits{frames: 100, bytes: 1 << 20, after: time.Minute, stats: stats})
	mustQueue(t, q, "w1", "world", false)
	<-w.calls // the writer holds w1: it is being written, no longer waiting
	mustQueue(t, q, "w2", "world", false)
	mustQueue(t, q, "c1", "", false)
	mustQueue(t, q, "w3", "world", false)
	mustQueue(t, q, "s1", "score", false)
	mustQueue(t, q, "w4", "world", false)
	mustQueue(t, q, "s2", "score", false)
	if got := stats.coalesced.Load(); got != 3 {
		t.Errorf("coalesced %d, want 3", got)
	}
	close(w.release)
	want := []string{"w1", "w4", "c1", "s2"}
	await.True(t, 5*time.Second, "the queue to be written", func() bool { return len(w.got()) >= len(want) })
	if got := w.got(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("written %q, want %q", got, want)
	}
	if b := q.queuedBytes(); b != 0 {
		t.Errorf("%d bytes counted once all is written, want 0", b)
	}
	// Once written, a key starts again.
	mustQueue(t, q, "w5", "world", false)
	await.True(t, 5*time.Second, "w5 to be written", func() bool { return len(w.got()) == 5 })
}

// TestQueueByteBudget: droppable pushes are dropped once the queue holds
// half its byte budget; other pushes are queued up to the budget, and the
// one past it says the client is too slow, naming the budget. Frames
// being written count until they are written.
func TestQueueByteBudget(t *testing.T) {
	w := newStuckWriter()
	stats := new(pushStats)
	const budget = 10 * (100 + frameOverhead)
	q := newTestQueue(w, queueLimits{frames: 1000, bytes: budget, after: time.Minute, stats: stats})
	frame := string(make([]byte, 100))
	mustQueue(t, q, frame, "", true)
	<-w.calls
	for range 4 {
		mustQueue(t, q, frame, "", true)
	}
	if r, _ := q.push([]byte(frame), "", true); r != dropped {
		t.Fatalf("a droppable push at half the budget: %v, want dropped", r)
	}
	if stats.dropped.Load() != 1 {
		t.Errorf("dropped %d, want 1", stats.dropped.Load())
	}
	for range 5 {
		mustQueue(t, q, frame, "", false)
	}
	if b := q.queuedBytes(); b != budget {
		t.Errorf("%d bytes queued, want the budget %d", b, budget)
	}
	r, why := q.push([]byte(frame), "", false)
	if r != tooSlow || !strings.Contains(why, "write queue full") {
		t.Fatalf("a push past the budget: %v %q, want tooSlow, write queue full", r, why)
	}
	q.cut()
	if r, _ := q.push([]byte(frame), "", false); r != refused {
		t.Errorf("a push after the cut: %v, want refused", r)
	}
	close(w.release)
}

// TestQueueTimeBehind: a client whose oldest frame not yet written has
// waited longer than the bound is too slow, however little waits.
func TestQueueTimeBehind(t *testing.T) {
	w := newStuckWriter()
	q := newTestQueue(w, queueLimits{frames: 1 << 20, bytes: 1 << 30, after: 20 * time.Millisecond, stats: new(pushStats)})
	mustQueue(t, q, "x", "", false)
	<-w.calls
	var why string
	await.True(t, 5*time.Second, "the queue to be too far behind", func() bool {
		var r pushResult
		r, why = q.push([]byte("y"), "", false)
		return r == tooSlow
	})
	if !strings.Contains(why, "behind") {
		t.Errorf("why %q, want it to say how far behind", why)
	}
	close(w.release)
}

func mustQueue(t *testing.T, q *frameQueue, f, key string, droppable bool) {
	t.Helper()
	if r, why := q.push([]byte(f), key, droppable); r != queued {
		t.Fatalf("push %.8q: %v %s, want it queued", f, r, why)
	}
}

// BenchmarkQueuePush: the session's side of a push, a frame queued for a
// writer that takes batches as they come (its write returns at once):
// plain, latest-wins under one key, and droppable; against a buffered
// channel and its reader.
func BenchmarkQueuePush(b *testing.B) {
	frame := make([]byte, 200)
	for _, bc := range []struct {
		name      string
		key       string
		droppable bool
	}{{"plain", "", false}, {"coalesce", "world", false}, {"droppable", "", true}} {
		b.Run(bc.name, func(b *testing.B) {
			done := make(chan struct{})
			q := newFrameQueue(queueLimits{frames: 1 << 20, bytes: 1 << 30, after: time.Minute},
				func([][]byte) error { return nil }, func() {}, func(ending) { close(done) }, func(run func()) { go run() })
			b.ReportAllocs()
			for b.Loop() {
				if r, why := q.push(frame, bc.key, bc.droppable); r != queued {
					b.Fatalf("push: %v %s", r, why)
				}
			}
			q.close(ending{})
			<-done
		})
	}
	// The baseline: a buffered channel with a goroutine taking from it.
	b.Run("chan", func(b *testing.B) {
		ch := make(chan []byte, 4096)
		done := make(chan struct{})
		go func() {
			for range ch {
			}
			close(done)
		}()
		b.ReportAllocs()
		for b.Loop() {
			ch <- frame
		}
		close(ch)
		<-done
	})
}
