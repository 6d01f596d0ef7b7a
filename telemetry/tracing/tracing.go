// Package tracing traces guild's calls with OpenTelemetry: a span for each
// request a gateway routes, each RPC call on the client's side and on the
// server's (grains that serve RPC through an rpc.Dispatcher included), with
// the trace context carried across nodes in the messages' metadata
// (actor.Metadata) in W3C traceparent/tracestate form. One client request
// through a gateway, an RPC to a second node and a grain call on a third
// make one trace.
//
//	tr := tracing.New(tracing.Config{Provider: provider})
//	client := rpc.NewClient(node, rpc.WithClientInterceptors(tr.ClientInterceptor()))
//	pid, err := echopb.RegisterEchoServer(ctx, node, impl, rpc.WithServerInterceptors(tr.ServerInterceptor()))
//	g, err := gate.New(gate.Config{..., Observe: tr.Observe})
//
// Spans follow OpenTelemetry's RPC conventions: named after the full
// method ("package.Service/Method"), of kind client or server, with
// rpc.system "guild", rpc.service, rpc.method and rpc.guild.status_code (an
// rpc.Code), and an error status for a code other than OK. A gateway
// request's span is a server span named "gate <route>" with guild.route.
// A handler's ctx holds its server span, so the calls it makes with that
// ctx are its children; a CallAsync from inside an actor continues the
// trace of the message the actor is handling.
//
// A grain activation's start (its claim and the load of its state) is a
// span too, with grain.Config.Observe = ObserveGrain, the child of the call
// that made it.
//
// What is not traced yet: actor messages that are not RPC calls (Extract
// continues a trace from a message's metadata by hand), and the time an
// asynchronous call (CallAsync, a one-way Send) waits for its answer: its
// client span ends when the call is sent.
//
// The interceptors cost nothing beyond the tracer's own work when no span
// is sampled: an unsampled span is not recorded, and its trace context
// still travels, so that the sampling decision of the root holds
// downstream.
package tracing

import (
	"context"
	"log/slog"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/rpc"
)

// ScopeName is the instrumentation scope of guild's spans.
const ScopeName = "github.com/guildkit/guild"

// Config sets up a Tracing. The zero Config uses OpenTelemetry's global
// tracer provider and the W3C trace context and baggage propagators.
type Config struct {
	// Provider makes the tracer: default otel.GetTracerProvider().
	Provider trace.TracerProvider
	// Propagator writes and reads trace context in metadata: default
	// W3C traceparent/tracestate and baggage.
	Propagator propagation.TextMapPropagator
}

// Tracing makes spans of guild's calls. It is safe for concurrent use.
type Tracing struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	attrs  sync.Map // full method name -> []attribute.KeyValue, made on its first call
}

// New returns a Tracing with cfg.
func New(cfg Config) *Tracing {
	if cfg.Provider == nil {
		cfg.Provider = otel.GetTracerProvider()
	}
	if cfg.Propagator == nil {
		cfg.Propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	}
	return &Tracing{tracer: cfg.Provider.Tracer(ScopeName), prop: cfg.Propagator}
}

// Inject returns md with the trace context of ctx's span written into it
// (traceparent, tracestate, baggage), to send with a message.
func (t *Tracing) Inject(ctx context.Context, md actor.Metadata) actor.Metadata {
	c := carrier{md: md}
	t.prop.Inject(ctx, &c)
	return c.md
}

// Extract returns ctx with the trace context that md carries as the
// remote parent of the spans started from it: how an actor continues the
// trace of a message it handles (md from Context.Metadata).
func (t *Tracing) Extract(ctx context.Context, md actor.Metadata) context.Context {
	if md.Len() == 0 {
		return ctx
	}
	return t.prop.Extract(ctx, &carrier{md: md})
}

// parent returns ctx when it holds a span, else ctx with the trace
// context of its incoming metadata (rpc.IncomingMetadata) as the parent.
func (t *Tracing) parent(ctx context.Context) context.Context {
	if trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	return t.Extract(ctx, rpc.IncomingMetadata(ctx))
}

// ClientInterceptor returns an rpc client interceptor (for
// rpc.WithClientInterceptors) that makes a client span of each call, a
// child of ctx's span (or of the trace the calling actor's message
// carries, for CallAsync), and sends its trace context with the call.
func (t *Tracing) ClientInterceptor() rpc.Interceptor {
	return func(ctx context.Context, info *rpc.CallInfo, req proto.Message, next rpc.Handler) (proto.Message, error) {
		ctx, span := t.tracer.Start(t.parent(ctx), spanName(info.Method), clientKind)
		defer span.End()
		ctx = rpc.WithMetadata(ctx, t.Inject(ctx, rpc.OutgoingMetadata(ctx)))
		reply, err := next(ctx, info, req)
		if span.IsRecording() { // an unsampled span costs no attributes
			span.SetAttributes(t.methodAttrs(info.Method)...)
			if info.Remote {
				span.SetAttributes(attribute.String("server.address", info.Peer.Node.String()))
			}
			end(span, err)
		}
		return reply, err
	}
}

