package bus

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	mathrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport"
	"github.com/guildkit/guild/wire"
)

// peerState is where a peer stands with this node.
type peerState int

const (
	stIdle     peerState = iota // not reached (or lost): Send starts reaching it
	stReaching                  // pinged, not heard from yet: data is held
	stUp                        // heard from: data is published
)

// peer is what the transport knows of one other node. Every field but
// addr and wake is guarded by busTransport.mu.
type peer struct {
	addr actor.Addr
	wake chan struct{} // 1-buffered: there is work for the writer

	state     peerState
	inbox     string   // where to publish: learned from its ping or pong, else resolved
	inc       uint64   // its incarnation, 0 until heard from
	held      [][]byte // data frames: held while reaching, then the writer's
	ctrl      [][]byte // ping, pong frames for the writer
	probe     bool     // the writer should ask the Prober about its inbox
	reachBy   time.Time
	lastHeard time.Time
	lastPing  time.Time
	writing   bool          // the writer is publishing frames it took
	taken     int           // data frames the writer took and is publishing: they count against PendingQueue
	fullWait  time.Duration // the writer's pause after the peer's inbox was last full
	inline    bool          // a Send is publishing its frame itself: the writer waits
	epoch     uint64        // counts losses: a writer's error from an older epoch is stale

	// A lost peer is reached again by the ticker, with backoff, until it
	// is up, forgotten or unknown to the membership (see retryLocked).
	retryAt  time.Time     // when to reach it again; zero: not retrying
	backoff  time.Duration // the last wait before retryAt
	retrying bool          // the current reach is the ticker's: its failure is not reported again

	// Counters for PeerStats: out and ups under busTransport.mu, in as
	// atomics (Deliver counts a pack's envelopes with no lock held).
	framesOut, bytesOut uint64
	ups                 uint64
	framesIn, bytesIn   atomic.Uint64
}

// loss says what follows the loss of a peer.
type loss int

const (
	lossRetry   loss = iota // reach it again by itself, with backoff
	lossForget              // Forget: report it, and leave it until the next Send
	lossUnknown             // the membership does not know it: leave it until the next Send
)

// notice is a PeerLost (err set) or PeerUp for the notifier to deliver.
type notice struct {
	addr actor.Addr
	err  error
}

// busTransport is a transport.Transport over a Broker.
type busTransport struct {
	s       transport.Setup
	o       Options
	inbox   string
	inc     atomic.Uint64 // this transport's incarnation: drawn at Start, again after a broker outage
	log     *slog.Logger
	broker  Broker
	prober  Prober // nil unless broker implements it
	inline  bool   // the broker is Buffered: a lone frame is published by its Send
	packs   bool   // the broker is Packing: the writers pack data frames
	keeps   bool   // the broker is Keeping: the incarnation survives an outage
	quit    chan struct{}
	ctx     context.Context // ends at Close: for probes
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	nwake   chan struct{} // 1-buffered: notices are waiting
	ready   chan struct{} // closed once Start has set broker: the Receiver waits for it
	shut    atomic.Bool
	badLog  atomic.Int64 // unix nanoseconds of the last bad-frame log
	badSeen atomic.Uint64

	mu       sync.Mutex
	closed   bool
	peers    map[actor.Addr]*peer
	notices  []notice
	brokerOK bool
}

