package grain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"time"

	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/grain/grainpb"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/store"
)

// errRetired: the activation left the table between a sender's lookup and
// its push; the sender routes again.
var errRetired = errors.New("grain: activation retired")

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
// table entry senders find it by. It is both, to keep an idle grain small.
type activation struct {
	s    *System
	k    *Kind
	id   Identity
	pid  actor.PID   // set under the shard lock after the spawn
	prev *activation // a deactivating activation of id on this node, to wait for

	beh     Actor
	state   any
	version uint64 // the stored version the state was loaded at or last saved as
	hash    uint64 // hash of the state's encoding at load or at the last flush
	ctx     Context
	phase   uint8
	claimed bool
	stale   bool
	refuse  *grainpb.Refused // set: queued messages are refused, not handled
	done    chan struct{}    // made at retire; closed once the claim is released

	last      atomic.Int64 // coarse time of the last message
	flushedAt atomic.Int64 // coarse time of the last flush
	touched   atomic.Bool  // a message was handled since the last flush
	dirty     atomic.Bool  // MarkDirty was called since the last flush
	closed    atomic.Bool  // out of the table: senders route again
	ctlQueued atomic.Bool  // a sweeper message is queued
	inflight  atomic.Int32 // senders between their check of closed and their push
}

func (a *activation) producer() actor.Actor { return a }

// maybeDirty reports whether a flush may have something to write.
func (a *activation) maybeDirty() bool {
	return a.dirty.Load() || (!a.k.TrustMarkDirty && a.touched.Load())
}

// push sends msg one-way to the activation, unless it has retired.
func (a *activation) push(msg any) error {
	a.inflight.Add(1)
	defer a.inflight.Add(-1)
	if a.closed.Load() {
		return errRetired
	}
	return a.s.node.Send(a.pid, msg)
}

// forward passes the router's current message on to the activation.
func (a *activation) forward(c *actor.Context) error {
	a.inflight.Add(1)
	defer a.inflight.Add(-1)
	if a.closed.Load() {
		return errRetired
	}
	return c.Forward(a.pid)
}

// Receive implements actor.Actor.
func (a *activation) Receive(c *actor.Context) {
	switch m := c.Message().(type) {
	case actor.Started:
		if a.phase == phaseLoading {
			a.start(c)
		}
		return
	case actor.Stopping:
		a.stopping(c)
		return
	case actor.Stopped:
		a.stopped()
		return
	case actor.Restarting, actor.Terminated:
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
				c.Respond(&grainpb.Refused{Code: uint32(rpc.InvalidArgument), Message: fmt.Sprintf("grain %v: decode the message: %v", a.id, err)})
			}
			return
		}
		msg = m
	}
	if a.refuse != nil {
		a.s.st.refused.Add(1)
		if c.IsRequest() {
			c.Respond(a.refuse)
			return
		}
		// A one-way message this activation will not handle: route it
		// again (to this grain's next activation or its new owner).
		if err := a.s.Send(a.id, msg); err != nil {
			a.s.log.Warn("grain: one-way message dropped", "grain", a.id.String(), "err", err)
		}
		return
	}
	a.last.Store(a.s.now.Load())
	a.touched.Store(true)
	a.ctx.ac, a.ctx.msg = c, msg
	a.beh.Receive(&a.ctx)
	a.ctx.ac, a.ctx.msg = nil, nil
}

