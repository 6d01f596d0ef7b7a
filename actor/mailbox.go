package actor

import (
	"sync"
	"sync/atomic"
)

// envelope is one queued message with what is needed to answer it.
type envelope struct {
	msg      any
	sender   PID
	fut      *future // set for Call: the blocked caller
	corr     uint64  // set for Request and Call: the correlation of the reply
	deadline int64   // unix nanoseconds; 0 when the caller set none
	via      Addr    // a request from another node: the node it came from, which its reply goes back to
}

// mailbox is an actor's queue: two lanes (system and user) behind one short
// lock (a sync.Mutex: its adaptive spinning measured faster under many
// producers than a plain spin lock, and it parks when a holder is
// descheduled), a "scheduled" flag that decides who starts the consumer, and a batch
// pop that swaps whole buffers so that the consumer takes the lock once per
// batch, not once per message.
//
// The user lane is a slice that grows by append up to laneChunkSize
// envelopes; past that, full chunks are parked in order and a fresh
// fixed-size chunk (from the node's pool) takes over, so a deep backlog never
// copies what it already holds.
//
// Producers are any goroutines; the consumer is the actor's turn, of which at
// most one runs at a time (the turn started by whoever set scheduled). An idle
// mailbox holds no goroutine, and at most one small buffer.
type mailbox struct {
	mu        sync.Mutex
	count     atomic.Int32 // user messages accepted and not yet handled (kept only when bound > 0)
	scheduled bool
	closed    bool
	user      []envelope
	full      *[][]envelope // full user chunks, oldest first; allocated with the first deep backlog
	sys       []envelope
}

// laneChunk is the fixed-size buffer a deep user lane is made of.
type laneChunk [laneChunkSize]envelope

const laneChunkSize = 128

// push appends to the user lane. Replies, timer ticks and lifecycle
// notifications pass force so that the bound never refuses them. It reports
// whether the caller must start the consumer.
func (m *mailbox) push(e envelope, bound int32, force bool, chunks *sync.Pool) (schedule bool, err error) {
	if bound > 0 {
		if c := m.count.Add(1); c > bound && !force {
			m.count.Add(-1)
			return false, ErrMailboxFull
		}
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		if bound > 0 {
			m.count.Add(-1)
		}
		return false, ErrActorNotFound
	}
	if len(m.user) >= laneChunkSize {
		if m.full == nil {
			m.full = new([][]envelope)
		}
		*m.full = append(*m.full, m.user)
		m.user = chunks.Get().(*laneChunk)[:0]
	}
	m.user = append(m.user, e)
	schedule = !m.scheduled
	m.scheduled = true
	m.mu.Unlock()
	return schedule, nil
}

// pushSys appends to the system lane, which the consumer drains before any
// further user message. It raises *sysFlag, which the consumer polls between
// user messages.
func (m *mailbox) pushSys(e envelope, sysFlag *atomic.Bool) (schedule bool, err error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return false, ErrActorNotFound
	}
	m.sys = append(m.sys, e)
	sysFlag.Store(true)
	schedule = !m.scheduled
	m.scheduled = true
	m.mu.Unlock()
	return schedule, nil
}

// takeSys swaps out the system lane; spare (emptied by the caller) becomes
// the new lane buffer.
func (m *mailbox) takeSys(spare []envelope, sysFlag *atomic.Bool) []envelope {
	m.mu.Lock()
	b := m.sys
	m.sys = spare
	sysFlag.Store(false)
	m.mu.Unlock()
	return b
}

// take swaps out both lanes at once: the system lane, the full user chunks
// and the current user buffer. When everything is empty it clears the
// scheduled flag, keeps a spare buffer for the next producer, and reports
// idle: the calling consumer must return.
func (m *mailbox) take(sysSpare, userSpare []envelope, sysFlag *atomic.Bool) (sys []envelope, full [][]envelope, user []envelope, idle bool) {
	m.mu.Lock()
	if len(m.sys) == 0 && len(m.user) == 0 && m.fullLen() == 0 {
		m.scheduled = false
		if cap(m.user) == 0 && cap(userSpare) <= maxKeptBuffer {
			m.user = userSpare
		}
		m.mu.Unlock()
		return nil, nil, nil, true
	}
	sys, user = m.sys, m.user
	m.sys, m.user = sysSpare, userSpare
	if m.full != nil {
		full, *m.full = *m.full, nil
	}
	sysFlag.Store(false)
	m.mu.Unlock()
	return sys, full, user, false
}

// tryIdle clears the scheduled flag if both lanes are empty, and reports
// whether it did; the empty user buffer spare is kept for reuse. When it did
// not, the caller still owns the turn.
func (m *mailbox) tryIdle(spare []envelope) bool {
	m.mu.Lock()
	idle := len(m.sys) == 0 && len(m.user) == 0 && m.fullLen() == 0
	if idle {
		m.scheduled = false
		if cap(m.user) == 0 && cap(spare) <= maxKeptBuffer {
			m.user = spare
		}
	}
	m.mu.Unlock()
	return idle
}

// close refuses further pushes and returns whatever is still queued, user
// messages in order.
func (m *mailbox) close() (sys, user []envelope) {
	m.mu.Lock()
	m.closed = true
	sys = m.sys
	if m.full != nil {
		for _, c := range *m.full {
			user = append(user, c...)
		}
	}
	user = append(user, m.user...)
	m.sys, m.full, m.user = nil, nil, nil
	m.mu.Unlock()
	return sys, user
}

// fullLen returns the number of parked full chunks; the caller holds mu.
func (m *mailbox) fullLen() int {
	if m.full == nil {
		return 0
	}
	return len(*m.full)
}

// maxKeptBuffer is the largest lane buffer (in envelopes) an idle mailbox
// keeps for reuse; larger ones go back to the garbage collector so that a
// burst does not pin memory.
const maxKeptBuffer = 64

// recycleChunk clears a consumed user chunk and returns it to the pool when
// it is one of the pool's fixed-size chunks.
func recycleChunk(c []envelope, chunks *sync.Pool) {
	clear(c)
	if cap(c) == laneChunkSize {
		chunks.Put((*laneChunk)(c[:laneChunkSize]))
	}
}
