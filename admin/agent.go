package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/table"
	"github.com/guildkit/guild/telemetry/prom"
)

// AgentConfig configures a node's Agent.
type AgentConfig struct {
	// Node is the node the agent reports on and acts on. Required.
	Node *cluster.Node
	// Name is the node's name on the dashboard. Default: its address.
	Name string
	// Gateway, optional, is the node's gateway.
	Gateway *gate.Gateway
	// Metrics, optional, is the node's metrics registry: the agent reads
	// its RPC latency histograms (the RPC interceptors of package
	// telemetry/prom). Without it the dashboard shows no RPC figures for
	// the node.
	Metrics *prom.Metrics
	// Drain, optional, starts a graceful shutdown of the node and returns
	// at once (app.Node's drains: unavailable, gateway drained, modules
	// stopped, then it leaves). It is called from the agent's actor,
	// after the node was marked unavailable; it must not wait for the
	// shutdown, which stops the agent. Nil: "drain" marks the node
	// unavailable only.
	Drain func(ctx context.Context) error
	// Membership, optional, is the node's membership: with an etcd one
	// (cluster/etcd) the snapshot carries its lease's renewals.
	Membership cluster.Membership
	// Failures, optional, is the ring of the node's last failures (the
	// node's actor.Config.Reporter, or one of them): the dashboard shows
	// them with their stacks. Without it the node shows none.
	Failures *Failures
	// Tables, optional, is the node's data tables (app.Env.Tables): the
	// snapshot carries the version each set serves, and the reload
	// action reloads them. Without it the node has no tables to show or
	// reload.
	Tables *table.Group
	// TopActors is how many actors the snapshot lists by mailbox depth.
	// Default 10, at most 100.
	TopActors int
	// Logger receives the agent's reports. Default slog.Default().
	Logger *slog.Logger
}

// Defaults and bounds of AgentConfig.
const (
	DefaultTopActors = 10
	MaxTopActors     = 100
	// actionTimeout bounds an action's work on the target node (an etcd
	// write for availability).
	actionTimeout = 5 * time.Second
	// ReloadTimeout bounds a reload of a node from the admin API: its
	// table sets, then its reloaders (Agent.AddReloader), one after the
	// other.
	ReloadTimeout = 30 * time.Second
)

// Validate reports the first problem with c.
func (c AgentConfig) Validate() error {
	if c.Node == nil {
		return errors.New("admin: AgentConfig.Node is nil")
	}
	if c.TopActors < 0 || c.TopActors > MaxTopActors {
		return fmt.Errorf("admin: AgentConfig.TopActors %d is outside 0..%d", c.TopActors, MaxTopActors)
	}
	return nil
}

// AgentName returns the global name of the agent of the node at addr.
func AgentName(addr actor.Addr) string { return "guild.admin/" + addr.String() }

// Agent answers the dashboards for one node. Create it with StartAgent.
//
// Goroutines: its actor (idle between requests), and one per reload of
// the node in progress (the reload action: its tables, then its
// reloaders), which answers the request when the reload is over, within
// ReloadTimeout; Stop waits for them. The reloaders' Versions run on the
// actor (snapshots, the tables action) and on the reload goroutine
// around their ReloadItems, which run there.
type Agent struct {
	cfg  AgentConfig
	node *actor.Node
	pid  actor.PID
	name string // the name it is registered under
	// reloads are the reload goroutines in progress: at most one
	// (reloading says whether it runs).
	reloads   sync.WaitGroup
	reloading atomic.Bool

	mu        sync.Mutex // guards grains and reloaders; a leaf, never held while calling them
	grains    []*grain.System
	reloaders []reloader // in the order added
}

// StartAgent validates cfg, spawns the node's agent actor and registers
// it under AgentName (a global name, held under the node's lease; on a
// node without global names, the same name with a leading '.'). The
// agent stops with its node, or with Stop.
func StartAgent(ctx context.Context, cfg AgentConfig) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TopActors == 0 {
		cfg.TopActors = DefaultTopActors
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := cfg.Node.Actor()
	if cfg.Name == "" {
		cfg.Name = n.Addr().String()
	}
	a := &Agent{cfg: cfg, node: n}
	pid, err := n.SpawnFunc(a.receive)
	if err != nil {
		return nil, fmt.Errorf("admin: spawn the agent: %w", err)
	}
	a.pid, a.name = pid, AgentName(n.Addr())
	err = n.Register(ctx, a.name, pid)
	if errors.Is(err, actor.ErrNoGlobalNames) {
		a.name = "." + a.name
		err = n.Register(ctx, a.name, pid)
	}
	if err != nil {
		_ = n.Stop(pid)
		return nil, fmt.Errorf("admin: register the agent as %s: %w", a.name, err)
	}
	return a, nil
}