// Start starts a transport that publishes to the inboxes of its peers and
// reads its own, named inbox, through the broker that connect connects
// to. Broker transports call it from their Config's Start.
func Start(s transport.Setup, inbox string, o Options, connect Connect) (transport.Transport, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	switch {
	case s.Self == 0:
		return nil, errors.New("bus: Setup.Self is not set")
	case s.Handler == nil:
		return nil, errors.New("bus: Setup.Handler is nil")
	case s.Resolve == nil:
		return nil, errors.New("bus: Setup.Resolve is nil")
	case inbox == "" || len(inbox) > maxInboxLen:
		return nil, fmt.Errorf("bus: inbox name %q is empty or longer than %d bytes", inbox, maxInboxLen)
	}
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	t := &busTransport{
		s:        s,
		o:        o.withDefaults(),
		inbox:    inbox,
		log:      log.With("self", s.Self.String(), "inbox", inbox),
		quit:     make(chan struct{}),
		nwake:    make(chan struct{}, 1),
		peers:    map[actor.Addr]*peer{},
		brokerOK: true,
	}
	t.inc.Store(incarnation())
	t.ready = make(chan struct{})
	br, err := connect(inbox, (*receiver)(t))
	if err != nil {
		t.shut.Store(true) // what the failed connection still delivers is dropped
		close(t.ready)
		return nil, err
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.broker = br
	t.prober, _ = br.(Prober)
	if bb, ok := br.(Buffered); ok {
		t.inline = bb.Buffered()
	}
	if pk, ok := br.(Packing); ok {
		t.packs = pk.Packs()
	}
	if kp, ok := br.(Keeping); ok {
		t.keeps = kp.KeepsInbox()
	}
	t.wg.Add(2)
	go t.ticker()
	go t.notifier()
	close(t.ready) // the Receiver may act from now on
	return t, nil
}

// Endpoint returns the inbox this node reads.
func (t *busTransport) Endpoint() string { return t.inbox }

// Send encodes env as a data frame for peer; see transport.Transport.
func (t *busTransport) Send(addr actor.Addr, env *wire.Envelope) error {
	if env == nil {
		return errors.New("bus: Send of a nil envelope")
	}
	if addr == t.s.Self {
		return fmt.Errorf("bus: Send to this node itself (%v)", addr)
	}
	if t.shut.Load() {
		return transport.ErrClosed
	}
	frame := appendHeader(make([]byte, 0, headerSize+env.Size()), header{kind: kindData, from: t.s.Self, inc: t.inc.Load()})
	frame = env.AppendTo(frame)
	if len(frame)-headerSize > t.o.MaxFrame {
		return fmt.Errorf("bus: an envelope of %d bytes for %v, above MaxFrame %d: %w", len(frame)-headerSize, addr, t.o.MaxFrame, wire.ErrFrameTooLarge)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return transport.ErrClosed
	}
	p := t.peerLocked(addr)
	if n := len(p.held) + p.taken; n >= t.o.PendingQueue {
		// What the writer took counts until it is published: a peer
		// whose inbox stays full must not let the queue grow by a
		// PendingQueue each time the writer tries again.
		t.mu.Unlock()
		return fmt.Errorf("bus: %v: %d envelopes wait already: %w", addr, n, transport.ErrPendingQueueFull)
	}
	p.framesOut++
	p.bytesOut += uint64(len(frame) - headerSize)
	if p.state == stUp && t.inline && p.inbox != "" && !p.writing && !p.inline && len(p.held) == 0 && len(p.ctrl) == 0 {
		// Nothing is ahead of it: publish it on this goroutine, which
		// saves waking the writer (see Buffered). Frames that queue
		// meanwhile are the writer's, which packs them.
		p.inline = true
		inbox, epoch := p.inbox, p.epoch
		t.mu.Unlock()
		err := t.broker.Publish(inbox, [][]byte{frame})
		t.mu.Lock()
		p.inline = false
		if err != nil && p.epoch == epoch && !t.closed {
			t.loseLocked(p, fmt.Errorf("publish to %q: %w", inbox, err), lossRetry)
		} else if len(p.held) > 0 || len(p.ctrl) > 0 {
			wake(p) // what others queued meanwhile
		}
		t.mu.Unlock()
		return nil
	}
	p.held = append(p.held, frame)
	switch p.state {
	case stIdle:
		t.reachLocked(p, time.Now())
	case stReaching:
		if p.retrying {
			// The ticker's reach may predate the peer's return: its ping
			// went to an inbox nobody read, and its probe may yet answer
			// that nobody does. The envelope gets a reach of its own,
			// whose failure is reported; what the old one finds is
			// stale (a new epoch).
			p.epoch++
			t.reachLocked(p, time.Now())
		}
	case stUp:
		wake(p)
	}
	t.mu.Unlock()
	return nil
}

// PeerStats implements transport.StatsReporter: every peer the transport
// knows, with its counters. Queued is what waits for the peer (held while
// it is reached, or not yet taken by its writer); Connects counts the
// times it became up.
func (t *busTransport) PeerStats() []transport.PeerStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]transport.PeerStats, 0, len(t.peers))
	for _, p := range t.peers {
		out = append(out, transport.PeerStats{
			Peer: p.addr, Up: p.state == stUp, Queued: len(p.held),
			FramesOut: p.framesOut, BytesOut: p.bytesOut,
			FramesIn: p.framesIn.Load(), BytesIn: p.bytesIn.Load(),
			Connects: p.ups,
		})
	}
	return out
}

