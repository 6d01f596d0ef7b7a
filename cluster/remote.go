package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/wire"
)

// sweepInterval is how often the remote frees pending requests whose
// deadline has passed.
const sweepInterval = time.Second

// leftDrain bounds how long a member that left while its connection was up
// is remembered, waiting for it to close that connection (see forgetLeft).
const leftDrain = 2 * time.Second

// sweepGrace is added to a pending request's deadline before the sweep
// drops it, so that a reply racing the requester's own timer still finds
// its Responder.
const sweepGrace = 100 * time.Millisecond

// pendingReq is an outgoing request waiting for its RESPONSE or ERROR.
type pendingReq struct {
	peer     actor.Addr
	reply    actor.Responder
	deadline time.Time
	// relayTo, on a harbor, is the peer a relayed request came from (0
	// for this node's own requests), and relayCorr its correlation there:
	// the answer goes back to it as it is (relayBack).
	relayTo   actor.Addr
	relayCorr uint64
	// lookup, for a name lookup (View.LookupAt), receives the answer
	// instead of reply: the decoded message or an error. One slot.
	lookup chan any
}

// respond hands the answer (a message or an error) to whoever waits.
func (p pendingReq) respond(v any) {
	if p.lookup != nil {
		p.lookup <- v
		return
	}
	p.reply.Respond(v)
}

// trBox holds the transport, which is set after the remote is created.
type trBox struct{ t transport.Transport }

