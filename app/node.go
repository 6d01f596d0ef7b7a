package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/proto"
	yaml3 "sigs.k8s.io/yaml/goyaml.v3"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/admin"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/gate"
	gatekcp "github.com/guildkit/guild/gate/kcp"
	gatemqtt "github.com/guildkit/guild/gate/mqtt"
	"github.com/guildkit/guild/gate/tokenauth"
	gatews "github.com/guildkit/guild/gate/websocket"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/report"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/stream"
	"github.com/guildkit/guild/table"
	"github.com/guildkit/guild/telemetry/prom"
	"github.com/guildkit/guild/telemetry/tracing"
	"github.com/guildkit/guild/transport"
)

// Errors of Start.
var (
	// ErrNoNode: the configuration has no node of the given name.
	ErrNoNode = errors.New("app: no such node in the configuration")
	// ErrNoModule: the node's configuration names a module that the
	// registry does not have.
	ErrNoModule = errors.New("app: module not in the registry")
)

// failedStartTimeout bounds the teardown of a node whose start failed.
const failedStartTimeout = 10 * time.Second

// MetaNode is the key of a member's Meta that holds its node name.
const MetaNode = "guild.node"

// MetaVersion is the key of a member's Meta that holds the version of the
// build that runs it (WithVersion); absent when Start was given none.
const MetaVersion = "guild.version"

// Node is one running node of a configured cluster: its membership, its
// cluster node, its gateway when it has one, and its modules.
type Node struct {
	name string
	log  *slog.Logger
	emb  *etcd.Embedded // nil unless the master
	// stopTransport, when set, stops what the transport maker started
	// (an embedded broker).
	stopTransport func() error
	members       *etcd.Membership
	harbors       *etcd.Membership // the harbors' membership; nil unless the node is a harbor
	cluster       *cluster.Node
	gateway       *gate.Gateway
	streams       *stream.Host    // nil unless the node has a streams section
	streamGate    *stream.Gateway // nil unless its streams section has a gateway
	streamServed  chan error      // the stream gateway's Serve result
	modules       []started       // in start order
	ready         Ready
	metrics       *prom.Metrics            // nil unless the node serves metrics
	metricsSrv    *prom.Server             // likewise
	tracing       *tracing.Tracing         // nil unless the node traces (telemetry.traces)
	traceProvider *sdktrace.TracerProvider // likewise
	adminAgent    *admin.Agent             // nil unless the file has an admin listener anywhere
	failures      *admin.Failures          // the last failures, for the dashboard; likewise
	timing        *prom.Metrics            // RPC and gateway timing: metrics, or the dashboard's own; nil without either
	adminSrv      *admin.Server            // nil unless this node serves the dashboard
	tables        *table.Group             // nil unless the node has a tables directory
	// serving is true from the end of Start until Shutdown begins: what
	// /readyz reports.
	serving atomic.Bool
	// reporters are the failure reporters of the cluster file's report
	// section, closed once the node has drained.
	reporters []report.Closer

	once sync.Once
	done chan struct{} // closed when the shutdown is over
	err  error
}

// started is a module that started.
type started struct {
	name string
	m    Module
}

// Ready describes a node that has started, for its ready line.
type Ready struct {
	// Node is the node's name in the configuration.
	Node string `json:"node"`
	// Addr is its logical address.
	Addr string `json:"addr"`
	// Endpoint is how other nodes reach it: the host:port its TCP
	// transport listens on, or its inbox on the broker.
	Endpoint string `json:"endpoint"`
	// Etcd are the etcd endpoints it uses: for the master, those of its
	// embedded etcd (give them to the other nodes when its port was 0).
	Etcd []string `json:"etcd"`
	// Gateway maps each gateway listener ("tcp", "ws", "kcp", "mqtt",
	// "mqtt-ws") to the URL a client dials, such as tcp://127.0.0.1:7000,
	// ws://127.0.0.1:8080/ws or ws://127.0.0.1:8083/mqtt, with the port it
	// got; over TLS (gateway.tls) wss:// and mqtts://, and tcp:// stays
	// (package client dials TLS when its Config.TLS is set).
	Gateway map[string]string `json:"gateway,omitempty"`
	// Modules are the modules it runs, in start order.
	Modules []string `json:"modules"`
	// Metrics is the URL of its metrics listener's /metrics
	// (telemetry.metrics), with the port it got; empty when it has none.
	// /healthz, /readyz and /debug/pprof/ are beside it.
	Metrics string `json:"metrics,omitempty"`
	// Admin is the URL of its admin dashboard (admin.listen), with the
	// port it got; empty when it serves none.
	Admin string `json:"admin,omitempty"`
	// Version is the version of the build that runs it (WithVersion);
	// empty when Start was given none.
	Version string `json:"version,omitempty"`
}

