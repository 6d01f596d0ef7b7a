package gate

import "sync"

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
	write   func(frames [][]byte) error
	startW  func(run func()) // starts a writer goroutine
	closeC  func()           // closes the connection
	end     func()           // ends the connection after its last frame
	done    chan struct{}    // closed once closed, drained and the connection ended
	batch   [][]byte         // the writer's scratch (only one writer runs at a time)
}

func newFrameQueue(limit int, write func([][]byte) error, closeConn, end func(), start func(run func())) *frameQueue {
	return &frameQueue{limit: limit, write: write, closeC: closeConn, end: end, startW: start, done: make(chan struct{})}
}

// push queues f, starting a writer if none runs. It reports false when
// the queue is full (the client is too slow) or closed.
func (q *frameQueue) push(f []byte) bool {
	q.mu.Lock()
	if q.closed || len(q.frames) >= q.limit {
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

// close lets the writer finish what is queued, then end the connection.
func (q *frameQueue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		q.startW(q.run)
	}
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
			finished, broken := q.closed, q.broken
			q.mu.Unlock()
			if finished {
				if broken {
					q.closeC()
				} else {
					q.end()
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
