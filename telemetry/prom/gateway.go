package prom

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/rpc"
)

// maxRoutes bounds the route label's values: the method part of a route
// is the client's to write, so past this many distinct routes the rest
// are counted as "other".
const maxRoutes = 256

// gatewayRequests is the histogram of the requests a gateway routes.
type gatewayRequests struct {
	vec    *prometheus.HistogramVec
	mu     sync.Mutex // guards the admission of new routes
	routes sync.Map   // route -> struct{}: the routes with a label of their own
	n      atomic.Int32
}

func newGatewayRequests() *gatewayRequests {
	return &gatewayRequests{vec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "guild_gateway_request_duration_seconds",
		Help:    "Requests a gateway routed to a service, from routing to the answer written to the client, by route and code (the count is the number of requests; routes past the first 256 are counted as \"other\").",
		Buckets: latencyBuckets,
	}, []string{"route", "code"})}
}

// label returns route, or "other" once maxRoutes routes have labels.
func (g *gatewayRequests) label(route string) string {
	if _, ok := g.routes.Load(route); ok {
		return route
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.routes.Load(route); ok {
		return route
	}
	if g.n.Load() >= maxRoutes {
		return "other"
	}
	g.routes.Store(route, struct{}{})
	g.n.Add(1)
	return route
}

// Observe is a gate.Config.Observe that times each request a gateway
// routes, by route and the answer's code, into
// guild_gateway_request_duration_seconds. It leaves the metadata as it
// is. With a tracer as well, chain them with gate.Observers.
func (m *Metrics) Observe(route string, md actor.Metadata) (actor.Metadata, func(rpc.Code)) {
	g := m.gw
	start := time.Now()
	return md, func(code rpc.Code) {
		g.vec.WithLabelValues(g.label(route), codeLabel(code)).Observe(time.Since(start).Seconds())
	}
}
