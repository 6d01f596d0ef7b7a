package grain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"strconv"
	"sync"
	"time"

	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/grain/grainpb"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/store"
)

// releaseTimeout bounds the release of a claim when an activation stops.
const releaseTimeout = time.Second

// errRetired: the activation left the table between a sender's lookup and
// its push; the sender routes again.
var errRetired = errors.New("grain: activation retired")

// errEncode: the state could not be encoded, which trying again will not
// mend.
var errEncode = errors.New("grain: encode the state")

// Control messages: from the sweeper, the rebalancer and Close.
type ctlOp uint8

const (
	opIdle ctlOp = iota + 1
	opFlush
	opHandover
	opClose
	opDeactivate // Context.Deactivate
)

type ctlMsg struct {
	op       ctlOp
	deadline time.Time // opClose: how long a failing flush is retried
}

var (
	ctlIdle       = &ctlMsg{op: opIdle}
	ctlFlush      = &ctlMsg{op: opFlush}
	ctlHandover   = &ctlMsg{op: opHandover}
	ctlDeactivate = &ctlMsg{op: opDeactivate}
)

// Phases of an activation, owned by its turn.
const (
	phaseLoading uint8 = iota
	phaseActive
	phaseDraining // out of the table: handling what was queued, then stopping
	phaseDone
)

// activation is one grain in memory: the actor that runs it and the
// table entry senders find it by. It is both, to keep an idle grain small:
// a million of them are held at once, so every field counts (112 bytes on
// 64-bit platforms). What only a failing, deactivating or replacing
// activation needs is in x, allocated then.
type activation struct {
	k      *hostedKind // the kind, its name (the identity's Kind) and the System
	key    string      // the identity's Key
	serial uint64      // the actor's PID.Serial (its Node is k.s.self); set under the shard lock after the spawn

	beh     Actor
	state   any
	version uint64 // the stored version the state was loaded at or last saved as
	hash    uint64 // hash of the state's encoding at load or at the last flush
	x       *activationExtra

	last      atomic.Int64 // coarse time of the last message
	flushedAt atomic.Int64 // coarse time of the last flush
	// word holds the flag bits (flag*, and the phase) in its low byte and,
	// above, the number of senders between their check of flagClosed and
	// their push: one atomic add both counts a sender in and tells it
	// whether the activation has retired.
	word atomic.Uint32
	// epoch is the epoch of the lease the claim was made under (see
	// cluster.Fence): the activation serves only while the node's lease
	// is that one and surely valid.
	epoch uint32
}

// activationExtra is the rarely needed part of an activation.
type activationExtra struct {
	prev    *activation      // a deactivating activation of the id on this node, to wait for
	refuse  *grainpb.Refused // set: queued messages are refused, not handled
	done    chan struct{}    // made at retire; closed once the claim is released
	trigger actor.Metadata   // the metadata of the message that made it, for Config.Observe
	sync    *syncState       // a synced kind's subscriptions (Kind.Sync)
}

// Bits of activation.word. touched, dirty, closed and ctlQueued are shared
// with senders and the sweeper; claimed, stale and the phase belong to the
// activation's turn.
const (
	flagTouched   uint32 = 1 << iota // a message was handled since the last flush
	flagDirty                        // MarkDirty was called since the last flush
	flagClosed                       // out of the table: senders route again
	flagCtlQueued                    // a sweeper message is queued
	flagClaimed                      // the activation holds the grain's claim
	flagStale                        // the stored state is newer: never flush

	phaseShift        = 6
	phaseMask  uint32 = 3 << phaseShift

	inflightShift        = 8
	inflightOne   uint32 = 1 << inflightShift
)

// hostedKind is a Kind this System hosts, with the System: an activation
// reaches both through one pointer.
type hostedKind struct {
	Kind
	s    *System
	sync *syncer // Kind.Sync is set
}

func (a *activation) id() Identity   { return Identity{Kind: a.k.Name, Key: a.key} }
func (a *activation) pid() actor.PID { return actor.PID{Node: a.k.s.self, Serial: a.serial} }

func (a *activation) has(f uint32) bool { return a.word.Load()&f != 0 }
func (a *activation) set(f uint32)      { a.word.Or(f) }
func (a *activation) clear(f uint32)    { a.word.And(^f) }

func (a *activation) phase() uint8 { return uint8((a.word.Load() & phaseMask) >> phaseShift) }

