package propsync

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/propsync/propsyncpb"
)

// Tracker is the server's side of one synced state: the copy of the state
// it last synced (without private fields) and its version. Call Next after
// each turn that may have changed the state, and push the Delta it
// returns to the subscribers; reply to a subscribe with Snapshot. A
// Tracker is not safe for concurrent use: it belongs to the state's
// owner (a grain's activation runs it in its turn).
type Tracker struct {
	entity  string
	d       *Differ
	last    proto.Message
	version uint64
}

// NewTracker starts tracking state, the synced state named entity (such
// as "player/u1"), at version 1. d says which fields are private; nil
// means the .proto's marks only.
func NewTracker(entity string, d *Differ, state proto.Message) *Tracker {
	if d == nil {
		d = &Differ{}
	}
	return &Tracker{entity: entity, d: d, last: d.Redact(state), version: 1}
}

// Version returns the version of the state last synced.
func (t *Tracker) Version() uint64 { return t.version }

// Next diffs state with the copy last synced. It returns nil when nothing
// a client sees changed; otherwise the Delta from the last version to a
// new one, and it takes state (without its private fields) as the copy
// last synced.
func (t *Tracker) Next(state proto.Message) (*propsyncpb.Delta, error) {
	ops, err := t.d.Diff(t.last, state)
	if err != nil {
		return nil, fmt.Errorf("propsync: %s: %w", t.entity, err)
	}
	if len(ops) == 0 {
		return nil, nil
	}
	t.last = t.d.Redact(state)
	t.version++
	return &propsyncpb.Delta{Entity: t.entity, Version: t.version, Base: t.version - 1, Ops: ops}, nil
}

// Snapshot returns the state last synced, whole, at its version: what a
// subscriber gets first. Call Next before it, so that it holds the turn's
// changes.
func (t *Tracker) Snapshot() (*propsyncpb.Delta, error) {
	b, err := deterministic.Marshal(t.last)
	if err != nil {
		return nil, fmt.Errorf("propsync: %s: encode the snapshot: %w", t.entity, err)
	}
	return &propsyncpb.Delta{Entity: t.entity, Version: t.version, IsSnapshot: true, Snapshot: b}, nil
}

// Ended returns the Delta that tells a subscriber its subscription ended
// (the state's owner stopped, such as a grain that deactivated or moved):
// a delta that is not a snapshot, of base 0, so that every replica finds a
// gap (Replica.Apply returns ErrGap) and subscribes again.
func (t *Tracker) Ended() *propsyncpb.Delta {
	return &propsyncpb.Delta{Entity: t.entity}
}
