package admin

import (
	"sync"
	"time"

	"github.com/guildkit/guild/actor"
)

// DefaultFailures is how many failures a Failures keeps by default.
const DefaultFailures = 20

// Failures keeps the last failures (recovered panics, escalations) a node
// reported, for the dashboard: an actor.Reporter, set as
// actor.Config.Reporter or beside others in a report.Fanout, and given
// to the node's agent (AgentConfig.Failures). Report copies the failure
// into a ring and returns at once. It is safe for concurrent use.
type Failures struct {
	mu    sync.Mutex // guards ring, next, total; a leaf
	ring  []Failure
	next  int
	total uint64
}

// Failure is a failure as the dashboard shows it: actor.Failure with its
// kind as text.
type Failure struct {
	Kind        string    `json:"kind"`
	Time        time.Time `json:"time"`
	PID         string    `json:"pid"`
	Names       []string  `json:"names,omitempty"`
	Where       string    `json:"where"`
	MessageType string    `json:"message_type,omitempty"`
	Reason      string    `json:"reason"`
	Stack       string    `json:"stack,omitempty"`
}

// NewFailures returns a Failures that keeps the last n failures
// (DefaultFailures when n <= 0).
func NewFailures(n int) *Failures {
	if n <= 0 {
		n = DefaultFailures
	}
	return &Failures{ring: make([]Failure, 0, n)}
}

// Report implements actor.Reporter.
func (f *Failures) Report(fl actor.Failure) {
	e := Failure{
		Kind: fl.Kind.String(), Time: fl.Time, PID: fl.PID.String(), Names: fl.Names,
		Where: fl.Where, MessageType: fl.MessageType, Reason: fl.Reason, Stack: string(fl.Stack),
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total++
	if len(f.ring) < cap(f.ring) {
		f.ring = append(f.ring, e)
		return
	}
	f.ring[f.next] = e
	f.next = (f.next + 1) % len(f.ring)
}

// Recent returns the failures kept, the newest first, and how many were
// reported in all.
func (f *Failures) Recent() ([]Failure, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Failure, 0, len(f.ring))
	for i := range f.ring {
		out = append(out, f.ring[(f.next+len(f.ring)-1-i)%len(f.ring)])
	}
	return out, f.total
}
