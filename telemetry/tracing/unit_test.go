package tracing_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/telemetry/tracing"
)

// TestInjectExtract: a span's context written into metadata comes back
// out of it, keeping the other keys; unsampled traces travel too, so the
// root's decision holds downstream.
func TestInjectExtract(t *testing.T) {
	for _, sampled := range []bool{true, false} {
		sampler := sdktrace.AlwaysSample()
		if !sampled {
			sampler = sdktrace.NeverSample()
		}
		rec := tracetest.NewSpanRecorder()
		provider := sdktrace.NewTracerProvider(sdktrace.WithSampler(sampler), sdktrace.WithSpanProcessor(rec))
		tr := tracing.New(tracing.Config{Provider: provider})
		ctx, span := provider.Tracer("t").Start(context.Background(), "root")
		md := tr.Inject(ctx, actor.NewMetadata("guild-user-id", "u1"))
		if md.Get("traceparent") == "" || md.Get("guild-user-id") != "u1" {
			t.Fatalf("sampled %v: injected %v", sampled, md)
		}
		got := trace.SpanContextFromContext(tr.Extract(context.Background(), md))
		if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() || got.IsSampled() != sampled || !got.IsRemote() {
			t.Fatalf("sampled %v: extracted %+v from %v", sampled, got, md)
		}
		span.End()
		_ = provider.Shutdown(context.Background())
	}
	tr := tracing.New(tracing.Config{})
	if ctx := tr.Extract(context.Background(), actor.Metadata{}); trace.SpanContextFromContext(ctx).IsValid() {
		t.Fatal("no metadata gave a span context")
	}
}

// TestObserveEndsWithTheCode: a gateway request's span ends with the
// answer's code, as an error for a code other than OK.
func TestObserveEndsWithTheCode(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = provider.Shutdown(context.Background()) }()
	tr := tracing.New(tracing.Config{Provider: provider})
	md, done := tr.Observe("chat.Say", actor.NewMetadata("guild-session-id", "1.1.1/2"))
	if md.Get("traceparent") == "" || md.Get("guild-session-id") != "1.1.1/2" {
		t.Fatalf("Observe's metadata %v", md)
	}
	if len(rec.Ended()) != 0 {
		t.Fatal("the span ended before the answer")
	}
	done(rpc.NotFound)
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "gate chat.Say" || spans[0].Status().Code.String() != "Error" {
		t.Fatalf("spans %v", spans)
	}
}

// TestLogHandler: a record logged with a ctx that holds a span carries
// its IDs; one without a span does not.
func TestLogHandler(t *testing.T) {
	provider := sdktrace.NewTracerProvider()
	defer func() { _ = provider.Shutdown(context.Background()) }()
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewTextHandler(&buf, nil))).With("node", "n1")
	ctx, span := provider.Tracer("t").Start(context.Background(), "op")
	log.InfoContext(ctx, "inside")
	span.End()
	log.Info("outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log %q", buf.String())
	}
	if !strings.Contains(lines[0], "trace_id="+span.SpanContext().TraceID().String()) || !strings.Contains(lines[0], "span_id=") || !strings.Contains(lines[0], "node=n1") {
		t.Fatalf("inside a span: %q", lines[0])
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Fatalf("outside a span: %q", lines[1])
	}
}