// Forget drops what waits for peer and reports it lost before it
// returns, as the TCP mesh does. The cluster layer takes a member back as
// soon as it joins again; a PeerLost of this Forget delivered after that
// (by the notifier, which may lag) would fail requests made to the new
// incarnation, and mark it down for good (a forgotten peer is not reached
// again by itself, and the cluster layer sends nothing to a peer it holds
// down). So the peer's notices still queued are taken out, and the loss,
// which supersedes them, is reported here. A notice of the peer's that
// the notifier is delivering at this moment may still arrive after it:
// at worst a PeerUp, after which a request is sent and reaches the peer
// afresh.
func (t *busTransport) Forget(addr actor.Addr) {
	t.mu.Lock()
	p := t.peers[addr]
	if p == nil || t.closed {
		t.mu.Unlock()
		return
	}
	t.loseLocked(p, fmt.Errorf("%v left the membership", addr), lossForget)
	var lost error
	kept := t.notices[:0]
	for _, n := range t.notices {
		if n.addr != addr {
			kept = append(kept, n)
		} else if n.err != nil {
			lost = n.err // the last: the one loseLocked made
		}
	}
	clear(t.notices[len(kept):])
	t.notices = kept
	t.mu.Unlock()
	if lost != nil {
		t.s.Handler.PeerLost(addr, lost)
	}
}

// Flush waits until the writers of up peers have published everything
// they hold, then flushes the broker's client.
func (t *busTransport) Flush(ctx context.Context) error {
	if !t.written() {
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for !t.written() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.quit:
				return nil
			case <-tk.C:
			}
		}
	}
	if f, ok := t.broker.(Flusher); ok && !t.shut.Load() {
		if err := f.Flush(ctx); err != nil && !t.shut.Load() {
			return err
		}
	}
	return nil
}

// written reports whether no up peer has frames left to publish.
func (t *busTransport) written() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.peers {
		if p.state == stUp && (len(p.held) > 0 || len(p.ctrl) > 0 || p.writing || p.inline) {
			return false
		}
	}
	return true
}

// Close says goodbye to the up peers, disconnects from the broker and
// waits for the transport's goroutines. What was queued is dropped and no
// PeerLost is reported for it. It is safe to call twice.
func (t *busTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.shut.Store(true)
	var byes []string
	for _, p := range t.peers {
		if p.state == stUp && p.inbox != "" {
			byes = append(byes, p.inbox)
		}
	}
	t.notices = nil
	t.mu.Unlock()
	close(t.quit)
	t.cancel()
	// The byes get one heartbeat interval: a broker that does not take
	// them by then is cut off by its Close.
	said := make(chan struct{})
	go func() {
		defer close(said)
		bye := appendHeader(nil, header{kind: kindBye, from: t.s.Self, inc: t.inc.Load()})
		for _, in := range byes {
			if t.broker.Publish(in, [][]byte{bye}) != nil {
				return
			}
		}
		if f, ok := t.broker.(Flusher); ok && len(byes) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), t.o.HeartbeatInterval)
			_ = f.Flush(ctx)
			cancel()
		}
	}()
	select {
	case <-said:
	case <-time.After(t.o.HeartbeatInterval):
	}
	err := t.broker.Close()
	<-said
	t.wg.Wait()
	return err
}

// incarnation draws a random non-zero incarnation.
func incarnation() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1
}

// fullPause is how long a writer first waits before publishing again to a
// peer whose inbox was full (ErrFull); the pause doubles while it stays
// full, up to half a heartbeat interval.
const fullPause = 5 * time.Millisecond

// MaxPeers bounds the peers a transport keeps (each with a writer
// goroutine): a frame from a new address past it is dropped, so that
// whoever can publish to the broker cannot grow a node without limit.
// Sends to new peers past it still work (they are this node's choice).
const MaxPeers = 4096

