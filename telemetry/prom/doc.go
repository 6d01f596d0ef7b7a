// Package prom exports a guild node's metrics to Prometheus and serves
// them over HTTP, beside the node's health, its readiness and Go's
// profiler:
//
//	/metrics        the Prometheus text format (github.com/prometheus/client_golang)
//	/healthz        200 while the process serves HTTP at all (liveness)
//	/readyz         200 when the node is ready for work, 503 before and while it drains
//	/debug/pprof/   net/http/pprof, on this listener's own mux
//
// A Metrics is one node's registry. Its collectors are pull collectors:
// each scrape reads the counters the node keeps anyway (actor.Node.Stats,
// cluster.Node.PeerStats, gate.Gateway.Stats, grain.System.Stats, the
// membership's members), so a node whose metrics nobody scrapes pays
// nothing for them beyond those counters' atomic adds. RPC latency is
// the exception: Metrics.ClientInterceptor and Metrics.ServerInterceptor
// time every call they wrap, so install them only where metrics are on.
//
// Package app does all of this from the cluster file (telemetry.metrics,
// see docs/CONFIG.md). Without it:
//
//	m := prom.New()
//	_ = m.AddActor(node)                      // an *actor.Node
//	client := rpc.NewClient(node, rpc.WithClientInterceptors(m.ClientInterceptor()))
//	srv, err := prom.Serve(prom.Config{Listen: ":9100", Metrics: m, Token: os.Getenv("METRICS_TOKEN")})
//	defer srv.Close()
//
// # Access
//
// With a Token, /metrics and /debug/pprof/ need the header
// "Authorization: Bearer <token>" (compared in constant time); a request
// without it gets 401. /healthz and /readyz stay open, so that load
// balancers and orchestrators, which often cannot send a header, can
// probe them: they tell only "alive" and "ready or not".
//
// # Names
//
// Every metric starts with guild_. Counters end in _total, durations are
// in seconds. Labels are bounded: a peer's node address, a listener kind,
// a status code, an RPC service and method (from the services' own
// descriptions), never a user, session, PID or actor name.
// docs/OPERATING.md lists every metric.
//
// # Goroutines
//
// A Server runs one goroutine that accepts connections (http.Server's
// Serve) and, as net/http does, one per open connection. Shutdown and
// Close end them and wait for the first.
package prom
