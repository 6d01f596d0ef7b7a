package hotfix_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guildkit/guild/actor"
	"github.com/guildkit/guild/admin"
	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/hotfix"
)

// A *Loader is an admin.Reloader, structurally: hotfix imports neither
// admin nor app.
var _ admin.Reloader = (*hotfix.Loader)(nil)

const reloadToken = "hotfix-admin-token-0123456789"

// fixModule is a module of the game that hot-fixes: it serves its
// section's hotfix directory, runs a counter actor on the handler
// "counter" and hands its Loader to the node (env.AddReloader).
type fixModule struct {
	fixes   *hotfix.Loader
	started chan fixStarted
}

type fixStarted struct {
	fixes *hotfix.Loader
	pid   actor.PID
}

func (m *fixModule) Start(ctx context.Context, env *app.Env) error {
	var set struct {
		Hotfix hotfix.Settings `yaml:"hotfix"`
	}
	if err := env.Settings(&set); err != nil {
		return err
	}
	fixes, _, err := hotfix.Open(ctx, set.Hotfix, nil)
	if err != nil {
		return err
	}
	m.fixes = fixes
	if err := env.AddReloader("shop", fixes); err != nil {
		return err
	}
	pid, err := env.Actor.Spawn(func() actor.Actor { return hotfix.NewActor(fixes.Handler("counter"), nil) })
	if err != nil {
		return err
	}
	m.started <- fixStarted{fixes, pid}
	return nil
}

func (m *fixModule) Stop(ctx context.Context) error { return m.fixes.CloseAll(ctx) }

// fixNode is a one-node cluster started from a cluster file whose node
// hosts fixModule over dir, with the admin dashboard and no watcher.
type fixNode struct {
	node  *app.Node
	fixes *hotfix.Loader
	pid   actor.PID
	dir   string
}