// peerLocked returns addr's peer, creating it and its writer if needed.
func (t *busTransport) peerLocked(addr actor.Addr) *peer {
	if p := t.peers[addr]; p != nil {
		return p
	}
	p := &peer{addr: addr, wake: make(chan struct{}, 1)}
	t.peers[addr] = p
	t.wg.Add(1)
	go t.writer(p)
	return p
}

// wake tells p's writer there is work.
func wake(p *peer) {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// reachLocked starts reaching p: a ping (and a probe) goes out, data is
// held until p answers or ReachTimeout passes.
func (t *busTransport) reachLocked(p *peer, now time.Time) {
	p.state = stReaching
	p.retrying = false
	p.reachBy = now.Add(t.o.ReachTimeout)
	t.pingLocked(p, now)
}

// pingLocked queues a ping for p, and a probe.
func (t *busTransport) pingLocked(p *peer, now time.Time) {
	p.lastPing = now
	p.ctrl = append(p.ctrl, t.control(kindPing))
	p.probe = t.prober != nil
	wake(p)
}

// control returns a ping or pong frame carrying this node's inbox.
func (t *busTransport) control(k frameKind) []byte {
	f := appendHeader(make([]byte, 0, headerSize+len(t.inbox)), header{kind: k, from: t.s.Self, inc: t.inc.Load()})
	return append(f, t.inbox...)
}

// loseLocked drops what was held for p and reports p lost: always on
// Forget, otherwise when it was up, when data waited for it, or when a
// Send was reaching it (a failed retry of the ticker's is not reported:
// p was reported lost already, and nobody waits on it). Then, unless how
// says otherwise, it schedules p to be reached again.
func (t *busTransport) loseLocked(p *peer, cause error, how loss) {
	active := p.state == stUp || len(p.held) > 0 || (p.state == stReaching && !p.retrying)
	p.state = stIdle
	p.retrying = false
	p.held = nil
	p.taken = 0 // the writer's batch, if any, is dropped with the rest
	p.ctrl = nil
	p.probe = false
	p.inbox = ""
	p.epoch++
	if (active || how == lossForget) && !t.closed {
		t.noticeLocked(notice{addr: p.addr, err: fmt.Errorf("%w: %v: %w", transport.ErrPeerLost, p.addr, cause)})
	}
	if how == lossRetry {
		t.retryLocked(p, time.Now())
	} else {
		p.retryAt, p.backoff = time.Time{}, 0
	}
}

// Bounds of the wait before the ticker reaches a lost peer again: it
// starts at a quarter of HeartbeatInterval and doubles up to DeadAfter
// (each wait jittered between half and all of it).
func (t *busTransport) retryBounds() (lo, hi time.Duration) {
	lo = max(t.o.HeartbeatInterval/4, time.Millisecond)
	return lo, max(t.o.DeadAfter, lo)
}

// retryLocked schedules the lost peer p to be reached again by the
// ticker. The transport keeps reaching a lost peer by itself because the
// cluster layer fails requests to it at once, without a Send, until
// PeerUp: waiting for the next Send would leave a node that only makes
// requests cut off for good after a broker outage or a race with the
// peer's own reconnection.
func (t *busTransport) retryLocked(p *peer, now time.Time) {
	lo, hi := t.retryBounds()
	p.backoff = min(max(2*p.backoff, lo), hi)
	d := p.backoff/2 + mathrand.N(p.backoff/2+1)
	p.retryAt = now.Add(d)
}

// noticeLocked queues a notice for the notifier.
func (t *busTransport) noticeLocked(n notice) {
	if t.closed {
		return
	}
	t.notices = append(t.notices, n)
	select {
	case t.nwake <- struct{}{}:
	default:
	}
}

// notifier calls PeerLost and PeerUp, in the order the notices were
// made, with no lock held.
func (t *busTransport) notifier() {
	defer t.wg.Done()
	for {
		select {
		case <-t.quit:
			return
		case <-t.nwake:
		}
		for {
			t.mu.Lock()
			if len(t.notices) == 0 || t.closed {
				t.notices = nil
				t.mu.Unlock()
				break
			}
			n := t.notices[0]
			t.notices = t.notices[1:]
			t.mu.Unlock()
			if n.err != nil {
				t.s.Handler.PeerLost(n.addr, n.err)
			} else {
				t.s.Handler.PeerUp(n.addr)
			}
		}
	}
}

// writer publishes p's frames: control frames at once, data once p is up.
func (t *busTransport) writer(p *peer) {
	defer t.wg.Done()
	for {
		select {
		case <-t.quit:
			return
		case <-p.wake:
		}
		for t.writeOnce(p) {
		}
	}
}

// writeOnce publishes what p's writer may publish now, and reports
// whether it found anything.
func (t *busTransport) writeOnce(p *peer) bool {
	t.mu.Lock()
	if t.closed || p.inline {
		t.mu.Unlock()
		return false // the inline Send wakes the writer when it is done
	}
	ctrl := p.ctrl // the pings and pongs taken: kept if the inbox is full
	batch := ctrl
	p.ctrl = nil
	var data [][]byte // the data frames taken, as queued: put back if the inbox is full
	if p.state == stUp {
		data = p.held
		if t.packs {
			batch = t.pack(batch, p.held)
		} else {
			batch = append(batch, p.held...)
		}
		p.held = nil
	}
	probe := p.probe
	p.probe = false
	if len(batch) == 0 && !probe {
		p.writing = false
		t.mu.Unlock()
		return false
	}
	p.writing = true
	p.taken = len(data)
	inbox, epoch := p.inbox, p.epoch
	t.mu.Unlock()

	fail := func(cause error, how loss) bool {
		t.mu.Lock()
		if p.epoch == epoch && !t.closed {
			t.loseLocked(p, cause, how)
		}
		p.writing = false
		p.taken = 0
		t.mu.Unlock()
		return true
	}
	if inbox == "" {
		in, err := t.s.Resolve(p.addr)
		if err != nil {
			return fail(err, lossUnknown)
		}
		inbox = in
		t.mu.Lock()
		if p.epoch == epoch && p.inbox == "" {
			p.inbox = in
		}
		t.mu.Unlock()
	}
	if probe {
		t.probe(p, inbox, epoch)
	}
	if len(batch) > 0 {
		err := t.broker.Publish(inbox, batch)
		if errors.Is(err, ErrFull) && len(ctrl) > 0 && len(batch) > len(ctrl) {
			// The pings and pongs go alone, which a nearly full inbox
			// may still take: a peer that cannot take this node's data
			// yet must still hear that it is alive, or it would lose it
			// (DeadAfter) while it is only slow.
			switch cerr := t.broker.Publish(inbox, ctrl); {
			case cerr == nil:
				ctrl = nil
			case !errors.Is(cerr, ErrFull):
				return fail(fmt.Errorf("publish to %q: %w", inbox, cerr), lossRetry)
			}
		}
		if errors.Is(err, ErrFull) {
			t.mu.Lock()
			if p.epoch == epoch && !t.closed {
				p.held = append(data, p.held...) // first in line again
				// Refused pings and pongs are kept too, one of each
				// kind (they say the same thing), ahead of newer ones.
				p.ctrl = latestControl(append(ctrl, p.ctrl...))
			}
			p.writing = false
			p.taken = 0
			// Let the peer read some of its inbox, longer each time it
			// is still full: a retry costs the broker the whole batch.
			p.fullWait = min(max(2*p.fullWait, fullPause), t.o.HeartbeatInterval/2)
			wait := p.fullWait
			t.mu.Unlock()
			select {
			case <-t.quit:
			case <-time.After(wait):
			}
			return true
		}
		if err != nil {
			return fail(fmt.Errorf("publish to %q: %w", inbox, err), lossRetry)
		}
	}
	t.mu.Lock()
	p.writing = false
	p.taken = 0
	p.fullWait = 0
	t.mu.Unlock()
	return true
}

// latestControl returns the last ping and the last pong of frames (in
// that order), so that control frames the writer keeps while a peer's
// inbox is full stay at most two.
func latestControl(frames [][]byte) [][]byte {
	var ping, pong []byte
	for _, f := range frames {
		switch frameKind(f[1]) {
		case kindPing:
			ping = f
		case kindPong:
			pong = f
		}
	}
	out := frames[:0]
	for _, f := range [][]byte{ping, pong} {
		if f != nil {
			out = append(out, f)
		}
	}
	return out
}

// probe asks the Prober, on a goroutine of its own so that the writer
// does not wait for the answer, whether anyone reads p's inbox, and loses
// p if nobody does.
func (t *busTransport) probe(p *peer, inbox string, epoch uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		ctx, cancel := context.WithTimeout(t.ctx, t.o.ReachTimeout)
		err := t.prober.Probe(ctx, inbox)
		cancel()
		if !errors.Is(err, ErrNoReader) {
			return
		}
		t.mu.Lock()
		if p.epoch == epoch && !t.closed {
			t.loseLocked(p, fmt.Errorf("nobody reads its inbox %q", inbox), lossRetry)
		}
		t.mu.Unlock()
	}()
}