// Start starts the node named nodeName of cfg (from config.Load) with
// the modules of reg, and returns once it is ready. First it checks the
// files the node's settings name (config.Config.CheckFiles: an error
// matches config.ErrInvalid); then it starts its embedded etcd when
// it is the master, its membership, its cluster node (retrying, for up to
// the node's join_wait, while a crashed predecessor still holds its
// address), its gateway when it has one, then its modules in order. The
// node joins the cluster marked unavailable, so that no other node sends
// it new work (lookup by node type, gateway routes, grain placement)
// before its modules serve; once they have started it is marked
// available, and last its gateway's listeners open. When a step fails,
// what started is shut down again and Start returns the error.
//
// Start does not handle signals: the program does, and calls Shutdown.
func Start(ctx context.Context, cfg *config.Config, nodeName string, reg *Registry, opts ...Option) (_ *Node, err error) {
	if cfg == nil || reg == nil {
		return nil, errors.New("app: Start needs a configuration and a registry")
	}
	o := collect(opts)
	spec, ok := cfg.Node(nodeName)
	if !ok {
		return nil, fmt.Errorf("%w: %q (it has %s)", ErrNoNode, nodeName, strings.Join(cfg.NodeNames(), ", "))
	}
	for _, m := range spec.Modules {
		if _, ok := reg.factories[m]; !ok {
			return nil, fmt.Errorf("%w: %q (nodes.%s.modules)", ErrNoModule, m, nodeName)
		}
	}
	if err := cfg.CheckFiles(nodeName); err != nil { // before anything starts
		return nil, err
	}
	addr := spec.Address()
	log := o.logger.With("node", nodeName)
	if tracesOn(cfg.Telemetry.Traces) {
		// Records logged with a handler's ctx carry its trace and span.
		log = slog.New(tracing.LogHandler(o.logger.Handler())).With("node", nodeName)
	}
	n := &Node{name: nodeName, log: log, done: make(chan struct{})}
	defer func() {
		if err != nil {
			tctx, cancel := context.WithTimeout(context.Background(), failedStartTimeout)
			defer cancel()
			_ = n.teardown(tctx, false)
		}
	}()

	endpoints := cfg.EtcdEndpoints()
	if len(o.etcd) > 0 {
		endpoints = o.etcd
	}
	if spec.Master != "" {
		n.emb, err = etcd.StartEmbeddedConfig(etcd.EmbeddedConfig{Dir: spec.Data, Listen: spec.Master})
		if errors.Is(err, syscall.EADDRINUSE) {
			err = fmt.Errorf("app: %w (change it with nodes.%s.master in the cluster file)", err, nodeName)
		}
		if err != nil {
			return nil, err
		}
		endpoints = n.emb.Endpoints()
		log.Info("embedded etcd started", "endpoints", strings.Join(endpoints, ","))
	}
	ec, err := cfg.EtcdConfig() // its files were checked by CheckFiles
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	ec.Endpoints, ec.Logger, ec.JoinWait = endpoints, log, spec.JoinWait
	if n.members, err = etcd.New(ec); err != nil {
		return nil, err
	}
	var harbors cluster.Membership
	if addr.IsHarbor() {
		hc, err := cfg.HarborsEtcdConfig()
		if err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
		hc.Logger, hc.JoinWait = log, spec.JoinWait
		if n.harbors, err = etcd.New(hc); err != nil {
			return nil, err
		}
		harbors = n.harbors
	}
	tr, err := n.transport(cfg, nodeName, o, log)
	if err != nil {
		return nil, err
	}
	rep, err := n.newReporters(cfg, o, log)
	if err != nil {
		return nil, err
	}
	meta := map[string]string{MetaNode: nodeName}
	if o.version != "" {
		meta[MetaVersion] = o.version
	}
	nc := cluster.NodeConfig{
		Actor:            actor.Config{Addr: addr, Logger: log, Reporter: rep},
		Listen:           spec.Listen,
		Membership:       n.members,
		Harbors:          harbors,
		Names:            n.members.Names(),
		Logger:           log,
		Member:           cluster.Member{Services: slices.Clone(spec.Modules), Meta: meta, Export: spec.Export},
		Transport:        tr,
		WatchLinkTimeout: cfg.Cluster.Transport.WatchLinkTimeout,
		// Nobody picks the node before its modules serve: it is marked
		// available once they have started.
		JoinUnavailable: true,
	}
	if n.cluster, err = cluster.Start(ctx, nc); err != nil { // Join waits out a crashed predecessor (JoinWait)
		if errors.Is(err, syscall.EADDRINUSE) {
			err = fmt.Errorf("app: %w (change it with nodes.%s.listen in the cluster file)", err, nodeName)
		}
		return nil, err
	}
	n.ready = Ready{
		Node: nodeName, Addr: addr.String(), Endpoint: n.cluster.Endpoint(),
		Etcd: slices.Clone(endpoints), Modules: append([]string{}, spec.Modules...),
		Version: o.version,
	}
	if err := n.startTracing(ctx, cfg, addr.String()); err != nil {
		return nil, err
	}
	if cfg.MetricsListen(nodeName) != "" {
		n.metrics = prom.New() // served by serveMetrics, once the gateway is there
	}
	// The timing of RPC calls and gateway requests: the metrics'
	// histograms, which the admin agent reads too; with the dashboard on
	// and no metrics, histograms that only the agent reads.
	n.timing = n.metrics
	if n.timing == nil && cfg.AdminOn() {
		n.timing = prom.New()
	}
	if spec.Gateway != nil {
		if err := n.newGateway(cfg, spec.Gateway, o, log); err != nil {
			return nil, err
		}
	}
	if spec.Streams != nil {
		if err := n.startStreams(ctx, cfg, spec.Streams, log); err != nil {
			return nil, err
		}
	}
	if err := n.serveMetrics(cfg, log); err != nil {
		return nil, err
	}
	if t := cfg.TablesOf(nodeName); t.Dir != "" {
		// Its directory was checked by CheckFiles; the sets come with the modules.
		if n.tables, err = table.NewGroup(table.GroupConfig{Dir: t.Dir, Watch: t.Watch, Logger: log}); err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
		log.Info("tables directory", "dir", t.Dir, "watch", t.Watch)
		if n.metrics != nil {
			if err := n.metrics.AddTables(n.tables); err != nil {
				return nil, fmt.Errorf("app: metrics: %w", err)
			}
		}
	}
	rpcTiming := n.timing
	if err := n.startAdminAgent(ctx, cfg, rpcTiming, log); err != nil {
		return nil, err
	}
	// The view adds other clusters' exported members, through the harbors.
	clientOpts := []rpc.ClientOption{rpc.WithMembership(n.cluster.View())}
	var serveOpts []rpc.ServeOption
	if n.tracing != nil { // outermost: the span covers what the metrics time
		clientOpts = append(clientOpts, rpc.WithClientInterceptors(n.tracing.ClientInterceptor()))
		serveOpts = append(serveOpts, rpc.WithServerInterceptors(n.tracing.ServerInterceptor()))
	}
	if rpcTiming != nil {
		clientOpts = append(clientOpts, rpc.WithClientInterceptors(rpcTiming.ClientInterceptor()))
		serveOpts = append(serveOpts, rpc.WithServerInterceptors(rpcTiming.ServerInterceptor()))
	}
	rpcClient := rpc.NewClient(n.cluster.Actor(), clientOpts...)
	for _, name := range spec.Modules {
		m, _ := reg.New(name)
		env := &Env{
			NodeName:     nodeName,
			Version:      o.version,
			Actor:        n.cluster.Actor(),
			Cluster:      n.cluster,
			Members:      n.members,
			RPC:          rpcClient,
			Gateway:      n.gateway,
			Streams:      n.streams,
			NodeType:     cfg.NodeType,
			Settings:     settings(cfg, name),
			Logger:       log.With("module", name),
			Serve:        slices.Clone(serveOpts),
			ObserveGrain: n.observeGrain(),
			PushSession:  pushSession(n.cluster.Actor()),
			Metrics:      n.metrics,
			Tables:       n.tables,
			Admin:        n.adminAgent,
		}
		if err := m.Start(ctx, env); err != nil {
			return nil, fmt.Errorf("app: start module %s: %w", name, err)
		}
		n.modules = append(n.modules, started{name, m})
		log.Info("module started", "module", name)
	}
	if spec.Available == nil || *spec.Available {
		if err := n.cluster.SetAvailable(ctx, true); err != nil {
			return nil, err
		}
	}
	if spec.Gateway != nil {
		if err := n.listen(spec.Gateway, log); err != nil {
			return nil, err
		}
	}
	if spec.Streams != nil && spec.Streams.Gateway != nil {
		if err := n.listenStreams(cfg, spec.Streams.Gateway, log); err != nil {
			return nil, err
		}
	}
	if err := n.serveAdmin(cfg, log); err != nil {
		return nil, err
	}
	n.serving.Store(true)
	return n, nil
}

