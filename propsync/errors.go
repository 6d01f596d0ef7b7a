package propsync

import "errors"

// Sentinel errors; match them with errors.Is.
var (
	// ErrBadOp: an op does not fit the message it is applied to (an
	// unknown field, a step of the wrong kind, an index out of range, a
	// value that does not decode). The replica may be partly changed:
	// treat it as a gap and subscribe again.
	ErrBadOp = errors.New("propsync: bad op")
	// ErrGap: a delta's base is not the replica's version, so a delta was
	// missed (or the synced state's activation ended): subscribe again to
	// get a snapshot.
	ErrGap = errors.New("propsync: missed a delta; subscribe again")
	// ErrMismatch: Diff was given messages of different types.
	ErrMismatch = errors.New("propsync: messages of different types")
)
