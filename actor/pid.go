package actor

import "strconv"

// PID identifies one actor incarnation anywhere in a cluster: the logical
// address of the node it lives on and a serial that the node never reuses.
// A PID is a small comparable value: use it as a map key, copy it freely,
// send it in messages. The zero PID means "no actor" (for example the sender
// of a message sent from outside any actor).
type PID struct {
	Node   Addr   // the node the actor lives on
	Serial uint64 // unique on that node for the node's lifetime (a slot and its generation); never 0 for a real actor
}

// IsZero reports whether p is the zero PID.
func (p PID) IsZero() bool { return p.Serial == 0 }

// String formats the PID as "cluster.type.index/serial", or "nobody" for the
// zero PID.
func (p PID) String() string {
	if p.IsZero() {
		return "nobody"
	}
	return p.Node.String() + "/" + strconv.FormatUint(p.Serial, 10)
}
