package tracing_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/examples/echo/echopb"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/telemetry/tracing"
)

type echoServer struct{}

func (echoServer) Echo(_ *rpc.Context, req *echopb.EchoRequest) (*echopb.EchoReply, error) {
	return &echopb.EchoReply{Text: req.GetText()}, nil
}

// A service and its client, both traced: the call makes a client span
// and, as its child, a server span (on another node, the same).
func Example() {
	rec := tracetest.NewSpanRecorder() // in production: an OTLP exporter
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer func() { _ = provider.Shutdown(context.Background()) }()
	tr := tracing.New(tracing.Config{Provider: provider})

	node, _ := actor.NewNode(actor.Config{Logger: slog.New(slog.DiscardHandler)})
	defer func() { _ = node.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	svc, err := echopb.RegisterEchoServer(ctx, node, echoServer{}, rpc.WithServerInterceptors(tr.ServerInterceptor()))
	if err != nil {
		fmt.Println(err)
		return
	}
	client := echopb.NewEchoClient(rpc.NewClient(node, rpc.WithClientInterceptors(tr.ClientInterceptor())))
	if _, err := client.Echo(ctx, rpc.To(svc), &echopb.EchoRequest{Text: "hi"}); err != nil {
		fmt.Println(err)
		return
	}
	spans := rec.Ended()
	server, clientSpan := spans[0], spans[1]
	fmt.Println(clientSpan.SpanKind(), clientSpan.Name())
	fmt.Println(server.SpanKind(), server.Name(), "child of the client span:", server.Parent().SpanID() == clientSpan.SpanContext().SpanID())
	// Output:
	// client echo.v1.Echo/Echo
	// server echo.v1.Echo/Echo child of the client span: true
}
