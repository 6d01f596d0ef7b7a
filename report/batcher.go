package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guildkit/guild/actor"
)

// Defaults shared by the reporters.
const (
	// DefaultQueue bounds the failures waiting to be delivered.
	DefaultQueue = 1000
	// DefaultBatch bounds the failures of one delivery.
	DefaultBatch = 100
	// DefaultRetries is how many times a delivery is tried again.
	DefaultRetries = 3
	// DefaultBackoff is the wait before the first retry; it doubles after
	// each one, up to MaxBackoff, with jitter.
	DefaultBackoff = 500 * time.Millisecond
	// MaxBackoff caps the wait between retries.
	MaxBackoff = 30 * time.Second
	// DefaultCloseTimeout bounds Close when its ctx has no deadline.
	DefaultCloseTimeout = 10 * time.Second
)

// ErrClosed is returned by Close when the reporter was closed already.
var ErrClosed = errors.New("report: reporter closed")

// Stats counts what a reporter did with the failures it was given.
// Queued + Dropped is every failure reported to it; Queued failures end
// up Delivered or Failed (or still queued).
type Stats struct {
	// Queued counts the failures accepted into the queue.
	Queued uint64
	// Dropped counts the failures not accepted: the queue was full, or
	// the reporter was closed.
	Dropped uint64
	// Delivered counts the failures in batches delivered.
	Delivered uint64
	// Failed counts the failures in batches whose delivery failed for
	// good, and those still queued when Close's deadline passed.
	Failed uint64
	// Batches counts the batches delivered.
	Batches uint64
	// Attempts counts the deliveries tried, retries included.
	Attempts uint64
}

// limits are a reporter's batching, rate and retry settings, defaults
// filled.
type limits struct {
	queue    int
	batch    int
	interval time.Duration
	retries  int // tries after the first
	backoff  time.Duration
}

// newLimits fills the defaults and checks the values; what names the
// reporter's Config in errors.
func newLimits(what string, queue, batch int, interval time.Duration, defInterval time.Duration, retries int, backoff time.Duration) (limits, error) {
	switch {
	case queue < 0:
		return limits{}, fmt.Errorf("report: %s.Queue %d is negative", what, queue)
	case batch < 0:
		return limits{}, fmt.Errorf("report: %s.Batch %d is negative", what, batch)
	case interval < 0:
		return limits{}, fmt.Errorf("report: %s.Interval %v is negative", what, interval)
	case backoff < 0:
		return limits{}, fmt.Errorf("report: %s.Backoff %v is negative", what, backoff)
	}
	l := limits{queue: queue, batch: batch, interval: interval, retries: retries, backoff: backoff}
	if l.queue == 0 {
		l.queue = DefaultQueue
	}
	if l.batch == 0 {
		l.batch = DefaultBatch
	}
	if l.interval == 0 {
		l.interval = defInterval
	}
	switch {
	case l.retries == 0:
		l.retries = DefaultRetries
	case l.retries < 0:
		l.retries = 0
	}
	if l.backoff == 0 {
		l.backoff = DefaultBackoff
	}
	return l, nil
}

// permanentError marks a delivery error that a retry will not cure.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// permanent marks err as not worth a retry.
func permanent(err error) error { return &permanentError{err} }

// laterError marks a delivery error whose retry must wait at least after
// (a server's Retry-After; 0: the backoff alone).
type laterError struct {
	err   error
	after time.Duration
}

func (e *laterError) Error() string { return e.err.Error() }
func (e *laterError) Unwrap() error { return e.err }

// later marks err as worth a retry after at least after.
func later(err error, after time.Duration) error { return &laterError{err, after} }

// deliverFunc delivers one batch; ctx ends when Close gives up.
type deliverFunc func(ctx context.Context, b *Batch) error

// batcher is the queue and the delivery goroutine that both reporters
// share.
//
// Ownership: mu guards items, lost and closed. The goroutine (run) owns
// the deliveries; Report only appends under mu and signals wake.
type batcher struct {
	lim     limits
	source  string
	deliver deliverFunc
	log     *slog.Logger

	mu     sync.Mutex
	items  []actor.Failure
	lost   uint64 // failures lost since the last batch delivered
	closed bool

	wake   chan struct{} // one slot: the queue has something
	quit   chan struct{} // closed by Close: flush, then stop
	ctx    context.Context
	cancel context.CancelFunc // ends deliveries in flight: Close's deadline passed
	done   chan struct{}      // closed when run returns
	once   sync.Once

	queued, dropped, delivered, failed, batches, attempts atomic.Uint64
}

func newBatcher(lim limits, source string, deliver deliverFunc, log *slog.Logger) *batcher {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &batcher{
		lim: lim, source: source, deliver: deliver, log: log,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		ctx: ctx, cancel: cancel,
	}
	go b.run()
	return b
}