// streamDrain bounds how long Shutdown waits for the node's streams to
// close before it closes the ones left (their peers see ErrPeerGone).
const streamDrain = 2 * time.Second

// adminDrainTimeout bounds a drain started from the admin dashboard.
const adminDrainTimeout = 30 * time.Second

// startAdminAgent starts the node's admin agent when any node of the file
// serves the dashboard (admin.listen): the dashboards ask it over the
// cluster. A drain from the dashboard runs Shutdown in the background;
// Done tells when it is over.
func (n *Node) startAdminAgent(ctx context.Context, cfg *config.Config, rpcTiming *prom.Metrics, log *slog.Logger) error {
	if !cfg.AdminOn() {
		return nil
	}
	a, err := admin.StartAgent(ctx, admin.AgentConfig{
		Node: n.cluster, Name: n.name, Gateway: n.gateway, Metrics: rpcTiming, Logger: log, Failures: n.failures, Membership: n.members,
		Tables: n.tables,
		Drain: func(context.Context) error {
			go func() {
				sctx, cancel := context.WithTimeout(context.Background(), adminDrainTimeout)
				defer cancel()
				if err := n.Shutdown(sctx); err != nil {
					n.log.Error("drain from the admin dashboard", "err", err)
				}
			}()
			return nil
		},
	})
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	n.adminAgent = a
	return nil
}

