package stream_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/stream"
)

// startHosts starts a stream Host on every node of c (hostsOn on the first
// n nodes only), each behind a fault
// proxy of c's (so Kill and Partition act on the stream connections),
// closed in the test's cleanup, and waits until every node's view shows
// every Host's endpoint.
func startHosts(t testing.TB, c *clustertest.Cluster, cfg stream.Config) []*stream.Host {
	t.Helper()
	return hostsOn(t, c, len(c.Nodes), cfg)
}

func hostsOn(t testing.TB, c *clustertest.Cluster, nodes int, cfg stream.Config) []*stream.Host {
	t.Helper()
	hosts := make([]*stream.Host, nodes)
	for i, n := range c.Nodes[:nodes] {
		cfg := cfg
		if cfg.Logger == nil {
			cfg.Logger = slog.New(slog.DiscardHandler)
		}
		p := c.FrontProxy(i, "stream")
		cfg.Advertise = p.Addr()
		h, err := stream.Start(ctxFor(t, 10*time.Second), n, cfg)
		if err != nil {
			t.Fatalf("stream host of node %d: %v", i, err)
		}
		p.SetTarget(h.ListenAddr())
		hosts[i] = h
		t.Cleanup(func() {
			if err := h.Close(); err != nil {
				t.Errorf("close the stream host of node %d: %v", i, err)
			}
		})
	}
	awaitEndpoints(t, c, hosts)
	return hosts
}

// awaitEndpoints waits until every live node's view shows the endpoint of
// every Host.
func awaitEndpoints(t testing.TB, c *clustertest.Cluster, hosts []*stream.Host) {
	t.Helper()
	await.True(t, 10*time.Second, "every view to show every stream endpoint", func() bool {
		for i := range c.Nodes {
			seen := map[string]bool{}
			for _, m := range c.Membership(i).Members() {
				seen[m.Meta[stream.MetaEndpoint]] = true
			}
			for _, h := range hosts {
				if !seen[h.Endpoint()] {
					return false
				}
			}
		}
		return true
	})
}

// ctxFor returns a context that ends after d or with the test.
func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// echo is a Handler that writes back what it reads.
func echo(_ context.Context, s *stream.Stream) { _, _ = io.Copy(s, s) }

// readErr reads from s until an error and returns it (nil for io.EOF).
func readErr(s io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		if _, err := s.Read(buf); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// recvErr waits up to d for an error on ch.
func recvErr(t *testing.T, ch <-chan error, d time.Duration, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
		return nil
	}
}
