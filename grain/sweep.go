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
				s.viewMu.Lock()
				s.rebalance(s.view.Load())
				s.viewMu.Unlock()
			}
		}
	}
}

func (s *System) sweepOnce(now int64) {
	for i := range s.shards {
		sh := &s.shards[i]
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
				if s.node.Send(a.pid(), msg) != nil {
					a.clear(flagCtlQueued)
				}
			}
		})
		sh.mu.RUnlock()
	}
}
