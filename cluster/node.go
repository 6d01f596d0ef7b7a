package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/transport/tcp"
)

// leaveTimeout bounds the Leave that Close does.
const leaveTimeout = 5 * time.Second

// NodeConfig configures a cluster Node.
type NodeConfig struct {
	// Actor configures the actor node. Addr must be set; Remote and Names
	// are filled in by Start.
	Actor actor.Config
	// Listen is the TCP address of the transport, e.g. "127.0.0.1:0".
	Listen string
	// Advertise, optional, is the endpoint ("host:port") other nodes dial
	// to reach this one, published in its member record: for a node
	// behind NAT, a container port mapping or a proxy. Empty means the
	// address the transport listens on.
	Advertise string
	// Membership publishes this node and resolves the others, e.g. from
	// cluster/etcd's New or NewLocal. Required. The Node leaves it on Close
	// but does not close it.
	Membership Membership
	// Names, optional, resolves global names (cluster/etcd's Names()).
	Names actor.NameRegistry
	// TLS, optional, secures the transport (see transport/tcp).
	TLS *tls.Config
	// Types resolves payload types: nil means protoregistry.GlobalTypes.
	Types *protoregistry.Types
	// Logger receives the node's logs: default slog.Default().
	Logger *slog.Logger
	// Member holds extra fields for this node's record. Start fills in
	// Addr, Endpoint and Available (true).
	Member Member
	// Transport, optional, tunes the TCP transport (heartbeats, queues,
	// backoff). Its Self, Listen, Resolve, Handler, TLS and Logger are
	// filled in by Start.
	Transport tcp.Config
}

// Node is an actor node connected to a cluster: its actors reach actors on
// other nodes through a TCP transport, and other nodes find it through the
// membership.
type Node struct {
	cfg    NodeConfig
	actor  *actor.Node
	tr     *tcp.Transport
	remote *remote
	unsub  func() // stops following the membership

	closeOnce sync.Once
	closeErr  error
}

// Start creates the actor node and its transport and joins the membership
// with this node's record.
func Start(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if cfg.Actor.Addr == 0 {
		return nil, errors.New("cluster: NodeConfig.Actor.Addr is not set")
	}
	if cfg.Membership == nil {
		return nil, errors.New("cluster: NodeConfig.Membership is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Actor.Logger == nil {
		cfg.Actor.Logger = cfg.Logger
	}
	timeout := cfg.Actor.RequestTimeout
	if timeout <= 0 {
		timeout = actor.DefaultConfig().RequestTimeout
	}
	r := newRemote(cfg.Actor.Addr, cfg.Types, cfg.Logger, timeout)
	ac := cfg.Actor
	ac.Remote = r
	ac.Names = cfg.Names
	an, err := actor.NewNode(ac)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	r.node.Store(an)
	tc := cfg.Transport
	tc.Self = cfg.Actor.Addr
	tc.Listen = cfg.Listen
	tc.Resolve = resolver(cfg.Membership)
	tc.Handler = r
	tc.TLS = cfg.TLS
	tc.Logger = cfg.Logger
	tr, err := tcp.New(tc)
	if err != nil {
		_ = an.Close()
		r.close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	r.tr.Store(&trBox{t: tr})
	n := &Node{cfg: cfg, actor: an, tr: tr, remote: r}
	n.unsub = cfg.Membership.Subscribe(n.follow)
	m := cfg.Member.Clone()
	m.Addr = cfg.Actor.Addr
	m.Endpoint = tr.Addr().String()
	if cfg.Advertise != "" {
		m.Endpoint = cfg.Advertise
	}
	m.Available = true
	if err := cfg.Membership.Join(ctx, m); err != nil {
		n.unsub()
		_ = an.Close()
		_ = tr.Close()
		r.close()
		return nil, fmt.Errorf("cluster: join: %w", err)
	}
	return n, nil
}

// follow keeps the transport in step with the membership. A member that
// leaves (gracefully, or when its lease expires after a crash) is
// forgotten: what was queued for it is dropped, requests waiting on it
// fail, and it is no longer redialled. A member that joins is presumed
// reachable, so requests to it go out (and dial) again.
func (n *Node) follow(ev Event) {
	if ev.Member.Addr == n.cfg.Actor.Addr {
		return
	}
	switch ev.Kind {
	case Leave:
		n.tr.Forget(ev.Member.Addr)
	case Join:
		n.remote.PeerUp(ev.Member.Addr)
	}
}

// resolver returns the transport's Resolve: the endpoint of a member.
func resolver(ms Membership) func(actor.Addr) (string, error) {
	return func(a actor.Addr) (string, error) {
		for _, m := range ms.Members() {
			if m.Addr == a {
				if m.Endpoint == "" {
					return "", fmt.Errorf("%w: member %v has no endpoint", ErrNoMember, a)
				}
				return m.Endpoint, nil
			}
		}
		return "", fmt.Errorf("%w: %v is not a member", ErrNoMember, a)
	}
}

// Actor returns the actor node.
func (n *Node) Actor() *actor.Node { return n.actor }

// Endpoint returns the address the transport listens on.
func (n *Node) Endpoint() string { return n.tr.Addr().String() }

// Close leaves the membership, closes the actor node, then the transport.
// It does not close the Membership. It is safe to call twice.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
		defer cancel()
		n.unsub()
		errLeave := n.cfg.Membership.Leave(ctx)
		if errors.Is(errLeave, ErrClosed) {
			errLeave = nil // a closed membership has left already
		}
		errActor := n.actor.Close()
		errTr := n.tr.Close()
		n.remote.close()
		n.closeErr = errors.Join(errLeave, errActor, errTr)
	})
	return n.closeErr
}
