package stream

import (
	"os"
	"sync"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
)

// paceBurst is how far behind now a pacer's clock may fall: the burst a
// paced writer lets through at once.
const paceBurst = 10 * time.Millisecond

// pacer spreads writes over time at a rate: each write books its bytes'
// share of a second on the pacer's clock, and waits for the clock when
// it runs ahead of now.
type pacer struct {
	// mu guards at. A leaf: held for arithmetic only, never across a wait.
	mu sync.Mutex
	at time.Time // when the bytes booked so far are paid for
}

// wait books n bytes at rate bytes per second and waits until they are
// paid for, or until the write deadline (os.ErrDeadlineExceeded; the
// booking is given back), closed (ErrStreamClosed) or quit (ErrClosed).
func (p *pacer) wait(n int, rate float64, deadline time.Time, closed, quit <-chan struct{}) error {
	cost := time.Duration(float64(n) / rate * float64(time.Second))
	now := time.Now()
	p.mu.Lock()
	if floor := now.Add(-paceBurst); p.at.Before(floor) {
		p.at = floor
	}
	p.at = p.at.Add(cost)
	wait := p.at.Sub(now)
	p.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	if !deadline.IsZero() && now.Add(wait).After(deadline) {
		p.mu.Lock()
		p.at = p.at.Add(-cost)
		p.mu.Unlock()
		return os.ErrDeadlineExceeded
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-closed:
		return ErrStreamClosed
	case <-quit:
		return ErrClosed
	}
}

// How the Host tells that actor messages flow to a peer (Config.BusyRate):
// it samples the transport's per-peer envelope counters at most every
// busySample, and a peer whose counters moved since the last sample is
// busy for busyHold after that sample.
const (
	busySample = 5 * time.Millisecond
	busyHold   = 50 * time.Millisecond
)

// activity follows which peers exchange actor messages with this node,
// for Config.BusyRate, and holds the pacer of each peer's streams.
type activity struct {
	stats func() []transport.PeerStats // the node's transport counters; nil: none

	// mu guards the fields below. A leaf: stats is called without it.
	mu       sync.Mutex
	sampling bool      // a Write is sampling now: others use the last sample
	sampled  time.Time // when the last sample was taken
	peers    map[actor.Addr]*peerActivity
}

// peerActivity is one peer's counters at the last sample, and its pacer.
type peerActivity struct {
	frames    uint64    // FramesIn + FramesOut at the last sample
	seen      bool      // frames holds a sample
	busyUntil time.Time // actor messages moved before the last sample
	pace      pacer     // the BusyRate budget of the streams to the peer
}

// busy reports whether actor messages flowed between this node and peer
// lately, and returns the peer's pacer when they did.
func (a *activity) busy(peer actor.Addr) (*pacer, bool) {
	if a.stats == nil {
		return nil, false
	}
	now := time.Now()
	a.mu.Lock()
	if !a.sampling && now.Sub(a.sampled) >= busySample {
		a.sampling = true
		a.mu.Unlock()
		stats := a.stats()
		a.mu.Lock()
		a.sampling = false
		a.sampled = now
		for _, st := range stats {
			pa := a.peers[st.Peer]
			if pa == nil {
				pa = &peerActivity{}
				a.peers[st.Peer] = pa
			}
			frames := st.FramesIn + st.FramesOut
			if pa.seen && frames != pa.frames {
				pa.busyUntil = now.Add(busyHold)
			}
			pa.frames, pa.seen = frames, true
		}
	}
	pa := a.peers[peer]
	a.mu.Unlock()
	if pa == nil || !now.Before(pa.busyUntil) {
		return nil, false
	}
	return &pa.pace, true
}

// forget drops what is known of a peer that left.
func (a *activity) forget(peer actor.Addr) {
	a.mu.Lock()
	delete(a.peers, peer)
	a.mu.Unlock()
}
