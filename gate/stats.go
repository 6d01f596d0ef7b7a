package gate

import (
	"sync/atomic"

	"github.com/guildkit/guild/rpc"
)

// ListenerKinds are the kinds of a gateway's listeners, as Stats and a
// session's SessionInfo name them. Stats counts the sessions of these
// kinds only: a listener given to ServeListener under another name is not
// counted.
var ListenerKinds = [...]string{"tcp", "ws", "kcp", "mqtt", "mqtt-ws"}

// numCodes is the number of response codes counted one by one: rpc's
// codes 0..16; every application code is counted as
// rpc.FirstApplicationCode.
const numCodes = 17

// gateStats are a gateway's counters behind Stats. Each is an atomic that
// its owner (a session's actor, a connection's goroutine) adds to once per
// event; nothing on these paths locks or allocates for them.
type gateStats struct {
	opened    [len(ListenerKinds)]atomic.Uint64 // sessions opened (handshake done), by listener kind
	open      [len(ListenerKinds)]atomic.Int64  // sessions open now, by listener kind
	responses [numCodes + 1]atomic.Uint64       // responses to clients by code; the last: application codes
	pushes    atomic.Uint64                     // pushes that reached a session
	kicks     atomic.Uint64                     // sessions kicked
	slow      atomic.Uint64                     // slow clients cut off
	resumes   atomic.Uint64                     // sessions resumed, sealed ones included
	sealed    atomic.Uint64                     // sessions resumed from a sealed record
}

// kindIndex returns the index of a listener kind in ListenerKinds, or -1.
func kindIndex(kind string) int {
	for i, k := range ListenerKinds {
		if k == kind {
			return i
		}
	}
	return -1
}

// sessionOpened counts a session of a listener kind, and returns the
// function that counts its end.
func (s *gateStats) sessionOpened(kind string) func() {
	i := kindIndex(kind)
	if i < 0 {
		return func() {}
	}
	s.opened[i].Add(1)
	s.open[i].Add(1)
	return func() { s.open[i].Add(-1) }
}

// response counts a response to a client.
func (s *gateStats) response(code rpc.Code) {
	if code >= numCodes {
		code = numCodes
	}
	s.responses[code].Add(1)
}

// Stats is a snapshot of a gateway's counters since it started.
type Stats struct {
	// Listeners has one entry per listener kind (ListenerKinds order),
	// whether the gateway listens on it or not.
	Listeners []ListenerStats
	// Responses counts the responses sent to clients by code, only codes
	// that occurred; every application code (from
	// rpc.FirstApplicationCode) is counted under rpc.FirstApplicationCode.
	// Responses include the gateway's own refusals (no route, not logged
	// in, rate limited, going away).
	Responses map[rpc.Code]uint64
	// Pushes counts the pushes that reached a session (Push, PushUser,
	// PushMany, group broadcasts), before its write queue's policy.
	Pushes uint64
	// Kicks counts the sessions kicked (Kick, a handler's kick, a user
	// logging in elsewhere).
	Kicks uint64
	// SlowClients counts the clients cut off for being too slow to read
	// (Close 8).
	SlowClients uint64
	// Resumes counts the sessions resumed here (see
	// Limits.ResumeWindow): on this gateway, taken over from another, or
	// started from a sealed record (see Config.ResumeKey), which
	// SealedResumes counts alone.
	Resumes, SealedResumes uint64
	// PushStats are the push counters (dropped, coalesced, throttled).
	PushStats
}

// ListenerStats counts the sessions of one listener kind.
type ListenerStats struct {
	// Kind is "tcp", "ws", "kcp", "mqtt" or "mqtt-ws".
	Kind string
	// Opened counts the sessions opened since the gateway started (a
	// connection whose handshake succeeded).
	Opened uint64
	// Open is the number of sessions open now.
	Open int64
}

// Stats returns the gateway's counters. It reads atomics only.
func (g *Gateway) Stats() Stats {
	st := &g.stats
	s := Stats{
		Listeners:   make([]ListenerStats, len(ListenerKinds)),
		Responses:   make(map[rpc.Code]uint64),
		Pushes:      st.pushes.Load(),
		Kicks:       st.kicks.Load(),
		SlowClients: st.slow.Load(),
		Resumes:     st.resumes.Load(),

		SealedResumes: st.sealed.Load(),
		PushStats:     g.PushStats(),
	}
	for i, k := range ListenerKinds {
		s.Listeners[i] = ListenerStats{Kind: k, Opened: st.opened[i].Load(), Open: st.open[i].Load()}
	}
	for i := range st.responses {
		if n := st.responses[i].Load(); n > 0 {
			code := rpc.Code(i)
			if i == numCodes {
				code = rpc.FirstApplicationCode
			}
			s.Responses[code] = n
		}
	}
	return s
}
