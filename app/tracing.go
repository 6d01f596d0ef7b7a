package app

import (
	"context"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/telemetry/tracing"
)

// tracesOn reports whether the node traces: telemetry.traces.endpoint, or
// the OTLP exporter's standard endpoint variables.
func tracesOn(t config.Traces) bool {
	return t.Endpoint != "" || os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// startTracing sets up the node's tracer provider, exporting to the OTLP
// collector that telemetry.traces (or the OTEL_* variables) names, when
// tracing is on. The exporter connects in the background: a collector
// that is down costs the spans it misses, never the node's start.
func (n *Node) startTracing(ctx context.Context, cfg *config.Config, addr string) error {
	t := cfg.Telemetry.Traces
	if !tracesOn(t) {
		return nil
	}
	var opts []otlptracegrpc.Option
	if t.Endpoint != "" {
		opts = append(opts, otlptracegrpc.WithEndpoint(t.Endpoint))
	}
	if t.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return fmt.Errorf("app: telemetry.traces: %w", err)
	}
	// The node's own attributes, under what OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES say.
	res, err := resource.Merge(
		resource.NewSchemaless(attribute.String("service.name", n.name), attribute.String("guild.node.addr", addr)),
		resource.Environment(),
	)
	if err != nil {
		res = resource.NewSchemaless(attribute.String("service.name", n.name))
	}
	popts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if r := t.SampleRatio; r != nil {
		popts = append(popts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*r))))
	}
	n.traceProvider = sdktrace.NewTracerProvider(popts...)
	n.tracing = tracing.New(tracing.Config{Provider: n.traceProvider})
	return nil
}

// observeGrain is what modules pass as grain.Config.Observe: the
// tracer's, when the node traces.
func (n *Node) observeGrain() func(grain.Identity, actor.Metadata) func(error) {
	if n.tracing == nil {
		return nil
	}
	return n.tracing.ObserveGrain
}

// observe is the gateway's Config.Observe: the tracer's span (first, so
// that it holds the whole request) and the timing by route (metrics, or
// the dashboard's), for what the node has of them.
func (n *Node) observe() gate.ObserveFunc {
	var obs []gate.ObserveFunc
	if n.tracing != nil {
		obs = append(obs, n.tracing.Observe)
	}
	if n.timing != nil {
		obs = append(obs, n.timing.Observe)
	}
	return gate.Observers(obs...)
}
