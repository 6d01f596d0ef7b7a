package wire

// PID is an actor's identity as it travels between nodes: the node's 32-bit
// logical address and the serial the node gave the actor. It mirrors
// actor.PID field for field (Node is actor.Addr's uint32), but wire does not
// import actor: the cluster layer converts, as
// wire.PID{Node: uint32(p.Node), Serial: p.Serial} and back.
//
// The zero PID means "none": an envelope omits a zero target or sender.
type PID struct {
	Node   uint32 // the node's logical address (actor.Addr)
	Serial uint64 // the actor's serial on that node
}

// IsZero reports whether p is the zero PID.
func (p PID) IsZero() bool { return p == PID{} }