// serveAdmin starts the node's admin dashboard when the configuration
// gives it a listener (admin.listen).
func (n *Node) serveAdmin(cfg *config.Config, log *slog.Logger) error {
	listen := cfg.AdminListen(n.name)
	if listen == "" {
		return nil
	}
	token, err := cfg.AdminToken() // its file was checked by CheckFiles
	if err != nil {
		return fmt.Errorf("app: admin.token_file: %w", err)
	}
	srv, err := admin.Serve(admin.Config{Listen: listen, Node: n.cluster, Members: n.members, Token: token, Logger: log})
	if err != nil {
		key := "admin.listen"
		if a := cfg.Nodes[n.name].Admin; a != nil && a.Listen != "" {
			key = "nodes." + n.name + ".admin.listen"
		}
		return fmt.Errorf("app: %w (change it with %s in the cluster file)", err, key)
	}
	n.adminSrv = srv
	n.ready.Admin = srv.URL()
	log.Info("admin dashboard listening", "addr", srv.Addr().String())
	return nil
}

// Admin returns the node's admin agent, or nil when the cluster file
// has no admin dashboard (admin.listen).
func (n *Node) Admin() *admin.Agent { return n.adminAgent }

// Done is closed once the node's shutdown is over, whoever started it:
// Shutdown, or a drain from the admin dashboard.
func (n *Node) Done() <-chan struct{} { return n.done }

// serveMetrics starts the node's metrics listener when the configuration
// gives it one (telemetry.metrics), with the node's actor, peer,
// membership and gateway metrics. Modules add theirs through Env.Metrics.
func (n *Node) serveMetrics(cfg *config.Config, log *slog.Logger) error {
	listen := cfg.MetricsListen(n.name)
	if listen == "" {
		return nil
	}
	token, err := cfg.MetricsToken() // its file was checked by CheckFiles
	if err != nil {
		return fmt.Errorf("app: telemetry.token_file: %w", err)
	}
	m := n.metrics // made before the gateway, which it observes
	for _, err := range []error{
		m.AddActor(n.cluster.Actor()), m.AddPeers(n.cluster), m.AddMembers(n.members),
	} {
		if err != nil {
			return fmt.Errorf("app: metrics: %w", err)
		}
	}
	if n.gateway != nil {
		if err := m.AddGateway(n.gateway); err != nil {
			return fmt.Errorf("app: metrics: %w", err)
		}
	}
	srv, err := prom.Serve(prom.Config{Listen: listen, Metrics: m, Token: token, Ready: n.serving.Load, Logger: log})
	if err != nil {
		key := "telemetry.metrics"
		if t := cfg.Nodes[n.name].Telemetry; t != nil && t.Metrics != "" {
			key = "nodes." + n.name + ".telemetry.metrics"
		}
		return fmt.Errorf("app: %w (change it with %s in the cluster file)", err, key)
	}
	n.metricsSrv = srv
	n.ready.Metrics = srv.URL() + "/metrics"
	log.Info("metrics listening", "addr", srv.Addr().String())
	return nil
}

// Metrics returns the node's metrics registry, or nil when the node
// serves no metrics (telemetry.metrics).
//
// The gateway's requests are timed by route into it (through
// gate.Config.Observe).
func (n *Node) Metrics() *prom.Metrics { return n.metrics }

// Serving reports whether the node is ready for work: Start has finished
// (it joined, its modules started, its gateway listens) and Shutdown has
// not begun. Its metrics listener's /readyz says the same.
func (n *Node) Serving() bool { return n.serving.Load() }

// reportGrace bounds the delivery of the failures still queued when
// Shutdown's ctx has ended.
const reportGrace = 2 * time.Second

