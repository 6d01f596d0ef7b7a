package grain_test

// Tests of a claim whose release failed.

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/cluster/clustertest"
	"github.com/guildkit/guild/grain"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/store/memstore"
)

// TestFailedReleaseIsRetried: a grain deactivates while its node's etcd
// link is briefly frozen (about a second, well inside the lease TTL), so
// its release fails. The activation tries the release again until it
// succeeds: once another node owns the grain (the first one is marked
// unavailable, as a node that starts leaving is), calls reach it there.
// The release was once tried once, "the claim then goes with the node's
// lease", which lives on: the grain was held by a stopped activation for
// as long as its node lived.
func TestFailedReleaseIsRetried(t *testing.T) {
	c := clustertest.Start(t, clustertest.Options{Nodes: 2, TTL: 2 * time.Second})
	log := &turnLog{}
	var slow atomic.Int64
	kind := ctrKind("c", log, &slow, nil, 0)
	st := memstore.New()
	logs := &logRecorder{}
	systems := etcdSystemsWith(t, c, st, grain.Config{ClaimTimeout: 3 * time.Second, Logger: slog.New(logs)}, kind)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var id grain.Identity
	for i := 0; ; i++ {
		id = grain.Identity{Kind: "c", Key: key(i)}
		if _, err := systems[0].Call(ctx, id, wrapperspb.Int64(1)); err != nil {
			t.Fatal(err)
		}
		if systems[0].IsActive(id) {
			break
		}
	}
	deact := systems[0].Stats().Deactivations

	// Node 0's links freeze (its lease TTL is 2s: it survives), until its
	// release has failed once.
	c.Pause(0)
	if _, err := systems[0].Call(ctx, id, wrapperspb.String("deact")); err != nil {
		t.Fatalf("deact: %v", err)
	}
	await.True(t, 5*time.Second, "the release to fail", func() bool { return logs.has("grain: release the claim; trying again until it succeeds") })
	c.Resume(0)
	await.True(t, 10*time.Second, "the activation to release its claim and stop", func() bool { return systems[0].Stats().Deactivations > deact })

	// Node 0 stops being a host (unavailable, as when it starts leaving):
	// node 1 owns the grain now, and serves it.
	if err := c.Nodes[0].SetAvailable(ctx, false); err != nil {
		t.Fatal(err)
	}
	await.True(t, 15*time.Second, "node 1's view to drop node 0", func() bool { return systems[1].Hosts("c") == 1 })
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	if _, err := systems[1].Call(cctx, id, wrapperspb.Int64(2)); err != nil {
		t.Fatalf("a call from node 1 once node 0's activation released the grain: %v", err)
	}
}

// logRecorder is a slog.Handler that keeps the messages it is given.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// has reports whether a message was logged.
func (l *logRecorder) has(msg string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.msgs, msg)
}
