package gate

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// frameOverhead is what a waiting frame costs beyond its bytes (its entry
// in the queue), charged to the queue's byte budget so that many tiny
// frames are bounded too.
const frameOverhead = 64

// qframe is one frame waiting in a frameQueue.
type qframe struct {
	b   []byte
	at  time.Time // when it was queued
	key string    // its coalescing key, or ""
}

// queueLimits bound a frameQueue (see Limits.WriteQueue,
// Limits.WriteQueueBytes and Limits.SlowClientAfter).
type queueLimits struct {
	frames int           // frames waiting (and being written)
	bytes  int           // their bytes, plus frameOverhead each
	after  time.Duration // the oldest may wait this long
	stats  *pushStats    // the gateway's counters
}

// pushStats counts, per gateway, the pushes that a client's queue did
// not take as they came.
type pushStats struct {
	dropped   atomic.Uint64
	coalesced atomic.Uint64
	throttled atomic.Uint64
}

// pushResult is what frameQueue.push did with a frame.
type pushResult int

const (
	queued  pushResult = iota // queued, or put in place of a waiting frame of the same key
	dropped                   // a droppable frame over the soft budget: not queued
	refused                   // the queue is closed or cut off
	tooSlow                   // over the budget or too far behind: cut the client off
)

// frameQueue holds the encoded frames waiting to be written to one client:
// the session actor pushes, a writer goroutine writes. It is bounded in
// frames, in bytes (frames being written count until they are written)
// and in time (how long its oldest frame has waited), its memory grows
// only with what waits, and its writer runs only while there is something
// to write (like an actor's turn): an idle client costs no writer
// goroutine, which matters with tens of thousands of idle clients.
//
// Frames may be shared with other queues (a push encoded once for many
// sessions): the queue never writes into one.
type frameQueue struct {
	mu       sync.Mutex
	frames   []qframe
	head     uint64            // the sequence number of frames[0]
	keys     map[string]uint64 // the sequence number of the waiting frame of each coalescing key
	bytes    int               // of frames and of the batch being written, with frameOverhead each
	inflight time.Time         // when the oldest frame of the batch being written was queued; zero: none
	nflight  int               // frames in that batch
	lim      queueLimits
	closed   bool // no more pushes; the writer ends the connection when drained
	running  bool // a writer goroutine is running
	broken   bool // a write failed: frames are dropped from now on
	cutOff   bool // the client is too slow: cut off, see cut
	bye      ending
	grace    *time.Timer // cut's bound
	write    func(frames [][]byte) error
	startW   func(run func()) // starts a writer goroutine
	closeC   func()           // closes the connection
	end      func(ending)     // ends the connection after its last frame
	done     chan struct{}    // closed once closed, drained and the connection ended
	batch    [][]byte         // the writer's scratch (only one writer runs at a time)
}

func newFrameQueue(lim queueLimits, write func([][]byte) error, closeConn func(), end func(ending), start func(run func())) *frameQueue {
	if lim.stats == nil {
		lim.stats = new(pushStats)
	}
	return &frameQueue{lim: lim, write: write, closeC: closeConn, end: end, startW: start, done: make(chan struct{})}
}

// push queues f, starting a writer if none runs. With a key, f takes the
// place of the frame of the same key still waiting, if any (latest wins;
// that frame is never written). A droppable f is dropped, not queued,
// when the queue is over half its byte budget. It reports tooSlow, with
// why, when f would take the queue over its bounds, or when its oldest
// frame has waited longer than its time bound: the caller cuts the client
// off.
func (q *frameQueue) push(f []byte, key string, droppable bool) (r pushResult, why string) {
	now := time.Now()
	size := len(f) + frameOverhead
	q.mu.Lock()
	if q.closed || q.cutOff {
		q.mu.Unlock()
		return refused, ""
	}
	oldest := q.oldestLocked()
	if q.lim.after > 0 && !oldest.IsZero() && now.Sub(oldest) > q.lim.after {
		q.mu.Unlock()
		return tooSlow, fmt.Sprintf("write queue %v behind", q.lim.after)
	}
	if key != "" {
		if seq, ok := q.keys[key]; ok && seq >= q.head {
			old := &q.frames[seq-q.head]
			if q.bytes-len(old.b)+len(f) <= q.lim.bytes {
				q.bytes += len(f) - len(old.b)
				old.b = f
				q.mu.Unlock()
				q.lim.stats.coalesced.Add(1)
				return queued, ""
			}
		}
	}
	if droppable && q.bytes+size > q.lim.bytes/2 {
		q.mu.Unlock()
		q.lim.stats.dropped.Add(1)
		return dropped, ""
	}
	switch {
	case q.bytes+size > q.lim.bytes:
		why = fmt.Sprintf("write queue full: %d bytes", q.lim.bytes)
	case len(q.frames)+q.nflight >= q.lim.frames:
		why = fmt.Sprintf("write queue full: %d frames", q.lim.frames)
	}
	if why != "" {
		q.mu.Unlock()
		return tooSlow, why
	}
	if key != "" {
		if q.keys == nil {
			q.keys = make(map[string]uint64)
		}
		q.keys[key] = q.head + uint64(len(q.frames))
	}
	q.frames = append(q.frames, qframe{b: f, at: now, key: key})
	q.bytes += size
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		q.startW(q.run)
	}
	return queued, ""
}

// oldestLocked returns when the oldest frame not yet written was queued,
// or the zero time when none waits.
func (q *frameQueue) oldestLocked() time.Time {
	if !q.inflight.IsZero() {
		return q.inflight
	}
	if len(q.frames) > 0 {
		return q.frames[0].at
	}
	return time.Time{}
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
	for _, f := range q.frames {
		q.bytes -= len(f.b) + frameOverhead
	}
	q.head += uint64(len(q.frames))
	clear(q.frames)
	q.frames = q.frames[:0]
	clear(q.keys)
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
			q.keys = nil
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
		size := 0
		for i, f := range q.frames[:n] {
			q.batch = append(q.batch, f.b)
			size += len(f.b) + frameOverhead
			if f.key != "" && q.keys[f.key] == q.head+uint64(i) {
				delete(q.keys, f.key)
			}
		}
		q.inflight, q.nflight = q.frames[0].at, n
		q.head += uint64(n)
		// Advance past the batch rather than shift what is left: appends
		// reuse the room at the end, and when it runs out, append copies
		// only the waiting frames to a new array (amortised O(1) a frame,
		// where a shift would cost the whole queue for every batch).
		clear(q.frames[:n])
		q.frames = q.frames[n:]
		broken := q.broken
		q.mu.Unlock()
		failed := false
		if !broken {
			failed = q.write(q.batch) != nil
			if failed {
				q.closeC() // the reader sees it and ends the session
			}
		}
		clear(q.batch)
		q.batch = q.batch[:0]
		q.mu.Lock()
		q.broken = q.broken || failed
		q.bytes -= size
		q.inflight, q.nflight = time.Time{}, 0
		q.mu.Unlock()
	}
}

// waiting returns the frames queued and not handed to the connection yet
// (those being written are not counted: the connection may have taken
// them).
func (q *frameQueue) waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.frames)
}

// queuedBytes returns the bytes the queue holds (see Limits.WriteQueueBytes).
func (q *frameQueue) queuedBytes() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}