// remote is a Node's actor.Remote and transport.Handler: it turns
// RemoteMessages into envelopes and back, and keeps the Responders of
// outgoing requests until they are answered, their peer is lost, or their
// deadline passes.
type remote struct {
	self           actor.Addr
	types          *protoregistry.Types
	payloads       *wire.PayloadDecoder
	log            *slog.Logger
	requestTimeout time.Duration
	members        Membership // nil in tests without one: every node counts as a member
	watches        *watchTable

	node    atomic.Pointer[actor.Node]
	tr      atomic.Pointer[trBox]
	next    atomic.Uint64             // the last correlation ID issued: from a random start (newRemote)
	harbors atomic.Pointer[harborMap] // the live harbors, by cluster (see route)
	exports exportTable               // the other clusters' exported members, by harbor

	mu      sync.Mutex
	pending map[uint64]pendingReq
	// down holds the peers whose connection was lost (or could not be
	// made) and has not come back: a request to one fails at once instead
	// of waiting in the transport's queue for its timeout.
	down map[actor.Addr]error
	// leaving holds the members that left while their connection was up:
	// they are forgotten once it closes (or after leftDrain).
	leaving map[actor.Addr]*leftPeer
	closed  bool

	outPool sync.Pool // of *outgoing

	quit      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func newRemote(self actor.Addr, types *protoregistry.Types, log *slog.Logger, requestTimeout time.Duration, members Membership, linkTimeout time.Duration) *remote {
	r := &remote{
		self:           self,
		types:          types,
		payloads:       wire.NewPayloadDecoder(types),
		log:            log,
		requestTimeout: requestTimeout,
		members:        members,
		pending:        make(map[uint64]pendingReq),
		down:           make(map[actor.Addr]error),
		leaving:        make(map[actor.Addr]*leftPeer),
		quit:           make(chan struct{}),
	}
	// Correlation IDs start at a random point, not at 1: a peer may still
	// answer requests of this node's previous incarnation (same address,
	// restarted), and those answers must not match this one's requests.
	// Two incarnations' ranges of a million requests each meet with a
	// chance below one in 10^12.
	r.next.Store(rand.Uint64() >> 1)
	r.watches = newWatchTable(r, linkTimeout)
	r.wg.Add(1)
	go r.sweepLoop()
	return r
}

// close stops the sweeper and waits for it. Safe to call twice.
func (r *remote) close() {
	r.closeOnce.Do(func() { close(r.quit) })
	r.mu.Lock()
	r.closed = true
	for peer, lp := range r.leaving {
		lp.timer.Stop()
		delete(r.leaving, peer)
	}
	r.mu.Unlock()
	r.wg.Wait()
	r.watches.close()
}

func (r *remote) transport() transport.Transport {
	if b := r.tr.Load(); b != nil {
		return b.t
	}
	return nil
}

// waitIdle waits until no request waits for an answer, or ctx ends.
func (r *remote) waitIdle(ctx context.Context) error {
	for r.pendingCount() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// pendingCount returns how many requests wait for an answer.
func (r *remote) pendingCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

func toWirePID(p actor.PID) wire.PID { return wire.PID{Node: uint32(p.Node), Serial: p.Serial} }

func fromWirePID(p wire.PID) actor.PID { return actor.PID{Node: actor.Addr(p.Node), Serial: p.Serial} }

// outgoing is an envelope being sent, with the buffer its payload is
// encoded into. The transport encodes an envelope before Send returns, so
// both are reused through remote.outPool.
type outgoing struct {
	env     wire.Envelope
	payload []byte
	meta    []byte // the metadata's encoding
}

// maxPooledPayload is the largest payload buffer kept for reuse.
const maxPooledPayload = 64 << 10

func (r *remote) getOutgoing() *outgoing {
	if o, ok := r.outPool.Get().(*outgoing); ok {
		return o
	}
	return new(outgoing)
}

func (r *remote) putOutgoing(o *outgoing) {
	o.env.Reset()
	if cap(o.payload) > maxPooledPayload {
		o.payload = nil
	}
	o.payload = o.payload[:0]
	if cap(o.meta) > actor.MaxMetadataSize*2 {
		o.meta = nil
	}
	o.meta = o.meta[:0]
	r.outPool.Put(o)
}

// marshal encodes msg as the payload of o's envelope.
func (o *outgoing) marshal(msg any) error {
	if b, ok := msg.([]byte); ok {
		// The transport copies it into its buffer before Send returns.
		o.env.PayloadType, o.env.Payload = wire.RawBytesType, b
		return nil
	}
	typ, b, err := wire.MarshalPayload(o.payload[:0], msg)
	if err != nil {
		return err
	}
	o.payload = b
	o.env.PayloadType, o.env.Payload = typ, b
	return nil
}

// Send implements actor.Remote.
func (r *remote) Send(m *actor.RemoteMessage) error {
	tr := r.transport()
	if tr == nil {
		return fmt.Errorf("cluster: remote to %v: %w", m.Target, actor.ErrNodeClosed)
	}
	o := r.getOutgoing()
	defer r.putOutgoing(o)
	env := &o.env
	env.Target = toWirePID(m.Target)
	env.Sender = toWirePID(m.Sender)
	if !m.Deadline.IsZero() {
		env.Deadline = m.Deadline.UnixNano()
	}
	peer := m.Target.Node
	if peer.Cluster() != r.self.Cluster() && m.Peer == 0 && m.Kind != actor.RemoteWatch && m.Kind != actor.RemoteUnwatch {
		if m.TargetName != "" {
			return fmt.Errorf("%w %d: the name %q is global in cluster %d only", ErrNoRoute, peer.Cluster(), m.TargetName, r.self.Cluster())
		}
		via, err := r.route(peer)
		if err != nil {
			return fmt.Errorf("cluster: %v to %v: %w", m.Kind, m.Target, err)
		}
		peer = via
	}
	switch m.Kind {
	case actor.RemoteWatch:
		r.watches.watch(m.Target, m.Sender)
		return nil
	case actor.RemoteUnwatch:
		r.watches.unwatch(m.Target, m.Sender)
		return nil
	case actor.RemoteTerminated, actor.RemoteStop, actor.RemotePoison:
		env.Kind = wire.KindSystem
		env.PayloadType = systemOps[m.Kind]
		if t, ok := m.Message.(actor.Terminated); ok && t.Reason == actor.ReasonNotFound {
			env.ErrorCode = wire.CodeNotFound
		} else if m.Kind == actor.RemoteTerminated {
			env.ErrorCode = wire.CodeStopped
		}
	case actor.RemoteSend, actor.RemoteRequest:
		if m.TargetName != "" {
			env.Target, env.TargetName = wire.PID{}, m.TargetName
		}
		if err := o.marshal(m.Message); err != nil {
			return fmt.Errorf("cluster: message to %v: %w", m.Target, err)
		}
		if m.Metadata.Len() > 0 {
			if err := m.Metadata.Validate(); err != nil {
				return fmt.Errorf("cluster: message to %v: %w", m.Target, err)
			}
			for k, v := range m.Metadata.All() {
				o.meta = wire.AppendMetadataPair(o.meta, k, v)
			}
			env.Metadata = o.meta
		}
		env.Kind = wire.KindSend
		if m.Kind == actor.RemoteRequest {
			env.Kind = wire.KindRequest
			id := r.next.Add(1)
			env.CorrelationID = id
			dl := m.Deadline
			if dl.IsZero() {
				dl = time.Now().Add(r.requestTimeout)
			}
			if peer != m.Target.Node {
				// Through a harbor: the deadline goes with the envelope,
				// so that each harbor on the way frees its relay in time.
				env.Deadline = dl.UnixNano()
			}
			r.mu.Lock()
			if lost := r.down[peer]; lost != nil {
				r.mu.Unlock()
				return fmt.Errorf("cluster: request to %v: %w", m.Target, lost)
			}
			r.pending[id] = pendingReq{peer: peer, reply: m.Reply, deadline: dl}
			r.mu.Unlock()
			if err := tr.Send(peer, env); err != nil {
				r.mu.Lock()
				delete(r.pending, id)
				r.mu.Unlock()
				return fmt.Errorf("cluster: request to %v: %w", m.Target, err)
			}
			return nil
		}
	case actor.RemoteReply:
		if m.Peer != 0 {
			peer = m.Peer // the answer retraces the request's path
		}
		env.CorrelationID = m.Corr
		if err, ok := m.Message.(error); ok {
			env.Kind = wire.KindError
			env.ErrorCode = errorCode(err)
			env.ErrorMessage = err.Error()
			break
		}
		if err := o.marshal(m.Message); err != nil {
			// The requester still deserves an answer: tell it why there is none.
			env.Kind = wire.KindError
			env.ErrorCode = wire.CodeNotEncodable
			env.ErrorMessage = fmt.Sprintf("cluster: reply from %v: %v", m.Sender, err)
			if serr := tr.Send(peer, env); serr != nil {
				return serr
			}
			return fmt.Errorf("cluster: reply from %v: %w", m.Sender, err)
		}
		env.Kind = wire.KindResponse
	default:
		return fmt.Errorf("cluster: unknown remote message kind %v", m.Kind)
	}
	if err := tr.Send(peer, env); err != nil {
		if errors.Is(err, transport.ErrPendingQueueFull) {
			return err // made once per peer: refusing stays cheap under overload
		}
		return fmt.Errorf("cluster: %v to %v: %w", m.Kind, m.Target, err)
	}
	return nil
}

// HandleEnvelope implements transport.Handler.
func (r *remote) HandleEnvelope(peer actor.Addr, env *wire.Envelope) {
	switch env.Kind {
	case wire.KindSend, wire.KindRequest:
		r.handleIncoming(peer, env)
	case wire.KindResponse:
		p, ok := r.take(env.CorrelationID, peer)
		if !ok {
			return
		}
		if p.relayTo != 0 {
			r.relayBack(p, env)
			return
		}
		msg, err := r.payloads.Unmarshal(env.PayloadType, env.Payload)
		if err != nil {
			p.respond(fmt.Errorf("cluster: reply from %v: %w", peer, err))
			return
		}
		p.respond(msg)
	case wire.KindError:
		p, ok := r.take(env.CorrelationID, peer)
		if !ok {
			return
		}
		if p.relayTo != 0 {
			r.relayBack(p, env)
			return
		}
		p.respond(&remoteError{code: env.ErrorCode, msg: env.ErrorMessage})
	case wire.KindSystem:
		r.handleSystem(peer, env)
	default:
		r.log.Debug("cluster: dropping envelope", "peer", peer, "kind", env.Kind)
	}
}

func (r *remote) handleIncoming(peer actor.Addr, env *wire.Envelope) {
	isReq := env.Kind == wire.KindRequest
	target, sender := fromWirePID(env.Target), fromWirePID(env.Sender)
	if env.TargetName == "" && target.Node != r.self && r.self.IsHarbor() {
		r.relay(peer, env)
		return
	}
	if isReq && env.TargetName == "" && target.Node == r.self && target.Serial == 0 && env.PayloadType == lookupType {
		r.answerLookup(peer, env)
		return
	}
	fail := func(code uint32, err error) {
		if !isReq {
			r.log.Warn("cluster: dropping message", "peer", peer, "target", target, "err", err)
			return
		}
		tr := r.transport()
		if tr == nil {
			return
		}
		out := &wire.Envelope{
			Kind: wire.KindError, Target: env.Sender, Sender: env.Target,
			CorrelationID: env.CorrelationID, ErrorCode: code, ErrorMessage: err.Error(),
		}
		if serr := tr.Send(peer, out); serr != nil {
			r.log.Warn("cluster: cannot answer request", "peer", peer, "err", serr)
		}
	}
	if env.TargetName == "" && target.Node != r.self {
		fail(wire.CodeNotFound, fmt.Errorf("%w: target %v is not on node %v", actor.ErrActorNotFound, target, r.self))
		return
	}
	if env.TargetName != "" {
		target = actor.PID{Node: r.self}
	}
	msg, err := r.payloads.Unmarshal(env.PayloadType, env.Payload)
	if err != nil {
		fail(errorCode(err), err)
		return
	}
	n := r.node.Load()
	if n == nil {
		fail(wire.CodeNodeClosed, actor.ErrNodeClosed)
		return
	}
	m := &actor.RemoteMessage{Kind: actor.RemoteSend, Target: target, TargetName: env.TargetName, Sender: sender, Message: msg, Corr: env.CorrelationID, Peer: peer}
	if len(env.Metadata) > 0 {
		pairs, err := wire.ParseMetadata(env.Metadata, actor.MaxMetadataEntries, actor.MaxMetadataSize)
		if err != nil {
			fail(wire.CodeBadPayload, err)
			return
		}
		m.Metadata = actor.NewMetadata(pairs...)
	}
	if isReq {
		m.Kind = actor.RemoteRequest
	}
	if env.Deadline != 0 {
		m.Deadline = time.Unix(0, env.Deadline)
	}
	// A request that cannot be delivered is answered by the node itself.
	if err := n.ReceiveRemote(m); err != nil {
		r.log.Debug("cluster: incoming message not delivered", "peer", peer, "target", target, "err", err)
	}
}

// take removes and returns the pending request corr, if it was sent to
// peer: an answer is accepted only from the node the request went to.
func (r *remote) take(corr uint64, peer actor.Addr) (pendingReq, bool) {
	r.mu.Lock()
	p, ok := r.pending[corr]
	if ok && p.peer == peer {
		delete(r.pending, corr)
	}
	r.mu.Unlock()
	if !ok {
		return pendingReq{}, false
	}
	if p.peer != peer {
		r.log.Warn("cluster: dropping an answer from a node the request did not go to", "corr", corr, "from", peer, "sent_to", p.peer)
		return pendingReq{}, false
	}
	return p, true
}

// PeerLost implements transport.Handler: every request waiting on peer fails
// at once.
func (r *remote) PeerLost(peer actor.Addr, err error) {
	if !errors.Is(err, transport.ErrPeerLost) {
		err = fmt.Errorf("%w: %v", transport.ErrPeerLost, err)
	}
	var lost, relayed []pendingReq
	r.mu.Lock()
	r.down[peer] = err
	for id, p := range r.pending {
		if p.peer == peer {
			if p.relayTo != 0 {
				relayed = append(relayed, p)
			} else {
				lost = append(lost, p)
			}
			delete(r.pending, id)
		}
	}
	lp := r.leaving[peer]
	if lp != nil {
		lp.timer.Stop()
		delete(r.leaving, peer)
	}
	r.mu.Unlock()
	for _, p := range lost {
		p.respond(fmt.Errorf("cluster: request to %v: %w", peer, err))
	}
	r.failRelayed(peer, relayed, err)
	r.watches.peerLost(peer)
	if lp != nil {
		lp.forget() // it left, and its connection is gone: everything it wrote has been read
	}
}

// leftPeer is a member that left while its connection was up.
type leftPeer struct {
	forget func()
	timer  *time.Timer
}

// forgetLeft forgets peer, which has left the membership (forget drops
// what is queued for it and stops redialling it). A peer that left
// gracefully writes its last answers, then closes its connections: it is
// forgotten only once its connection is lost (PeerLost), so that what it
// wrote last is read rather than discarded with the socket; at once when
// its connection is already lost (it crashed, and its record expired),
// and after leftDrain at the latest.
func (r *remote) forgetLeft(peer actor.Addr, forget func()) {
	r.mu.Lock()
	if _, lost := r.down[peer]; lost || r.closed {
		r.mu.Unlock()
		forget()
		return
	}
	if old := r.leaving[peer]; old != nil {
		old.timer.Stop()
	}
	lp := &leftPeer{forget: forget}
	lp.timer = time.AfterFunc(leftDrain, func() {
		if r.takeLeft(peer, lp) {
			forget()
		}
	})
	r.leaving[peer] = lp
	r.mu.Unlock()
}

// takeLeft removes peer's leftPeer, if it is lp (any when lp is nil), and
// reports whether it did.
func (r *remote) takeLeft(peer actor.Addr, lp *leftPeer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.leaving[peer]
	if cur == nil || (lp != nil && cur != lp) {
		return false
	}
	cur.timer.Stop()
	delete(r.leaving, peer)
	return true
}

// PeerUp implements transport.Handler: requests to peer go out again.
func (r *remote) PeerUp(peer actor.Addr) {
	r.mu.Lock()
	delete(r.down, peer)
	r.mu.Unlock()
	r.watches.peerUp(peer)
}

// sweepLoop frees pending requests whose deadline has passed: their
// requester has been answered by its own timer.
func (r *remote) sweepLoop() {
	defer r.wg.Done()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-r.quit:
			return
		case now := <-t.C:
			r.sweep(now)
		}
	}
}

