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

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/propsync"
)

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
	viewMu sync.Mutex // serialises view rebuilds (not the rebalancing that follows, which sends)
	// soleConflict, when set, says why activations are refused: Claims
	// defaulted to SoleClaimer and another node hosts one of this node's
	// kinds, so a grain could be active on both.
	soleConflict atomic.Pointer[string]
	router       actor.PID

	now     atomic.Int64 // coarse clock (UnixNano), advanced by the sweeper
	tick    time.Duration
	live    atomic.Int64 // activations from spawn to Stopped
	closing atomic.Bool
	recheck atomic.Bool // a handover failed: the sweeper checks ownership again
	aborted atomic.Bool // abort: activations stop without flushing or releasing, as in a crash
	members cluster.Membership
	fence   cluster.Fence // the membership's lease fence; nil when it has no lease
	ownMs   bool          // members was made by Start, and is closed by Close
	joined  bool          // Start joined the membership, so Close leaves
	unsub   func()

	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	st struct {
		activations, deactivations, handovers, flushes, flushErrors,
		conflicts, forwarded, refused, failed atomic.Uint64
		saves, saveNanos atomic.Uint64
	}
}

// Stats is a snapshot of a System's counters.
type Stats struct {
	Active        int64         // activations alive now (loading, active or deactivating)
	Activations   uint64        // activations that loaded their state and ran New
	Deactivations uint64        // activations stopped (idle, handover, close or failure)
	Handovers     uint64        // deactivations because another node became the owner
	Flushes       uint64        // successful writes of state to the Store
	FlushErrors   uint64        // failed writes (the state stays dirty and is retried)
	Conflicts     uint64        // flushes refused with store.ErrVersionConflict: stale activations
	Forwarded     uint64        // messages this node's router forwarded to another node
	Refused       uint64        // messages refused (too many hops, no host, failed activation)
	Failed        uint64        // activations that could not claim or load the grain
	Saves         uint64        // writes tried on the Store (Save calls), whatever their outcome
	SaveTime      time.Duration // the time those Save calls took, summed
}

// Node returns the actor node the System runs on.
func (s *System) Node() *actor.Node { return s.node }

// Kinds returns the names of the kinds the System hosts, sorted.
func (s *System) Kinds() []string {
	names := make([]string, 0, len(s.kinds))
	for name := range s.kinds {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

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
		Saves:         s.st.saves.Load(),
		SaveTime:      time.Duration(s.st.saveNanos.Load()),
	}
}

// Start validates cfg, spawns the node's grain router, publishes the
// hosted kinds in the node's membership record and waits until the
// node's own view shows them (or ctx ends). On a node marked unavailable
// (cluster.NodeConfig.JoinUnavailable) the grains' placement leaves the
// node out until it is marked available; until then its System sends to
// the grains hosted elsewhere.
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
		hk := &hostedKind{Kind: k, s: s}
		if k.Sync != nil {
			hk.sync = &syncer{opts: *k.Sync, differ: propsync.NewDiffer(k.Sync.Private...), push: cfg.Push}
		}
		s.kinds[k.Name] = hk
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
	s.fence, _ = s.members.(cluster.Fence)
	s.unsub = s.members.Subscribe(func(cluster.Event) { s.refreshView() })
	if err := s.publish(ctx, true); err != nil {
		return fail(err)
	}
	// Wait until this node's view shows its own record, so that a message
	// sent right after Start finds this node among the hosts. A node
	// marked unavailable (one that joined so, and has more to start) is no
	// host yet: its own record with the kinds is enough, and placement
	// takes it in once it is marked available.
	for {
		s.refreshView()
		if why := s.soleConflict.Load(); why != nil {
			return fail(errors.New(*why))
		}
		if s.viewHasSelf() {
			break
		}
		if rec, ok := s.ownRecord(); ok && !rec.Available && s.recordHasSelf(rec) {
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
		rec.Meta[routerMeta] = routerText(s.router)
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
	for _, pid := range s.activePIDs() {
		_ = s.node.Send(pid, msg)
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
