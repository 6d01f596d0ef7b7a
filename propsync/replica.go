package propsync

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/propsync/propsyncpb"
)

// maxPending bounds the deltas a Replica holds while it waits for its
// snapshot.
const maxPending = 256

// Replica is a client's copy of a synced state: it applies the snapshot
// and deltas the server sends, in order, and tells the callbacks
// registered with OnChange what changed. A Replica is not safe for
// concurrent use; its callbacks run inside Apply.
//
// Deltas that arrive while the replica is not synced (before its first
// snapshot, or after a gap: a push can overtake the reply to a
// subscribe) are held and applied after the next snapshot, those the
// snapshot already holds skipped. A delta whose base is not the
// replica's version makes Apply return ErrGap: subscribe again.
//
// A replica is the copy of one entity, that of its snapshot: Apply ignores
// the deltas of other entities, so that a client may feed it every push
// of a route that carries the deltas of several synced states (all
// synced grain kinds push on propsync.DefaultRoute unless told
// otherwise). Before its first snapshot it cannot tell: it holds every
// delta, and drops those of other entities when the snapshot comes.
type Replica struct {
	state   proto.Message
	entity  string // the last snapshot's
	version uint64
	synced  bool
	pending []*propsyncpb.Delta
	hooks   []hook
}

type hook struct {
	prefix string
	fn     func(path string)
}

// NewReplica returns a replica that keeps its state in state, an empty
// message of the synced state's type.
func NewReplica(state proto.Message) *Replica {
	return &Replica{state: state}
}

// State returns the replica's state. Read it, do not change it.
func (r *Replica) State() proto.Message { return r.state }

// Entity returns the entity of the last snapshot ("kind/key" for a
// grain), "" before the first one.
func (r *Replica) Entity() string { return r.entity }

// Version returns the version of the state; 0 before the first snapshot.
func (r *Replica) Version() uint64 { return r.version }

// Synced reports whether the replica has a snapshot and has missed no
// delta since.
func (r *Replica) Synced() bool { return r.synced }

// Desync marks the replica as waiting for a snapshot, keeping its state:
// call it before each subscribe (the first one needs none), so that the
// deltas of the new subscription that overtake its snapshot are held and
// applied after it. Without it, a replica that missed its subscription's
// end (its connection was down) still counts as synced at the old
// subscription's version, and skips the new one's early deltas as held
// already (a new activation counts versions from 1 again).
func (r *Replica) Desync() { r.synced, r.pending = false, nil }

// OnChange registers fn to be called with the path of each field that
// changes at or under prefix ("" for every change; see the package doc's
// Paths), once per Apply and path. A change above the prefix (a message
// set or cleared whole, such as "stats" for the prefix "stats.hp") calls
// fn with prefix itself, since what it names changed too. A snapshot
// changes every path: it calls fn once with prefix itself, or "" for the
// empty prefix.
func (r *Replica) OnChange(prefix string, fn func(path string)) {
	r.hooks = append(r.hooks, hook{prefix, fn})
}

// Apply applies d: a snapshot replaces the state; a delta whose base is
// the replica's version applies its ops. A delta the replica's state
// already holds (its version is not above the replica's) is skipped, and
// so is a delta of an entity other than the last snapshot's. It
// returns ErrGap when a delta is missing (or the subscription ended: see
// Tracker.Ended), and an error that matches ErrBadOp when an op does not
// fit; either way the replica is no longer synced, and the caller should
// subscribe again.
func (r *Replica) Apply(d *propsyncpb.Delta) error {
	if d.GetIsSnapshot() {
		fresh := r.state.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(d.GetSnapshot(), fresh); err != nil {
			r.synced = false
			return fmt.Errorf("%w: the snapshot of %s does not decode: %v", ErrBadOp, d.GetEntity(), err)
		}
		proto.Reset(r.state)
		proto.Merge(r.state, fresh)
		r.entity, r.version, r.synced = d.GetEntity(), d.GetVersion(), true
		r.fire([]string{""})
		pending := r.pending
		r.pending = nil
		for _, p := range pending {
			if err := r.Apply(p); err != nil {
				return err
			}
		}
		return nil
	}
	if r.entity != "" && d.GetEntity() != r.entity {
		return nil // another subscription's, on the same push route
	}
	if !r.synced {
		if len(r.pending) >= maxPending {
			r.pending = nil
			return fmt.Errorf("%w: %d deltas of %s came with no snapshot", ErrGap, maxPending, d.GetEntity())
		}
		r.pending = append(r.pending, d)
		return nil
	}
	switch {
	case d.GetBase() != 0 && d.GetVersion() <= r.version:
		return nil // the snapshot held it already
	case d.GetBase() != r.version:
		r.synced, r.pending = false, nil
		return fmt.Errorf("%w: %s is at version %d, the delta goes from %d to %d", ErrGap, d.GetEntity(), r.version, d.GetBase(), d.GetVersion())
	}
	changed, err := Apply(r.state, d.GetOps())
	if err != nil {
		r.synced, r.pending = false, nil
		r.fire(changed)
		return fmt.Errorf("propsync: %s, delta %d: %w", d.GetEntity(), d.GetVersion(), err)
	}
	r.version = d.GetVersion()
	r.fire(changed)
	return nil
}

// ApplyPush decodes a push's body, a propsyncpb.Delta, and applies it.
func (r *Replica) ApplyPush(body []byte) error {
	var d propsyncpb.Delta
	if err := proto.Unmarshal(body, &d); err != nil {
		return fmt.Errorf("%w: a push that is not a Delta: %v", ErrBadOp, err)
	}
	return r.Apply(&d)
}

// fire calls the callbacks for the paths changed; "" stands for all.
func (r *Replica) fire(paths []string) {
	for _, h := range r.hooks {
		for _, p := range paths {
			switch {
			case p == "":
				h.fn(h.prefix)
			case under(p, h.prefix):
				h.fn(p)
			case under(h.prefix, p): // a message above the prefix changed whole
				h.fn(h.prefix)
			}
		}
	}
}

// under reports whether path is prefix or a path below it.
func under(path, prefix string) bool {
	if prefix == "" || path == prefix {
		return true
	}
	return strings.HasPrefix(path, prefix) && path[len(prefix)] == '.'
}
