package grain

import (
	"time"
)

// sweep is the sweeper goroutine: every tick it advances the coarse clock
// and asks idle grains to deactivate and dirty grains to flush.
func (s *System) sweep() {
	defer s.wg.Done()
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case now := <-t.C:
			s.now.Store(now.UnixNano())
			s.sweepOnce(now.UnixNano())
			if s.recheck.Swap(false) {
				s.rebalance(s.view.Load())
			}
		}
	}
}

// sweepOnce asks the grains that are due to deactivate or flush. Each
// shard's due grains are collected under its lock and told after, with no
// lock held.
func (s *System) sweepOnce(now int64) {
	type order struct {
		a   *activation
		msg *ctlMsg
	}
	var due []order
	for i := range s.shards {
		sh := &s.shards[i]
		due = due[:0]
		sh.mu.RLock()
		sh.each(func(a *activation) {
			var msg *ctlMsg
			switch {
			case now-a.last.Load() >= int64(a.k.IdleTimeout):
				msg = ctlIdle
			case a.k.FlushEvery > 0 && a.k.State != nil && a.maybeDirty() && now-a.flushedAt.Load() >= int64(a.k.FlushEvery):
				msg = ctlFlush
			default:
				return
			}
			if a.word.Or(flagCtlQueued)&flagCtlQueued == 0 {
				due = append(due, order{a, msg})
			}
		})
		sh.mu.RUnlock()
		for _, o := range due {
			if s.node.Send(o.a.pid(), o.msg) != nil {
				o.a.clear(flagCtlQueued)
			}
		}
	}
}

// pause waits d, or until the System shuts down: it reports false then. An
// activation waiting for a claim uses it, so that a closing node does not
// wait for the claim timeout.
func (s *System) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.quit:
		return false
	}
}
