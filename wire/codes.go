package wire

// Error codes carried in ErrorCode by KindError envelopes. Codes 0 to 999
// are guild's; an application uses 1000 and up for its own errors. A
// receiver treats a code it does not know as CodeUnknown, keeping the
// message. The cluster layer maps these to and from actor's sentinel errors.
const (
	// CodeUnknown: no more specific code applies (for example an actor
	// answered a request with a plain Go error); ErrorMessage says what
	// happened. It is the zero value and so is not written on the wire.
	CodeUnknown uint32 = 0
	// CodeNotFound: the target actor does not exist on the receiving node
	// (actor.ErrActorNotFound).
	CodeNotFound uint32 = 1
	// CodeStopped: the target stopped before it answered
	// (actor.ErrActorStopped).
	CodeStopped uint32 = 2
	// CodeMailboxFull: the target's bounded mailbox was full and the request
	// was not queued (actor.ErrMailboxFull).
	CodeMailboxFull uint32 = 3
	// CodeTimeout: the request's deadline passed before it was answered
	// (actor.ErrTimeout).
	CodeTimeout uint32 = 4
	// CodeNodeClosed: the receiving node is shutting down
	// (actor.ErrNodeClosed).
	CodeNodeClosed uint32 = 5
	// CodeNoReply: the target handled the request without answering it
	// (actor.ErrNoReply).
	CodeNoReply uint32 = 6
	// CodePanicked: the target panicked while handling the request
	// (actor.ErrPanicked).
	CodePanicked uint32 = 7
	// CodeUnknownType: the receiver does not know the request's payload
	// type (ErrUnknownType at the receiver).
	CodeUnknownType uint32 = 8
	// CodeBadPayload: the request's payload did not decode as its type
	// (ErrMalformed from UnmarshalPayload at the receiver).
	CodeBadPayload uint32 = 9
	// CodeNotEncodable: the target's reply could not be encoded for the
	// wire (ErrNotEncodable at the replying node).
	CodeNotEncodable uint32 = 10
	// CodeNameNotFound: the request addressed a name (target_name) that
	// the receiving node does not hold, or holds under a lease it cannot
	// prove still valid (actor.ErrNameNotFound).
	CodeNameNotFound uint32 = 11
	// CodePeerLost: a node that relayed the request (a harbor, between
	// clusters) lost its connection to the next node on the request's
	// path before the answer came back (transport.ErrPeerLost at the
	// requester, as for a peer it lost itself).
	CodePeerLost uint32 = 12
	// CodeNoRoute: a harbor had no live harbor of the target's cluster to
	// relay the request to (cluster.ErrNoRoute).
	CodeNoRoute uint32 = 13

	// CodeFirstApplication is the first code free for applications.
	CodeFirstApplication uint32 = 1000
)
