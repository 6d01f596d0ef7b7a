package actor

import (
	"fmt"
	"time"
)

// Remote carries messages to actors on other nodes; Config.Remote plugs one
// in. The cluster packages provide it on top of a transport and a codec; a
// node without one answers every PID of another node with ErrRemote.
//
// The node calls Send from any goroutine, concurrently, and never while it
// holds a lock; Send must not block (queue, or return an error). Local
// messages never reach it: a message to an actor on this node never touches
// a codec or a socket.
type Remote interface {
	// Send carries m to the node of m.Target. An error means m was not sent;
	// the node reports it to the sender and to dead letters. Send must not
	// keep m after it returns (the node reuses it); m.Message and m.Reply
	// may be kept.
	Send(m *RemoteMessage) error
}

// RemoteKind says what a RemoteMessage is.
type RemoteKind uint8

// The kinds of remote message.
const (
	// RemoteSend is a one-way message.
	RemoteSend RemoteKind = iota + 1
	// RemoteRequest waits for a RemoteReply. Outgoing, it carries Reply,
	// which the Remote keeps until the reply comes back (or the peer is
	// lost) and then answers with Responder.Respond. Incoming, its Corr is
	// the Remote's own correlation, echoed in the reply.
	RemoteRequest
	// RemoteReply answers a RemoteRequest; Corr is the request's. Message
	// is the reply, or an error value.
	RemoteReply
)

// String names the kind.
func (k RemoteKind) String() string {
	switch k {
	case RemoteSend:
		return "send"
	case RemoteRequest:
		return "request"
	case RemoteReply:
		return "reply"
	}
	return fmt.Sprintf("RemoteKind(%d)", k)
}

// RemoteMessage is a message crossing nodes, before encoding (outgoing) or
// after decoding (incoming).
type RemoteMessage struct {
	Kind     RemoteKind
	Target   PID
	Sender   PID // for a sender outside any actor: serial 0 with the origin node's Addr
	Message  any
	Corr     uint64    // see RemoteRequest and RemoteReply
	Deadline time.Time // the requester's deadline, zero when none
	// Reply answers the local requester of an outgoing RemoteRequest. It is
	// the zero Responder for other messages.
	Reply Responder
}

// sendRemote hands a message for an actor on another node to Config.Remote.
func (n *Node) sendRemote(to PID, e *envelope) error {
	r := n.cfg.Remote
	if r == nil {
		n.undeliverable(to, e, ErrRemote)
		return ErrRemote
	}
	switch e.msg.(type) {
	case *replyMsg, *actorTimer, poison, sysStart, sysStop, sysWatch, sysUnwatch, sysChildGone, sysEscalate:
		return ErrRemote // runtime traffic never crosses nodes
	}
	m, _ := n.remoteMsgs.Get().(*RemoteMessage)
	if m == nil {
		m = new(RemoteMessage)
	}
	defer func() {
		*m = RemoteMessage{}
		n.remoteMsgs.Put(m)
	}()
	*m = RemoteMessage{Kind: RemoteSend, Target: to, Sender: e.sender, Message: e.msg}
	if m.Sender.IsZero() {
		m.Sender = PID{Node: n.cfg.Addr} // nobody, but the reply knows its way home
	}
	if e.corr != 0 {
		m.Kind = RemoteRequest
		m.Reply = Responder{n: n, from: to, to: e.sender, fut: e.fut, corr: e.corr}
		if e.deadline != 0 {
			m.Deadline = time.Unix(0, e.deadline)
		}
	}
	if err := r.Send(m); err != nil {
		n.undeliverable(to, e, err)
		return err
	}
	return nil
}

// replyRemote sends the answer to a request that came from another node.
func (n *Node) replyRemote(from, to PID, corr uint64, msg any) {
	r := n.cfg.Remote
	if r == nil {
		n.deadLetter(DeadLetter{Target: to, Sender: from, Message: msg, Reason: ErrRemote})
		return
	}
	if err := r.Send(&RemoteMessage{Kind: RemoteReply, Target: to, Sender: from, Corr: corr, Message: msg}); err != nil {
		n.deadLetter(DeadLetter{Target: to, Sender: from, Message: msg, Reason: err})
	}
}

// ReceiveRemote hands this node a message that arrived from another node:
// a RemoteSend or a RemoteRequest for one of its actors. (Replies go to the
// Responder kept from the outgoing request, not here.) A request that cannot
// be delivered is answered at once with an error reply through Remote; the
// returned error is for the caller's logs.
func (n *Node) ReceiveRemote(m *RemoteMessage) error {
	if m.Target.Node != n.cfg.Addr {
		return fmt.Errorf("%w: %v is not on node %v", ErrActorNotFound, m.Target, n.cfg.Addr)
	}
	switch m.Kind {
	case RemoteSend:
		if n.state.Load() == nodeClosed {
			return ErrNodeClosed
		}
		return n.deliver(m.Target, envelope{msg: m.Message, sender: m.Sender}, false)
	case RemoteRequest:
		if m.Corr == 0 {
			return fmt.Errorf("actor: remote request to %v without a correlation", m.Target)
		}
		var err error
		if n.state.Load() == nodeClosed {
			err = ErrNodeClosed
		} else {
			e := envelope{msg: m.Message, sender: m.Sender, corr: m.Corr}
			if !m.Deadline.IsZero() {
				e.deadline = m.Deadline.UnixNano()
			}
			err = n.deliver(m.Target, e, false)
		}
		if err != nil {
			n.replyRemote(m.Target, m.Sender, m.Corr, err)
		}
		return err
	}
	return fmt.Errorf("actor: ReceiveRemote takes sends and requests, not %v", m.Kind)
}