// pack appends data frames to out, packing runs of them into pack frames
// of at most min(MaxFrame, packLimit) bytes: a broker handles one message
// for many envelopes (what a stream of sends, or many callers at once,
// queues while the previous batch is published).
func (t *busTransport) pack(out, frames [][]byte) [][]byte {
	if len(frames) < 2 {
		return append(out, frames...)
	}
	limit := min(t.o.MaxFrame, packLimit)
	var cur []byte // the pack being built, header included
	n := 0         // envelopes in cur
	flush := func() {
		switch n {
		case 0:
		case 1: // a pack of one is sent as the data frame it was
			body := cur[headerSize+4:]
			f := appendHeader(make([]byte, 0, headerSize+len(body)), header{kind: kindData, from: t.s.Self, inc: t.inc.Load()})
			out = append(out, append(f, body...))
		default:
			out = append(out, cur)
		}
		cur, n = nil, 0
	}
	for _, f := range frames {
		size := 4 + len(f) - headerSize
		if size > limit {
			flush()
			out = append(out, f)
			continue
		}
		if cur != nil && len(cur)-headerSize+size > limit {
			flush()
		}
		if cur == nil {
			cur = appendHeader(make([]byte, 0, headerSize+min(limit, 4096)), header{kind: kindPack, from: t.s.Self, inc: t.inc.Load()})
		}
		cur = appendPacked(cur, f)
		n++
	}
	flush()
	return out
}