// newReporters starts the failure reporters of the cluster file's report
// section, and returns them with WithReporter's, and the admin
// dashboard's ring of recent failures when the file has a dashboard, as
// the node's Reporter (nil when there is none).
func (n *Node) newReporters(cfg *config.Config, o options, log *slog.Logger) (actor.Reporter, error) {
	log = log.With("report", true)
	if w := cfg.Report.Webhook; w != nil {
		wc := w.WebhookConfig()
		wc.Source, wc.Logger = n.name, log
		r, err := report.NewWebhook(wc)
		if err != nil {
			return nil, fmt.Errorf("app: report.webhook: %w", err)
		}
		n.reporters = append(n.reporters, r)
	}
	if m := cfg.Report.SMTP; m != nil {
		sc := m.SMTPConfig()
		sc.Source, sc.Logger = n.name, log
		if m.PasswordFile != "" {
			pw, err := config.ReadSecretFile(m.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("app: report.smtp.password_file: %w", err)
			}
			sc.Password = pw
		}
		if m.CAFile != "" {
			pool, err := config.ReadCAFile(m.CAFile)
			if err != nil {
				return nil, fmt.Errorf("app: report.smtp.ca_file: %w", err)
			}
			sc.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		r, err := report.NewSMTP(sc)
		if err != nil {
			return nil, fmt.Errorf("app: report.smtp: %w", err)
		}
		n.reporters = append(n.reporters, r)
	}
	all := slices.Clone(o.reporters)
	for _, r := range n.reporters {
		all = append(all, r)
	}
	if cfg.AdminOn() { // the dashboard shows the node's last failures
		n.failures = admin.NewFailures(admin.DefaultFailures)
		all = append(all, n.failures)
	}
	switch len(all) {
	case 0:
		return nil, nil
	case 1:
		return all[0], nil
	}
	return &report.Fanout{Reporters: all, Logger: log}, nil
}

// newGateway makes the node's gateway, without its listeners yet.
func (n *Node) newGateway(cfg *config.Config, g *config.Gateway, o options, log *slog.Logger) error {
	routes := make(map[string]gate.Route, len(g.Routes))
	for svc, r := range g.Routes {
		routes[svc] = route(cfg, r)
	}
	var identify func(ctx context.Context, token string) (gate.Identity, error)
	if o.auth == nil && g.Auth != nil {
		var err error
		if identify, err = gatewayIdentify(g.Auth); err != nil {
			return fmt.Errorf("app: nodes.%s.gateway.auth: %w", n.name, err)
		}
	}
	l := g.Limits
	proxies, err := l.Proxies() // checked by config.Validate
	if err != nil {
		return err
	}
	resumeKey, err := g.ResumeSecret() // its file was checked by CheckFiles
	if err != nil {
		return fmt.Errorf("app: nodes.%s.gateway.resume_key_file: %w", n.name, err)
	}
	gw, err := gate.New(gate.Config{
		Node:      n.cluster.Actor(),
		Members:   n.members,
		Routes:    routes,
		Public:    slices.Clone(g.Public),
		Auth:      o.auth,
		Identify:  identify,
		Authorize: o.authorize,
		Origins:   slices.Clone(g.WSOrigins),
		Validate:  o.validate,
		Observe:   n.observe(),
		ResumeKey: []byte(resumeKey),
		Limits: gate.Limits{
			MaxFrame: l.MaxFrame, HandshakeTimeout: l.HandshakeTimeout, Heartbeat: l.Heartbeat,
			RequestTimeout: l.RequestTimeout, Rate: l.Rate, Burst: l.Burst,
			WriteQueue: l.WriteQueue, MaxConns: l.MaxConns,
			MaxHeaderBytes: l.MaxHeaderBytes, HTTPIdleTimeout: l.HTTPIdleTimeout,
			PerSourceConns: l.PerSourceConns, ConnRate: l.ConnRate, ConnBurst: l.ConnBurst,
			SourceRate: l.SourceRate, SourceBurst: l.SourceBurst, LimitLoopback: l.LimitLoopback,
			LoginTimeout: l.LoginTimeout, MaxRefused: l.MaxRefused,
			ResumeWindow: l.ResumeWindow, ResumeBuffer: l.ResumeBuffer,
			WriteQueueBytes: l.WriteQueueBytes, SlowClientAfter: l.SlowClientAfter, SendBuffer: l.SendBuffer,
			GroupRate: l.GroupRate, GroupBurst: l.GroupBurst, TrustedProxies: proxies,
		},
		Logger: log.With("gateway", true),
	})
	if err != nil {
		return err
	}
	n.gateway = gw
	return nil
}

// gatewayIdentify makes the Identify hook of a gateway's auth section: a
// JWT's roles and expiry come with its user.
func gatewayIdentify(a *config.Auth) (func(ctx context.Context, token string) (gate.Identity, error), error) {
	switch {
	case a.TokensFile != "":
		t, err := tokenauth.ReadFile(a.TokensFile)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, token string) (gate.Identity, error) {
			uid, err := t.Auth(ctx, token)
			return gate.Identity{UserID: uid}, err
		}, nil
	case a.JWTSecret != "" || a.JWTSecretFile != "":
		secret := []byte(a.JWTSecret)
		if a.JWTSecretFile != "" {
			var err error
			if secret, err = tokenauth.ReadSecret(a.JWTSecretFile); err != nil {
				return nil, err
			}
		}
		j, err := tokenauth.NewJWT(secret)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, token string) (gate.Identity, error) {
			c, err := j.Identify(ctx, token)
			return gate.Identity{UserID: c.UserID, Roles: c.Roles, Expires: c.Expires}, err
		}, nil
	}
	return nil, errors.New("no tokens_file, jwt_secret or jwt_secret_file")
}

