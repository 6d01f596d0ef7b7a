package app

import (
	"context"
	"log/slog"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/transport"
)

// Option changes how Start (or Status) runs a node. Options are for what
// the configuration file cannot say: values known only at run time, and
// Go functions.
type Option interface{ apply(*options) }

type options struct {
	etcd   []string
	logger *slog.Logger
	auth   func(ctx context.Context, token string) (userID string, err error)
	// validate is the gateway's request check (gate.Config.Validate).
	validate func(ctx context.Context, s *gate.SessionInfo, route string, body []byte) error
	// authorize is the gateway's per-request authorization (gate.Config.Authorize).
	authorize func(ctx context.Context, s *gate.SessionInfo, route string) error
	// transports are the makers of the transport kinds other than tcp.
	transports map[string]TransportMaker
	// reporters get the node's failures, besides the cluster file's.
	reporters []actor.Reporter
	// version is the build's version (WithVersion).
	version string
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithEtcdEndpoints makes a node that is not the master use these etcd
// endpoints instead of the configuration's (cluster.etcd.endpoints, or the
// master's address): for instance the endpoints that a master on port 0
// reported in its Ready. The master itself always uses its own etcd.
func WithEtcdEndpoints(endpoints ...string) Option {
	eps := append([]string(nil), endpoints...)
	return optionFunc(func(o *options) { o.etcd = eps })
}

// WithVersion sets the version of the build that runs the node, such as
// a release tag or a commit, which the binary sets at link time (go build
// -ldflags "-X main.version=v1.4.2"). The node publishes it in its member
// record, under the Meta key MetaVersion, from the moment it joins:
// Status and guild status show it, and the admin API's GET /api/view has
// it in each node's meta, so an operator can follow a rolling upgrade
// node by node.
// Its modules read it as Env.Version and its Ready carries it. Default:
// none ("").
func WithVersion(v string) Option {
	return optionFunc(func(o *options) { o.version = v })
}

// WithLogger sets the logger of the node, its membership, its gateway and
// its modules (which get it with "node" and "module" attributes). Default:
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(o *options) { o.logger = l })
}

// WithGatewayAuth sets the gateway's Auth (see gate.Config.Auth): it
// checks a client's handshake token and returns the user it
// authenticates. It takes precedence over the cluster file's
// gateway.auth. Without either, a gateway refuses tokens and sessions
// start unauthenticated.
func WithGatewayAuth(auth func(ctx context.Context, token string) (userID string, err error)) Option {
	return optionFunc(func(o *options) { o.auth = auth })
}

// WithGatewayValidate sets the gateway's request check (see
// gate.Config.Validate): it sees each client request before the gateway
// routes it, and its error refuses the request with InvalidArgument. A
// node without a gateway ignores it.
func WithGatewayValidate(validate func(ctx context.Context, s *gate.SessionInfo, route string, body []byte) error) Option {
	return optionFunc(func(o *options) { o.validate = validate })
}

// WithGatewayAuthorize sets the gateway's authorization hook (see
// gate.Config.Authorize): it sees each request of a session with the
// route it calls, after the route's roles (routes.<service>.roles in the
// cluster file), and its error refuses the request with PermissionDenied.
// A node without a gateway ignores it.
func WithGatewayAuthorize(authorize func(ctx context.Context, s *gate.SessionInfo, route string) error) Option {
	return optionFunc(func(o *options) { o.authorize = authorize })
}

// WithReporter gives the node's failures (actor.Config.Reporter: the
// panics it recovers and its supervisors' escalations) to r too, besides
// the reporters of the cluster file's report section. r must return at
// once (see actor.Reporter); the program owns it, and closes it after
// Shutdown if it needs closing.
func WithReporter(r actor.Reporter) Option {
	return optionFunc(func(o *options) {
		if r != nil {
			o.reporters = append(o.reporters, r)
		}
	})
}

// TransportMaker makes a node's transport from the cluster file, for one
// kind of cluster.transport. It is called once per node, before the node
// joins; stop, when not nil, is called once the node has left and closed
// its transport (an embedded broker stops there).
type TransportMaker func(cfg *config.Config, node string, log *slog.Logger) (tr transport.Config, stop func() error, err error)

// WithTransport lets the cluster file choose the transport kind kind
// (cluster.transport.kind) in this program. The TCP mesh is built in;
// package app/brokers gives the makers of nats, amqp and redis (a
// program that needs none of them does not link their clients).
func WithTransport(kind string, make TransportMaker) Option {
	return optionFunc(func(o *options) {
		if o.transports == nil {
			o.transports = map[string]TransportMaker{}
		}
		o.transports[kind] = make
	})
}

func collect(opts []Option) options {
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt.apply(&o)
		}
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return o
}
