package actor

import "sync"

// workers runs actor turns on a pool of goroutines. Handing a turn to a
// parked worker is as cheap as starting a goroutine, and a worker keeps the
// stack it has grown, which a fresh goroutine would have to grow again on
// every turn. Idle workers form a LIFO stack, so the most recently used (and
// cache-warm) worker goes first; past maxIdle, a worker that runs out of work
// exits instead of parking. An idle actor costs no goroutine either way.
type workers struct {
	mu      sync.Mutex
	idle    []*worker
	closed  bool
	maxIdle int
	wg      *sync.WaitGroup
}

type worker struct {
	next chan *process // one slot: the next turn to run; nil means exit
}

// schedule runs p's turn on an idle worker, or on a new one.
// Once the pool is closed (the node is tearing down and waiting for its
// goroutines), a late turn runs on the calling goroutine instead, so that
// no goroutine is added while the node waits.
func (ws *workers) schedule(p *process) {
	ws.mu.Lock()
	if ws.closed {
		ws.mu.Unlock()
		p.run()
		return
	}
	if n := len(ws.idle); n > 0 {
		w := ws.idle[n-1]
		ws.idle[n-1] = nil
		ws.idle = ws.idle[:n-1]
		ws.mu.Unlock()
		w.next <- p
		return
	}
	ws.wg.Add(1) // under mu: ordered before close, hence before the node's Wait
	ws.mu.Unlock()
	go ws.loop(&worker{next: make(chan *process, 1)}, p)
}

// track counts one more goroutine of the node's (a Request callback), or
// reports false once the pool is closed.
func (ws *workers) track() bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return false
	}
	ws.wg.Add(1)
	return true
}

func (ws *workers) loop(w *worker, p *process) {
	defer ws.wg.Done()
	for p != nil {
		p.run()
		if !ws.park(w) {
			return
		}
		p = <-w.next
	}
}

// park puts w on the idle stack, or reports false when it should exit.
func (ws *workers) park(w *worker) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed || len(ws.idle) >= ws.maxIdle {
		return false
	}
	ws.idle = append(ws.idle, w)
	return true
}

// close tells every idle worker to exit; busy ones exit when their turn ends.
func (ws *workers) close() {
	ws.mu.Lock()
	ws.closed = true
	idle := ws.idle
	ws.idle = nil
	ws.mu.Unlock()
	for _, w := range idle {
		w.next <- nil
	}
}