// listen opens the gateway's listeners.
func (n *Node) listen(g *config.Gateway, log *slog.Logger) error {
	gw := n.gateway
	kcpKey, err := g.KCPSecret() // its file was checked by CheckFiles
	if err != nil {
		return fmt.Errorf("app: nodes.%s.gateway.kcp_key_file: %w", n.ready.Node, err)
	}
	kcpOpts := gatekcp.Options{Key: []byte(kcpKey)}
	n.ready.Gateway = make(map[string]string)
	var tlsConfig *tls.Config
	ws, mqtt := "ws://", "mqtt://"
	if g.TLS != nil {
		if tlsConfig, err = g.TLS.ServerConfig(); err != nil {
			return fmt.Errorf("app: nodes.%s.gateway.tls: %w", n.ready.Node, err)
		}
		ws, mqtt = "wss://", "mqtts://"
	}
	for _, ln := range []struct {
		kind, at string
		listen   func() (net.Addr, error)
		url      func(net.Addr) string
	}{
		{"tcp", g.TCP, func() (net.Addr, error) { return gw.ListenTCP(g.TCP, tlsConfig) }, func(a net.Addr) string { return "tcp://" + a.String() }},
		{"ws", g.WS, func() (net.Addr, error) { return gatews.Listen(gw, g.WS, g.WSPath, tlsConfig) }, func(a net.Addr) string { return ws + a.String() + g.WSPath }},
		{"kcp", g.KCP, func() (net.Addr, error) { return gatekcp.Listen(gw, g.KCP, kcpOpts) }, func(a net.Addr) string { return "kcp://" + a.String() }},
		{"mqtt", g.MQTT, func() (net.Addr, error) { return gatemqtt.Listen(gw, g.MQTT, tlsConfig) }, func(a net.Addr) string { return mqtt + a.String() }},
		{"mqtt-ws", g.MQTTWS, func() (net.Addr, error) { return gatemqtt.ListenWebSocket(gw, g.MQTTWS, g.MQTTWSPath, tlsConfig) }, func(a net.Addr) string { return ws + a.String() + g.MQTTWSPath }},
	} {
		if ln.at == "" {
			continue
		}
		a, err := ln.listen()
		if err != nil {
			return fmt.Errorf("app: %w (change it with nodes.%s.gateway.%s in the cluster file)", err, n.ready.Node, ln.kind)
		}
		n.ready.Gateway[ln.kind] = ln.url(a)
		attrs := []any{"kind", ln.kind, "addr", a.String()}
		if ln.kind == "kcp" {
			attrs = append(attrs, "encrypted", kcpKey != "")
		}
		log.Info("gateway listening", attrs...)
	}
	return nil
}

// route turns a configured route into the gateway's.
func route(cfg *config.Config, r *config.Route) gate.Route {
	gr := routeTarget(cfg, r)
	if len(r.Roles) > 0 {
		gr = gr.Require(r.Roles...)
	}
	return gr
}

// routeTarget is where a configured route goes.
func routeTarget(cfg *config.Config, r *config.Route) gate.Route {
	if r.Name != "" {
		return gate.To(rpc.Named(r.Name))
	}
	t, _ := cfg.NodeType(r.Module) // config has checked that a node hosts it
	switch {
	case r.ByUser:
		return gate.ByUser(t)
	case r.RPC != "":
		return gate.RPC(r.RPC, rpc.AnyOf(t, cluster.RoundRobin))
	}
	return gate.To(rpc.AnyOf(t, cluster.RoundRobin))
}

// settings returns the Env.Settings of module name: its section of the
// configuration, decoded strictly.
func settings(cfg *config.Config, name string) func(v any) error {
	return func(v any) error {
		section, ok := cfg.Modules[name]
		if !ok || section == nil {
			return nil
		}
		b, err := yaml3.Marshal(section)
		if err != nil {
			return fmt.Errorf("modules.%s: %w", name, err)
		}
		dec := yaml3.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(v); err != nil {
			return fmt.Errorf("modules.%s: %w", name, err)
		}
		return nil
	}
}

// Name returns the node's name in the configuration.
func (n *Node) Name() string { return n.name }

