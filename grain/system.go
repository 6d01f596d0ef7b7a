package grain

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/grain/grainpb"
	"github.com/guildkit/guild/rpc"
)

// numShards splits the activation table so that activations on different
// keys rarely contend.
const numShards = 64

// maxAttempts bounds how often Send, Call and Request route a message
// again after it was certainly not handled (the activation was
// deactivating, a handover was in progress).
const maxAttempts = 8

// System runs the grains of one node and routes messages to grains
// anywhere in the cluster. Its methods are safe for concurrent use.
//
// Goroutines: one sweeper (idle deactivation and periodic flushes for all
// the node's grains) and the membership subscription's callbacks; an idle
// grain holds none. Close ends them.
type System struct {
	cfg   Config
	node  *actor.Node
	self  actor.Addr
	log   *slog.Logger
	kinds map[string]*hostedKind
	seed  maphash.Seed

	shards [numShards]shard
	view   atomic.Pointer[hostView]
	viewMu sync.Mutex // serialises view rebuilds and rebalancing
	router actor.PID

	now     atomic.Int64 // coarse clock (UnixNano), advanced by the sweeper
	tick    time.Duration
	live    atomic.Int64 // activations from spawn to Stopped
	closing atomic.Bool
	recheck atomic.Bool // a handover failed: the sweeper checks ownership again
	aborted atomic.Bool // abort: activations stop without flushing or releasing, as in a crash
	members cluster.Membership
	ownMs   bool // members was made by Start, and is closed by Close
	joined  bool // Start joined the membership, so Close leaves
	unsub   func()

	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	st struct {
		activations, deactivations, handovers, flushes, flushErrors,
		conflicts, forwarded, refused, failed atomic.Uint64
	}
}

// shard is one part of the activation table.
//
// The activations that take messages are keyed by the hash of their
// identity (hashID), which is smaller than the identity: a million idle
// grains are a million entries. An activation whose hash another holds
// already goes to more, keyed by its identity; that map stays nil unless
// two identities collide.
type shard struct {
	mu      sync.RWMutex
	active  map[uint64]*activation   // the activations that take messages, by hashID
	more    map[Identity]*activation // like active, for the ids whose hash another holds
	closing map[Identity]*activation // deactivating: a new activation of the id waits for it
}

// get returns the activation of id (hash h) that takes messages, or nil.
// The caller holds sh.mu.
func (sh *shard) get(h uint64, id Identity) *activation {
	if a := sh.active[h]; a != nil && a.key == id.Key && a.k.Name == id.Kind {
		return a
	}
	if sh.more != nil {
		return sh.more[id]
	}
	return nil
}

// add puts a, of id (hash h), in the table; it has no activation yet. The
// caller holds sh.mu for writing.
func (sh *shard) add(h uint64, id Identity, a *activation) {
	if _, taken := sh.active[h]; !taken {
		sh.active[h] = a
		return
	}
	if sh.more == nil {
		sh.more = make(map[Identity]*activation)
	}
	sh.more[id] = a
}

// remove takes a, of id (hash h), out of the table if it is there. The
// caller holds sh.mu for writing.
func (sh *shard) remove(h uint64, id Identity, a *activation) {
	if sh.active[h] == a {
		delete(sh.active, h)
		return
	}
	if sh.more[id] == a {
		delete(sh.more, id)
		if len(sh.more) == 0 {
			sh.more = nil
		}
	}
}

// each calls f for every activation in the table. The caller holds sh.mu.
func (sh *shard) each(f func(a *activation)) {
	for _, a := range sh.active {
		f(a)
	}
	for _, a := range sh.more {
		f(a)
	}
}

