package admin

import (
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/table"
	"github.com/guildkit/guild/telemetry/prom"
)

// Snapshot is one node's numbers at one moment, as its Agent reports them.
// Counters count since the node started; the Server turns them into rates.
type Snapshot struct {
	// Node is the node's name (AgentConfig.Name).
	Node string `json:"node"`
	// Addr is its logical address.
	Addr string `json:"addr"`
	// Time is when the snapshot was taken, on the node's clock.
	Time time.Time `json:"time"`
	// Actor is actor.Node.Stats.
	Actor actor.Stats `json:"actor"`
	// Top are the actors with the deepest mailboxes
	// (actor.Node.TopBacklogs).
	Top []Backlog `json:"top"`
	// Gateway is the node's gateway's counters, nil without one.
	Gateway *GatewayStats `json:"gateway,omitempty"`
	// Grains has one entry per grain System added to the Agent.
	Grains []GrainStats `json:"grains,omitempty"`
	// RPC has the calls timed by the node's RPC metrics interceptors, by
	// side and method; empty when the node has no prom.Metrics.
	RPC []RPCStats `json:"rpc,omitempty"`
	// RPCBounds are the upper bounds, in seconds, of RPC's buckets.
	RPCBounds []float64 `json:"rpc_bounds,omitempty"`
	// RPCTimed says whether the node times RPC calls at all
	// (AgentConfig.Metrics is set).
	RPCTimed bool `json:"rpc_timed"`
	// Drainable says whether the node drains (AgentConfig.Drain) rather
	// than only being marked unavailable.
	Drainable bool `json:"drainable"`
	// Failures are the node's last failures, the newest first
	// (AgentConfig.Failures), FailuresTotal how many it reported in all,
	// and FailuresKept whether it keeps them at all.
	Failures      []Failure `json:"failures,omitempty"`
	FailuresTotal uint64    `json:"failures_total"`
	FailuresKept  bool      `json:"failures_kept"`
	// Tables are the node's table sets with the version each serves
	// (AgentConfig.Tables); nil when the node has no tables.
	Tables []table.Status `json:"tables,omitempty"`
	// Reloaders are the node's reloaders (Agent.AddReloader: hot-fix
	// modules) with the version each of their items serves; nil when it
	// has none.
	Reloaders []ReloaderStatus `json:"reloaders,omitempty"`
	// Lease is the node's membership lease (an etcd membership's
	// renewals), nil when unknown.
	Lease *LeaseStats `json:"lease,omitempty"`
}

// LeaseStats are a node's etcd lease renewals (etcd.Membership.Stats):
// answered, failed, the mean round trip, and the leases granted (more
// than one: the node lost its lease and joined again).
type LeaseStats struct {
	Renewals         uint64  `json:"renewals"`
	Failures         uint64  `json:"failures"`
	Grants           uint64  `json:"grants"`
	MeanRenewSeconds float64 `json:"mean_renew_seconds"`
}

// Backlog is an actor's mailbox depth.
type Backlog struct {
	PID      string   `json:"pid"`
	Messages int      `json:"messages"`
	Names    []string `json:"names,omitempty"`
}

// GatewayStats are a gateway's counters (gate.Gateway.Stats and Conns).
type GatewayStats struct {
	Conns     int                  `json:"conns"`
	Listeners []gate.ListenerStats `json:"listeners"`
	// Responses counts the responses to clients' requests, every code.
	Responses   uint64 `json:"responses"`
	Errors      uint64 `json:"errors"` // responses whose code is not OK
	Pushes      uint64 `json:"pushes"`
	Kicks       uint64 `json:"kicks"`
	SlowClients uint64 `json:"slow_clients"`
}

// GrainStats are one grain System's counters, named by its kinds.
type GrainStats struct {
	Kinds []string    `json:"kinds"`
	Stats grain.Stats `json:"stats"`
	// Active counts the activations taking messages, by kind
	// (grain.System.ActiveByKind).
	Active map[string]int `json:"active"`
}

// RPCStats are the RPC calls of one method on one side, or the requests
// of one gateway route, with their latency histogram.
type RPCStats struct {
	// Side is "server" (calls the node's services handled), "client"
	// (blocking calls the node made) or "gateway" (requests its gateway
	// routed, by route).
	Side string `json:"side"`
	// Method is "package.Service/Method", or the gateway's route.
	Method string `json:"method"`
	Calls  uint64 `json:"calls"`
	Errors uint64 `json:"errors"` // calls whose code is not OK
	// Buckets are cumulative counts for Snapshot.RPCBounds.
	Buckets []uint64 `json:"buckets"`
}

// The histograms of telemetry/prom that RPCStats come from.
var rpcFamilies = map[string]string{
	"guild_rpc_server_duration_seconds":      "server",
	"guild_rpc_client_duration_seconds":      "client",
	"guild_gateway_request_duration_seconds": "gateway",
}

// rpcStats reads the RPC histograms of m, summed over their codes.
func rpcStats(m *prom.Metrics) ([]RPCStats, []float64, error) {
	fams, err := m.Registry().Gather()
	if err != nil {
		return nil, nil, err
	}
	var (
		out    []RPCStats
		bounds []float64
		index  = make(map[[2]string]int)
	)
	for _, f := range fams {
		side, ok := rpcFamilies[f.GetName()]
		if !ok {
			continue
		}
		for _, mt := range f.GetMetric() {
			h := mt.GetHistogram()
			if h == nil {
				continue
			}
			var service, method, route, code string
			for _, l := range mt.GetLabel() {
				switch l.GetName() {
				case "service":
					service = l.GetValue()
				case "method":
					method = l.GetValue()
				case "route":
					route = l.GetValue()
				case "code":
					code = l.GetValue()
				}
			}
			if bounds == nil {
				bounds = upperBounds(h.GetBucket())
			}
			key := [2]string{side, service + "/" + method}
			if side == "gateway" {
				key[1] = route
			}
			i, ok := index[key]
			if !ok {
				i = len(out)
				index[key] = i
				out = append(out, RPCStats{Side: side, Method: key[1], Buckets: make([]uint64, len(bounds))})
			}
			s := &out[i]
			s.Calls += h.GetSampleCount()
			if !strings.EqualFold(code, "OK") {
				s.Errors += h.GetSampleCount()
			}
			for j, b := range h.GetBucket() {
				if j < len(s.Buckets) {
					s.Buckets[j] += b.GetCumulativeCount()
				}
			}
		}
	}
	return out, bounds, nil
}

func upperBounds(bs []*dto.Bucket) []float64 {
	out := make([]float64, len(bs))
	for i, b := range bs {
		out[i] = b.GetUpperBound()
	}
	return out
}
