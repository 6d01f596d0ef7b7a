package prom_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/rpc"
	"github.com/guildkit/guild/telemetry/prom"
)

// A node's metrics, health, readiness and profiles from Go, without a
// cluster file.
func ExampleServe() {
	node, err := actor.NewNode(actor.Config{})
	if err != nil {
		panic(err)
	}
	defer node.Close()

	m := prom.New()
	if err := m.AddActor(node); err != nil { // actors, messages, panics, dead letters...
		panic(err)
	}
	// RPC latency: interceptors on the clients and services that should be timed.
	_ = rpc.NewClient(node, rpc.WithClientInterceptors(m.ClientInterceptor()))

	var ready atomic.Bool // the program says when it is ready for work
	srv, err := prom.Serve(prom.Config{
		Listen:  "127.0.0.1:0", // ":9100" in production
		Metrics: m,
		Token:   "a-long-random-token-for-scrapers", // /metrics and /debug/pprof/ need it
		Ready:   ready.Load,
	})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	status := func(path, token string) string {
		req, _ := http.NewRequest(http.MethodGet, srv.URL()+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK && path == "/metrics" {
			return fmt.Sprintf("%s, guild_actors present: %v", resp.Status, strings.Contains(string(body), "\nguild_actors "))
		}
		return resp.Status
	}
	fmt.Println("/healthz", status("/healthz", ""))
	fmt.Println("/readyz", status("/readyz", ""))
	ready.Store(true)
	fmt.Println("/readyz", status("/readyz", ""))
	fmt.Println("/metrics", status("/metrics", ""))
	fmt.Println("/metrics", status("/metrics", "a-long-random-token-for-scrapers"))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	// Output:
	// /healthz 200 OK
	// /readyz 503 Service Unavailable
	// /readyz 200 OK
	// /metrics 401 Unauthorized
	// /metrics 200 OK, guild_actors present: true
}