// Stats is a snapshot of a System's counters.
type Stats struct {
	Active        int64  // activations alive now (loading, active or deactivating)
	Activations   uint64 // activations that loaded their state and ran New
	Deactivations uint64 // activations stopped (idle, handover, close or failure)
	Handovers     uint64 // deactivations because another node became the owner
	Flushes       uint64 // successful writes of state to the Store
	FlushErrors   uint64 // failed writes (the state stays dirty and is retried)
	Conflicts     uint64 // flushes refused with store.ErrVersionConflict: stale activations
	Forwarded     uint64 // messages this node's router forwarded to another node
	Refused       uint64 // messages refused (too many hops, no host, failed activation)
	Failed        uint64 // activations that could not claim or load the grain
}

// Node returns the actor node the System runs on.
func (s *System) Node() *actor.Node { return s.node }

// Stats returns the System's counters.
func (s *System) Stats() Stats {
	return Stats{
		Active:        s.live.Load(),
		Activations:   s.st.activations.Load(),
		Deactivations: s.st.deactivations.Load(),
		Handovers:     s.st.handovers.Load(),
		Flushes:       s.st.flushes.Load(),
		FlushErrors:   s.st.flushErrors.Load(),
		Conflicts:     s.st.conflicts.Load(),
		Forwarded:     s.st.forwarded.Load(),
		Refused:       s.st.refused.Load(),
		Failed:        s.st.failed.Load(),
	}
}

// Start validates cfg, spawns the node's grain router, publishes the
// hosted kinds in the node's membership record and waits until the
// node's own view shows them (or ctx ends).
func Start(ctx context.Context, cfg Config) (*System, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &System{
		cfg:   cfg,
		node:  cfg.Node,
		self:  cfg.Node.Addr(),
		log:   cfg.Logger.With("component", "grain"),
		kinds: make(map[string]*hostedKind, len(cfg.Kinds)),
		seed:  maphash.MakeSeed(),
		quit:  make(chan struct{}),
	}
	s.tick = time.Second
	for _, k := range cfg.Kinds {
		k = k.withDefaults()
		s.kinds[k.Name] = &hostedKind{Kind: k, s: s}
		s.tick = min(s.tick, k.IdleTimeout/4)
		if k.FlushEvery > 0 {
			s.tick = min(s.tick, k.FlushEvery/4)
		}
	}
	s.tick = max(s.tick, 5*time.Millisecond)
	for i := range s.shards {
		s.shards[i].active = make(map[uint64]*activation)
		s.shards[i].closing = make(map[Identity]*activation)
	}
	s.now.Store(time.Now().UnixNano())
	s.view.Store(&hostView{kinds: map[string][]host{}})

	router, err := s.node.SpawnFunc(s.routerReceive)
	if err != nil {
		return nil, fmt.Errorf("grain: spawn the router: %w", err)
	}
	s.router = router
	fail := func(err error) (*System, error) {
		_ = s.node.Stop(router)
		if s.unsub != nil {
			s.unsub()
		}
		if s.ownMs {
			_ = s.members.Close()
		}
		return nil, err
	}
	s.members = cfg.Membership
	if s.members == nil {
		s.members, s.ownMs = cluster.NewLocal(s.self), true
	}
	s.unsub = s.members.Subscribe(func(cluster.Event) { s.refreshView() })
	if err := s.publish(ctx, true); err != nil {
		return fail(err)
	}
	// Wait until this node's view shows its own record, so that a message
	// sent right after Start finds this node among the hosts.
	for {
		s.refreshView()
		if s.viewHasSelf() {
			break
		}
		select {
		case <-ctx.Done():
			return fail(fmt.Errorf("grain: waiting for this node's record in the view: %w", ctx.Err()))
		case <-time.After(2 * time.Millisecond):
		}
	}
	s.wg.Add(1)
	go s.sweep()
	return s, nil
}

// viewHasSelf reports whether the view lists this node as a host of every
// kind it hosts, with its router.
func (s *System) viewHasSelf() bool {
	if len(s.kinds) == 0 {
		return true
	}
	v := s.view.Load()
	for name := range s.kinds {
		if !slices.Contains(v.kinds[name], host{addr: s.self, router: s.router}) {
			return false
		}
	}
	return true
}

