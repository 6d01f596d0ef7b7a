package actor

import (
	"errors"
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
	// Send carries m to another node: the node of m.Target, or m.Peer for
	// a RemoteReply. An error means m was not sent; the node reports it to
	// the sender and to dead letters. Send must not keep m after it
	// returns (the node reuses it); m.Message and m.Reply may be kept.
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
	// the correlation of the node it came from (Peer), echoed in the reply
	// that goes back to that node.
	RemoteRequest
	// RemoteReply answers a RemoteRequest; Corr is the request's, and Peer
	// the node the request came from. Message is the reply, or an error
	// value.
	RemoteReply
	// RemoteWatch asks for a RemoteTerminated to Sender (the watcher) when
	// Target stops.
	RemoteWatch
	// RemoteUnwatch cancels a RemoteWatch of Target by Sender.
	RemoteUnwatch
	// RemoteTerminated tells the watcher Target that Sender has ended;
	// Message is the Terminated to deliver.
	RemoteTerminated
	// RemoteStop stops Target at once, as Node.Stop does.
	RemoteStop
	// RemotePoison stops Target after its queued messages, as Node.Poison
	// does.
	RemotePoison
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
	case RemoteWatch:
		return "watch"
	case RemoteUnwatch:
		return "unwatch"
	case RemoteTerminated:
		return "terminated"
	case RemoteStop:
		return "stop"
	case RemotePoison:
		return "poison"
	}
	return fmt.Sprintf("RemoteKind(%d)", k)
}

// RemoteMessage is a message crossing nodes, before encoding (outgoing) or
// after decoding (incoming).
type RemoteMessage struct {
	Kind   RemoteKind
	Target PID
	// TargetName, for a RemoteSend or RemoteRequest, is the name the
	// sender addressed: the receiving node resolves it among the names it
	// holds (Target.Node says which node that is), so a name that moved or
	// whose lease lapsed is not delivered to a stale holder.
	TargetName string
	Sender     PID // for a sender outside any actor: serial 0 with the origin node's Addr
	Message    any
	Corr       uint64    // see RemoteRequest and RemoteReply
	Deadline   time.Time // the requester's deadline, zero when none
	// Peer is the other node of this hop: for an incoming message, the node
	// it came from; for an outgoing RemoteReply, the node it goes back to.
	Peer Addr
	// Reply answers the local requester of an outgoing RemoteRequest. It is
	// the zero Responder for other messages.
	Reply Responder
	// Metadata, for a RemoteSend or RemoteRequest, is what the message
	// carries (see WithMetadata); Message is then the message alone.
	Metadata Metadata
}

// sendRemote hands a message for an actor on another node to Config.Remote.
func (n *Node) sendRemote(to PID, e *envelope) error {
	return n.sendRemoteNamed(to, "", e)
}

