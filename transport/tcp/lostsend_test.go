package tcp

import (
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
)

// lostHook is a recorder that calls onLost (outside its lock) on PeerLost.
type lostHook struct {
	*recorder
	mu     sync.Mutex
	onLost func(peer actor.Addr)
}

func (h *lostHook) PeerLost(peer actor.Addr, err error) {
	h.recorder.PeerLost(peer, err)
	h.mu.Lock()
	f := h.onLost
	h.mu.Unlock()
	if f != nil {
		f(peer)
	}
}

// TestSendAfterPeerLostIsKept: the package doc says that once a
// peer is reported lost, "Send keeps queueing up to the bound meanwhile
// ... the envelopes stay queued and are delivered if the peer comes back".
// A sends to B from its PeerLost (as the cluster layer's users do when a
// request fails with ErrPeerLost: they react by sending something else),
// right after its connection to B was closed by B; B comes back (A
// redials it): every such envelope must arrive.
func TestSendAfterPeerLostIsKept(t *testing.T) {
	for _, queued := range []bool{false, true} {
		name := "direct writes"
		if queued {
			name = "queued writes"
		}
		t.Run(name, func(t *testing.T) {
			res := newResolver()
			a, b := actor.Addr(1), actor.Addr(2)
			ha := &lostHook{recorder: newRecorder()}
			hb := newRecorder()
			ca := fastConfig(a, res, nil)
			ca.Handler = ha
			ca.QueuedWrites = queued
			ca.DeadAfter = 2 * time.Second // only the close matters here
			cb := fastConfig(b, res, hb)
			cb.QueuedWrites = queued
			cb.DeadAfter = 2 * time.Second
			ta := start(t, ca, res)
			tb := start(t, cb, res)

			const rounds = 20
			var markers sync.Map
			lost := 0
			for i := range rounds {
				// A fresh connection, proven by a round trip.
				hello := seqEnv(a, uint64(1000000+i))
				sendRetry(t, ta, b, hello)
				waitFor(t, 5*time.Second, "the hello to arrive", func() bool {
					for _, e := range hb.received(a) {
						if e.CorrelationID == uint64(1000000+i) {
							return true
						}
					}
					return false
				})
				marker := uint64(i)
				fired := make(chan struct{})
				var once sync.Once
				ha.mu.Lock()
				ha.onLost = func(peer actor.Addr) {
					once.Do(func() {
						if err := ta.Send(peer, seqEnv(a, marker)); err != nil {
							t.Errorf("round %d: Send from PeerLost: %v", i, err)
						}
						markers.Store(marker, true)
						close(fired)
					})
				}
				ha.mu.Unlock()
				// B drops its connection to A (as a peer that closes it
				// does); A's reader sees the close and reports B lost.
				tb.Forget(a)
				select {
				case <-fired:
				case <-time.After(5 * time.Second):
					t.Fatalf("round %d: A never reported B lost", i)
				}
				ha.mu.Lock()
				ha.onLost = nil
				ha.mu.Unlock()
				got := false
				deadline := time.Now().Add(1500 * time.Millisecond)
				for time.Now().Before(deadline) && !got {
					for _, e := range hb.received(a) {
						if e.CorrelationID == marker {
							got = true
						}
					}
					time.Sleep(5 * time.Millisecond)
				}
				if !got {
					lost++
				}
			}
			if lost > 0 {
				t.Errorf("%d of %d envelopes sent right after PeerLost never arrived, though A reconnected to B", lost, rounds)
			}
		})
	}
}