func startFixNode(t *testing.T, ctx context.Context) *fixNode {
	t.Helper()
	dir := t.TempDir()
	writeFix(t, dir, fix(t, "counter1"))
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(path, []byte(`
cluster:
  etcd: {ttl: 2s}
admin: {token: `+reloadToken+`}
modules:
  shop:
    hotfix: {dir: `+dir+`, cache_dir: `+cacheDir+`}
nodes:
  solo:
    addr: 1.1.1
    master: 127.0.0.1:0
    modules: [shop]
    admin: {listen: 127.0.0.1:0}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &fixModule{started: make(chan fixStarted, 1)}
	reg := app.NewRegistry()
	reg.Register("shop", func() app.Module { return m })
	cfg, err := config.Load(path, nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	node, err := app.Start(ctx, cfg, "solo", reg, app.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := node.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	s := <-m.started
	return &fixNode{node: node, fixes: s.fixes, pid: s.pid, dir: dir}
}

// writeFix deploys a module as the handler counter's file: written
// beside, then renamed into place.
func writeFix(t *testing.T, dir string, b []byte) {
	t.Helper()
	tmp := filepath.Join(dir, ".counter.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "counter.wasm")); err != nil {
		t.Fatal(err)
	}
}

// call sends the counter actor a message and returns its reply's text.
func (n *fixNode) call(t *testing.T, ctx context.Context) string {
	t.Helper()
	r, err := n.node.Cluster().Actor().Call(ctx, n.pid, &hotfix.Message{Type: "inc"})
	if err != nil {
		t.Fatal(err)
	}
	return replyText(t, r)
}

// api sends a request to the node's admin API and decodes its JSON
// answer, whatever its status.
func (n *fixNode) api(t *testing.T, ctx context.Context, method, path string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, n.node.Ready().Admin+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+reloadToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
	}
	return resp.StatusCode
}

// counterItem returns the item "counter" of the reloader "shop" in a
// reply, failing the test when it is not the one item of the one
// reloader.
func counterItem(t *testing.T, reply admin.TablesReply) admin.ReloadItem {
	t.Helper()
	if len(reply.Reloaders) != 1 || reply.Reloaders[0].Name != "shop" || reply.Reloaders[0].Error != "" ||
		len(reply.Reloaders[0].Items) != 1 || reply.Reloaders[0].Items[0].Name != "counter" {
		t.Fatalf("reloaders %+v", reply.Reloaders)
	}
	return reply.Reloaders[0].Items[0]
}

// TestAdminReload deploys a fix to a node started from a cluster file
// and reloads it through the admin API, as guild reload does: the reply
// reports the handler changed, from v1's version to v2's; the actor's
// next message runs on v2 with the count v1 left; the tables action and
// the dashboard's snapshot report the new version.
func TestAdminReload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := startFixNode(t, ctx)
	h := n.fixes.Handler("counter")
	v1 := h.Version()
	if r := n.call(t, ctx); r != "v1:1" {
		t.Fatalf("before the fix: %q", r)
	}

	var reply admin.TablesReply
	if code := n.api(t, ctx, "POST", "api/nodes/1.1.1/reload", &reply); code != http.StatusOK || !reply.OK {
		t.Fatalf("a reload without a change: %d %+v", code, reply)
	}
	if it := counterItem(t, reply); it != (admin.ReloadItem{Name: "counter", Version: v1}) {
		t.Fatalf("a reload without a change: %+v", it)
	}

	writeFix(t, n.dir, fix(t, "counter2"))
	reply = admin.TablesReply{}
	if code := n.api(t, ctx, "POST", "api/nodes/1.1.1/reload", &reply); code != http.StatusOK || !reply.OK || reply.Node != "solo" {
		t.Fatalf("reload: %d %+v", code, reply)
	}
	v2 := h.Version()
	if it := counterItem(t, reply); v2 == v1 || it != (admin.ReloadItem{Name: "counter", Version: v2, Previous: v1, Changed: true}) {
		t.Fatalf("reload: %+v; in service %s, v1 %s", it, v2, v1)
	}
	if r := n.call(t, ctx); r != "v2:3" {
		t.Fatalf("after the fix: %q, want v2:3 (v2 goes on from v1's count)", r)
	}

	reply = admin.TablesReply{}
	if code := n.api(t, ctx, "GET", "api/nodes/1.1.1/tables", &reply); code != http.StatusOK {
		t.Fatalf("tables: %d %+v", code, reply)
	}
	if it := counterItem(t, reply); it != (admin.ReloadItem{Name: "counter", Version: v2}) {
		t.Fatalf("tables: %+v", it)
	}
	var v admin.View
	if code := n.api(t, ctx, "GET", "api/view", &v); code != http.StatusOK || len(v.Nodes) != 1 || v.Nodes[0].Snapshot == nil {
		t.Fatalf("view: %d %+v", code, v)
	}
	if rs := v.Nodes[0].Snapshot.Reloaders; len(rs) != 1 || len(rs[0].Items) != 1 || rs[0].Items[0].Version != v2 {
		t.Fatalf("the snapshot's reloaders: %+v", rs)
	}
}

// TestAdminReloadRejected deploys a file that is no WebAssembly module
// and reloads it through the admin API: the answer is 422 with OK false,
// the handler kept its version with the error, and the old code still
// serves, with its state.
func TestAdminReloadRejected(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := startFixNode(t, ctx)
	v1 := n.fixes.Handler("counter").Version()
	if r := n.call(t, ctx); r != "v1:1" {
		t.Fatalf("before: %q", r)
	}

	writeFix(t, n.dir, []byte("#!/bin/sh\necho fixed\n"))
	var reply admin.TablesReply
	if code := n.api(t, ctx, "POST", "api/nodes/1.1.1/reload", &reply); code != http.StatusUnprocessableEntity || reply.OK {
		t.Fatalf("reload of a bad file: %d %+v", code, reply)
	}
	it := counterItem(t, reply)
	if it.Version != v1 || it.Changed || it.Previous != "" ||
		!strings.Contains(it.Error, "counter.wasm") || !strings.Contains(it.Error, "rejected") || !strings.Contains(it.Error, "compile") {
		t.Fatalf("the rejected file: %+v (v1 %s)", it, v1)
	}
	if r := n.call(t, ctx); r != "v1:2" {
		t.Fatalf("after the rejected file: %q, want v1:2", r)
	}
	if got := n.fixes.Handler("counter").Version(); got != v1 {
		t.Fatalf("in service %s, want %s", got, v1)
	}
}