func (r *remote) sweep(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, p := range r.pending {
		if now.After(p.deadline.Add(sweepGrace)) {
			delete(r.pending, id)
		}
	}
}

// codes maps actor and wire sentinels to wire error codes and back, most
// specific first (ErrActorStopped matches ErrActorNotFound too). It is
// read-only.
var codes = []struct {
	err  error
	code uint32
}{
	{actor.ErrActorStopped, wire.CodeStopped},
	{actor.ErrActorNotFound, wire.CodeNotFound},
	{actor.ErrNameNotFound, wire.CodeNameNotFound},
	{actor.ErrMailboxFull, wire.CodeMailboxFull},
	{actor.ErrTimeout, wire.CodeTimeout},
	{actor.ErrNodeClosed, wire.CodeNodeClosed},
	{actor.ErrNoReply, wire.CodeNoReply},
	{actor.ErrPanicked, wire.CodePanicked},
	{wire.ErrUnknownType, wire.CodeUnknownType},
	{wire.ErrMalformed, wire.CodeBadPayload},
	{wire.ErrNotEncodable, wire.CodeNotEncodable},
	{transport.ErrPeerLost, wire.CodePeerLost},
	{ErrNoRoute, wire.CodeNoRoute},
}

// errorCode returns the wire code for err.
func errorCode(err error) uint32 {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return wire.CodeUnknown
}

// remoteError is an error answer from another node. It matches, with
// errors.Is, the sentinel its code stands for.
type remoteError struct {
	code uint32
	msg  string
}

func (e *remoteError) Error() string {
	if e.msg == "" {
		return fmt.Sprintf("cluster: remote error code %d", e.code)
	}
	return e.msg
}

// Unwrap returns the sentinel of the error's code, or nil for a code this
// version does not know.
func (e *remoteError) Unwrap() error {
	for _, c := range codes { // the first sentinel listed for a code is its canonical one
		if c.code == e.code {
			return c.err
		}
	}
	return nil
}

// requestTimeoutFrom returns the deadline of a request whose envelope
// carries deadline (Unix nanoseconds, 0 for none): that one, or the
// request timeout from now.
func (r *remote) requestTimeoutFrom(deadline int64) time.Time {
	if deadline != 0 {
		return time.Unix(0, deadline)
	}
	return time.Now().Add(r.requestTimeout)
}