// Ready describes the started node: its address, endpoints and gateway
// listeners (with the ports it got).
func (n *Node) Ready() Ready {
	r := n.ready
	r.Etcd = slices.Clone(r.Etcd)
	r.Modules = slices.Clone(r.Modules)
	if r.Gateway != nil {
		r.Gateway = maps.Clone(r.Gateway)
	}
	return r
}

// Cluster returns the node's cluster node.
func (n *Node) Cluster() *cluster.Node { return n.cluster }

// Members returns the node's membership.
func (n *Node) Members() cluster.Membership { return n.members }

// Gateway returns the node's gateway, or nil.
func (n *Node) Gateway() *gate.Gateway { return n.gateway }

// Tables returns the node's data tables (its tables directory), or nil.
func (n *Node) Tables() *table.Group { return n.tables }

// Streams returns the node's stream host (its streams section), or nil.
func (n *Node) Streams() *stream.Host { return n.streams }

// startStreams starts the node's stream host: on the mesh's TLS when the
// cluster file sets one, so that streams are never weaker than the mesh.
func (n *Node) startStreams(ctx context.Context, cfg *config.Config, st *config.Streams, log *slog.Logger) error {
	sc := stream.Config{
		Listen:            st.Listen,
		Advertise:         st.Advertise,
		MaxStreamsPerPeer: st.MaxStreamsPerPeer,
		StreamWindow:      st.Window,
		MaxRate:           st.MaxRate,
		BusyRate:          st.BusyRate,
		Logger:            log,
	}
	if t := cfg.Cluster.Transport.TLS; t != nil {
		var err error
		if sc.TLS, err = t.MeshConfig(); err != nil {
			return fmt.Errorf("app: cluster.transport.tls: %w", err)
		}
	}
	h, err := stream.Start(ctx, n.cluster, sc)
	if errors.Is(err, syscall.EADDRINUSE) {
		err = fmt.Errorf("%w (change it with nodes.%s.streams.listen in the cluster file)", err, n.name)
	}
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	n.streams = h
	log.Info("stream host listening", "endpoint", h.Endpoint())
	return nil
}