// AddGrains shows s's counters on the dashboard, named by its kinds
// (grain.System.Stats: activations live, activations, deactivations,
// hand-overs, flushes...). Safe for concurrent use.
func (a *Agent) AddGrains(s *grain.System) error {
	if s == nil {
		return errors.New("admin: AddGrains of a nil System")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, g := range a.grains {
		if g == s {
			return errors.New("admin: AddGrains: this System is added already")
		}
	}
	a.grains = append(a.grains, s)
	return nil
}

// Name returns the name the agent is registered under.
func (a *Agent) Name() string { return a.name }

// Stop stops the agent's actor (which releases its name) and waits, up
// to ctx's end, until it has stopped and its reloads in progress have
// ended. It is safe to call twice.
func (a *Agent) Stop(ctx context.Context) error {
	done := make(chan struct{})
	cancel, err := a.node.Watch(a.pid, func(actor.Terminated) { close(done) })
	if err != nil {
		close(done) // the node is closed: so is the agent
	} else {
		defer cancel()
		_ = a.node.Stop(a.pid)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("admin: stop the agent: %w", ctx.Err())
	}
	reloaded := make(chan struct{})
	go func() { a.reloads.Wait(); close(reloaded) }() // ends with the reloads, each bounded by ReloadTimeout
	select {
	case <-reloaded:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("admin: stop the agent: a reload is still running: %w", ctx.Err())
	}
}

// request is what a Server asks an agent, as JSON in a
// wrapperspb.BytesValue (what crosses the cluster is protobuf).
type request struct {
	Op        string `json:"op"` // "snapshot", "available", "drain", "reload", "tables"
	Available bool   `json:"available,omitempty"`
}

// actionReply is an agent's answer to an action.
type actionReply struct {
	// Draining is true when the node began to drain, false when "drain"
	// only marked it unavailable (no AgentConfig.Drain).
	Draining bool `json:"draining"`
}

func (a *Agent) receive(c *actor.Context) {
	m, ok := c.Message().(*wrapperspb.BytesValue)
	if !ok {
		return // lifecycle messages
	}
	var req request
	if err := json.Unmarshal(m.GetValue(), &req); err != nil {
		c.Respond(rpc.Errorf(rpc.InvalidArgument, "admin: bad request: %v", err))
		return
	}
	var reply any
	var err error
	switch req.Op {
	case "snapshot":
		reply, err = a.snapshot()
	case "available":
		ctx, cancel := context.WithTimeout(context.Background(), actionTimeout)
		err = a.cfg.Node.SetAvailable(ctx, req.Available)
		cancel()
		reply = actionReply{}
		if err == nil {
			a.cfg.Logger.Info("admin: marked from the dashboard", "available", req.Available)
		}
	case "drain":
		reply, err = a.drain()
	case "tables":
		rs := a.reloaderList()
		if a.cfg.Tables == nil && len(rs) == 0 {
			err = errNothing
			break
		}
		tr := TablesReply{Node: a.cfg.Name, Addr: a.node.Addr().String(), Sets: []table.Status{}, Reloaders: versions(rs)}
		if a.cfg.Tables != nil {
			tr.Sets = a.cfg.Tables.Status()
		}
		reply = tr
	case "reload":
		rs := a.reloaderList()
		if a.cfg.Tables == nil && len(rs) == 0 {
			err = errNothing
			break
		}
		a.reload(c.Responder(), rs)
		return
	default:
		err = rpc.Errorf(rpc.InvalidArgument, "admin: unknown request %q", req.Op)
	}
	if err != nil {
		c.Respond(err)
		return
	}
	b, err := json.Marshal(reply)
	if err != nil {
		c.Respond(err)
		return
	}
	c.Respond(wrapperspb.Bytes(b))
}

// errNothing answers the tables and reload actions of a node without
// tables or reloaders.
var errNothing = rpc.Errorf(rpc.FailedPrecondition, "admin: this node has nothing to reload: no tables (tables.dir in its cluster file) and no reloaders (hot-fix modules: app.Env.AddReloader)")

// TablesReply is the answer of the tables and reload actions: a node's
// table sets with the version each serves and its reloaders with their
// items' versions (hot-fix modules), and for a reload each one's result.
type TablesReply struct {
	// Node and Addr are the node's name and address.
	Node string `json:"node"`
	Addr string `json:"addr"`
	// Sets are the node's table sets (table.Group.Status), after the
	// reload for a reload; empty when it has no tables.
	Sets []table.Status `json:"sets"`
	// Results are a reload's results, one per set (table.Group.Reload);
	// none for the tables action.
	Results []table.Result `json:"results,omitempty"`
	// Reloaders are the node's reloaders (Agent.AddReloader), in the
	// order added: for the tables action each item's version, for a
	// reload each item's result.
	Reloaders []ReloaderStatus `json:"reloaders,omitempty"`
	// OK reports whether every set and every reloader's item of a
	// reload loaded (or was unchanged).
	OK bool `json:"ok"`
}

// errReloading answers a reload while another one runs.
var errReloading = rpc.Errorf(rpc.ResourceExhausted, "admin: a reload of this node is in progress: try again when it is over")

// reload reloads the node's tables and then rs on a goroutine of its
// own, so that the agent's actor goes on answering snapshots meanwhile,
// and answers r when it is over. One runs at a time: another request
// meanwhile is refused (errReloading).
func (a *Agent) reload(r actor.Responder, rs []reloader) {
	if !a.reloading.CompareAndSwap(false, true) {
		r.Respond(errReloading)
		return
	}
	a.reloads.Go(func() {
		answer := a.reloadAll(rs)
		a.reloading.Store(false) // before the answer: a request that follows it is taken
		r.Respond(answer)
	})
}

// reloadAll reloads the node's tables, then each of rs, one after the
// other within ReloadTimeout, and returns the answer: a TablesReply as
// JSON, or an error. It runs on the reload goroutine, with no lock held.
func (a *Agent) reloadAll(rs []reloader) any {
	ctx, cancel := context.WithTimeout(context.Background(), ReloadTimeout)
	defer cancel()
	reply := TablesReply{Node: a.cfg.Name, Addr: a.node.Addr().String(), Sets: []table.Status{}, OK: true}
	if t := a.cfg.Tables; t != nil {
		reply.Results = t.Reload(ctx, "admin")
		reply.Sets = t.Status()
	}
	for _, res := range reply.Results {
		if res.Error != "" {
			reply.OK = false
		}
	}
	for _, x := range rs {
		st := reloadOne(ctx, x)
		if st.failed() {
			reply.OK = false
		}
		for _, it := range st.Items {
			switch {
			case it.Error != "":
				a.cfg.Logger.Warn("admin: reload rejected: the old version stays", "reloader", x.name, "item", it.Name, "version", it.Version, "err", it.Error)
			case it.Changed:
				a.cfg.Logger.Info("admin: reloaded", "reloader", x.name, "item", it.Name, "version", it.Version, "previous", it.Previous)
			}
		}
		if st.Error != "" {
			a.cfg.Logger.Warn("admin: reload failed", "reloader", x.name, "err", st.Error)
		}
		reply.Reloaders = append(reply.Reloaders, st)
	}
	a.cfg.Logger.Info("admin: reloaded", "sets", len(reply.Results), "reloaders", len(rs), "ok", reply.OK)
	b, err := json.Marshal(reply)
	if err != nil {
		return err
	}
	return wrapperspb.Bytes(b)
}

// drain marks the node unavailable, then starts its drain.
func (a *Agent) drain() (actionReply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), actionTimeout)
	defer cancel()
	if err := a.cfg.Node.SetAvailable(ctx, false); err != nil {
		return actionReply{}, err
	}
	if a.cfg.Drain == nil {
		a.cfg.Logger.Info("admin: marked unavailable from the dashboard (this node has no drain)")
		return actionReply{}, nil
	}
	a.cfg.Logger.Info("admin: draining, from the dashboard")
	if err := a.cfg.Drain(ctx); err != nil {
		return actionReply{}, err
	}
	return actionReply{Draining: true}, nil
}

