package app_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/client"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/gate"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/rpc"
)

const metricsToken = "metrics-token-0123456789"

const metricsFile = `
cluster:
  etcd: {ttl: 2s, prefix: /apptest-metrics}
telemetry:
  metrics: 127.0.0.1:0
  token: ` + metricsToken + `
nodes:
  gate1:
    addr: 1.1.1
    master: 127.0.0.1:0
    join_wait: 1s
    modules: [caller]
    gateway:
      tcp: 127.0.0.1:0
      public: [echo.Say]
      routes:
        echo: {module: svc}
  world1:
    addr: 1.2.1
    modules: [svc]
    telemetry: {metrics: 127.0.0.1:0}
`

// svcModule serves the rpc service test.Echo with the node's Serve
// options, and the gate service "echo"; its Stop waits for release (when
// set), so that a test can look at the node while it drains.
type svcModule struct {
	release chan struct{}
	stopped chan struct{}
}

func (m *svcModule) Start(ctx context.Context, env *app.Env) error {
	if _, err := rpc.Serve(ctx, env.Actor, echoRPC(), nil, env.Serve...); err != nil {
		return err
	}
	svc := gate.NewService("echo")
	gate.Handle(svc, "Say", func(_ *gate.Session, req *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		return req, nil
	})
	_, err := svc.Serve(ctx, env.Actor)
	return err
}

func (m *svcModule) Stop(ctx context.Context) error {
	if m.release == nil {
		return nil
	}
	close(m.stopped)
	select {
	case <-m.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// callerModule hands its Env to the test.
type callerModule struct{ env chan *app.Env }

func (m *callerModule) Start(_ context.Context, env *app.Env) error { m.env <- env; return nil }
func (m *callerModule) Stop(context.Context) error                  { return nil }

// echoRPC describes the rpc service test.Echo: Say echoes.
func echoRPC() *rpc.ServiceDesc {
	return &rpc.ServiceDesc{Name: "test.Echo", Methods: []rpc.MethodDesc{{
		Name:       "Say",
		NewRequest: func() proto.Message { return new(wrapperspb.StringValue) },
		Handle: func(_ any, _ *rpc.Context, req proto.Message) (proto.Message, error) {
			return req, nil
		},
	}}}
}

// httpGet fetches url, with the bearer token when not empty.
func httpGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrapeMetrics fetches and parses a node's /metrics.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, url, metricsToken)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// metricValue returns the value (a histogram's count) of the series of
// name with labels (name, value pairs) among its own, or 0.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	var sum float64
	f := fams[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			ok := false
			for _, l := range m.GetLabel() {
				ok = ok || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}
			if !ok {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		case m.Summary != nil:
			sum += float64(m.GetSummary().GetSampleCount())
		}
	}
	return sum
}

func TestMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	envs := make(chan *app.Env, 1)
	world := &svcModule{release: make(chan struct{}), stopped: make(chan struct{})}
	reg := app.NewRegistry()
	reg.Register("caller", func() app.Module { return &callerModule{env: envs} })
	reg.Register("svc", func() app.Module { return world })
	cfg, err := config.Load(writeFile(t, metricsFile), nil, reg.Names())
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
	defer func() {
		select {
		case <-world.release:
		default:
			close(world.release)
		}
		_ = worldNode.Shutdown(context.Background())
	}()
	env := <-envs
	gm, wm := gateNode.Ready().Metrics, worldNode.Ready().Metrics
	if !strings.HasPrefix(gm, "http://127.0.0.1:") || !strings.HasSuffix(gm, "/metrics") || wm == "" || gm == wm {
		t.Fatalf("metrics URLs %q and %q", gm, wm)
	}
	if gateNode.Metrics() == nil || !gateNode.Serving() {
		t.Fatal("gate1 has no metrics or is not serving")
	}
	wbase := strings.TrimSuffix(wm, "/metrics")

	// Health, readiness, the token.
	if code, _ := httpGet(t, wbase+"/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz %d", code)
	}
	if code, _ := httpGet(t, wbase+"/readyz", ""); code != http.StatusOK {
		t.Errorf("/readyz of a started node %d", code)
	}
	if code, _ := httpGet(t, wm, ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics without the token %d", code)
	}
	if code, body := httpGet(t, wbase+"/debug/pprof/", metricsToken); code != http.StatusOK || !strings.Contains(body, "heap") {
		t.Errorf("/debug/pprof/ with the token %d", code)
	}
	if code, _ := httpGet(t, wbase+"/debug/pprof/", ""); code != http.StatusUnauthorized {
		t.Errorf("/debug/pprof/ without the token %d", code)
	}
	await.True(t, 10*time.Second, "2 members in the gateway's view", func() bool { return len(gateNode.Members().Members()) == 2 })

	gBefore, wBefore := scrapeMetrics(t, gm), scrapeMetrics(t, wm)

	// Traffic: actor requests from gate1 to world1, rpc calls through
	// the module's Env.RPC, gateway requests from a client.
	pong, err := worldNode.Cluster().Actor().SpawnFunc(func(c *actor.Context) {
		if _, ok := c.Message().(*wrapperspb.StringValue); ok {
			c.Respond(c.Message())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	svcType, _ := cfg.NodeType("svc")
	for range 10 {
		if _, err := gateNode.Cluster().Actor().Call(ctx, pong, wrapperspb.String("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := env.RPC.Call(ctx, rpc.AnyOf(svcType, cluster.RoundRobin), "test.Echo", "/test.Echo/Say", wrapperspb.String("hi")); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.Dial(ctx, client.Config{Addr: gateNode.Ready().Gateway["tcp"]})
	if err != nil {
		t.Fatal(err)
	}
	var resp wrapperspb.StringValue
	for range 5 {
		if err := c.Request(ctx, "echo.Say", wrapperspb.String("hey"), &resp); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()

	gAfter, wAfter := scrapeMetrics(t, gm), scrapeMetrics(t, wm)
	grew := func(node string, before, after map[string]*dto.MetricFamily, name string, by float64, labels ...string) {
		t.Helper()
		if b, a := metricValue(before, name, labels...), metricValue(after, name, labels...); a < b+by {
			t.Errorf("%s: %s%v went from %v to %v, want +%v", node, name, labels, b, a, by)
		}
	}
	grew("world1", wBefore, wAfter, "guild_messages_handled_total", 25, "lane", "user")
	grew("world1", wBefore, wAfter, "guild_user_messages_total", 20, "kind", "request") // the actor calls and the RPCs
	grew("world1", wBefore, wAfter, "guild_actors_spawned_total", 1)
	grew("world1", wBefore, wAfter, "guild_rpc_server_duration_seconds", 10, "service", "test.Echo", "method", "Say", "code", "OK")
	grew("gate1", gBefore, gAfter, "guild_rpc_client_duration_seconds", 10, "service", "test.Echo", "method", "Say", "code", "OK")
	grew("gate1", gBefore, gAfter, "guild_peer_sent_frames_total", 25, "peer", "1.2.1")
	grew("gate1", gBefore, gAfter, "guild_peer_received_frames_total", 25, "peer", "1.2.1")
	grew("gate1", gBefore, gAfter, "guild_peer_sent_bytes_total", 25*10, "peer", "1.2.1")
	grew("world1", wBefore, wAfter, "guild_peer_received_frames_total", 25, "peer", "1.1.1")
	grew("gate1", gBefore, gAfter, "guild_gateway_sessions_opened_total", 1, "listener", "tcp")
	grew("gate1", gBefore, gAfter, "guild_gateway_responses_total", 5, "code", "OK")
	// The gateway times a request once its answer is written: by route.
	await.True(t, 10*time.Second, "gate1 to time the 5 gateway requests by route", func() bool {
		return metricValue(scrapeMetrics(t, gm), "guild_gateway_request_duration_seconds", "route", "echo.Say", "code", "OK") >= 5
	})
	if v := metricValue(gAfter, "guild_peer_up", "peer", "1.2.1"); v != 1 {
		t.Errorf("gate1: guild_peer_up{peer=1.2.1} = %v", v)
	}
	await.True(t, 10*time.Second, "gate1 to count a renewal of its lease (every TTL/4, 0.5 s)", func() bool {
		return metricValue(scrapeMetrics(t, gm), "guild_membership_lease_renew_seconds") >= 1
	})
	if v := metricValue(gAfter, "guild_membership_lease_grants_total"); v != 1 {
		t.Errorf("gate1: guild_membership_lease_grants_total = %v", v)
	}
	if v := metricValue(gAfter, "guild_members", "available", "true"); v != 2 {
		t.Errorf("gate1: guild_members{available=true} = %v", v)
	}
	if v := metricValue(wAfter, "guild_actors"); v < 1 {
		t.Errorf("world1: guild_actors = %v", v)
	}

	// Draining: /readyz says 503 while the node stops its modules, and
	// /healthz still 200; the listener closes when the node has stopped.
	done := make(chan error, 1)
	go func() { done <- worldNode.Shutdown(ctx) }()
	select {
	case <-world.stopped:
	case <-ctx.Done():
		t.Fatal("the module did not stop")
	}
	if worldNode.Serving() {
		t.Error("a draining node says it is serving")
	}
	if code, body := httpGet(t, wbase+"/readyz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d %q, want 503", code, body)
	}
	if code, _ := httpGet(t, wbase+"/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz while draining: %d", code)
	}
	close(world.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	await.True(t, 5*time.Second, "world1's metrics listener to close", func() bool {
		resp, err := http.Get(wbase + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	})
}

func TestMetricsListenerBusy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	busy, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	reg := app.NewRegistry()
	file := `
cluster: {etcd: {ttl: 2s, prefix: /apptest-busy}}
nodes:
  solo: {addr: 1.1.1, master: 127.0.0.1:0, join_wait: 1s, telemetry: {metrics: "` + busy.Addr().String() + `"}}
`
	cfg, err := config.Load(writeFile(t, file), nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	_, err = app.Start(ctx, cfg, "solo", reg, app.WithLogger(slog.New(slog.DiscardHandler)))
	if err == nil || !strings.Contains(err.Error(), "nodes.solo.telemetry.metrics") {
		t.Fatalf("Start on a busy metrics port: %v", err)
	}
}