// listenStreams opens the gateway's stream mode listener.
func (n *Node) listenStreams(cfg *config.Config, g *config.StreamGateway, log *slog.Logger) error {
	typ := g.NodeType
	if g.Module != "" {
		typ, _ = cfg.NodeType(g.Module) // validated by Load
	}
	pick := map[string]cluster.Pick{"": cluster.Random, "random": cluster.Random, "round-robin": cluster.RoundRobin, "consistent-hash": cluster.ConsistentHash}[g.Pick]
	gw, err := stream.NewGateway(stream.GatewayConfig{
		Host: n.streams, NodeType: typ, Service: g.Service, Pick: pick,
		MaxConns: g.MaxConns, IdleTimeout: g.IdleTimeout, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("app: nodes.%s.streams.gateway: %w", n.name, err)
	}
	ln, err := net.Listen("tcp", g.Listen)
	if err != nil {
		return fmt.Errorf("app: %w (change it with nodes.%s.streams.gateway.listen in the cluster file)", err, n.name)
	}
	n.streamGate, n.streamServed = gw, make(chan error, 1)
	go func() { n.streamServed <- gw.Serve(ln) }() // ends with Close, in teardown
	if n.ready.Gateway == nil {
		n.ready.Gateway = make(map[string]string)
	}
	n.ready.Gateway["stream"] = "tcp://" + ln.Addr().String()
	log.Info("stream gateway listening", "addr", ln.Addr().String(), "node_type", typ, "service", g.Service)
	return nil
}

// Shutdown drains the node so that nothing in flight is lost:
//
//  1. it marks itself unavailable, so other nodes stop choosing it for new
//     work (lookup by node type, rpc.AnyOf) and grain placement moves its
//     grains to the other hosts;
//  2. its gateway, if any, stops accepting, answers the requests it has
//     forwarded, then tells each client it is going away (a Close frame;
//     MQTT 5 DISCONNECT 0x8B), so clients move to another gateway; its
//     stream gateway (streams.gateway), if any, closes its clients;
//  3. its modules stop in reverse start order (a grain module hands its
//     grains over: flush, then release);
//  4. its admin dashboard, if any, stops; its tables' watcher, if any,
//     stops; its stream host, if any,
//     refuses new streams, waits up to 2s for the open ones to close and
//     closes the rest;
//  5. the cluster node drains (cluster.Node.Shutdown: mailboxes, requests
//     it waits on or relays), leaves the membership and closes;
//  6. its failure reporters (the cluster file's report section) deliver
//     what is queued, within ctx, and stop;
//  7. the membership and the embedded etcd close, and the spans not yet
//     sent go to the trace collector;
//  8. its metrics listener, if any, stops.
//
// From its first step, the metrics listener's /readyz answers 503.
//
// It returns when that is done or ctx ends, whichever comes first (the rest
// of the teardown then goes on in the background, each step falling back
// to an immediate close), with every error met. It is safe to call twice,
// and concurrently: later calls wait for the first and return its result.
func (n *Node) Shutdown(ctx context.Context) error {
	n.once.Do(func() {
		go func() {
			n.err = n.teardown(ctx, true)
			close(n.done)
		}()
	})
	select {
	case <-n.done:
		return n.err
	case <-ctx.Done():
		return fmt.Errorf("app: shutdown of %s: %w", n.name, ctx.Err())
	}
}

// transport returns the node's transport from the cluster file: the TCP
// mesh, or the maker of its kind (WithTransport), whose stop runs at
// teardown.
func (n *Node) transport(cfg *config.Config, nodeName string, o options, log *slog.Logger) (transport.Config, error) {
	kind := cfg.Cluster.Transport.Kind
	if kind == "" || kind == config.TransportTCP {
		tc := cfg.Cluster.Transport.TCP()
		if t := cfg.Cluster.Transport.TLS; t != nil {
			var err error
			if tc.TLS, err = t.MeshConfig(); err != nil {
				return nil, fmt.Errorf("app: cluster.transport.tls: %w", err)
			}
		}
		return tc, nil
	}
	make := o.transports[kind]
	if make == nil {
		return nil, fmt.Errorf("app: cluster.transport.kind %s: this program does not link that transport (pass the options of package app/brokers to app.Start; guild run does)", kind)
	}
	tr, stop, err := make(cfg, nodeName, log)
	if err != nil {
		return nil, fmt.Errorf("app: cluster.transport (%s): %w", kind, err)
	}
	n.stopTransport = stop
	return tr, nil
}

// teardown stops what has started, in order.
func (n *Node) teardown(ctx context.Context, logIt bool) error {
	var errs []error
	note := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	n.serving.Store(false) // /readyz: 503 from now on
	if n.cluster != nil {
		note("mark unavailable", n.cluster.SetAvailable(ctx, false))
		if logIt {
			n.log.Info("unavailable: draining")
		}
	}
	if n.gateway != nil {
		note("shut the gateway down", n.gateway.Shutdown(ctx))
	}
	if n.streamGate != nil { // its clients' streams close with it
		note("close the stream gateway", n.streamGate.Close())
		<-n.streamServed
	}
	for i := len(n.modules) - 1; i >= 0; i-- {
		m := n.modules[i]
		note("stop module "+m.name, m.m.Stop(ctx))
	}
	if n.adminSrv != nil { // before the node it asks through goes
		note("stop the admin dashboard", n.adminSrv.Shutdown(ctx))
	}
	if n.tables != nil { // the watcher: the modules that read the sets have stopped
		note("stop watching the tables", n.tables.Close(ctx))
	}
	if n.streams != nil { // while the node is still a member
		dctx, cancel := context.WithTimeout(ctx, streamDrain)
		err := n.streams.Shutdown(dctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			n.log.Info("stream host closed with streams open", "err", err) // its peers see ErrPeerGone
			err = nil
		}
		note("shut the stream host down", err)
	}
	if n.cluster != nil {
		note("shut the node down", n.cluster.Shutdown(ctx))
		if logIt {
			n.log.Info("left the cluster")
		}
	}
	if n.adminAgent != nil { // its actor stopped with the node: wait for a reload it runs
		note("stop the admin agent", n.adminAgent.Stop(ctx))
	}
	if len(n.reporters) > 0 {
		// The node has drained: deliver what its actors reported, within
		// ctx (or a short grace when it has ended already).
		rctx := ctx
		if ctx.Err() != nil {
			var cancel context.CancelFunc
			rctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), reportGrace)
			defer cancel()
		}
		for _, r := range n.reporters {
			note("close a failure reporter", r.Close(rctx))
		}
	}
	if n.members != nil {
		note("close membership", n.members.Close())
	}
	if n.harbors != nil {
		note("close the harbors' membership", n.harbors.Close())
	}
	if n.stopTransport != nil {
		note("stop the transport's broker", n.stopTransport())
	}
	if n.emb != nil {
		note("close etcd", n.emb.Close())
	}
	if n.traceProvider != nil { // sends the spans still buffered
		note("flush the traces", n.traceProvider.Shutdown(ctx))
	}
	if n.metricsSrv != nil { // last: /readyz says 503 all through the drain
		note("stop the metrics listener", n.metricsSrv.Shutdown(ctx))
	}
	if logIt {
		n.log.Info("stopped")
	}
	return errors.Join(errs...)
}

// pushSession is Env.PushSession: gate.Push on node n.
func pushSession(n *actor.Node) grain.PushFunc {
	return func(sessionID, route string, msg proto.Message) error {
		return gate.Push(n, sessionID, route, msg)
	}
}