// snapshot takes the node's numbers.
func (a *Agent) snapshot() (*Snapshot, error) {
	s := &Snapshot{
		Node:      a.cfg.Name,
		Addr:      a.node.Addr().String(),
		Time:      time.Now(),
		Actor:     a.node.Stats(),
		Drainable: a.cfg.Drain != nil,
	}
	for _, b := range a.node.TopBacklogs(a.cfg.TopActors) {
		s.Top = append(s.Top, Backlog{PID: b.PID.String(), Messages: b.Messages, Names: b.Names})
	}
	if g := a.cfg.Gateway; g != nil {
		st := g.Stats()
		gs := &GatewayStats{Conns: g.Conns(), Listeners: st.Listeners, Pushes: st.Pushes, Kicks: st.Kicks, SlowClients: st.SlowClients}
		for code, n := range st.Responses {
			gs.Responses += n
			if code != rpc.OK {
				gs.Errors += n
			}
		}
		s.Gateway = gs
	}
	a.mu.Lock()
	systems := append([]*grain.System(nil), a.grains...)
	a.mu.Unlock()
	for _, sys := range systems {
		s.Grains = append(s.Grains, GrainStats{Kinds: sys.Kinds(), Stats: sys.Stats(), Active: sys.ActiveByKind()})
	}
	if t := a.cfg.Tables; t != nil {
		s.Tables = t.Status()
		if s.Tables == nil {
			s.Tables = []table.Status{}
		}
	}
	if rs := a.reloaderList(); len(rs) > 0 {
		s.Reloaders = versions(rs)
	}
	if f := a.cfg.Failures; f != nil {
		s.Failures, s.FailuresTotal = f.Recent()
		s.FailuresKept = true
	}
	if em, ok := a.cfg.Membership.(*etcd.Membership); ok {
		st := em.Stats()
		s.Lease = &LeaseStats{Renewals: st.Renewals, Failures: st.Failures, Grants: st.Grants}
		if st.Renewals > 0 {
			s.Lease.MeanRenewSeconds = st.RenewTime.Seconds() / float64(st.Renewals)
		}
	}
	if m := a.cfg.Metrics; m != nil {
		s.RPCTimed = true
		var err error
		if s.RPC, s.RPCBounds, err = rpcStats(m); err != nil {
			return nil, fmt.Errorf("admin: read the RPC metrics: %w", err)
		}
	}
	return s, nil
}
