package gate

import (
	"sync"
	"time"
)

// frameQueue holds the encoded frames waiting to be written to one client:
// the session actor pushes, a writer goroutine writes. It is bounded, its
// memory grows only with what waits, and its writer runs only while there
// is something to write (like an actor's turn): an idle client costs no
// writer goroutine, which matters with tens of thousands of idle clients.
type frameQueue struct {
	mu      sync.Mutex
	frames  [][]byte
	limit   int
	closed  bool // no more pushes; the writer ends the connection when drained
	running bool // a writer goroutine is running
	broken  bool // a write failed: frames are dropped from now on
	cutOff  bool // the client is too slow: cut off, see cut
	bye     ending
	grace   *time.Timer // cut's bound
	write   func(frames [][]byte) error
	startW  func(run func()) // starts a writer goroutine
	closeC  func()           // closes the connection
	end     func(ending)     // ends the connection after its last frame
	done    chan struct{}    // closed once closed, drained and the connection ended
	batch   [][]byte         // the writer's scratch (only one writer runs at a time)
}

func newFrameQueue(limit int, write func([][]byte) error, closeConn func(), end func(ending), start func(run func())) *frameQueue {
	return &frameQueue{limit: limit, write: write, closeC: closeConn, end: end, startW: start, done: make(chan struct{})}
}

// push queues f, starting a writer if none runs. It reports false when
// the queue is full (the client is too slow) or closed.
func (q *frameQueue) push(f []byte) bool {
	q.mu.Lock()
	if q.closed || q.cutOff || len(q.frames) >= q.limit {
		q.mu.Unlock()
		return false
	}
	q.frames = append(q.frames, f)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		q.startW(q.run)
	}
	return true
}

// close lets the writer finish what is queued, then end the connection
// with e (the first close's).
func (q *frameQueue) close(e ending) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	q.bye = e
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		q.startW(q.run)
	}
}

// cutGrace bounds how long a client cut off for being slow has to take
// its last frames (the one being written, and the Close frame that says
// why) before its connection is closed: as long as any client has to read
// its last frames (lingerTimeout).
const cutGrace = lingerTimeout

// cut cuts off a client too slow to read: the frames waiting are dropped
// and no more are taken, so that close's ending (the Close frame saying
// why) comes next. The writer may still be blocked on a write: the client
// has cutGrace to take it and the ending, then the connection is closed.
func (q *frameQueue) cut() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cutOff || q.closed {
		return
	}
	q.cutOff = true
	clear(q.frames)
	q.frames = q.frames[:0]
	q.grace = time.AfterFunc(cutGrace, q.closeC)
}

// run is the writer: it writes batches until the queue is empty, then
// ends; the last one, after close, ends the connection (closes it, after a
// failed write).
func (q *frameQueue) run() {
	for {
		q.mu.Lock()
		n := min(len(q.frames), maxBatch)
		if n == 0 {
			q.running = false
			q.frames = nil // do not keep a burst's backing array
			finished, broken, bye := q.closed, q.broken, q.bye
			if finished && q.grace != nil {
				q.grace.Stop() // the ending's own bound takes over
			}
			q.mu.Unlock()
			if finished {
				if broken {
					q.closeC()
				} else {
					q.end(bye)
				}
				close(q.done)
			}
			return
		}
		q.batch = append(q.batch[:0], q.frames[:n]...)
		rest := copy(q.frames, q.frames[n:])
		clear(q.frames[rest:])
		q.frames = q.frames[:rest]
		broken := q.broken
		q.mu.Unlock()
		if !broken {
			if err := q.write(q.batch); err != nil {
				q.closeC() // the reader sees it and ends the session
				q.mu.Lock()
				q.broken = true
				q.mu.Unlock()
			}
		}
		clear(q.batch)
	}
}

// capacity returns the queue's bound.
func (q *frameQueue) capacity() int { return q.limit }
