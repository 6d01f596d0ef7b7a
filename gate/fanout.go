package gate

// PushStats counts the pushes that a gateway's clients were slow to take
// and that their write queues did not queue as they came (see
// PushOptions).
type PushStats struct {
	// Dropped counts the droppable pushes dropped because a client's write
	// queue held half of Limits.WriteQueueBytes.
	Dropped uint64
	// Coalesced counts the pushes that took the place of a waiting push of
	// the same coalescing key (which was never sent).
	Coalesced uint64
	// Throttled counts the broadcasts dropped by the groups this gateway
	// started, for being beyond Limits.GroupRate and GroupBurst.
	Throttled uint64
}

// PushStats returns the gateway's push counters since it started.
func (g *Gateway) PushStats() PushStats {
	return PushStats{Dropped: g.pushes.dropped.Load(), Coalesced: g.pushes.coalesced.Load(), Throttled: g.pushes.throttled.Load()}
}

// queueLimits returns the bounds of a session's write queue.
func (g *Gateway) queueLimits() queueLimits {
	return queueLimits{frames: g.lim.WriteQueue, bytes: g.lim.WriteQueueBytes, after: g.lim.SlowClientAfter, stats: &g.pushes}
}