// start claims the grain, loads its state and makes its behaviour. It runs
// in the first turn, so the grain's first messages wait behind it in the
// mailbox.
func (a *activation) start(c *actor.Context) {
	s := a.s
	deadline := time.Now().Add(s.cfg.ClaimTimeout)
	if p := a.prev; p != nil {
		a.prev = nil
		t := time.NewTimer(s.cfg.ClaimTimeout)
		select {
		case <-p.done:
		case <-t.C:
		}
		t.Stop()
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	backoff := 10 * time.Millisecond
	var holder actor.Addr
	for {
		h, err := s.cfg.Claims.TryClaim(ctx, a.id, s.self)
		if err == nil && h == s.self {
			break
		}
		if err == nil {
			holder = h
		}
		if time.Now().Add(backoff).After(deadline) {
			why := fmt.Sprintf("grain %v: claim still held by %v after %v", a.id, holder, s.cfg.ClaimTimeout)
			if err != nil {
				why = fmt.Sprintf("grain %v: claim: %v", a.id, err)
			}
			a.fail(c, why)
			return
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 250*time.Millisecond)
	}
	a.claimed = true
	if a.k.State != nil {
		a.state = a.k.State()
		if err := a.load(); err != nil {
			a.fail(c, fmt.Sprintf("grain %v: load the state: %v", a.id, err))
			return
		}
	}
	a.beh = a.k.New(a.id)
	a.phase = phaseActive
	s.st.activations.Add(1)
	a.ctx.a = a
	a.ctx.ac, a.ctx.msg = c, actor.Started{}
	a.beh.Receive(&a.ctx)
	a.ctx.ac, a.ctx.msg = nil, nil
}

// load reads the stored state into a.state.
func (a *activation) load() error {
	ctx, cancel := context.WithTimeout(context.Background(), a.s.cfg.StoreTimeout)
	defer cancel()
	data, ver, err := a.s.cfg.Store.Load(ctx, a.id.Kind, a.id.Key)
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
	a.version, a.hash = ver, maphash.Bytes(a.s.seed, data)
	return nil
}

// fail ends an activation that could not claim or load the grain: the
// messages queued for it are refused.
func (a *activation) fail(c *actor.Context, why string) {
	a.s.st.failed.Add(1)
	a.s.log.Error("grain: activation failed", "grain", a.id.String(), "why", why)
	a.refuse = &grainpb.Refused{Code: uint32(rpc.Unavailable), Message: why}
	a.retire(c)
}

// control handles the messages of the sweeper, the rebalancer and Close.
func (a *activation) control(c *actor.Context, m *ctlMsg) {
	if m == ctlIdle || m == ctlFlush {
		a.ctlQueued.Store(false)
	}
	if a.phase != phaseActive {
		return
	}
	s := a.s
	switch m.op {
	case opFlush:
		_ = a.flush(c)
		return
	case opIdle:
		if s.now.Load()-a.last.Load() < int64(a.k.IdleTimeout) {
			return // a message came since the sweep
		}
	case opHandover:
		if h, ok := s.view.Load().owner(a.id, s.skip()); !ok || h.addr == s.self {
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
	if a.state == nil || a.stale || !a.claimed {
		return nil
	}
	if !a.maybeDirty() {
		return nil
	}
	s := a.s
	data, err := encodeState(a.state)
	if err != nil {
		s.st.flushErrors.Add(1)
		s.log.Error("grain: encode the state", "grain", a.id.String(), "err", err)
		return err
	}
	h := maphash.Bytes(s.seed, data)
	a.touched.Store(false)
	if h == a.hash {
		a.dirty.Store(false)
		return nil // handled messages, changed nothing
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StoreTimeout)
	ver, err := s.cfg.Store.Save(ctx, a.id.Kind, a.id.Key, data, a.version)
	cancel()
	if errors.Is(err, store.ErrVersionConflict) {
		s.st.conflicts.Add(1)
		s.log.Warn("grain: stale activation: the stored state is newer; deactivating without a flush", "grain", a.id.String(), "version", a.version, "err", err)
		a.stale = true
		a.refuse = &grainpb.Refused{Code: uint32(rpc.Unavailable), Message: fmt.Sprintf("grain %v: the activation was stale", a.id), Retry: true}
		a.retire(c)
		return ErrStale
	}
	if err != nil {
		a.touched.Store(true) // still to write
		s.st.flushErrors.Add(1)
		s.log.Warn("grain: flush failed; the state stays dirty", "grain", a.id.String(), "err", err)
		return fmt.Errorf("grain: flush %v: %w", a.id, err)
	}
	a.version, a.hash = ver, h
	a.dirty.Store(false)
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
	if a.phase == phaseDraining || a.phase == phaseDone {
		return
	}
	a.phase = phaseDraining
	sh := a.s.shardOf(a.id)
	sh.mu.Lock()
	if sh.active[a.id] == a {
		delete(sh.active, a.id)
	}
	a.done = make(chan struct{})
	sh.closing[a.id] = a
	a.closed.Store(true)
	sh.mu.Unlock()
	for a.inflight.Load() != 0 {
		runtime.Gosched()
	}
	_ = c.Poison(c.Self())
}

// stopping runs when the actor stops: the behaviour sees Stopping, the
// state is flushed a last time, and the claim is released.
func (a *activation) stopping(c *actor.Context) {
	if a.s.aborted.Load() {
		return
	}
	if a.beh != nil && a.refuse == nil {
		a.ctx.ac, a.ctx.msg = c, actor.Stopping{}
		a.beh.Receive(&a.ctx)
		a.ctx.ac, a.ctx.msg = nil, nil
	}
	backoff := 50 * time.Millisecond
	for i := 0; a.refuse == nil; i++ {
		err := a.flush(c)
		if err == nil || errors.Is(err, ErrStale) {
			break
		}
		if i == 4 {
			a.s.log.Error("grain: the last flush failed; the grain's latest changes are lost", "grain", a.id.String(), "err", err)
			break
		}
		time.Sleep(backoff)
		backoff *= 2
	}
	if a.claimed {
		ctx, cancel := context.WithTimeout(context.Background(), a.s.cfg.StoreTimeout)
		if err := a.s.cfg.Claims.Release(ctx, a.id, a.s.self); err != nil {
			a.s.log.Warn("grain: release the claim", "grain", a.id.String(), "err", err)
		}
		cancel()
		a.claimed = false
	}
}

// stopped takes the stopped activation out of the table.
func (a *activation) stopped() {
	s := a.s
	sh := s.shardOf(a.id)
	sh.mu.Lock()
	if sh.active[a.id] == a {
		delete(sh.active, a.id)
	}
	if sh.closing[a.id] == a {
		delete(sh.closing, a.id)
	}
	a.closed.Store(true)
	sh.mu.Unlock()
	if a.done != nil {
		close(a.done)
	}
	a.phase = phaseDone
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