// ticker pings up peers, loses those that stay silent or do not answer,
// and reaches lost peers again.
func (t *busTransport) ticker() {
	defer t.wg.Done()
	step := min(t.o.HeartbeatInterval, t.o.ReachTimeout, t.o.DeadAfter) / 4
	step = max(step, time.Millisecond)
	tk := time.NewTicker(step)
	defer tk.Stop()
	for {
		select {
		case <-t.quit:
			return
		case now := <-tk.C:
			t.tick(now)
		}
	}
}

// tick does one round of the ticker's checks.
func (t *busTransport) tick(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.peers {
		switch p.state {
		case stIdle:
			if t.brokerOK && !p.retryAt.IsZero() && !now.Before(p.retryAt) {
				t.reachLocked(p, now)
				p.retrying = true
			}
		case stReaching:
			if now.After(p.reachBy) {
				t.loseLocked(p, fmt.Errorf("no answer within %v", t.o.ReachTimeout), lossRetry)
			} else if now.Sub(p.lastPing) >= t.o.HeartbeatInterval {
				t.pingLocked(p, now)
			}
		case stUp:
			if now.Sub(p.lastHeard) > t.o.DeadAfter {
				t.loseLocked(p, fmt.Errorf("silent for %v", t.o.DeadAfter), lossRetry)
			} else if now.Sub(p.lastPing) >= t.o.HeartbeatInterval {
				t.pingLocked(p, now)
			}
		}
	}
}

// receiver is the transport as the Broker sees it.
type receiver busTransport

