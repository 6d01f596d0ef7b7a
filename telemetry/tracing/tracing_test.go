package tracing_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/examples/echo/echopb"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/telemetry/tracing"
)

// TestMain fails the package when a test leaves a goroutine behind. KCP's
// library-wide timer scheduler (linked through package client) lives as
// long as the process: it is no leak of ours.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).sched"),
		goleak.IgnoreTopFunction("github.com/xtaci/kcp-go/v5.(*TimedSched).prepend"),
	)
}

// relay is the RPC service on the second node: it calls the grain on the
// third with the handler's ctx.
type relay struct{ client echopb.EchoClient }

func (r relay) Echo(ctx *rpc.Context, req *echopb.EchoRequest) (*echopb.EchoReply, error) {
	return r.client.Echo(ctx, rpc.Grain("echoer", "k-"+req.GetText()), req) // a new grain per text: it activates
}

// echoGrain answers Echo through a Dispatcher with the tracing server
// interceptor.
type echoGrain struct{ rpc *rpc.Dispatcher }

func (g *echoGrain) Echo(_ *rpc.Context, req *echopb.EchoRequest) (*echopb.EchoReply, error) {
	return &echopb.EchoReply{Text: "grain:" + req.GetText()}, nil
}

func (g *echoGrain) Receive(c *grain.Context) { g.rpc.Handle(c.Actor()) }

func startGrains(t *testing.T, c *clustertest.Cluster, i int, observe func(grain.Identity, actor.Metadata) func(error), kinds ...grain.Kind) *grain.System {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := grain.Start(ctx, grain.Config{Node: c.Node(i), Membership: c.Members[i], Kinds: kinds, Claims: grain.NewEtcdClaimer(c.Members[i], ""), ClaimTimeout: 10 * time.Second, Observe: observe})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

// TestOneTraceAcrossThreeNodes: a client's request through a gateway on
// node 0, an RPC to a service on node 1 and the grain call it makes on
// node 2 are one trace, each span the child of the one before.
func TestOneTraceAcrossThreeNodes(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	tr := tracing.New(tracing.Config{Provider: provider})

	c := clustertest.Start(t, clustertest.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	kind := grain.Kind{
		Name:  "echoer",
		State: func() any { return &struct{}{} },
		New: func(grain.Identity) grain.Actor {
			g := &echoGrain{}
			g.rpc = rpc.NewDispatcher(echopb.EchoServiceDesc(), g, rpc.WithServerInterceptors(tr.ServerInterceptor()))
			return g
		},
	}
	startGrains(t, c, 2, tr.ObserveGrain, kind)
	caller := startGrains(t, c, 1, nil)
	plain := echopb.NewEchoClient(rpc.NewClient(c.Node(1), rpc.WithGrains(caller)))
	await.True(t, 10*time.Second, "node 1 to reach the grain on node 2", func() bool {
		_, err := plain.Echo(ctx, rpc.Grain("echoer", "k-warm-up"), &echopb.EchoRequest{Text: "warm-up"})
		return err == nil
	})
	before := len(rec.Ended()) // the warm-up's grain spans

	client1 := rpc.NewClient(c.Node(1), rpc.WithGrains(caller), rpc.WithClientInterceptors(tr.ClientInterceptor()))
	svc, err := echopb.RegisterEchoServer(ctx, c.Node(1), relay{echopb.NewEchoClient(client1)}, rpc.WithServerInterceptors(tr.ServerInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	g, err := gate.New(gate.Config{
		Node:    c.Node(0),
		Routes:  map[string]gate.Route{"echo": gate.RPC(echopb.Echo_ServiceName, rpc.To(svc))},
		Public:  []string{"echo.Echo"},
		Observe: tr.Observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	addr, err := g.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.Dial(ctx, client.Config{Addr: "tcp://" + addr.String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })

	var reply echopb.EchoReply
	if err := cl.Request(ctx, "echo.Echo", &echopb.EchoRequest{Text: "hi"}, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.GetText() != "grain:hi" {
		t.Fatalf("reply %q, want grain:hi", reply.GetText())
	}
	// The gateway's span ends once the answer is written, after the reply.
	await.True(t, 10*time.Second, "five spans to end", func() bool { return len(rec.Ended()) >= before+5 })

	spans := rec.Ended()[before:]
	find := func(name string, kind trace.SpanKind) sdktrace.ReadOnlySpan {
		t.Helper()
		for _, s := range spans {
			if s.Name() == name && s.SpanKind() == kind {
				return s
			}
		}
		var have []string
		for _, s := range spans {
			have = append(have, fmt.Sprintf("%s (%v)", s.Name(), s.SpanKind()))
		}
		t.Fatalf("no %v span %q among %s", kind, name, strings.Join(have, ", "))
		return nil
	}
	method := strings.TrimPrefix(echopb.Echo_Echo_FullMethodName, "/")
	gateSpan := find("gate echo.Echo", trace.SpanKindServer)
	var serverSpans []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == method && s.SpanKind() == trace.SpanKindServer {
			serverSpans = append(serverSpans, s)
		}
	}
	clientSpan := find(method, trace.SpanKindClient)
	if len(serverSpans) != 2 {
		t.Fatalf("%d server spans of %s, want 2 (the relay's and the grain's)", len(serverSpans), method)
	}
	relaySpan, grainSpan := serverSpans[0], serverSpans[1]
	if relaySpan.Parent().SpanID() != gateSpan.SpanContext().SpanID() {
		relaySpan, grainSpan = grainSpan, relaySpan
	}
	if gateSpan.Parent().IsValid() {
		t.Errorf("the gateway's span has a parent: %v", gateSpan.Parent())
	}
	traceID := gateSpan.SpanContext().TraceID()
	for _, link := range []struct {
		what          string
		child, parent sdktrace.ReadOnlySpan
	}{
		{"the relay's server span under the gateway's", relaySpan, gateSpan},
		{"the relay's client span under its server span", clientSpan, relaySpan},
		{"the grain's server span under the relay's client span", grainSpan, clientSpan},
		{"the grain's activation under the relay's client span", find("grain activate echoer", trace.SpanKindInternal), clientSpan},
	} {
		if link.child.SpanContext().TraceID() != traceID {
			t.Errorf("%s: trace %v, want %v", link.what, link.child.SpanContext().TraceID(), traceID)
		}
		if link.child.Parent().SpanID() != link.parent.SpanContext().SpanID() {
			t.Errorf("%s: parent %v, want %v", link.what, link.child.Parent().SpanID(), link.parent.SpanContext().SpanID())
		}
	}
	attrs := map[string]string{}
	for _, kv := range clientSpan.Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	if attrs["rpc.system"] != "guild" || attrs["rpc.service"] != echopb.Echo_ServiceName || attrs["rpc.method"] != "Echo" || attrs["rpc.guild.status_code"] != "0" || attrs["server.address"] != c.Node(2).Addr().String() {
		t.Errorf("client span attributes %v", attrs)
	}
}
