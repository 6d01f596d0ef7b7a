package admin_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/admin"
	"github.com/guildkit/guild/cluster"
	"github.com/guildkit/guild/internal/await"
	"github.com/guildkit/guild/table"
)

// slowSet's Validate waits while its row says so, for the test to see
// a reload in progress.
type slowSet struct {
	Rows table.Table[int, slowRow] `table:"rows.csv"`
}

type slowRow struct {
	ID   int  `table:"id"`
	Slow bool `table:"slow"`
}

// pacer paces slowSet's Validate: each run of the test sets a fresh one.
type pacer struct{ entered, release chan struct{} }

var pace atomic.Pointer[pacer]

func (s *slowSet) Validate() error {
	for _, r := range s.Rows.All() {
		if r.Slow {
			p := pace.Load()
			p.entered <- struct{}{}
			select {
			case <-p.release:
			case <-time.After(30 * time.Second):
				return errors.New("not released")
			}
		}
	}
	return nil
}

// TestReloadOneAtATime: a reload of a node's tables runs on its own
// goroutine (the agent goes on answering snapshots), and a second one
// meanwhile is refused with 429.
func TestReloadOneAtATime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := &pacer{entered: make(chan struct{}, 1), release: make(chan struct{})}
	pace.Store(p)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rows.csv"), []byte("id,slow\n1,false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	g, err := table.NewGroup(table.GroupConfig{Dir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(ctx)
	if _, err := table.Open[slowSet](ctx, g, "slow"); err != nil {
		t.Fatal(err)
	}
	node, members := soloNode(t, ctx, log)
	agent, err := admin.StartAgent(ctx, admin.AgentConfig{Node: node, Name: "solo", Tables: g, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Stop(ctx)
	dash, err := admin.Serve(admin.Config{Listen: "127.0.0.1:0", Node: node, Members: members, Token: adminToken, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer dash.Close()
	base := dash.URL()

	if err := os.WriteFile(filepath.Join(dir, "rows.csv"), []byte("id,slow\n1,true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	first := make(chan int, 1)
	go func() { first <- do(t, "POST", base+"api/nodes/1.1.1/reload", adminToken, "", nil) }()
	select {
	case <-p.entered:
	case <-ctx.Done():
		t.Fatal("the reload never reached Validate")
	}
	if code := do(t, "POST", base+"api/nodes/1.1.1/reload", adminToken, "", nil); code != http.StatusTooManyRequests {
		t.Errorf("a second reload meanwhile: %d, want 429", code)
	}
	var v admin.View
	if code := do(t, "GET", base+"api/view", adminToken, "", &v); code != http.StatusOK || len(v.Nodes) != 1 || !v.Nodes[0].Reachable {
		t.Errorf("the agent does not answer during a reload: %d %+v", code, v)
	}
	if code := do(t, "POST", base+"api/nodes/1.1.1/reload", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("a reload without the token: %d", code)
	}
	close(p.release)
	if code := <-first; code != http.StatusOK {
		t.Errorf("the first reload: %d", code)
	}
	var reply admin.TablesReply
	await.True(t, 10*time.Second, "the agent to take reloads again", func() bool {
		return do(t, "GET", base+"api/nodes/1.1.1/tables", adminToken, "", &reply) == http.StatusOK && len(reply.Sets) == 1 && reply.Sets[0].Loads == 2
	})
}

// soloNode starts a one-node cluster on loopback with an in-memory
// membership, closed when the test ends.
func soloNode(t *testing.T, ctx context.Context, log *slog.Logger) (*cluster.Node, cluster.Membership) {
	t.Helper()
	store := cluster.NewMemory()
	members := store.Membership(actor.MustAddr(1, 1, 1))
	t.Cleanup(func() { _ = members.Close() })
	node, err := cluster.Start(ctx, cluster.NodeConfig{
		Actor: actor.Config{Addr: actor.MustAddr(1, 1, 1), Logger: log}, Listen: "127.0.0.1:0", Membership: members, Names: store.Names(), Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = node.Close() })
	return node, members
}
