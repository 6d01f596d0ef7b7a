package actor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// PID identifies one actor incarnation anywhere in a cluster: the logical
// address of the node it lives on and a serial that the node never reuses,
// nor (but for a chance of one in 2^31) does a later incarnation of the
// node at the same address: a node draws the generation its slots start
// at when it starts.
// A PID is a small comparable value: use it as a map key, copy it freely,
// send it in messages. The zero PID means "no actor" (for example the sender
// of a message sent from outside any actor).
type PID struct {
	Node   Addr   // the node the actor lives on
	Serial uint64 // unique on that node (a slot and its generation, which starts at a random point per node start); never 0 for a real actor
}

// IsZero reports whether p is the zero PID.
func (p PID) IsZero() bool { return p.Serial == 0 }

// String formats the PID as "cluster.type.index/slot.generation"
// (1.1.1/3.1207 is an actor in slot 3 of generation 1207; the next actor
// in that slot, once it stopped, is 1.1.1/3.1208; the serial is
// generation<<32 | slot), "cluster.type.index/slot" for generation 0
// (which a node does not issue, but a PID may be written so), or "nobody"
// for the zero PID. ParsePID reads it back.
func (p PID) String() string {
	if p.IsZero() {
		return "nobody"
	}
	s := p.Node.String() + "/" + strconv.FormatUint(p.Serial&0xffffffff, 10)
	if gen := p.Serial >> 32; gen > 0 {
		s += "." + strconv.FormatUint(gen, 10)
	}
	return s
}

// ErrBadPID is returned by ParsePID for a string that names no actor.
var ErrBadPID = errors.New("actor: bad PID")

// ParsePID parses a PID as String formats it: "1.2.3/7" or "1.2.3/7.1". It
// also takes the serial as one number ("1.2.3/4294967303", the same as
// "1.2.3/7.1"). "nobody" and a serial of 0 are errors.
func ParsePID(s string) (PID, error) {
	a, serial, ok := strings.Cut(s, "/")
	if !ok {
		return PID{}, fmt.Errorf("%w: %q is not node/serial", ErrBadPID, s)
	}
	addr, err := ParseAddr(a)
	if err != nil {
		return PID{}, fmt.Errorf("%w: %q: %w", ErrBadPID, s, err)
	}
	slot, gen, reused := strings.Cut(serial, ".")
	var n uint64
	if !reused {
		n, err = strconv.ParseUint(slot, 10, 64)
	} else {
		var lo, hi uint64
		lo, err = strconv.ParseUint(slot, 10, 32)
		if err == nil {
			hi, err = strconv.ParseUint(gen, 10, 32)
		}
		if err == nil && hi == 0 {
			err = errors.New("generation 0 is written without one")
		}
		n = hi<<32 | lo
	}
	if err != nil || n == 0 {
		return PID{}, fmt.Errorf("%w: %q: bad serial", ErrBadPID, s)
	}
	return PID{Node: addr, Serial: n}, nil
}
