package prom

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/table"
)

// ErrAlreadyAdded is returned when a source (an actor node, a gateway...)
// of the same kind was already added to a Metrics: one Metrics describes
// one node, and two sources of a kind would export the same series.
var ErrAlreadyAdded = errors.New("prom: a source of this kind is already added")

// Metrics is the Prometheus registry of one guild node: the Go runtime's
// and the process's metrics, the sources added to it, and the RPC
// interceptors' histograms. Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	rpc *rpcMetrics
	gw  *gatewayRequests
}

// New returns a Metrics holding the Go runtime's (go_...) and the
// process's (process_...) collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{reg: reg, rpc: newRPCMetrics(), gw: newGatewayRequests()}
	reg.MustRegister(m.rpc.client, m.rpc.server, m.gw.vec)
	return m
}

// Registry returns the registry, to register a game's own collectors in
// (they are served with the node's).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler returns the HTTP handler of the Prometheus text format for the
// registry (what Server serves at /metrics).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// add registers c, as ErrAlreadyAdded when its metrics are registered
// already.
func (m *Metrics) add(what string, c prometheus.Collector) error {
	if err := m.reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return fmt.Errorf("%w: %s", ErrAlreadyAdded, what)
		}
		return fmt.Errorf("prom: add %s: %w", what, err)
	}
	return nil
}

// AddActor exports n's actor counters (actor.Node.Stats): actors live and
// spawned, restarts, panics, dead letters, messages handled and timers
// pending; and guild_mailbox_backlog, a histogram of the actors by
// mailbox depth, made at each scrape by a scan of the node's actors
// (actor.Node.EachBacklog: about 1 ms per 100,000 actors).
func (m *Metrics) AddActor(n *actor.Node) error {
	if n == nil {
		return errors.New("prom: AddActor of a nil node")
	}
	return m.add("an actor node", newActorCollector(n.Stats, n.EachBacklog))
}

// AddPeers exports n's per-peer transport counters
// (cluster.Node.PeerStats), labelled by the peer's node address: the TCP
// mesh's and the brokers' (package bus) alike. On a transport that keeps
// none, the metrics are absent.
func (m *Metrics) AddPeers(n *cluster.Node) error {
	if n == nil {
		return errors.New("prom: AddPeers of a nil node")
	}
	return m.add("a cluster node's peers", newPeerCollector(n.PeerStats))
}

// AddMembers exports the number of members in ms's view, available or
// not, and, for an etcd membership (cluster/etcd), its lease renewals:
// their round trips, failures and the leases granted.
func (m *Metrics) AddMembers(ms cluster.Membership) error {
	if ms == nil {
		return errors.New("prom: AddMembers of a nil membership")
	}
	if err := m.add("a membership", newMemberCollector(ms.Members)); err != nil {
		return err
	}
	if em, ok := ms.(*etcd.Membership); ok {
		return m.add("an etcd membership's lease", newLeaseCollector(em.Stats))
	}
	return nil
}

// AddGateway exports g's counters (gate.Gateway.Stats and Conns):
// connections, sessions by listener, responses by code, pushes, kicks and
// slow clients cut off.
func (m *Metrics) AddGateway(g *gate.Gateway) error {
	if g == nil {
		return errors.New("prom: AddGateway of a nil gateway")
	}
	return m.add("a gateway", newGatewayCollector(g.Stats, g.Conns))
}

// AddTables exports the table sets of g (table.Group.Status), labelled
// by set: guild_table_set_info (1, with the version served as a label),
// the time it was loaded, its loads, unchanged reloads and failed
// reloads (the old snapshot stayed), and the rows of each table.
func (m *Metrics) AddTables(g *table.Group) error {
	if g == nil {
		return errors.New("prom: AddTables of a nil Group")
	}
	return m.add("a table group", newTableCollector(g.Status))
}

// AddGrains exports s's counters (grain.System.Stats): activations,
// deactivations, hand-overs, flushes, flush errors, conflicts, forwarded
// and refused messages.
func (m *Metrics) AddGrains(s *grain.System) error {
	if s == nil {
		return errors.New("prom: AddGrains of a nil System")
	}
	return m.add("a grain System", newGrainCollector(s.Stats))
}