// sendRemoteNamed is sendRemote for a message addressed to a name that the
// node of to holds (name empty: to itself).
func (n *Node) sendRemoteNamed(to PID, name string, e *envelope) error {
	r := n.cfg.Remote
	if r == nil {
		n.undeliverable(to, e, ErrRemote)
		return ErrRemote
	}
	switch e.msg.(type) {
	case *replyMsg, *actorTimer, poison, sysStart, sysStop, sysWatch, sysUnwatch, sysChildGone, sysEscalate:
		return ErrRemote // runtime traffic never crosses nodes this way
	}
	m, _ := n.remoteMsgs.Get().(*RemoteMessage)
	if m == nil {
		m = new(RemoteMessage)
	}
	defer func() {
		*m = RemoteMessage{}
		n.remoteMsgs.Put(m)
	}()
	*m = RemoteMessage{Kind: RemoteSend, Target: to, TargetName: name, Sender: e.sender, Message: e.msg}
	if w, ok := e.msg.(*withMetadata); ok {
		m.Message, m.Metadata = w.msg, w.md
	}
	if m.Sender.Node == 0 {
		m.Sender = PID{Node: n.cfg.Addr} // nobody, from this node
	}
	if e.corr != 0 {
		m.Kind = RemoteRequest
		m.Reply = Responder{n: n, from: to, to: e.sender, fut: e.fut, corr: e.corr, via: e.via}
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

// sendControl sends runtime traffic (watch, unwatch, terminated, stop,
// poison) to another node.
func (n *Node) sendControl(kind RemoteKind, target, sender PID, msg any) error {
	r := n.cfg.Remote
	if r == nil {
		return ErrRemote
	}
	return r.Send(&RemoteMessage{Kind: kind, Target: target, Sender: sender, Message: msg})
}

// replyRemote sends the answer to a request that came from another node
// back to that node, peer.
func (n *Node) replyRemote(from, to PID, corr uint64, peer Addr, msg any) {
	r := n.cfg.Remote
	if r == nil {
		n.deadLetter(DeadLetter{Target: to, Sender: from, Message: msg, Reason: ErrRemote})
		return
	}
	m, _ := n.remoteMsgs.Get().(*RemoteMessage)
	if m == nil {
		m = new(RemoteMessage)
	}
	*m = RemoteMessage{Kind: RemoteReply, Target: to, Sender: from, Corr: corr, Peer: peer, Message: msg}
	err := r.Send(m)
	*m = RemoteMessage{}
	n.remoteMsgs.Put(m)
	if err != nil {
		n.deadLetter(DeadLetter{Target: to, Sender: from, Message: msg, Reason: err})
	}
}

// ReceiveRemote hands this node a message that arrived from another node
// (m.Peer): a RemoteSend or RemoteRequest for one of its actors (by PID,
// or by a name this node holds), or runtime traffic (RemoteWatch,
// RemoteUnwatch, RemoteTerminated, RemoteStop, RemotePoison). Replies go
// to the Responder kept from the outgoing request, not here. A request
// that cannot be delivered is answered at once with an error reply through
// Remote, and a watch of an actor that is not here with a RemoteTerminated;
// the returned error is for the caller's logs.
func (n *Node) ReceiveRemote(m *RemoteMessage) error {
	switch m.Kind {
	case RemoteSend, RemoteRequest:
		return n.receiveRemoteMessage(m)
	case RemoteWatch:
		err := n.pushSys(m.Target, sysWatch{watcher: m.Sender})
		if err != nil {
			reason := ReasonNotFound
			if n.state.Load() == nodeClosed {
				reason = ReasonStopped
			}
			if serr := n.sendControl(RemoteTerminated, m.Sender, m.Target, Terminated{PID: m.Target, Reason: reason}); serr != nil {
				return serr
			}
		}
		return err
	case RemoteUnwatch:
		return n.pushSys(m.Target, sysUnwatch{watcher: m.Sender})
	case RemoteTerminated:
		t, ok := m.Message.(Terminated)
		if !ok {
			return fmt.Errorf("actor: remote terminated carries %T, not Terminated", m.Message)
		}
		return n.deliver(m.Target, envelope{msg: t, sender: t.PID}, true)
	case RemoteStop:
		return n.pushSys(m.Target, sysStop{})
	case RemotePoison:
		return n.pushControl(m.Target, envelope{msg: poison{}}, false)
	}
	return fmt.Errorf("actor: ReceiveRemote does not take %v", m.Kind)
}

func (n *Node) receiveRemoteMessage(m *RemoteMessage) error {
	isReq := m.Kind == RemoteRequest
	if isReq && m.Corr == 0 {
		return fmt.Errorf("actor: remote request to %v without a correlation", m.Target)
	}
	fail := func(err error) error {
		if isReq {
			n.replyRemote(m.Target, m.Sender, m.Corr, m.Peer, err)
		}
		return err
	}
	if n.state.Load() == nodeClosed {
		return fail(ErrNodeClosed)
	}
	to := m.Target
	if m.TargetName != "" {
		pid, err := n.resolveHeld(m.TargetName)
		if err != nil {
			return fail(err)
		}
		to = pid
	} else if to.Node != n.cfg.Addr {
		return fail(fmt.Errorf("%w: %v is not on node %v", ErrActorNotFound, to, n.cfg.Addr))
	}
	e := envelope{msg: WithMetadata(m.Message, m.Metadata), sender: m.Sender}
	if isReq {
		e.corr, e.via = m.Corr, m.Peer
		if e.via == 0 {
			e.via = m.Sender.Node
		}
		if !m.Deadline.IsZero() {
			e.deadline = m.Deadline.UnixNano()
		}
	}
	err := n.deliver(to, e, false)
	if err != nil && isReq && !errors.Is(err, ErrRemote) {
		n.replyRemote(to, m.Sender, m.Corr, e.via, err)
	}
	return err
}