// publish puts the hosted kinds and the router in this node's record (on
// is true), or takes the kinds out (on Close). When the node is not in its
// own view it joins; when the membership says it has joined already (its
// view lags its own record), it waits for the record.
func (s *System) publish(ctx context.Context, on bool) error {
	for {
		rec, found := s.ownRecord()
		if !found && !on {
			return nil
		}
		if !found {
			rec = cluster.Member{Addr: s.self, Available: true}
		}
		rec.Services = slices.DeleteFunc(rec.Services, func(sv string) bool {
			kind, ok := strings.CutPrefix(sv, servicePrefix)
			return ok && s.kinds[kind] != nil
		})
		if on {
			var mine []string
			for name := range s.kinds {
				mine = append(mine, serviceName(name))
			}
			slices.Sort(mine)
			rec.Services = append(rec.Services, mine...)
		}
		if rec.Meta == nil {
			rec.Meta = map[string]string{}
		}
		rec.Meta[routerMeta] = s.router.String()
		var err error
		if found {
			err = s.members.Update(ctx, rec)
		} else if err = s.members.Join(ctx, rec); err == nil {
			s.joined = true
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, cluster.ErrAlreadyJoined):
			select {
			case <-ctx.Done():
				return fmt.Errorf("grain: waiting for this node's record: %w", ctx.Err())
			case <-time.After(2 * time.Millisecond):
			}
		default:
			return fmt.Errorf("grain: publish this node's kinds: %w", err)
		}
	}
}

// ownRecord returns this node's record in its view.
func (s *System) ownRecord() (cluster.Member, bool) {
	for _, m := range s.members.Members() {
		if m.Addr == s.self {
			return m, true
		}
	}
	return cluster.Member{}, false
}

// refreshView rebuilds the placement view from the membership and, when it
// changed, hands over the grains this node no longer owns.
func (s *System) refreshView() {
	s.viewMu.Lock()
	defer s.viewMu.Unlock()
	v := buildView(s.members.Members())
	if v.equal(s.view.Load()) {
		return
	}
	s.view.Store(v)
	s.rebalance(v)
}

// rebalance asks every activation whose owner is now another node to
// hand over: flush, release the claim, stop. The new owner activates the
// grain on its next message.
func (s *System) rebalance(v *hostView) {
	skip := s.skip()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		sh.each(func(a *activation) {
			if h, ok := v.owner(a.id(), skip); ok && h.addr != s.self {
				_ = s.node.Send(a.pid(), ctlHandover)
			}
		})
		sh.mu.RUnlock()
	}
}

// skip is the address placement must skip: this node while it closes.
func (s *System) skip() actor.Addr {
	if s.closing.Load() {
		return s.self
	}
	return 0
}

// shardOf returns the hash of id and its shard.
func (s *System) shardOf(id Identity) (uint64, *shard) {
	h := hashID(id)
	return h, &s.shards[h%numShards]
}

// lookup returns the activation of id that takes messages here, or nil.
func (s *System) lookup(id Identity) *activation {
	h, sh := s.shardOf(id)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.get(h, id)
}

// locate finds where a message for id goes: a local activation (spawned
// if this node owns id and none is active), or the router of the owner.
func (s *System) locate(id Identity) (*activation, actor.PID, error) {
	if a := s.lookup(id); a != nil {
		return a, actor.PID{}, nil
	}
	h, ok := s.view.Load().owner(id, s.skip())
	if !ok {
		return nil, actor.PID{}, s.noHost(id)
	}
	if h.addr != s.self {
		return nil, h.router, nil
	}
	a, err := s.activate(id)
	if err != nil {
		return nil, actor.PID{}, err
	}
	if a == nil { // closing meanwhile: route again, skipping this node
		h, ok := s.view.Load().owner(id, s.self)
		if !ok {
			return nil, actor.PID{}, s.noHost(id)
		}
		return nil, h.router, nil
	}
	return a, actor.PID{}, nil
}

