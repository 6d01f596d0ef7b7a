package propsync

import (
	"bytes"
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
	last    proto.Message // its visible fields are the state's last synced
	enc     []byte        // the deterministic encoding of the state last synced
	version uint64
	w       *Walk // reused by the generated code's walks
}

// NewTracker starts tracking state, the synced state named entity (such
// as "player/u1"), at version 1. d says which fields are private; nil
// means the .proto's marks only.
func NewTracker(entity string, d *Differ, state proto.Message) *Tracker {
	return NewTrackerAfter(entity, d, state, 0)
}

// NewTrackerAfter is NewTracker for an owner that gave out versions up to
// last already, with an earlier Tracker of the same entity that it
// dropped (a grain whose last subscriber left, then a new one came): it
// starts at version last+1. Within one owner, a version then never names
// two states, so a replica skips the deltas of the earlier Tracker still
// on their way as older than the new snapshot, instead of applying them
// over it.
func NewTrackerAfter(entity string, d *Differ, state proto.Message, last uint64) *Tracker {
	if d == nil {
		d = &Differ{}
	}
	t := &Tracker{entity: entity, d: d, version: last + 1}
	t.keep(state, nil)
	return t
}

// keep makes a copy of state, whose encoding is enc (nil: not known), the
// copy last synced.
func (t *Tracker) keep(state proto.Message, enc []byte) {
	if enc == nil {
		var err error
		if enc, err = deterministic.Marshal(state); err != nil {
			t.last, t.enc = proto.Clone(state), nil
			return
		}
	}
	c := state.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(enc, c); err != nil {
		c, enc = proto.Clone(state), nil
	}
	t.last, t.enc = c, enc
}

// Version returns the version of the state last synced.
func (t *Tracker) Version() uint64 { return t.version }

// Next diffs state with the copy last synced. It returns nil when nothing
// a client sees changed; otherwise the Delta from the last version to a
// new one, and it takes state (without its private fields) as the copy
// last synced.
func (t *Tracker) Next(state proto.Message) (*propsyncpb.Delta, error) {
	if state.ProtoReflect().Descriptor() != t.last.ProtoReflect().Descriptor() {
		return nil, fmt.Errorf("propsync: %s: %w: %s, tracked as %s", t.entity, ErrMismatch,
			state.ProtoReflect().Descriptor().FullName(), t.last.ProtoReflect().Descriptor().FullName())
	}
	if g, ok := t.d.generated(state); ok && state.ProtoReflect().IsValid() && state.ProtoReflect().Type() == t.last.ProtoReflect().Type() {
		return t.nextGenerated(g, state)
	}
	enc, err := deterministic.Marshal(state)
	if err != nil {
		return nil, fmt.Errorf("propsync: %s: encode the state: %w", t.entity, err)
	}
	if t.enc != nil && bytes.Equal(enc, t.enc) {
		return nil, nil
	}
	ops, err := t.d.diff(t.last.ProtoReflect(), state.ProtoReflect(), t.enc, enc)
	if err != nil {
		return nil, fmt.Errorf("propsync: %s: %w", t.entity, err)
	}
	if len(ops) == 0 {
		t.enc = enc // a private field changed: nothing to sync
		return nil, nil
	}
	// The copy last synced becomes state by the ops, which is cheaper than
	// a copy of state: its visible fields are then state's, and enc, whose
	// private fields it may lack, stands for it (Diff skips those).
	if _, err := Apply(t.last, ops); err != nil {
		t.keep(state, enc)
	} else {
		t.enc = enc
	}
	t.version++
	return &propsyncpb.Delta{Entity: t.entity, Version: t.version, Base: t.version - 1, Ops: ops}, nil
}

// nextGenerated is Next by the state's generated code, which makes the
// copy last synced equal to state as it finds the changes.
func (t *Tracker) nextGenerated(g Generated, state proto.Message) (*propsyncpb.Delta, error) {
	if t.w == nil {
		t.w = new(Walk)
	}
	ops, err := t.d.walk(t.w, g, t.last, true)
	if err != nil {
		t.keep(state, nil) // the walk stopped part way: start again from state
		t.version++        // and make every replica resubscribe
		return nil, fmt.Errorf("propsync: %s: %w", t.entity, err)
	}
	if len(ops) == 0 {
		return nil, nil
	}
	t.version++
	return &propsyncpb.Delta{Entity: t.entity, Version: t.version, Base: t.version - 1, Ops: ops}, nil
}

// Snapshot returns the state last synced, whole, at its version: what a
// subscriber gets first. Call Next before it, so that it holds the turn's
// changes.
func (t *Tracker) Snapshot() (*propsyncpb.Delta, error) {
	b, err := deterministic.Marshal(t.d.Redact(t.last))
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
