// Package fanout delivers events to subscribers in order from one goroutine.
//
// A Queue owns one goroutine, started by New and stopped by Close. Publish
// never blocks on a subscriber: the queue is unbounded, so a slow callback
// delays later callbacks but never the publisher.
package fanout

import (
	"log/slog"
	"sync"
)

type sub[E any] struct {
	id uint64
	fn func(E)
}

type item[E any] struct {
	ev  E
	to  uint64 // 0: every subscriber up to max; otherwise that subscriber only
	max uint64 // the newest subscriber when the event was published
}

// Queue is an ordered, unbounded event queue with subscribers.
type Queue[E any] struct {
	log *slog.Logger

	mu     sync.Mutex
	subs   []sub[E] // in subscription order
	next   uint64
	q      []item[E]
	closed bool

	wake chan struct{} // one-slot signal: the queue is not empty
	quit chan struct{}
	done chan struct{}
}

// New starts the delivery goroutine. log reports panics in callbacks.
func New[E any](log *slog.Logger) *Queue[E] {
	q := &Queue[E]{
		log:  log,
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	go q.run()
	return q
}

// Publish queues ev for every current subscriber. Callers that need a total
// order call it while holding the lock that orders their changes.
func (q *Queue[E]) Publish(ev E) {
	q.mu.Lock()
	if !q.closed && len(q.subs) > 0 {
		q.q = append(q.q, item[E]{ev: ev, max: q.next})
		q.signal()
	}
	q.mu.Unlock()
}

// Subscribe registers fn and queues initial for fn alone, ahead of any event
// published after it. It returns the func that unsubscribes.
func (q *Queue[E]) Subscribe(fn func(E), initial []E) func() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return func() {}
	}
	q.next++
	id := q.next
	q.subs = append(q.subs, sub[E]{id, fn})
	for _, ev := range initial {
		q.q = append(q.q, item[E]{ev: ev, to: id})
	}
	if len(initial) > 0 {
		q.signal()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			q.mu.Lock()
			for i, s := range q.subs {
				if s.id == id {
					q.subs = append(q.subs[:i:i], q.subs[i+1:]...)
					break
				}
			}
			q.mu.Unlock()
		})
	}
}

func (q *Queue[E]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Close stops the goroutine and waits for it. Events still queued are
// dropped. It is safe to call twice; it must not be called from a callback.
func (q *Queue[E]) Close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		<-q.done
		return
	}
	q.closed = true
	q.subs = nil
	q.q = nil
	q.mu.Unlock()
	close(q.quit)
	<-q.done
}

func (q *Queue[E]) run() {
	defer close(q.done)
	for {
		select {
		case <-q.quit:
			return
		case <-q.wake:
		}
		for {
			q.mu.Lock()
			batch := q.q
			q.q = nil
			q.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, it := range batch {
				select {
				case <-q.quit:
					return
				default:
				}
				q.deliver(it)
			}
		}
	}
}

// deliver calls the subscribers of it that are still subscribed.
func (q *Queue[E]) deliver(it item[E]) {
	q.mu.Lock()
	var fns []func(E)
	for _, s := range q.subs {
		// A subscriber that came after the event already has the view
		// that includes it, through its initial events.
		if (it.to == 0 && s.id <= it.max) || it.to == s.id {
			fns = append(fns, s.fn)
		}
	}
	q.mu.Unlock()
	for _, fn := range fns {
		q.call(fn, it.ev)
	}
}

func (q *Queue[E]) call(fn func(E), ev E) {
	defer func() {
		if r := recover(); r != nil {
			q.log.Error("cluster: subscriber panicked", "panic", r)
		}
	}()
	fn(ev)
}