// Deliver handles one frame read from the inbox.
func (r *receiver) Deliver(msg []byte) {
	t := (*busTransport)(r)
	<-t.ready
	if t.shut.Load() {
		return
	}
	var env wire.Envelope
	h, body, err := decode(msg, t.s.Self, t.o.MaxFrame, &env)
	if err != nil {
		t.bad(err)
		return
	}
	now := time.Now()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	if t.peers[h.from] == nil && len(t.peers) >= MaxPeers {
		t.mu.Unlock()
		t.bad(fmt.Errorf("%w: from %v, a peer past MaxPeers (%d)", errBadFrame, h.from, MaxPeers))
		return
	}
	p := t.peerLocked(h.from)
	if h.kind == kindBye {
		if p.inc == h.inc && p.state != stIdle {
			t.loseLocked(p, errors.New("it closed its transport"), lossRetry)
		}
		t.mu.Unlock()
		return
	}
	if p.inc != 0 && p.inc != h.inc && p.state == stUp {
		// It restarted while up here: what was sent to the old one is
		// lost. (While it is being reached, a new incarnation is just
		// the one that answers.)
		t.loseLocked(p, errors.New("it restarted"), lossRetry)
	}
	p.inc = h.inc
	p.lastHeard = now
	switch h.kind {
	case kindPing:
		p.inbox = string(body)
		p.ctrl = append(p.ctrl, t.control(kindPong))
		wake(p)
	case kindPong:
		p.inbox = string(body)
	}
	if p.state != stUp {
		p.state = stUp
		p.ups++
		p.retrying = false
		p.retryAt, p.backoff = time.Time{}, 0
		p.lastPing = now
		t.noticeLocked(notice{addr: p.addr})
		if len(p.held) > 0 {
			wake(p)
		}
	}
	t.mu.Unlock()
	switch h.kind {
	case kindData:
		p.framesIn.Add(1)
		p.bytesIn.Add(uint64(len(body)))
		t.s.Handler.HandleEnvelope(h.from, &env)
	case kindPack:
		for rest := body; len(rest) > 0; {
			var one []byte
			one, rest = nextPacked(rest)
			if len(one) > t.o.MaxFrame {
				t.bad(fmt.Errorf("%w: a packed envelope of %d bytes, above MaxFrame %d", errBadFrame, len(one), t.o.MaxFrame))
				return
			}
			if err := env.Unmarshal(one); err != nil {
				t.bad(fmt.Errorf("%w: a packed envelope: %w", errBadFrame, err))
				return // the rest of the pack cannot be trusted either
			}
			p.framesIn.Add(1)
			p.bytesIn.Add(uint64(len(one)))
			t.s.Handler.HandleEnvelope(h.from, &env)
		}
	}
}

// Down loses every peer at once: the broker is gone.
func (r *receiver) Down(err error) {
	t := (*busTransport)(r)
	<-t.ready
	t.mu.Lock()
	if !t.brokerOK || t.closed {
		t.mu.Unlock()
		return
	}
	t.brokerOK = false
	for _, p := range t.peers {
		if p.state != stIdle || len(p.held) > 0 {
			t.loseLocked(p, fmt.Errorf("the connection to the broker was lost: %w", err), lossRetry)
		}
	}
	t.mu.Unlock()
	t.log.Warn("bus: lost the broker", "err", err)
}

// Up reaches again, at once, the lost peers that the ticker was to reach
// again (those up or being reached when the broker went down among them).
func (r *receiver) Up() {
	t := (*busTransport)(r)
	<-t.ready
	t.mu.Lock()
	if t.brokerOK || t.closed {
		t.mu.Unlock()
		return
	}
	t.brokerOK = true
	// What peers sent while this node was away from the broker may be
	// lost, and they may not have noticed the outage: a new incarnation
	// makes each of them lose this node (failing its requests to it at
	// once) and reach it again.
	if !t.keeps {
		t.inc.Store(incarnation())
	}
	now := time.Now()
	for _, p := range t.peers {
		if p.state == stIdle && !p.retryAt.IsZero() {
			p.backoff = 0
			t.reachLocked(p, now)
			p.retrying = true
		}
	}
	t.mu.Unlock()
	t.log.Info("bus: the broker is back")
}

// bad drops a frame that does not decode, logging at most once a second.
func (t *busTransport) bad(err error) {
	n := t.badSeen.Add(1)
	now := time.Now().UnixNano()
	last := t.badLog.Load()
	if now-last >= int64(time.Second) && t.badLog.CompareAndSwap(last, now) {
		t.log.Warn("bus: dropped a frame that does not decode", "err", err, "dropped_so_far", n)
	}
}
