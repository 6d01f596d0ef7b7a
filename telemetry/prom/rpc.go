package prom

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/rpc"
)

// latencyBuckets are the RPC histograms' upper bounds, in seconds: from
// 10 µs (a call on the caller's own node takes about 0.5 µs, one across
// the mesh about 25 µs) to 10 s.
var latencyBuckets = []float64{
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// rpcMetrics are the RPC interceptors' histograms.
type rpcMetrics struct {
	client, server *prometheus.HistogramVec
	// Observers by full method name, made on a method's first call: the
	// interceptors' hot path is a sync.Map read, not a label hash.
	clientM, serverM sync.Map // string -> *methodObs
}

func newRPCMetrics() *rpcMetrics {
	labels := []string{"service", "method", "code"}
	return &rpcMetrics{
		client: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "guild_rpc_client_duration_seconds",
			Help:    "Blocking RPC calls made through clients with the metrics interceptor, from call to reply, by service, method and code (the count is the number of calls).",
			Buckets: latencyBuckets,
		}, labels),
		server: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "guild_rpc_server_duration_seconds",
			Help:    "RPC calls handled by services with the metrics interceptor, handler time, by service, method and code (the count is the number of calls).",
			Buckets: latencyBuckets,
		}, labels),
	}
}

// methodObs holds one method's label values and the observer of its
// successful calls.
type methodObs struct {
	service, method string
	ok              prometheus.Observer
}

// observe records one call of method (full name) that ended with err
// after d.
func (r *rpcMetrics) observe(byMethod *sync.Map, vec *prometheus.HistogramVec, method string, err error, d time.Duration) {
	v, found := byMethod.Load(method)
	if !found {
		service, short := splitMethod(method)
		v, _ = byMethod.LoadOrStore(method, &methodObs{service: service, method: short, ok: vec.WithLabelValues(service, short, "OK")})
	}
	o := v.(*methodObs)
	if err == nil {
		o.ok.Observe(d.Seconds())
		return
	}
	vec.WithLabelValues(o.service, o.method, codeLabel(rpc.CodeOf(err))).Observe(d.Seconds())
}

// splitMethod splits "/package.Service/Method" into its service and
// method names; a name without a service is labelled service "unknown".
func splitMethod(full string) (service, method string) {
	service, method, ok := rpc.SplitMethodName(full)
	if !ok {
		return "unknown", service
	}
	return service, method
}

// ClientInterceptor returns the client interceptor that times every
// blocking call (rpc.Client.Call, and the generated clients' methods)
// into guild_rpc_client_duration_seconds. Asynchronous and one-way calls
// are not recorded: the interceptor sees only their sending. Install it
// with rpc.WithClientInterceptors, outermost to time the other
// interceptors too.
func (m *Metrics) ClientInterceptor() rpc.Interceptor {
	r := m.rpc
	return func(ctx context.Context, info *rpc.CallInfo, req proto.Message, next rpc.Handler) (proto.Message, error) {
		start := time.Now()
		reply, err := next(ctx, info, req)
		if reply == nil && err == nil {
			return reply, err // sent, not answered: CallAsync or Send
		}
		r.observe(&r.clientM, r.client, info.Method, err, time.Since(start))
		return reply, err
	}
}

// ServerInterceptor returns the server interceptor that times every call
// a service handles into guild_rpc_server_duration_seconds. Install it
// with rpc.WithServerInterceptors (rpc.Serve, the generated
// Register...Server, rpc.NewDispatcher). A call to a method the service
// does not have is answered before interceptors run, so method labels
// come only from the service's own description.
func (m *Metrics) ServerInterceptor() rpc.Interceptor {
	r := m.rpc
	return func(ctx context.Context, info *rpc.CallInfo, req proto.Message, next rpc.Handler) (proto.Message, error) {
		start := time.Now()
		reply, err := next(ctx, info, req)
		r.observe(&r.serverM, r.server, info.Method, err, time.Since(start))
		return reply, err
	}
}
