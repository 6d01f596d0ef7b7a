package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/cluster/etcd"
	"github.com/guildkit/guild/config"
)

// harborFile is the cluster file of cluster id: a master node of type 1
// and a harbor, meeting the other clusters' harbors in the harbors' etcd.
const harborFile = `
cluster:
  id: %[1]d
  etcd: {ttl: 2s, prefix: /apptest-harbors-%[1]d}
  harbors: {endpoints: [%[2]s]}
nodes:
  game%[1]d:
    addr: %[1]d.1.1
    master: 127.0.0.1:0
    export: true
  spare%[1]d:
    addr: %[1]d.1.2
    available: false
  harbor%[1]d:
    addr: %[1]d.255.1
`

// TestHarborsFromClusterFiles: two clusters, each from its own cluster
// file with its own (embedded) etcd, joined by a harbor each through the
// harbors' etcd: a node of one calls an actor of the other; export and
// available reach the member records.
func TestHarborsFromClusterFiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	he, err := etcd.StartEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer he.Close()
	log := slog.New(slog.DiscardHandler)
	reg := app.NewRegistry()
	nodes := make(map[string]*app.Node)
	for id := 1; id <= 2; id++ {
		cfg, err := config.Load(writeFile(t, fmt.Sprintf(harborFile, id, he.Endpoints()[0])), nil, reg.Names())
		if err != nil {
			t.Fatal(err)
		}
		game := fmt.Sprintf("game%d", id)
		g, err := app.Start(ctx, cfg, game, reg, app.WithLogger(log))
		if err != nil {
			t.Fatal(err)
		}
		defer g.Shutdown(context.Background())
		nodes[game] = g
		for _, name := range []string{fmt.Sprintf("spare%d", id), fmt.Sprintf("harbor%d", id)} {
			n, err := app.Start(ctx, cfg, name, reg, app.WithEtcdEndpoints(g.Ready().Etcd...), app.WithLogger(log))
			if err != nil {
				t.Fatal(err)
			}
			defer n.Shutdown(context.Background())
			nodes[name] = n
		}
	}
	for _, m := range nodes["game1"].Members().Members() {
		switch {
		case m.Addr.Cluster() != 1:
			t.Errorf("cluster 1's etcd holds %v", m.Addr)
		case m.Addr == actor.MustAddr(1, 1, 1) && !m.Export:
			t.Errorf("game1 is not exported: %+v", m)
		case m.Addr == actor.MustAddr(1, 1, 2) && m.Available:
			t.Errorf("spare1 (available: false) is available: %+v", m)
		}
	}
	pid, err := nodes["game2"].Cluster().Actor().SpawnFunc(func(c *actor.Context) {
		if m, ok := c.Message().(*wrapperspb.StringValue); ok {
			c.Respond(wrapperspb.String("cluster 2: " + m.GetValue()))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var got any
	waitFor(t, 10*time.Second, "a call from cluster 1 to reach cluster 2", func() bool {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		got, err = nodes["game1"].Cluster().Actor().Call(cctx, pid, wrapperspb.String("hello"))
		return err == nil
	})
	if s := got.(*wrapperspb.StringValue).GetValue(); !strings.HasPrefix(s, "cluster 2: hello") {
		t.Fatalf("answer %q", s)
	}
}