func (s *System) noHost(id Identity) error {
	return unavailable(fmt.Sprintf("no node hosts kind %q (grain %v)", id.Kind, id), ErrUnknownKind)
}

// activate returns the activation of id on this node, spawning it when
// there is none. It returns nil when the System is closing.
func (s *System) activate(id Identity) (*activation, error) {
	k := s.kinds[id.Kind]
	if k == nil {
		return nil, unavailable(fmt.Sprintf("kind %q is not hosted on %v", id.Kind, s.self), ErrUnknownKind)
	}
	h, sh := s.shardOf(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if a := sh.get(h, id); a != nil {
		return a, nil
	}
	if s.closing.Load() {
		return nil, nil
	}
	a := &activation{k: k, key: id.Key}
	if p := sh.closing[id]; p != nil {
		a.x = &activationExtra{prev: p}
	}
	a.last.Store(s.now.Load())
	a.flushedAt.Store(s.now.Load())
	pid, err := s.node.Spawn(a.producer, k.SpawnOptions...)
	if err != nil {
		return nil, fmt.Errorf("grain: activate %v: %w", id, err)
	}
	a.serial = pid.Serial
	s.live.Add(1)
	sh.add(h, id, a)
	return a, nil
}

// Send sends msg one-way to the grain id, activating it if needed. A
// message for a grain on another node must be a proto.Message. Send
// returns once msg is queued on this node (locally, or for the
// network); it is not told whether the grain handled it.
func (s *System) Send(id Identity, msg any) error {
	if err := s.checkID(id); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		a, router, err := s.locate(id)
		if err != nil {
			return err
		}
		if a != nil {
			err = a.push(msg)
		} else {
			var env *grainpb.Envelope
			if env, err = s.wrap(id, msg); err != nil {
				return err
			}
			err = s.node.Send(router, env)
		}
		if errors.Is(err, errRetired) || (errors.Is(err, actor.ErrActorNotFound) && attempt < maxAttempts) {
			continue
		}
		return err
	}
}

// Call sends msg to the grain id, activating it if needed, and waits for
// the reply, as actor.Node.Call does. A message for a grain on another node
// must be a proto.Message, and so must its reply. A message that was
// certainly not handled (it met a handover) is sent again, a few times at
// most.
func (s *System) Call(ctx context.Context, id Identity, msg any) (any, error) {
	if err := s.checkID(id); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		reply, err, retry := s.callOnce(ctx, id, msg)
		if !retry || attempt >= maxAttempts || ctx.Err() != nil {
			return reply, err
		}
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 10 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
}

func (s *System) callOnce(ctx context.Context, id Identity, msg any) (reply any, err error, retry bool) {
	a, router, err := s.locate(id)
	if err != nil {
		return nil, err, false
	}
	if a != nil {
		reply, err = s.node.Call(ctx, a.pid(), msg)
	} else {
		env, werr := s.wrap(id, msg)
		if werr != nil {
			return nil, werr, false
		}
		reply, err = s.node.Call(ctx, router, env)
	}
	return answer(reply, err)
}

// answer turns a Refused reply into an error, and says whether the
// message was certainly not handled.
func answer(reply any, err error) (any, error, bool) {
	if err != nil {
		return nil, err, errors.Is(err, actor.ErrActorNotFound)
	}
	if r, ok := reply.(*grainpb.Refused); ok {
		return nil, refusedErr(r), r.GetRetry()
	}
	return reply, nil, false
}

// Request sends msg to the grain id and returns at once; cb runs once, on a
// goroutine of its own, with the reply or an error (ErrTimeout after
// timeout; 0 means the node's RequestTimeout, 5s unless configured).
func (s *System) Request(id Identity, msg any, timeout time.Duration, cb actor.ReplyFunc) error {
	if err := s.checkID(id); err != nil {
		return err
	}
	if s.closing.Load() {
		return ErrClosed
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		reply, err := s.Call(ctx, id, msg)
		if errors.Is(err, context.DeadlineExceeded) {
			err = actor.ErrTimeout
		}
		cb(reply, err)
	}()
	return nil
}

