package prom_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/telemetry/prom"
)

const token = "0123456789abcdef-test-token"

// startServer serves m on a free port with token and ready.
func startServer(t *testing.T, m *prom.Metrics, ready func() bool) *prom.Server {
	t.Helper()
	srv, err := prom.Serve(prom.Config{Listen: "127.0.0.1:0", Metrics: m, Token: token, Ready: ready})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func TestEndpointsAndToken(t *testing.T) {
	var ready atomic.Bool
	srv := startServer(t, prom.New(), ready.Load)
	u := srv.URL()

	if code, body := get(t, u+"/healthz", ""); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, _ := get(t, u+"/readyz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before ready: %d, want 503", code)
	}
	ready.Store(true)
	if code, _ := get(t, u+"/readyz", ""); code != http.StatusOK {
		t.Errorf("/readyz when ready: %d, want 200", code)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		if code, _ := get(t, u+path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d, want 401", path, code)
		}
		if code, _ := get(t, u+path, "wrong-token-wrong-token"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", path, code)
		}
		if code, _ := get(t, u+path, token); code != http.StatusOK {
			t.Errorf("%s with the token: %d, want 200", path, code)
		}
	}
	if _, body := get(t, u+"/debug/pprof/", token); !strings.Contains(body, "goroutine") {
		t.Errorf("the pprof index lists no goroutine profile: %.200s", body)
	}
	fams := scrape(t, u+"/metrics", token)
	if value(fams, "go_goroutines") <= 0 {
		t.Error("no go_goroutines")
	}
	if code, _ := get(t, u+"/debug/pprof/nosuch", token); code != http.StatusNotFound {
		t.Errorf("an unknown profile: %d, want 404", code)
	}
	if code, _ := get(t, u+"/debug/pprof/profile?seconds=abc", token); code != http.StatusBadRequest {
		t.Errorf("a bad seconds: %d, want 400", code)
	}
	if code, body := get(t, u+"/debug/pprof/profile?seconds=0.1", token); code != http.StatusOK || len(body) == 0 {
		t.Errorf("a CPU profile: %d, %d bytes", code, len(body))
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []prom.Config{{}, {Listen: "9100"}, {Listen: ":0", Token: " x"}} {
		if _, err := prom.Serve(c); err == nil {
			t.Errorf("Serve(%+v) = nil error", c)
		}
	}
	srv, err := prom.Serve(prom.Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := prom.Serve(prom.Config{Listen: srv.Addr().String()}); err == nil {
		t.Error("a second server on the same port started")
	}
	m := prom.New()
	n, err := actor.NewNode(actor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := m.AddActor(n); err != nil {
		t.Fatal(err)
	}
	if err := m.AddActor(n); !errors.Is(err, prom.ErrAlreadyAdded) {
		t.Errorf("second AddActor: %v, want ErrAlreadyAdded", err)
	}
	if err := m.AddActor(nil); err == nil {
		t.Error("AddActor(nil) = nil")
	}
}

func TestActorAndRPCMetricsMove(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := actor.NewNode(actor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	m := prom.New()
	if err := m.AddActor(n); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, m, nil)
	url := srv.URL() + "/metrics"

	svc, err := rpc.Serve(ctx, n, echoDesc, nil, rpc.WithServerInterceptors(m.ServerInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	client := rpc.NewClient(n, rpc.WithClientInterceptors(m.ClientInterceptor()))
	pong, err := n.SpawnFunc(func(c *actor.Context) {
		switch msg := c.Message().(type) {
		case string:
			if msg == "boom" {
				panic("boom")
			}
			c.Respond(msg)
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	before := scrape(t, url, token)
	for range 10 {
		if _, err := n.Call(ctx, pong, "ping"); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Call(ctx, rpc.To(svc), echoDesc.Name, "/test.Echo/Say", wrapperspb.String("hi")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.Call(ctx, rpc.To(svc), echoDesc.Name, "/test.Echo/Fail", wrapperspb.String("x")); rpc.CodeOf(err) != rpc.NotFound {
		t.Fatalf("Fail: %v", err)
	}
	if _, err := n.Call(ctx, pong, "boom"); !errors.Is(err, actor.ErrPanicked) {
		t.Fatalf("boom: %v", err)
	}
	// The restart is counted after the panic's answer has gone: wait for
	// it rather than read once.
	after := scrape(t, url, token)
	await.True(t, 5*time.Second, "the actor's restart to be counted", func() bool {
		after = scrape(t, url, token)
		return value(after, "guild_actor_restarts_total") >= max(value(before, "guild_actor_restarts_total"), 0)+1
	})

	grew := func(name string, by float64, labels ...string) {
		t.Helper()
		b, a := value(before, name, labels...), value(after, name, labels...)
		if b < 0 {
			b = 0
		}
		if a < b+by {
			t.Errorf("%s%v: %v then %v, want it to grow by %v", name, labels, b, a, by)
		}
	}
	grew("guild_messages_handled_total", 20, "lane", "user") // 10 pings, 10 calls at least
	grew("guild_actor_panics_total", 1)
	grew("guild_actor_restarts_total", 1)
	grew("guild_rpc_client_duration_seconds", 10, "service", "test.Echo", "method", "Say", "code", "OK")
	grew("guild_rpc_server_duration_seconds", 10, "service", "test.Echo", "method", "Say", "code", "OK")
	grew("guild_rpc_client_duration_seconds", 1, "service", "test.Echo", "method", "Fail", "code", "NotFound")
	grew("guild_rpc_server_duration_seconds", 1, "service", "test.Echo", "method", "Fail", "code", "NotFound")
	if v := value(after, "guild_actors"); v < 2 {
		t.Errorf("guild_actors %v, want at least 2", v)
	}

	// Shutdown stops the server: its port refuses connections.
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	await.True(t, 5*time.Second, "the port to refuse connections", func() bool {
		_, err := http.Get(url)
		return err != nil
	})
	if err := srv.Shutdown(sctx); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}
