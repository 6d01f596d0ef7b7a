package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guildkit/guild/app"
	"github.com/guildkit/guild/config"
	"github.com/guildkit/guild/table"
)

type reloadItem struct {
	ID    int `table:"id"`
	Price int `table:"price"`
}

type reloadTables struct {
	Items table.Table[int, reloadItem] `table:"items.csv"`
}

// reloadModule opens the set "shop" from env.Tables.
type reloadModule struct{ sets chan *table.Set[reloadTables] }

func (m *reloadModule) Start(ctx context.Context, env *app.Env) error {
	s, err := table.Open[reloadTables](ctx, env.Tables, "shop")
	if err == nil {
		m.sets <- s
	}
	return err
}

func (m *reloadModule) Stop(context.Context) error { return nil }

func writeTable(t *testing.T, dir, content string) {
	t.Helper()
	p := filepath.Join(dir, "items.csv")
	if err := os.WriteFile(p+".tmp", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
}

// TestReload runs guild reload against real nodes started from a
// cluster file: one node with tables and the dashboard, one without
// tables. A good reload prints the new version; a bad file prints the
// error with its line and exits 1, and the node keeps its version; -all
// says the node without tables has nothing to reload.
func TestReload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	writeTable(t, dir, "id,price\n1,10\n")
	path := writeClusterFile(t, `
cluster:
  etcd: {ttl: 2s}
admin: {token: reload-admin-token-0123456789}
nodes:
  shop1:
    addr: 1.2.1
    master: 127.0.0.1:0
    modules: [shop]
    admin: {listen: 127.0.0.1:0}
    tables: {dir: `+dir+`}
  gate1:
    addr: 1.1.1
`)
	sets := make(chan *table.Set[reloadTables], 1)
	reg := app.NewRegistry()
	reg.Register("shop", func() app.Module { return &reloadModule{sets: sets} })
	cfg, err := config.Load(path, nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	log := app.WithLogger(slog.New(slog.DiscardHandler))
	shop, err := app.Start(ctx, cfg, "shop1", reg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer shop.Shutdown(context.Background())
	gate, err := app.Start(ctx, cfg, "gate1", reg, log, app.WithEtcdEndpoints(shop.Ready().Etcd...))
	if err != nil {
		t.Fatal(err)
	}
	defer gate.Shutdown(context.Background())
	set := <-sets
	v1 := set.Version()
	dash := shop.Ready().Admin

	reload := func(args ...string) (int, string, string) {
		var out, errOut syncBuffer
		code := reloadCmd(ctx, args, nil, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	writeTable(t, dir, "id,price\n1,10\n2,20\n")
	code, out, errOut := reload("-c", path, "--node", "shop1", "-admin", dash)
	v2 := set.Version()
	if code != exitOK || v2.Hash == v1.Hash {
		t.Fatalf("exit code %d; stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	contains(t, "stdout", out, "shop1 (1.2.1): ok\n", "  shop  "+v2.Hash+"  changed, was "+v1.Hash+"\n")

	code, out, _ = reload("-c", path, "-node", "shop1", "-admin", dash)
	if code != exitOK {
		t.Errorf("again: exit code %d", code)
	}
	contains(t, "stdout", out, "  shop  "+v2.Hash+"  unchanged\n")

	writeTable(t, dir, "id,price\n1,10\n1,20\n")
	code, out, _ = reload("-c", path, "-all", "-admin", dash)
	if code != exitError || set.Version() != v2 {
		t.Errorf("a bad file: exit code %d, version %v (was %v)", code, set.Version(), v2)
	}
	contains(t, "stdout", out, "gate1 (1.1.1): nothing to reload\n", "shop1 (1.2.1): FAILED\n",
		"  shop  "+v2.Hash+"  kept: table set shop:\n    items.csv:3:1: id: duplicate key 1 (also the key of the row at line 2)\n")

	code, out, _ = reload("-c", path, "-node", "gate1", "-admin", dash)
	if code != exitError {
		t.Errorf("a node with nothing to reload: exit code %d", code)
	}
	contains(t, "stdout", out, "gate1 (1.1.1): FAILED: nothing to reload: no tables directory (tables.dir) and no hot-fix modules")

	// The token is checked: a wrong one from the environment fails.
	var outB, errB syncBuffer
	code = reloadCmd(ctx, []string{"-c", path, "-node", "shop1", "-admin", dash}, []string{"GUILD_ADMIN_TOKEN=wrong-admin-token-0123456789"}, &outB, &errB)
	if code != exitError {
		t.Errorf("a wrong token: exit code %d", code)
	}
	contains(t, "stdout", outB.String(), "401 Unauthorized: this needs the admin token")
}

func TestReloadUsage(t *testing.T) {
	path := writeClusterFile(t, `
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0, admin: {listen: 127.0.0.1:0}, tables: {dir: /tmp}}
  b: {addr: 1.2.1}
`)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-node", "a"}, exitUsage, "-c is required"},
		{[]string{"-c", path}, exitUsage, "give -node NAME, or -all"},
		{[]string{"-c", path, "-node", "a", "-all"}, exitUsage, "-node and -all exclude each other"},
		{[]string{"-c", path, "-node", "x"}, exitUsage, `has no node "x" (it has a, b)`},
		{[]string{"-c", path, "-node", "a"}, exitUsage, "nodes.a's admin dashboard listens on port 0: give -admin"},
		{[]string{"-c", path, "-node", "a", "-admin", "ftp://x"}, exitUsage, `-admin "ftp://x" is not an http(s) URL`},
		{[]string{"-c", path, "-node", "a", "-timeout", "0s"}, exitUsage, "-timeout 0s is not positive"},
	} {
		var out, errOut syncBuffer
		if code := reloadCmd(context.Background(), tc.args, nil, &out, &errOut); code != tc.code {
			t.Errorf("%q: exit code %d, want %d", tc.args, code, tc.code)
		}
		contains(t, "stderr", errOut.String(), tc.want)
	}
	cfg, err := config.Parse([]byte(`
admin: {listen: ":9090"}
nodes:
  a: {addr: 1.1.1, master: 127.0.0.1:0}
  b: {addr: 1.2.1, admin: {listen: "10.0.0.5:9091"}}
`), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for node, want := range map[string]string{"a": "http://127.0.0.1:9090/", "b": "http://10.0.0.5:9091/", "": "http://127.0.0.1:9090/"} {
		if got, err := adminURL(cfg, node); got != want || err != nil {
			t.Errorf("adminURL(%q) = %q, %v; want %q", node, got, err, want)
		}
	}
	cfg.Admin.Listen = ""
	cfg.Nodes["b"].Admin = nil
	if _, err := adminURL(cfg, "a"); err == nil || !strings.Contains(err.Error(), "no node of the file serves the admin dashboard") {
		t.Errorf("no dashboard: %v", err)
	}
}

// fakeFixes is a Reloader as a hot-fix module's Loader is one (package
// hotfix's side is tested there, with real modules): one handler,
// "counter", whose next reload the test sets.
type fakeFixes struct {
	mu      sync.Mutex
	version string
	next    string // the version the next reload moves to, "" for none
	reject  error  // the next reload's error for counter
}

func (f *fakeFixes) Versions() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return map[string]string{"counter": f.version}
}

func (f *fakeFixes) ReloadItems(context.Context) (map[string]error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reject != nil {
		return map[string]error{"counter": f.reject}, nil
	}
	if f.next != "" {
		f.version, f.next = f.next, ""
	}
	return nil, nil
}

func (f *fakeFixes) set(next string, reject error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next, f.reject = next, reject
}

// fixesModule adds its fakeFixes to the node under its module's name.
type fixesModule struct{ fixes *fakeFixes }

func (m *fixesModule) Start(_ context.Context, env *app.Env) error {
	return env.AddReloader("fixes", m.fixes)
}

func (m *fixesModule) Stop(context.Context) error { return nil }

// TestReloadReloaders runs guild reload against nodes without tables: one
// with a reloader (a hot-fix module's), one with nothing to reload, and
// one of the file that is not running. The reloader's items print like
// table sets (changed, unchanged, kept with the error and exit 1); -all
// asks the node with the reloader, says the other has nothing to reload
// and skips the one not running; -node of the node with nothing fails.
func TestReloadReloaders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	path := writeClusterFile(t, `
cluster:
  etcd: {ttl: 2s}
admin: {token: reload-admin-token-0123456789}
nodes:
  fix1:
    addr: 1.4.1
    master: 127.0.0.1:0
    modules: [fixes]
    admin: {listen: 127.0.0.1:0}
  plain1:
    addr: 1.1.1
  idle1:
    addr: 1.3.1
`)
	fixes := &fakeFixes{version: "5c1f0e9a2b7d"}
	reg := app.NewRegistry()
	reg.Register("fixes", func() app.Module { return &fixesModule{fixes: fixes} })
	cfg, err := config.Load(path, nil, reg.Names())
	if err != nil {
		t.Fatal(err)
	}
	log := app.WithLogger(slog.New(slog.DiscardHandler))
	fix, err := app.Start(ctx, cfg, "fix1", reg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer fix.Shutdown(context.Background())
	plain, err := app.Start(ctx, cfg, "plain1", reg, log, app.WithEtcdEndpoints(fix.Ready().Etcd...))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Shutdown(context.Background())
	dash := fix.Ready().Admin
	reload := func(args ...string) (int, string) {
		var out, errOut syncBuffer
		code := reloadCmd(ctx, append([]string{"-c", path, "-admin", dash}, args...), nil, &out, &errOut)
		if errOut.String() != "" {
			t.Errorf("stderr: %s", errOut.String())
		}
		return code, out.String()
	}

	fixes.set("83be1c04d2aa", nil)
	code, out := reload("-node", "fix1")
	if code != exitOK {
		t.Errorf("a new version: exit code %d\n%s", code, out)
	}
	contains(t, "stdout", out, "fix1 (1.4.1): ok\n  fixes/counter  83be1c04d2aa  changed, was 5c1f0e9a2b7d\n")
	if strings.Contains(out, "no table sets") {
		t.Errorf("a node without tables said it has no table sets:\n%s", out)
	}

	fixes.set("", errors.New("counter.wasm: hotfix: module rejected: counter: compile: invalid magic number\nsecond line"))
	code, out = reload("-all")
	if code != exitError {
		t.Errorf("a rejected module: exit code %d\n%s", code, out)
	}
	contains(t, "stdout", out,
		"fix1 (1.4.1): FAILED\n  fixes/counter  83be1c04d2aa  kept: counter.wasm: hotfix: module rejected: counter: compile: invalid magic number\n    second line\n",
		"plain1 (1.1.1): nothing to reload\n",
		"idle1 (1.3.1): not running, skipped (404 Not Found: node 1.3.1 is not a member)\n")

	fixes.set("", nil)
	code, out = reload("-all")
	if code != exitOK {
		t.Errorf("-all, nothing changed: exit code %d\n%s", code, out)
	}
	contains(t, "stdout", out, "fix1 (1.4.1): ok\n  fixes/counter  83be1c04d2aa  unchanged\n")

	code, out = reload("-node", "plain1")
	if code != exitError {
		t.Errorf("-node of a node with nothing to reload: exit code %d", code)
	}
	contains(t, "stdout", out, "plain1 (1.1.1): FAILED: nothing to reload")
	code, out = reload("-node", "idle1")
	if code != exitError {
		t.Errorf("-node of a node that is not running: exit code %d", code)
	}
	contains(t, "stdout", out, "idle1 (1.3.1): FAILED: 404 Not Found: node 1.3.1 is not a member")
}
