// Package app runs a guild node from configuration: its membership
// (an embedded etcd "master" or external etcd endpoints), its transport,
// its gateway listeners, and the game's modules that the configuration
// puts on it. A game registers its modules in Go once; which node hosts
// which module is the configuration's business (mqant's idea), so one
// binary serves every role, and a one-process game becomes a cluster by
// changing a file, not code.
package app

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/admin"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/stream"
	"github.com/guildkit/guild/table"
	"github.com/guildkit/guild/telemetry/prom"
)

// Module is one part of a game that a node can host: a world, a chat, a
// matchmaker. Start runs when the node starts, in the order the node's
// configuration lists its modules, while the node is a member marked
// unavailable (nobody picks it for new work until every module has
// started). Stop runs in the reverse order when it shuts down, once the
// node is marked unavailable and its gateway has drained, and before its
// actors drain and it leaves the membership: requests that other nodes
// sent before they saw it unavailable may still arrive meanwhile.
type Module interface {
	// Start starts the module on env's node. It returns once the module is
	// ready to serve (its services registered), or with an error that
	// stops the node's start.
	Start(ctx context.Context, env *Env) error
	// Stop stops the module, within ctx's deadline.
	Stop(ctx context.Context) error
}

// Env is what a module gets from the node that hosts it.
type Env struct {
	// NodeName is the node's name in the configuration ("world1").
	NodeName string
	// Version is the version of the build that runs the node (WithVersion),
	// "" when Start was given none.
	Version string
	// Actor is the node's actor node: spawn actors, serve rpc services and
	// gate services on it.
	Actor *actor.Node
	// Cluster is the node's cluster node.
	Cluster *cluster.Node
	// Members is the cluster's membership view.
	Members cluster.Membership
	// RPC is a client for generated RPC services anywhere in the cluster
	// (node-type targets resolve against Members).
	RPC *rpc.Client
	// Gateway is the node's gateway when its configuration has one, else
	// nil. Modules that serve clients add to it nothing: routes are
	// configured; they serve gate.Services or rpc services instead.
	Gateway *gate.Gateway
	// Streams is the node's stream host when its configuration has a
	// streams section, else nil: register stream handlers on it
	// (Streams.Handle) in Start, and open streams to other nodes with it.
	Streams *stream.Host
	// NodeType returns the node type of a module, from the configuration:
	// where its services run, for rpc.AnyOf and gate routes.
	NodeType func(module string) (int, bool)
	// Settings decodes the module's own section of the configuration
	// (modules.<name>) into v, a pointer to a struct with yaml tags. The
	// decoding is strict: a key that v has no field for is an error
	// naming it. A time.Duration field takes Go's syntax ("50ms"). A
	// missing section leaves v as it is.
	Settings func(v any) error
	// Logger logs with the node's and the module's names.
	Logger *slog.Logger
	// Serve are the options every rpc service the module serves should
	// take: pass them to rpc.Serve, a generated Register...Server or
	// rpc.NewDispatcher (grain.Kind services). They hold the node's server
	// interceptors: tracing when the node traces (telemetry.traces), RPC
	// timing when it serves metrics (telemetry.metrics) or the dashboard;
	// empty otherwise.
	Serve []rpc.ServeOption
	// ObserveGrain, when the node traces (telemetry.traces), makes a span
	// of each grain activation: pass it as the grain.Config.Observe of
	// the Systems the module starts. Nil otherwise.
	ObserveGrain func(id grain.Identity, md actor.Metadata) func(error)
	// PushSession pushes to a client session, wherever it is connected
	// (gate.Push on this node): pass it as the grain.Config.Push of the
	// Systems the module starts, for synced kinds (grain.Kind.Sync).
	PushSession grain.PushFunc
	// Metrics is the node's metrics registry when it serves metrics
	// (telemetry.metrics), else nil. A module adds what it owns: a
	// grain.System (Metrics.AddGrains), its own collectors
	// (Metrics.Registry).
	Metrics *prom.Metrics
	// Tables is the node's data tables when its cluster file gives it a
	// tables directory (tables.dir, or nodes.<name>.tables.dir), else
	// nil. A module declares its table sets in Start with
	// table.Open[T](ctx, env.Tables, "name"), which loads them (a set
	// that does not load fails the module's start); the node then
	// reloads them when their files change (tables.watch), on the admin
	// API's reload action and on guild reload, and reports the version
	// each serves. The group is the node's: shared by its modules, whose
	// set names must differ.
	Tables *table.Group
	// Admin is the node's admin agent when the cluster file has an admin
	// dashboard (admin.listen on any node), else nil. A module that runs
	// grains shows them on the dashboard with Admin.AddGrains(sys).
	Admin *admin.Agent
}

// AddReloader registers r, under name, as a reloadable part of the
// node besides its data tables: a module's hot-fix modules (a
// *hotfix.Loader is an admin.Reloader), or anything else that loads
// versions of itself from files. The admin API's reload action, and so
// guild reload, reloads it after the node's tables, and the node reports
// its items' versions (the admin snapshot, GET /api/nodes/{addr}/tables).
// Names must differ among the node's reloaders: the module's name is a
// good one. Call it in the module's Start; r must stay usable until the
// node has shut down (a reload that comes during the shutdown may still
// call it, after the module's Stop). On a node without an admin agent
// (no admin.listen in the cluster file) nothing can ask for a reload, and
// AddReloader does nothing.
//
// The interface is admin's, not app's: the agent is what calls it, and
// admin cannot import app. Its methods use standard types only, so
// package hotfix implements it without importing admin or app, and app
// does not link hotfix's WebAssembly runtime.
func (e *Env) AddReloader(name string, r admin.Reloader) error {
	if e.Admin == nil {
		if name == "" || r == nil {
			return fmt.Errorf("app: AddReloader(%q, %v): a name and a Reloader are required", name, r)
		}
		return nil
	}
	return e.Admin.AddReloader(name, r)
}

// Registry holds the modules a game offers, by name. The game fills it in
// Go; a node's configuration picks from it.
type Registry struct {
	factories map[string]func() Module
	order     []string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{factories: make(map[string]func() Module)} }

// Register offers a module under name; new makes a fresh instance for a
// node that hosts it. Registering a name twice panics: it is a programming
// error, found at start-up.
func (r *Registry) Register(name string, new func() Module) {
	if _, dup := r.factories[name]; dup {
		panic("app: module " + name + " registered twice")
	}
	r.factories[name] = new
	r.order = append(r.order, name)
}

// Names returns the registered module names, in registration order.
func (r *Registry) Names() []string { return append([]string(nil), r.order...) }

// New returns a fresh instance of the named module.
func (r *Registry) New(name string) (Module, bool) {
	f, ok := r.factories[name]
	if !ok {
		return nil, false
	}
	return f(), true
}