// ResolveGrain returns the PID of the grain's activation, activating it if
// needed: it implements rpc.GrainResolver. The PID is valid until the grain
// deactivates; a message sent to it afterwards fails with
// actor.ErrActorNotFound, and the caller should resolve again. Prefer
// Send and Call, which do that themselves.
func (s *System) ResolveGrain(ctx context.Context, kind, key string) (actor.PID, error) {
	id := Identity{kind, key}
	if err := s.checkID(id); err != nil {
		return actor.PID{}, err
	}
	for attempt := 0; ; attempt++ {
		a, router, err := s.locate(id)
		if err != nil {
			return actor.PID{}, err
		}
		if a != nil {
			return a.pid(), nil
		}
		reply, err := s.node.Call(ctx, router, &grainpb.Envelope{Kind: kind, Key: key, Resolve: true, MaxHops: uint32(s.cfg.MaxHops)})
		reply, err, retry := answer(reply, err)
		if retry && attempt < maxAttempts && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return actor.PID{}, err
		}
		p, ok := reply.(*grainpb.PID)
		if !ok {
			return actor.PID{}, fmt.Errorf("grain: resolve %v: unexpected reply %T", id, reply)
		}
		return actor.PID{Node: actor.Addr(p.Node), Serial: p.Serial}, nil
	}
}

var _ rpc.GrainResolver = (*System)(nil)

func (s *System) checkID(id Identity) error {
	if id.Kind == "" {
		return fmt.Errorf("%w: identity %q has no kind", ErrUnknownKind, id)
	}
	return nil
}

// wrap puts msg in an Envelope for the router of another node.
func (s *System) wrap(id Identity, msg any) (*grainpb.Envelope, error) {
	pm, ok := msg.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%w: %T for %v", ErrNotProto, msg, id)
	}
	payload, err := anypb.New(pm)
	if err != nil {
		return nil, fmt.Errorf("grain: encode %T for %v: %w", msg, id, err)
	}
	return &grainpb.Envelope{Kind: id.Kind, Key: id.Key, Payload: payload, MaxHops: uint32(s.cfg.MaxHops)}, nil
}

// unavailable builds the error of a refused message: it matches
// ErrUnavailable, cause, and an *rpc.Status of code Unavailable.
func unavailable(msg string, cause error) error {
	if cause == nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, rpc.Error(rpc.Unavailable, msg))
	}
	return fmt.Errorf("%w: %w: %w", ErrUnavailable, cause, rpc.Error(rpc.Unavailable, msg))
}

func refusedErr(r *grainpb.Refused) error {
	if rpc.Code(r.GetCode()) == rpc.Unavailable {
		return unavailable(r.GetMessage(), nil)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, rpc.Error(rpc.Code(r.GetCode()), r.GetMessage()))
}

// routerReceive is the behaviour of the node's grain router, the actor
// that other nodes send grain messages to. It runs no IO: it finds or
// spawns the activation and forwards the envelope to it, with the original
// sender, so the activation answers the caller directly.
func (s *System) routerReceive(c *actor.Context) {
	env, ok := c.Message().(*grainpb.Envelope)
	if !ok {
		return
	}
	id := Identity{env.Kind, env.Key}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		a, router, err := s.locate(id)
		if err != nil {
			s.refuse(c, env, err.Error(), false)
			return
		}
		if a == nil {
			if env.Hops >= env.MaxHops {
				s.refuse(c, env, fmt.Sprintf("grain %v: forwarded %d times; the nodes' views disagree", id, env.Hops), true)
				return
			}
			env.Hops++
			s.st.forwarded.Add(1)
			if err := c.Forward(router); err != nil {
				s.refuse(c, env, err.Error(), true)
			}
			return
		}
		if env.Resolve {
			c.Respond(&grainpb.PID{Node: uint32(s.self), Serial: a.serial})
			return
		}
		err = a.forward(c)
		if errors.Is(err, errRetired) || errors.Is(err, actor.ErrActorNotFound) {
			continue
		}
		if err != nil {
			s.refuse(c, env, err.Error(), false)
		}
		return
	}
	s.refuse(c, env, fmt.Sprintf("grain %v: no activation took the message", id), true)
}