// setPhase is called by the activation's turn only, the one writer of the
// phase bits.
func (a *activation) setPhase(p uint8) {
	a.word.And(^phaseMask)
	a.word.Or(uint32(p) << phaseShift)
}

// extra returns a.x, allocating it. Only the activation's turn calls it,
// except activate, before the spawn.
func (a *activation) extra() *activationExtra {
	if a.x == nil {
		a.x = &activationExtra{}
	}
	return a.x
}

// refusal returns the reply to queued messages, or nil when they are
// handled.
func (a *activation) refusal() *grainpb.Refused {
	if a.x == nil {
		return nil
	}
	return a.x.refuse
}

// contexts recycles the Contexts handed to Receive: one per activation
// would cost every idle grain 32 bytes, and one per message an allocation.
var contexts = sync.Pool{New: func() any { return new(Context) }}

// receive hands msg to the behaviour. The Context is cleared once Receive
// returns (it is valid only during Receive), then reused.
func (a *activation) receive(c *actor.Context, msg any) {
	gc := contexts.Get().(*Context)
	*gc = Context{ac: c, msg: msg, a: a}
	a.beh.Receive(gc)
	*gc = Context{}
	contexts.Put(gc)
}

func (a *activation) producer() actor.Actor { return a }

// maybeDirty reports whether a flush may have something to write.
func (a *activation) maybeDirty() bool {
	w := a.word.Load()
	return w&flagDirty != 0 || (!a.k.TrustMarkDirty && w&flagTouched != 0)
}

// push sends msg one-way to the activation, unless it has retired.
func (a *activation) push(msg any) error {
	defer a.word.Add(^(inflightOne - 1)) // minus one sender
	if a.word.Add(inflightOne)&flagClosed != 0 {
		return errRetired
	}
	return a.k.s.node.Send(a.pid(), msg)
}

// forward passes the router's current message on to the activation.
func (a *activation) forward(c *actor.Context) error {
	defer a.word.Add(^(inflightOne - 1)) // minus one sender
	if a.word.Add(inflightOne)&flagClosed != 0 {
		return errRetired
	}
	return c.Forward(a.pid())
}

// Receive implements actor.Actor.
func (a *activation) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		if a.phase() == phaseLoading {
			a.observedStart(c)
		}
		return
	case actor.Stopping:
		a.stopping(c)
		return
	case actor.Stopped:
		a.stopped()
		return
	case actor.Terminated:
		if a.x != nil && a.x.sync != nil {
			a.x.sync.terminated(c, m)
		}
		return
	case actor.Restarting:
		return
	case *ctlMsg:
		a.control(c, m)
		return
	}
	msg := c.Message()
	if env, ok := msg.(*grainpb.Envelope); ok {
		if env.Resolve {
			c.Respond(&grainpb.PID{Node: uint32(c.Self().Node), Serial: c.Self().Serial})
			return
		}
		m, err := env.GetPayload().UnmarshalNew()
		if err != nil {
			if c.IsRequest() {
				c.Respond(&grainpb.Refused{Code: uint32(rpc.InvalidArgument), Message: fmt.Sprintf("grain %v: decode the message: %v", a.id(), err)})
			}
			return
		}
		msg = m
	}
	s := a.k.s
	if r := a.refusal(); r == nil && s.fence != nil {
		if f := a.fenced(); f != fenceOK {
			a.refuseFenced(c, msg, f)
			return
		}
	}
	if r := a.refusal(); r != nil {
		s.st.refused.Add(1)
		if c.IsRequest() {
			c.Respond(r)
			return
		}
		a.reroute(c, msg, r)
		return
	}
	a.last.Store(s.now.Load())
	if a.syncRequest(c, msg) {
		return
	}
	if !a.has(flagTouched) {
		a.set(flagTouched)
	}
	a.receive(c, msg)
	if a.subscribed() {
		a.syncTurn(c)
	}
}

// maxReroutes bounds how many times a one-way message is routed again
// after activations refused it (metadataReroutes counts them).
const maxReroutes = 3

// metadataReroutes is the metadata key that counts the times a one-way
// message was routed again (reroute).
const metadataReroutes = "guild-grain-reroutes"

