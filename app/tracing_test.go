package app_test

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/internal/await"
)

// collector is an OTLP/gRPC trace receiver: what a node's exporter sends
// reaches it over a real socket.
type collector struct {
	coltrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []gotSpan
}

// gotSpan is one span the collector received.
type gotSpan struct {
	service, name  string
	trace, id, par string
}

func (c *collector) Export(_ context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, gotSpan{service, s.GetName(), hex.EncodeToString(s.GetTraceId()), hex.EncodeToString(s.GetSpanId()), hex.EncodeToString(s.GetParentSpanId())})
			}
		}
	}
	return &coltrace.ExportTraceServiceResponse{}, nil
}

func (c *collector) find(service, name string) (gotSpan, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.spans {
		if s.service == service && s.name == name {
			return s, true
		}
	}
	return gotSpan{}, false
}

// TestTraces: with telemetry.traces, a client's request through the
// gateway of one node to an RPC service of another reaches a real OTLP
// collector as one trace: the gateway's span, and the service's span as
// its child, each under its node's service.name.
func TestTraces(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, col)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	file := `
cluster:
  etcd: {ttl: 2s, prefix: /apptest-traces}
telemetry:
  traces: {endpoint: "` + lis.Addr().String() + `", insecure: true, sample_ratio: 1}
nodes:
  gate1:
    addr: 1.1.1
    master: 127.0.0.1:0
    join_wait: 1s
    gateway:
      tcp: 127.0.0.1:0
      public: [say.Say]
      routes:
        say: {module: svc, rpc: test.Echo}
  world1:
    addr: 1.2.1
    modules: [svc]
`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := app.NewRegistry()
	reg.Register("svc", func() app.Module { return &svcModule{} })
	cfg, err := config.Load(writeFile(t, file), nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	gateNode, err := app.Start(ctx, cfg, "gate1", reg, app.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer gateNode.Shutdown(context.Background())
	worldNode, err := app.Start(ctx, cfg, "world1", reg, app.WithEtcdEndpoints(gateNode.Ready().Etcd...), app.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer worldNode.Shutdown(context.Background())

	cl, err := client.Dial(ctx, client.Config{Addr: gateNode.Ready().Gateway["tcp"]})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out wrapperspb.StringValue
	await.True(t, 20*time.Second, "a request through the gateway to world1's service", func() bool {
		err := cl.Request(ctx, "say.Say", wrapperspb.String("traced"), &out)
		return err == nil && out.Value == "traced"
	})
	// Shutting the nodes down flushes their spans to the collector.
	if err := worldNode.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := gateNode.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var gateSpan, svcSpan gotSpan
	await.True(t, 20*time.Second, "the collector to get the gateway's and the service's spans", func() bool {
		var ok1, ok2 bool
		gateSpan, ok1 = col.find("gate1", "gate say.Say")
		svcSpan, ok2 = col.find("world1", "test.Echo/Say")
		return ok1 && ok2
	})
	if svcSpan.trace != gateSpan.trace || svcSpan.par != gateSpan.id {
		t.Fatalf("the service's span %+v is not the child of the gateway's %+v", svcSpan, gateSpan)
	}
}