// report queues f, or drops and counts it. It never blocks beyond a short
// lock.
func (b *batcher) report(f actor.Failure) {
	b.mu.Lock()
	if b.closed || len(b.items) >= b.lim.queue {
		b.lost++
		b.mu.Unlock()
		b.dropped.Add(1)
		return
	}
	b.items = append(b.items, f)
	b.mu.Unlock()
	b.queued.Add(1)
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// take removes up to one batch of failures from the queue, with the count
// of failures lost since the last delivery.
func (b *batcher) take() ([]actor.Failure, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(len(b.items), b.lim.batch)
	if n == 0 {
		return nil, 0
	}
	out := make([]actor.Failure, n)
	copy(out, b.items)
	rest := copy(b.items, b.items[n:])
	clear(b.items[rest:])
	b.items = b.items[:rest]
	lost := b.lost
	b.lost = 0
	return out, lost
}

// addLost counts n failures lost, for the next batch to say.
func (b *batcher) addLost(n uint64) {
	b.mu.Lock()
	b.lost += n
	b.mu.Unlock()
}

func (b *batcher) pending() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.items) > 0
}

// run delivers batches, at most one per interval, until Close; then it
// flushes the queue.
func (b *batcher) run() {
	defer close(b.done)
	var next time.Time // the earliest start of the next delivery
	for {
		if !b.pending() {
			select {
			case <-b.wake:
				continue
			case <-b.quit:
				b.flush()
				return
			}
		}
		if wait := time.Until(next); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-b.quit:
				t.Stop()
				b.flush()
				return
			}
		}
		items, lost := b.take()
		next = time.Now().Add(b.lim.interval)
		b.send(items, lost)
	}
}

// flush delivers what is queued, batch after batch, until the queue is
// empty or Close gives up (ctx ends): what is left is counted as failed.
func (b *batcher) flush() {
	for b.ctx.Err() == nil {
		items, lost := b.take()
		if len(items) == 0 {
			break
		}
		b.send(items, lost)
	}
	b.mu.Lock()
	left := len(b.items)
	b.items = nil
	b.mu.Unlock()
	if left > 0 {
		b.failed.Add(uint64(left))
		b.log.Warn("report: failures not delivered before the close deadline", "count", left)
	}
}

// send delivers one batch, retrying with backoff while the error may
// pass.
func (b *batcher) send(items []actor.Failure, lost uint64) {
	batch := &Batch{Source: b.source, Sent: time.Now(), Dropped: lost, Failures: make([]Entry, len(items))}
	for i, f := range items {
		batch.Failures[i] = EntryOf(f)
	}
	backoff := b.lim.backoff
	for try := 0; ; try++ {
		b.attempts.Add(1)
		err := b.deliver(b.ctx, batch)
		if err == nil {
			b.delivered.Add(uint64(len(items)))
			b.batches.Add(1)
			return
		}
		var perm *permanentError
		if errors.As(err, &perm) || try >= b.lim.retries || b.ctx.Err() != nil {
			b.failed.Add(uint64(len(items)))
			b.addLost(uint64(len(items)) + lost)
			b.log.Warn("report: delivery failed", "failures", len(items), "tries", try+1, "err", err)
			return
		}
		// Full jitter over the upper half: between backoff/2 and backoff;
		// no sooner than the server asked (Retry-After), up to MaxBackoff.
		wait := backoff/2 + rand.N(backoff/2+1)
		var l *laterError
		if errors.As(err, &l) && l.after > wait {
			wait = min(l.after, MaxBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-b.quit: // Close: try again now, within its deadline
			t.Stop()
		case <-b.ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, MaxBackoff)
	}
}

// close flushes and stops within ctx's deadline (DefaultCloseTimeout when
// it has none).
func (b *batcher) close(ctx context.Context) error {
	first := false
	b.once.Do(func() {
		first = true
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		close(b.quit)
	})
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultCloseTimeout)
		defer cancel()
	}
	if !first { // wait for the first Close, which its own deadline bounds
		select {
		case <-b.done:
		case <-ctx.Done():
		}
		return ErrClosed
	}
	failed := b.failed.Load()
	select {
	case <-b.done:
		b.cancel()
		return nil
	case <-ctx.Done():
	}
	// Out of time: end the delivery in flight. Every wait of a delivery
	// honours b.ctx, so run returns promptly.
	b.cancel()
	<-b.done
	return fmt.Errorf("report: close: %w (%d failures not delivered)", ctx.Err(), b.failed.Load()-failed)
}

func (b *batcher) stats() Stats {
	return Stats{
		Queued: b.queued.Load(), Dropped: b.dropped.Load(), Delivered: b.delivered.Load(),
		Failed: b.failed.Load(), Batches: b.batches.Load(), Attempts: b.attempts.Load(),
	}
}