// reroute handles a one-way message this activation refuses (r): when the
// refusal is transient (r.Retry: the activation lost its lease, met newer
// state, or could not start for now), it routes the message again, to
// the grain's next activation or its new owner, at most maxReroutes
// times; otherwise, or past that, it drops it with a warning, as a
// request would be answered with the refusal. Without the bound, a grain
// whose every activation fails (a state that does not load) would bounce
// one message between failing activations for ever.
func (a *activation) reroute(c *actor.Context, msg any, r *grainpb.Refused) {
	s := a.k.s
	md := c.Metadata()
	n, _ := strconv.Atoi(md.Get(metadataReroutes))
	if !r.GetRetry() || n >= maxReroutes {
		s.log.Warn("grain: one-way message dropped", "grain", a.id().String(), "why", r.GetMessage(), "reroutes", n, "message", fmt.Sprintf("%T", msg))
		return
	}
	md = md.With(metadataReroutes, strconv.Itoa(n+1))
	if err := s.Send(a.id(), actor.WithMetadata(msg, md)); err != nil {
		s.log.Warn("grain: one-way message dropped", "grain", a.id().String(), "err", err)
	}
}

// Fence states of an activation; see fenced.
const (
	fenceOK     = iota // the lease the grain was claimed under is surely valid
	fenceLapsed        // it cannot be proven valid now (renewals late)
	fenceLost          // the node's lease is not the one the claim was made under
)

// fenced checks the node's lease fence for this activation. It costs an
// atomic load and a clock reading.
func (a *activation) fenced() int {
	f := a.k.s.fence
	if f == nil {
		return fenceOK
	}
	epoch, valid := f.LeaseValid()
	switch {
	case uint32(epoch) != a.epoch:
		return fenceLost
	case !valid:
		return fenceLapsed
	}
	return fenceOK
}

// refuseFenced answers a message that arrived while the fence does not
// hold: a request is refused with a retry (the caller routes it again); a
// one-way message is dropped. A lost lease also drops the activation,
// without a flush and without releasing the claim (it was made under a
// lease that is gone, and may be another node's now).
func (a *activation) refuseFenced(c *actor.Context, msg any, f int) {
	s := a.k.s
	s.st.refused.Add(1)
	if f == fenceLost {
		a.abandon(c)
	}
	why := fmt.Sprintf("grain %v: node %v cannot prove its lease still holds the grain", a.id(), s.self)
	if c.IsRequest() {
		c.Respond(&grainpb.Refused{Code: uint32(rpc.Unavailable), Message: why, Retry: true})
		return
	}
	s.log.Warn("grain: one-way message dropped", "grain", a.id().String(), "why", why, "message", fmt.Sprintf("%T", msg))
}

// abandon drops an activation whose claim's lease is gone: it writes
// nothing more and releases nothing; queued messages are refused with a
// retry, so they reach the grain's next activation.
func (a *activation) abandon(c *actor.Context) {
	a.clear(flagClaimed)
	a.set(flagStale)
	a.extra().refuse = &grainpb.Refused{Code: uint32(rpc.Unavailable), Message: fmt.Sprintf("grain %v: the node's lease was lost", a.id()), Retry: true}
	a.k.s.log.Warn("grain: the node's lease was lost; dropping the activation without a flush", "grain", a.id().String())
	a.retire(c)
}

// start claims the grain, loads its state and makes its behaviour. It runs
// in the first turn, so the grain's first messages wait behind it in the
// mailbox.
// observedStart runs start, told to Config.Observe when it is set: with
// the metadata of the message that made the activation, and with how it
// ended. A panic in the observer is recovered and logged.
func (a *activation) observedStart(c *actor.Context) {
	s := a.k.s
	obs := s.cfg.Observe
	if obs == nil {
		a.start(c)
		return
	}
	var md actor.Metadata
	if a.x != nil {
		md = a.x.trigger
		a.x.trigger = actor.Metadata{}
	}
	done := func() (done func(error)) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("grain: Config.Observe panicked", "grain", a.id().String(), "panic", r)
				done = nil
			}
		}()
		return obs(a.id(), md)
	}()
	a.start(c)
	if done == nil {
		return
	}
	var err error
	if a.phase() != phaseActive {
		err = fmt.Errorf("grain %v: the activation failed", a.id())
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("grain: the function Config.Observe returned panicked", "grain", a.id().String(), "panic", r)
		}
	}()
	done(err)
}

