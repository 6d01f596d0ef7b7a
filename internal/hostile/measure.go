package hostile

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Window is what the good bots saw in one period: their requests'
// latency, and their errors and disconnections.
type Window struct {
	// N is the number of requests answered.
	N int
	// P50 and P99 are the answered requests' latency percentiles.
	P50, P99 time.Duration
	// Errors counts requests that failed (an error reply or a timeout).
	Errors int
	// Disconnects counts bots whose connection the gateway ended.
	Disconnects int
}

// recorder collects latencies and errors for Window.
type recorder struct {
	mu      sync.Mutex
	lat     []time.Duration
	errs    int
	discons atomic.Int64
	seen    int64 // discons at the last window
}

func (r *recorder) ok(d time.Duration) {
	r.mu.Lock()
	r.lat = append(r.lat, d)
	r.mu.Unlock()
}

func (r *recorder) fail() {
	r.mu.Lock()
	r.errs++
	r.mu.Unlock()
}

// window returns what was recorded since the last call and starts anew.
func (r *recorder) window() Window {
	r.mu.Lock()
	lat, errs := r.lat, r.errs
	r.lat, r.errs = nil, 0
	d := r.discons.Load()
	discons := d - r.seen
	r.seen = d
	r.mu.Unlock()
	w := Window{N: len(lat), Errors: errs, Disconnects: int(discons)}
	if len(lat) > 0 {
		slices.Sort(lat)
		w.P50 = lat[len(lat)*50/100]
		w.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return w
}

// Median returns the median of the windows' P50 and of their P99, and
// the sums of their errors and disconnections: the summary of several
// rounds, which a single slow round on a busy machine does not swing.
func Median(ws []Window) Window {
	if len(ws) == 0 {
		return Window{}
	}
	var p50, p99 []time.Duration
	var sum Window
	for _, w := range ws {
		p50, p99 = append(p50, w.P50), append(p99, w.P99)
		sum.N += w.N
		sum.Errors += w.Errors
		sum.Disconnects += w.Disconnects
	}
	slices.Sort(p50)
	slices.Sort(p99)
	sum.P50, sum.P99 = p50[len(p50)/2], p99[len(p99)/2]
	return sum
}

// HeapPeak samples the process's heap (runtime.MemStats.HeapInuse) every
// period until Stop, and keeps the largest. In-process tests share the
// heap with their clients and attackers: the figure bounds the server's
// from above.
type HeapPeak struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

// StartHeapPeak starts sampling every period.
func StartHeapPeak(period time.Duration) *HeapPeak {
	h := &HeapPeak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			h.sample()
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *HeapPeak) sample() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	for {
		p := h.peak.Load()
		if m.HeapInuse <= p || h.peak.CompareAndSwap(p, m.HeapInuse) {
			return
		}
	}
}

// Stop stops sampling and returns the peak, in bytes.
func (h *HeapPeak) Stop() uint64 {
	close(h.stop)
	<-h.done
	return h.peak.Load()
}
