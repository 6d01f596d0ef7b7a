package actor

import (
	"context"
	"fmt"
	"time"
)

func (n *Node) processGone() {
	if n.live.Add(-1) == 0 && n.state.Load() != nodeRunning {
		n.emptyOnce.Do(func() { close(n.empty) })
	}
}

// Shutdown stops the node gracefully. It refuses new top-level spawns,
// lets every top-level actor handle the messages already queued (actors
// keep messaging each other meanwhile), then stops them, children before
// parents. Send, Call and Request (and their by-name forms) keep working
// until the node is closed: an actor handling its queued messages may
// call out through the Node itself, as code that routes for it does
// (grain.System.Call, an rpc.Client), and the node cannot tell such calls
// from outside ones. A message for an actor whose stop is queued already
// is not handled: its requester gets ErrActorStopped. Then it waits for
// the answers that Responders taken by its actors still owe to requesters
// outside them (a Call or an outside Request, or a request from another
// node), until each requester's deadline (RequestTimeout for one
// without). When ctx ends first it falls back to Close and returns ctx's
// error. Safe to call twice, and together with Close.
func (n *Node) Shutdown(ctx context.Context) error {
	n.stopMu.Lock()
	if n.stopped {
		n.stopMu.Unlock()
		return nil
	}
	if n.state.CompareAndSwap(nodeRunning, nodeDraining) {
		n.stopAll(func(p *process) { _ = n.Poison(p.pid) })
	}
	n.stopMu.Unlock() // a Close may overtake the drain
	select {
	case <-n.empty:
		if err := n.awaitOwed(ctx); err != nil {
			_ = n.Close()
			return err
		}
		n.stopMu.Lock()
		defer n.stopMu.Unlock()
		if !n.stopped {
			n.teardown()
		}
		return nil
	case <-ctx.Done():
		_ = n.Close()
		return ctx.Err()
	}
}

// Close stops every actor at once, children before parents, waiting at most
// Config.StopTimeout for actors still inside Receive. It returns an error
// naming how many actors did not stop in time. Safe to call twice, and from
// a Request callback (a call made while another is finishing returns at
// once).
func (n *Node) Close() error {
	n.stopMu.Lock()
	if n.stopped {
		n.stopMu.Unlock()
		return nil
	}
	err := n.close()
	n.stopMu.Unlock()
	if err != nil {
		n.log.Error("actor: close", "err", err) // not under stopMu: the handler is the user's
	}
	return err
}

func (n *Node) close() error {
	n.state.Store(nodeClosed)
	n.endWaits() // actors blocked in Call return, so they can stop
	n.stopAll(func(p *process) { _ = n.pushSys(p.pid, sysStop{}) })
	t := time.NewTimer(n.cfg.StopTimeout)
	defer t.Stop()
	select {
	case <-n.empty:
	case <-t.C:
		left := n.live.Load()
		n.clock.stop()
		n.workers.close() // busy workers exit when their turn ends
		n.stopped = true
		return fmt.Errorf("actor: %d actors did not stop within %v", left, n.cfg.StopTimeout)
	}
	n.teardown()
	return nil
}

// endWaits ends every Call and Request still waiting on this node with
// ErrNodeClosed.
func (n *Node) endWaits() {
	n.quitOnce.Do(func() { close(n.quit) })
}

// stopAll applies stop to every top-level actor; when there is none, it marks
// the node empty.
func (n *Node) stopAll(stop func(*process)) {
	n.procs.each(func(p *process) {
		if p.parent == nil {
			stop(p)
		}
	})
	if n.live.Load() == 0 {
		n.emptyOnce.Do(func() { close(n.empty) })
	}
}

// teardown runs once every actor has stopped. The caller holds stopMu;
// teardown lets it go while it waits for the node's last goroutines,
// because a Request callback among them may call Close or Shutdown (which
// then return at once: the node is stopped).
func (n *Node) teardown() {
	n.state.Store(nodeClosed)
	n.endWaits()
	n.clock.stop()
	n.workers.close()
	n.stopped = true
	n.stopMu.Unlock()
	defer n.stopMu.Lock()
	n.wg.Wait() // only workers finishing their last turn, and Request callbacks
}