func (a *activation) start(c *actor.Context) {
	s := a.k.s
	id := a.id()
	if a.x != nil && a.x.prev != nil {
		// The grain's previous activation on this node is still handling
		// what was queued for it, flushing or releasing the claim: this
		// node holds the claim until then, so the claimer would let this
		// one in at once. It must not run beside it: if the previous one
		// outlasts ClaimTimeout, this one fails (its callers retry) and
		// leaves the previous one as the one to wait for (retire).
		p := a.x.prev
		a.x = nil
		t := time.NewTimer(s.cfg.ClaimTimeout)
		var why string
		select {
		case <-p.x.done:
		case <-t.C:
			why = fmt.Sprintf("grain %v: its previous activation on %v has not ended after %v", id, s.self, s.cfg.ClaimTimeout)
		case <-s.quit:
			why = fmt.Sprintf("grain %v: the System is closing", id)
		}
		t.Stop()
		if why != "" {
			a.failRetry(c, why)
			return
		}
	}
	// The claim gets its own ClaimTimeout, after any wait for the
	// previous activation.
	deadline := time.Now().Add(s.cfg.ClaimTimeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// The claim is made under the node's current lease: the activation
	// serves while that lease is surely valid (see fenced).
	var epoch uint64
	if s.fence != nil {
		var valid bool
		if epoch, valid = s.fence.LeaseValid(); !valid {
			a.failRetry(c, fmt.Sprintf("grain %v: node %v cannot prove its lease; not activating", id, s.self))
			return
		}
	}
	a.epoch = uint32(epoch)
	backoff := 10 * time.Millisecond
	var holder actor.Addr
	for {
		h, err := s.cfg.Claims.TryClaim(ctx, id, s.self)
		if err == nil && h == s.self {
			break
		}
		if err == nil {
			holder = h
		}
		if time.Now().Add(backoff).After(deadline) {
			why := fmt.Sprintf("grain %v: claim still held by %v after %v", id, holder, s.cfg.ClaimTimeout)
			if err != nil {
				why = fmt.Sprintf("grain %v: claim: %v", id, err)
			}
			a.fail(c, why)
			return
		}
		if !s.pause(backoff) {
			a.failRetry(c, fmt.Sprintf("grain %v: the System is closing", id))
			return
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
	a.set(flagClaimed)
	if a.fenced() != fenceOK {
		// The lease changed or lapsed while claiming: the claim may be
		// under a lease this node cannot vouch for. Keep it (a later
		// activation here claims it again) and let the caller retry.
		a.clear(flagClaimed)
		a.failRetry(c, fmt.Sprintf("grain %v: node %v's lease changed or lapsed while claiming", id, s.self))
		return
	}
	if a.k.State != nil {
		a.state = a.k.State()
		if err := a.load(); err != nil {
			a.fail(c, fmt.Sprintf("grain %v: load the state: %v", id, err))
			return
		}
	}
	a.beh = a.k.New(id)
	a.setPhase(phaseActive)
	s.st.activations.Add(1)
	a.receive(c, actor.Started{})
}

// load reads the stored state into a.state.
func (a *activation) load() error {
	s := a.k.s
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StoreTimeout)
	defer cancel()
	data, ver, err := s.cfg.Store.Load(ctx, a.k.Name, a.key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if data, err = encodeState(a.state); err != nil {
			return err
		}
		ver = 0
	case err != nil:
		return err
	default:
		if err := decodeState(data, a.state); err != nil {
			return err
		}
	}
	a.version, a.hash = ver, maphash.Bytes(s.seed, data)
	return nil
}

// fail ends an activation that could not claim or load the grain: the
// messages queued for it are refused.
func (a *activation) fail(c *actor.Context, why string) {
	a.k.s.st.failed.Add(1)
	a.k.s.log.Error("grain: activation failed", "grain", a.id().String(), "why", why)
	a.extra().refuse = &grainpb.Refused{Code: uint32(rpc.Unavailable), Message: why}
	a.retire(c)
}

// failRetry is fail for a transient cause: the messages queued for the
// activation are refused with a retry.
func (a *activation) failRetry(c *actor.Context, why string) {
	a.k.s.st.failed.Add(1)
	a.k.s.log.Warn("grain: activation failed; callers retry", "grain", a.id().String(), "why", why)
	a.extra().refuse = &grainpb.Refused{Code: uint32(rpc.Unavailable), Message: why, Retry: true}
	a.retire(c)
}

// control handles the messages of the sweeper, the rebalancer and Close.
func (a *activation) control(c *actor.Context, m *ctlMsg) {
	if m == ctlIdle || m == ctlFlush {
		a.clear(flagCtlQueued)
	}
	if a.phase() != phaseActive {
		return
	}
	s := a.k.s
	switch m.op {
	case opFlush:
		_ = a.flush(c)
		return
	case opIdle:
		if s.now.Load()-a.last.Load() < int64(a.k.IdleTimeout) {
			return // a message came since the sweep
		}
		if a.subscribed() {
			return // clients watch it: it stays while their sessions do
		}
	case opHandover:
		if h, ok := s.view.Load().owner(a.id(), s.skip()); !ok || h.addr == s.self {
			return // the view changed back
		}
		s.st.handovers.Add(1)
	}
	backoff := 50 * time.Millisecond
	for {
		err := a.flush(c)
		if err == nil {
			break
		}
		if errors.Is(err, ErrStale) {
			return // flush retired the activation
		}
		if m.op != opClose || time.Now().Add(backoff).After(m.deadline) {
			// Stay active with the state in memory; the sweeper asks again.
			if m.op == opHandover {
				s.recheck.Store(true)
			}
			return
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
	a.retire(c)
}

// flush writes the state if it changed since the last flush.
func (a *activation) flush(c *actor.Context) error {
	if a.state == nil || a.word.Load()&(flagStale|flagClaimed) != flagClaimed {
		return nil
	}
	if !a.maybeDirty() {
		return nil
	}
	s := a.k.s
	data, err := encodeState(a.state)
	if err != nil {
		s.st.flushErrors.Add(1)
		s.log.Error("grain: encode the state", "grain", a.id().String(), "err", err)
		return fmt.Errorf("%w: %w", errEncode, err)
	}
	h := maphash.Bytes(s.seed, data)
	a.clear(flagTouched)
	if h == a.hash {
		a.clear(flagDirty)
		return nil // handled messages, changed nothing
	}
	// Write only while the claim's lease surely holds: once it may have
	// expired, another activation may have loaded the state already.
	switch a.fenced() {
	case fenceLapsed:
		a.set(flagTouched) // still to write
		s.st.flushErrors.Add(1)
		return fmt.Errorf("grain: flush %v: %w", a.id(), ErrFenced)
	case fenceLost:
		s.st.flushErrors.Add(1)
		a.abandon(c)
		return fmt.Errorf("grain: flush %v: %w: %w", a.id(), ErrStale, ErrFenced)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StoreTimeout)
	began := time.Now()
	ver, err := s.cfg.Store.Save(ctx, a.k.Name, a.key, data, a.version)
	s.st.saveNanos.Add(uint64(time.Since(began)))
	s.st.saves.Add(1)
	cancel()
	if errors.Is(err, store.ErrVersionConflict) {
		s.st.conflicts.Add(1)
		s.log.Warn("grain: stale activation: the stored state is newer; deactivating without a flush", "grain", a.id().String(), "version", a.version, "err", err)
		a.set(flagStale)
		a.extra().refuse = &grainpb.Refused{Code: uint32(rpc.Unavailable), Message: fmt.Sprintf("grain %v: the activation was stale", a.id()), Retry: true}
		a.retire(c)
		return ErrStale
	}
	if err != nil {
		a.set(flagTouched) // still to write
		s.st.flushErrors.Add(1)
		s.log.Warn("grain: flush failed; the state stays dirty", "grain", a.id().String(), "err", err)
		return fmt.Errorf("grain: flush %v: %w", a.id(), err)
	}
	a.version, a.hash = ver, h
	a.clear(flagDirty)
	a.flushedAt.Store(s.now.Load())
	s.st.flushes.Add(1)
	return nil
}

// retire takes the activation out of the table, waits for the senders
// that found it there to finish their push, and poisons it: the messages
// already queued are handled (or refused), then it stops, flushes once
// more if needed and releases its claim. A new activation of the same
// grain on this node waits for that.
func (a *activation) retire(c *actor.Context) {
	if p := a.phase(); p == phaseDraining || p == phaseDone {
		return
	}
	a.setPhase(phaseDraining)
	id := a.id()
	h, sh := a.k.s.shardOf(id)
	x := a.extra()
	sh.mu.Lock()
	sh.remove(h, id, a)
	x.done = make(chan struct{})
	// The next activation here waits for this one, unless an earlier one
	// is still ending and this one never claimed the grain (it failed
	// waiting for that one): the next must wait for the earlier one
	// then, which stopped removes from closing itself.
	if sh.closing[id] == nil || a.has(flagClaimed) {
		sh.closing[id] = a
	}
	a.set(flagClosed)
	sh.mu.Unlock()
	for a.word.Load() >= inflightOne {
		runtime.Gosched()
	}
	_ = c.Poison(c.Self())
}

// stopping runs when the actor stops: the behaviour sees Stopping, the
// state is flushed a last time, and the claim is released.
func (a *activation) stopping(c *actor.Context) {
	s := a.k.s
	if s.aborted.Load() {
		return
	}
	if a.beh != nil && a.refusal() == nil {
		a.receive(c, actor.Stopping{})
	}
	a.syncEnd(c)
	// The last flush is tried until it succeeds: the claim is released
	// only once the state is stored, so that the next activation, here or
	// on another node, loads every change this one acknowledged. Meanwhile
	// the grain is unavailable (a next activation here waits, then fails
	// with a retry; other nodes find the claim held). Only a state that
	// cannot be encoded, or the System's end, gives up.
	backoff := 50 * time.Millisecond
	for i := 0; a.refusal() == nil; i++ {
		err := a.flush(c)
		if err == nil || errors.Is(err, ErrStale) {
			break
		}
		if errors.Is(err, errEncode) {
			s.log.Error("grain: the last flush cannot encode the state; the grain's latest changes are lost", "grain", a.id().String(), "err", err)
			break
		}
		if i == 4 {
			s.log.Error("grain: the last flush keeps failing; the grain stays claimed, and unavailable, until it succeeds", "grain", a.id().String(), "err", err)
		}
		if !s.pause(backoff) {
			s.log.Error("grain: the last flush failed and the System is closing; the grain's latest changes are lost", "grain", a.id().String(), "err", err)
			break
		}
		backoff = min(2*backoff, time.Second)
	}
	if a.has(flagClaimed) {
		a.release()
		a.clear(flagClaimed)
	}
}

// release gives up the activation's claim, trying until it succeeds: a
// claim left behind would keep the grain from every other node for as
// long as this node's lease lives. It stops trying when the node's lease
// is not the one the claim was made under (the claim went with it) or
// the System is closing.
func (a *activation) release() {
	s := a.k.s
	backoff := 50 * time.Millisecond
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), min(s.cfg.StoreTimeout, releaseTimeout))
		err := s.cfg.Claims.Release(ctx, a.id(), s.self)
		cancel()
		if err == nil {
			return
		}
		if a.fenced() == fenceLost {
			return // the claim was made under a lease that is gone
		}
		if i == 0 {
			s.log.Warn("grain: release the claim; trying again until it succeeds", "grain", a.id().String(), "err", err)
		}
		if !s.pause(backoff) {
			s.log.Warn("grain: the System is closing before the claim could be released; it goes with the node's lease", "grain", a.id().String(), "err", err)
			return
		}
		backoff = min(2*backoff, time.Second)
	}
}

// stopped takes the stopped activation out of the table.
func (a *activation) stopped() {
	s := a.k.s
	id := a.id()
	h, sh := s.shardOf(id)
	sh.mu.Lock()
	sh.remove(h, id, a)
	if sh.closing[id] == a {
		delete(sh.closing, id)
	}
	a.set(flagClosed)
	sh.mu.Unlock()
	if a.x != nil && a.x.done != nil {
		close(a.x.done)
	}
	a.setPhase(phaseDone)
	a.beh, a.state = nil, nil
	s.st.deactivations.Add(1)
	s.live.Add(-1)
}

// encodeState encodes a state value: protobuf's binary form
// (deterministic, so equal states hash alike) for a proto.Message, JSON
// otherwise.
func encodeState(v any) ([]byte, error) {
	if m, ok := v.(proto.Message); ok {
		return proto.MarshalOptions{Deterministic: true}.Marshal(m)
	}
	return json.Marshal(v)
}

func decodeState(data []byte, v any) error {
	if m, ok := v.(proto.Message); ok {
		return proto.Unmarshal(data, m)
	}
	return json.Unmarshal(data, v)
}