// ServerInterceptor returns an rpc server interceptor (for
// rpc.WithServerInterceptors, or rpc.NewDispatcher in a grain) that makes
// a server span of each call, a child of the caller's span, and hands the
// handler a ctx that holds it.
func (t *Tracing) ServerInterceptor() rpc.Interceptor {
	return func(ctx context.Context, info *rpc.CallInfo, req proto.Message, next rpc.Handler) (proto.Message, error) {
		// sctx derives from ctx: the handler gets ctx's values and
		// deadline, and the span.
		sctx, span := t.tracer.Start(t.Extract(ctx, rpc.IncomingMetadata(ctx)), spanName(info.Method), serverKind)
		defer span.End()
		reply, err := next(sctx, info, req)
		if span.IsRecording() {
			span.SetAttributes(t.methodAttrs(info.Method)...)
			if info.Remote {
				span.SetAttributes(attribute.String("client.address", info.Peer.Node.String()))
			}
			end(span, err)
		}
		return reply, err
	}
}

// Observe is a gate.Config.Observe: it starts a server span for each
// request a gateway routes ("gate <route>", a root unless the request's
// metadata carries a trace) and sends its trace context with the request;
// the span ends with the code of the answer.
func (t *Tracing) Observe(route string, md actor.Metadata) (actor.Metadata, func(rpc.Code)) {
	ctx, span := t.tracer.Start(t.Extract(context.Background(), md), "gate "+route, serverKind)
	return t.Inject(ctx, md), func(code rpc.Code) {
		if span.IsRecording() {
			span.SetAttributes(attribute.String("rpc.system", "guild"), attribute.String("guild.route", route), attribute.Int("rpc.guild.status_code", int(code)))
			if code != rpc.OK {
				span.SetStatus(codes.Error, code.String())
			}
		}
		span.End()
	}
}

// end records err's code on span.
func end(span trace.Span, err error) {
	code := rpc.CodeOf(err)
	span.SetAttributes(attribute.Int("rpc.guild.status_code", int(code)))
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
}

// spanName is a span's name for method "/package.Service/Method":
// "package.Service/Method", as OpenTelemetry's RPC conventions want.
func spanName(method string) string {
	if len(method) > 0 && method[0] == '/' {
		return method[1:]
	}
	return method
}

// The span kinds, made once.
var (
	clientKind = trace.WithSpanKind(trace.SpanKindClient)
	serverKind = trace.WithSpanKind(trace.SpanKindServer)
)

// methodAttrs returns the RPC attributes of a call of method, made on its
// first call. The attributes are set once a span is known to be recorded,
// so that the many unsampled calls pay nothing for them (guild's
// samplers read none).
func (t *Tracing) methodAttrs(method string) []attribute.KeyValue {
	if v, ok := t.attrs.Load(method); ok {
		return v.([]attribute.KeyValue)
	}
	svc, m, _ := rpc.SplitMethodName(method)
	attrs := []attribute.KeyValue{
		attribute.String("rpc.system", "guild"),
		attribute.String("rpc.service", svc),
		attribute.String("rpc.method", m),
	}
	v, _ := t.attrs.LoadOrStore(method, attrs)
	return v.([]attribute.KeyValue)
}

// carrier is a propagation.TextMapCarrier over a Metadata.
type carrier struct{ md actor.Metadata }

func (c *carrier) Get(key string) string { return c.md.Get(key) }
func (c *carrier) Set(key, value string) { c.md = c.md.With(key, value) }
func (c *carrier) Keys() []string {
	keys := make([]string, 0, c.md.Len())
	for k := range c.md.All() {
		keys = append(keys, k)
	}
	return keys
}

// LogHandler wraps h so that records logged with a context that holds a
// span (slog's InfoContext and the like, with a handler's ctx) carry its
// trace_id and span_id.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return l.Handler.Handle(ctx, r)
}

func (l logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{l.Handler.WithAttrs(attrs)}
}

func (l logHandler) WithGroup(name string) slog.Handler {
	return logHandler{l.Handler.WithGroup(name)}
}

// ObserveGrain is a grain.Config.Observe: it makes an internal span
// "grain activate <kind>" of each activation's start (the claim and the
// load of its state), a child of the span whose context the message that
// made the activation carries (a root otherwise), ended with the start's
// outcome.
func (t *Tracing) ObserveGrain(id grain.Identity, md actor.Metadata) func(error) {
	_, span := t.tracer.Start(t.Extract(context.Background(), md), "grain activate "+id.Kind, trace.WithSpanKind(trace.SpanKindInternal))
	return func(err error) {
		if span.IsRecording() {
			span.SetAttributes(attribute.String("guild.grain.kind", id.Kind), attribute.String("guild.grain.key", id.Key))
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
		}
		span.End()
	}
}