// refuse answers a request that no activation will handle; a one-way
// message is dropped and logged.
func (s *System) refuse(c *actor.Context, env *grainpb.Envelope, why string, retry bool) {
	s.st.refused.Add(1)
	if c.IsRequest() {
		c.Respond(&grainpb.Refused{Code: uint32(rpc.Unavailable), Message: why, Retry: retry})
		return
	}
	s.log.Warn("grain: one-way message dropped", "kind", env.GetKind(), "key", env.GetKey(), "why", why)
}

// sweep is the sweeper goroutine: every tick it advances the coarse clock
// and asks idle grains to deactivate and dirty grains to flush.
func (s *System) sweep() {
	defer s.wg.Done()
	t := time.NewTicker(s.tick)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case now := <-t.C:
			s.now.Store(now.UnixNano())
			s.sweepOnce(now.UnixNano())
			if s.recheck.Swap(false) {
				s.viewMu.Lock()
				s.rebalance(s.view.Load())
				s.viewMu.Unlock()
			}
		}
	}
}

func (s *System) sweepOnce(now int64) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		sh.each(func(a *activation) {
			var msg *ctlMsg
			switch {
			case now-a.last.Load() >= int64(a.k.IdleTimeout):
				msg = ctlIdle
			case a.k.FlushEvery > 0 && a.k.State != nil && a.maybeDirty() && now-a.flushedAt.Load() >= int64(a.k.FlushEvery):
				msg = ctlFlush
			default:
				return
			}
			if a.word.Or(flagCtlQueued)&flagCtlQueued == 0 {
				if s.node.Send(a.pid(), msg) != nil {
					a.clear(flagCtlQueued)
				}
			}
		})
		sh.mu.RUnlock()
	}
}

// Close deactivates every grain of this node gracefully: it takes the
// node's kinds out of its membership record (so other nodes stop routing
// here), then flushes each dirty grain, releases its claim and stops it.
// Messages that arrive meanwhile are forwarded to the grains' new owners.
// When ctx ends first, Close stops waiting and returns ctx's error; the
// grains left are stopped by the actor node's own Close. The router stays
// until the actor node closes, forwarding late messages. Safe to call
// twice.
func (s *System) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { s.closeErr = s.close(ctx) })
	return s.closeErr
}

func (s *System) close(ctx context.Context) error {
	s.closing.Store(true)
	var errs []error
	if err := s.publish(ctx, false); err != nil {
		errs = append(errs, err)
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(s.cfg.ClaimTimeout)
	}
	msg := &ctlMsg{op: opClose, deadline: dl}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		sh.each(func(a *activation) { _ = s.node.Send(a.pid(), msg) })
		sh.mu.RUnlock()
	}
	for s.live.Load() > 0 {
		select {
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("grain: close: %d grains still active: %w", s.live.Load(), ctx.Err()))
			s.shutdown()
			return errors.Join(errs...)
		case <-time.After(2 * time.Millisecond):
		}
	}
	s.shutdown()
	if s.joined || s.ownMs {
		if err := s.members.Leave(ctx); err != nil && !errors.Is(err, cluster.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if s.ownMs {
		_ = s.members.Close()
	}
	return errors.Join(errs...)
}

// shutdown stops the sweeper and the subscription, and waits for Request
// goroutines.
func (s *System) shutdown() {
	close(s.quit)
	s.unsub()
	s.wg.Wait()
}
